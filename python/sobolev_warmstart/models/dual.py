"""Forward-mode (dual-number) building blocks for a cheap Jacobian-vector product that can be trained through.

The Sobolev loss needs ``J v`` of the denoiser with respect to its conditioning, and then the gradient of a
loss on ``J v`` with respect to the weights. PyTorch's generic forward-mode AD (``torch.func.jvp``) and the
double-backward trick both cost about 3x a plain training step here (measured by ``bench_policy``), mostly
in many small elementwise ops for the tangents of GroupNorm and Mish and in separate primal/tangent
convolutions. Here a dual tensor is the primal and the tangent stacked along the batch axis, ``z = [x; dx]``
of shape ``(P + Q, ...)``: ``P`` primal rows, then ``Q <= P`` tangent rows, tangent row ``i`` being the
direction at primal row ``i`` (``Q = P`` by default; ``Q < P`` when only part of a batch needs the derivative,
``TrainConfig.sobolev_fraction``). Every function takes ``primal = P`` (``None``: half the rows). Linear layers
run once on the stack (the bias only on the primal rows), and GroupNorm and Mish have fused autograd Functions
with hand-derived first and second derivatives, checked by ``torch.autograd.gradcheck`` in the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["primal_rows", "mish_dual", "group_norm_dual", "add_bias_primal", "conv1d_dual", "conv_transpose1d_dual", "linear_dual"]


def primal_rows(z: torch.Tensor, primal: int | None) -> int:
    """``P`` of a dual tensor ``(P + Q, ...)``: ``primal``, or half the rows when ``None``."""
    return z.shape[0] // 2 if primal is None else primal


class _MishDual(torch.autograd.Function):
    """``mish(x) = x t``, ``mish'(x) = t + x s (1 - t²)``, ``mish''(x) = (1 - t²) s (2 + x (1 - s) - 2 x s t)``
    with ``s = sigmoid(x)``, ``t = tanh(softplus(x))``: the three transcendental functions are evaluated once
    in the forward and reused by the backward."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, p: int) -> torch.Tensor:
        x, dx = z[:p], z[p:]
        q = dx.shape[0]
        s = torch.sigmoid(x)
        t = torch.tanh(F.softplus(x))
        m1 = torch.addcmul(t, x * s, 1.0 - t * t)
        ctx.save_for_backward(x, dx, s, t, m1)
        return torch.cat([x * t, m1[:q] * dx])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, dx, s, t, m1 = ctx.saved_tensors
        p, q = x.shape[0], dx.shape[0]
        gy, gdy = g[:p], g[p:]
        xs, tq = x[:q] * s[:q], t[:q]
        m2 = (x[:q] - xs).add_(2.0).sub_((xs * tq).mul_(2.0)).mul_(s[:q]).mul_(1.0 - tq * tq)
        gx = gy * m1
        gx[:q].addcmul_(gdy * dx, m2)
        return torch.cat([gx, gdy * m1[:q]]), None


def mish_dual(z: torch.Tensor, primal: int | None = None) -> torch.Tensor:
    """Mish on a dual tensor ``z = [x; dx]`` -> ``[mish(x); mish'(x) dx]``."""
    return _MishDual.apply(z, primal_rows(z, primal))


class _GroupNormDual(torch.autograd.Function):
    """GroupNorm on ``[x; dx]``: ``y = w x̂ + b``, ``dy = w t̂`` with ``x̂ = (x - μ) r`` per group and
    ``t̂ = J dx = r (dx - mean(dx) - x̂ mean(x̂ dx))``. ``J`` is symmetric; the backward uses it for both
    inputs plus the second-order term of ``t̂`` in ``x``:
    ``∂(gᵀt̂)/∂x = -r (x̂ mean(g t̂) + m J g + mean(g x̂) t̂)`` with ``m = mean(x̂ dx)``."""

    @staticmethod
    def forward(ctx, z, weight, bias, groups: int, eps: float, p: int):
        n, c, length = z.shape
        q = n - p
        x, dx = z[:p], z[p:]
        y, mean, rstd = torch.native_group_norm(x, weight, bias, p, c, length, groups, eps)
        xr = x.reshape(p, groups, -1)
        r = rstd.view(p, groups, 1)
        xh = (xr - mean.view(p, groups, 1)).mul_(r)
        dxr = dx.reshape(q, groups, -1)
        m = (xh[:q] * dxr).mean(-1, keepdim=True)
        th = (dxr - dxr.mean(-1, keepdim=True)).sub_(xh[:q] * m).mul_(r[:q])
        w = weight.view(1, c, 1)
        dy = th.view(q, c, length) * w
        ctx.save_for_backward(xh, th, r, m, weight)
        ctx.groups = groups
        return torch.cat([y, dy])

    @staticmethod
    def backward(ctx, g):
        xh, th, r, m, weight = ctx.saved_tensors
        p, q, groups = xh.shape[0], th.shape[0], ctx.groups
        c = weight.shape[0]
        length = g.shape[-1]
        gy, gdy = g[:p], g[p:]
        w = weight.view(1, c, 1)
        xhc, thc = xh.view(p, c, length), th.view(q, c, length)
        gw = (gy * xhc).sum((0, 2)).add_((gdy * thc).sum((0, 2)))
        gb = gy.sum((0, 2))
        a = (gy * w).view(p, groups, -1)
        bb = (gdy * w).view(q, groups, -1)
        xq, rq = xh[:q], r[:q]

        def jac(v, xh, r):
            return (v - v.mean(-1, keepdim=True)).sub_(xh * (xh * v).mean(-1, keepdim=True)).mul_(r)

        gdx = jac(bb, xq, rq)
        corr = (xq * (bb * th).mean(-1, keepdim=True)).add_(m * gdx).add_(th * (bb * xq).mean(-1, keepdim=True))
        gx = jac(a, xh, r)
        gx[:q].sub_(corr.mul_(rq))
        return torch.cat([gx.view(p, c, length), gdx.view(q, c, length)]), gw, gb, None, None, None


def group_norm_dual(z: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor,
                    eps: float = 1e-5, primal: int | None = None) -> torch.Tensor:
    """GroupNorm (with affine weight and bias) on a dual tensor ``(P + Q, C, L)``."""
    return _GroupNormDual.apply(z, weight, bias, groups, eps, primal_rows(z, primal))


def add_bias_primal(out: torch.Tensor, bias: torch.Tensor | None, primal: int | None = None) -> torch.Tensor:
    """Add ``bias (C,)`` along axis 1 of the primal rows of ``out (P + Q, C, ...)`` only."""
    if bias is None:
        return out
    p = primal_rows(out, primal)
    if 2 * p == out.shape[0]:  # as many tangent rows: one broadcast add of [bias; 0]
        shape = (2, p) + tuple(out.shape[1:])
        mask = torch.stack([bias, torch.zeros_like(bias)]).view((2, 1, -1) + (1,) * (out.dim() - 2))
        return (out.view(shape) + mask).view(out.shape)
    return torch.cat([out[:p] + bias.view((1, -1) + (1,) * (out.dim() - 2)), out[p:]])


def conv1d_dual(z: torch.Tensor, conv: torch.nn.Conv1d, primal: int | None = None) -> torch.Tensor:
    out = F.conv1d(z, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return add_bias_primal(out, conv.bias, primal)


def conv_transpose1d_dual(z: torch.Tensor, conv: torch.nn.ConvTranspose1d, primal: int | None = None) -> torch.Tensor:
    out = F.conv_transpose1d(z, conv.weight, None, conv.stride, conv.padding, conv.output_padding,
                             conv.groups, conv.dilation)
    return add_bias_primal(out, conv.bias, primal)


def linear_dual(z: torch.Tensor, lin: torch.nn.Linear, primal: int | None = None) -> torch.Tensor:
    return add_bias_primal(F.linear(z, lin.weight, None), lin.bias, primal)
