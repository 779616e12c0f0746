"""Forward-mode (dual-number) building blocks for a cheap Jacobian-vector product that can be trained through.

The Sobolev loss needs ``J v`` of the denoiser with respect to its conditioning, and then the gradient of a
loss on ``J v`` with respect to the weights. PyTorch's generic forward-mode AD (``torch.func.jvp``) and the
double-backward trick both cost about 3x a plain training step here (measured by ``bench_policy``), mostly
in many small elementwise ops for the tangents of GroupNorm and Mish and in separate primal/tangent
convolutions. Here a dual tensor is the primal and the tangent stacked along the batch axis, ``z = [x; dx]``
of shape ``(2B, ...)``: linear layers run once on the stack (the bias only on the primal half), and GroupNorm
and Mish have fused autograd Functions with hand-derived first and second derivatives, checked by
``torch.autograd.gradcheck`` in the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mish_dual", "group_norm_dual", "add_bias_primal", "conv1d_dual", "conv_transpose1d_dual", "linear_dual"]


class _MishDual(torch.autograd.Function):
    """``mish(x) = x t``, ``mish'(x) = t + x s (1 - t²)``, ``mish''(x) = (1 - t²) s (2 + x (1 - s) - 2 x s t)``
    with ``s = sigmoid(x)``, ``t = tanh(softplus(x))``: the three transcendental functions are evaluated once
    in the forward and reused by the backward."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0] // 2
        x, dx = z[:b], z[b:]
        s = torch.sigmoid(x)
        t = torch.tanh(F.softplus(x))
        m1 = torch.addcmul(t, x * s, 1.0 - t * t)
        ctx.save_for_backward(x, dx, s, t, m1)
        return torch.cat([x * t, m1 * dx])

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        x, dx, s, t, m1 = ctx.saved_tensors
        b = x.shape[0]
        gy, gdy = g[:b], g[b:]
        xs = x * s
        m2 = (x - xs).add_(2.0).sub_((xs * t).mul_(2.0)).mul_(s).mul_(1.0 - t * t)
        gx = torch.addcmul(gy * m1, gdy * dx, m2)
        return torch.cat([gx, gdy * m1])


def mish_dual(z: torch.Tensor) -> torch.Tensor:
    """Mish on a dual tensor ``z = [x; dx]`` -> ``[mish(x); mish'(x) dx]``."""
    return _MishDual.apply(z)


class _GroupNormDual(torch.autograd.Function):
    """GroupNorm on ``[x; dx]``: ``y = w x̂ + b``, ``dy = w t̂`` with ``x̂ = (x - μ) r`` per group and
    ``t̂ = J dx = r (dx - mean(dx) - x̂ mean(x̂ dx))``. ``J`` is symmetric; the backward uses it for both
    inputs plus the second-order term of ``t̂`` in ``x``:
    ``∂(gᵀt̂)/∂x = -r (x̂ mean(g t̂) + m J g + mean(g x̂) t̂)`` with ``m = mean(x̂ dx)``."""

    @staticmethod
    def forward(ctx, z, weight, bias, groups: int, eps: float):
        n2, c, length = z.shape
        b = n2 // 2
        x, dx = z[:b], z[b:]
        y, mean, rstd = torch.native_group_norm(x, weight, bias, b, c, length, groups, eps)
        xr = x.reshape(b, groups, -1)
        r = rstd.view(b, groups, 1)
        xh = (xr - mean.view(b, groups, 1)).mul_(r)
        dxr = dx.reshape(b, groups, -1)
        m = (xh * dxr).mean(-1, keepdim=True)
        th = (dxr - dxr.mean(-1, keepdim=True)).sub_(xh * m).mul_(r)
        w = weight.view(1, c, 1)
        dy = th.view(b, c, length) * w
        ctx.save_for_backward(xh, th, r, m, weight)
        ctx.groups = groups
        return torch.cat([y, dy])

    @staticmethod
    def backward(ctx, g):
        xh, th, r, m, weight = ctx.saved_tensors
        b, groups = xh.shape[0], ctx.groups
        c = weight.shape[0]
        length = g.shape[-1]
        gy, gdy = g[:b], g[b:]
        w = weight.view(1, c, 1)
        xhc, thc = xh.view(b, c, length), th.view(b, c, length)
        gw = (gy * xhc).sum((0, 2)).add_((gdy * thc).sum((0, 2)))
        gb = gy.sum((0, 2))
        a = (gy * w).view(b, groups, -1)
        bb = (gdy * w).view(b, groups, -1)

        def jac(v):
            return (v - v.mean(-1, keepdim=True)).sub_(xh * (xh * v).mean(-1, keepdim=True)).mul_(r)

        gdx = jac(bb)
        corr = (xh * (bb * th).mean(-1, keepdim=True)).add_(m * gdx).add_(th * (bb * xh).mean(-1, keepdim=True))
        gx = jac(a).sub_(corr.mul_(r))
        return torch.cat([gx.view(b, c, length), gdx.view(b, c, length)]), gw, gb, None, None


def group_norm_dual(z: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor,
                    eps: float = 1e-5) -> torch.Tensor:
    """GroupNorm (with affine weight and bias) on a dual tensor ``(2B, C, L)``."""
    return _GroupNormDual.apply(z, weight, bias, groups, eps)


def add_bias_primal(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Add ``bias (C,)`` along axis 1 of the primal half of ``out (2B, C, ...)`` only."""
    if bias is None:
        return out
    b = out.shape[0] // 2
    shape = (2, b) + tuple(out.shape[1:])
    bshape = (1, 1, -1) + (1,) * (out.dim() - 2)
    mask = torch.stack([bias, torch.zeros_like(bias)]).view((2,) + bshape[1:])
    return (out.view(shape) + mask).view(out.shape)


def conv1d_dual(z: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    out = F.conv1d(z, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return add_bias_primal(out, conv.bias)


def conv_transpose1d_dual(z: torch.Tensor, conv: torch.nn.ConvTranspose1d) -> torch.Tensor:
    out = F.conv_transpose1d(z, conv.weight, None, conv.stride, conv.padding, conv.output_padding,
                             conv.groups, conv.dilation)
    return add_bias_primal(out, conv.bias)


def linear_dual(z: torch.Tensor, lin: torch.nn.Linear) -> torch.Tensor:
    return add_bias_primal(F.linear(z, lin.weight, None), lin.bias)
