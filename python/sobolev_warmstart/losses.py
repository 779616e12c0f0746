"""DDPM x0 regression plus the stochastic Sobolev term, and the direct-policy (MLP) counterpart.

For a training chunk (normalised) ``a_0 (H, D_a)`` with history ``h``, observation history ``o (h, D_o)``,
parameters ``z``, derivative target ``D = ∂a_0/∂x̃ (H, D_a, ndx)`` and ``∂õ_{t0}/∂x̃ (D_o, ndx)``:

    k ~ U{0..K-1},  ε ~ N(0, I),  a_k = sqrt(ᾱ_k) a_0 + sqrt(1-ᾱ_k) ε  (history entries replaced by a_0's),
    ddpm     = mean over the predicted entries of (x̂0 - a_0)²,  x̂0 = D_θ(a_k, k, cond(o, z)),
    sobolev  = Σ_{j<=m} mean over the predicted entries of (J v_j - D v_j)²,
    loss     = ddpm + λ · sobolev,

where ``J v = ∂x̂0/∂x̃_{t0} · v`` is the derivative with ``a_k`` held fixed, pushed through the observation:
the conditioning tangent is ``∂õ_{t0}/∂x̃ · v`` in the current-observation slot and zero elsewhere (past
observations and ``z`` do not depend on the current state). ``v_j`` are independent uniform unit vectors of
``R^ndx``, so ``E[sobolev] = m / ndx · mean ||J - D||_F²`` (over the predicted entries): unbiased for the
Frobenius Sobolev loss up to that scale. History entries are excluded from both terms. ``λ = 0`` is plain
DDPM (the "Diff" baseline) and skips the derivative altogether.

**Parameter Sobolev.** Where the data hold the derivatives of the actions with respect to the task parameters at a
fixed current state (``chunk_param_jac (B, H, D_a, nz) = ∂a_0/∂z̃`` and ``obs_param_jac (B, h, D_o, nz) = ∂õ/∂z̃``,
:func:`~sobolev_warmstart.sensitivities.parameter_jacobians`), the directions are drawn on the unit sphere of
``R^(ndx + nz)``, ``v = (v_x, v_z)``: the conditioning tangent adds ``∂õ/∂z̃ · v_z`` to every observation slot and
``v_z`` to the parameters (columns past ``nz``, the time to go, stay zero), and the target adds
``∂a_0/∂z̃ · v_z``. The same Frobenius loss over the extended Jacobian ``[∂/∂x̃, ∂/∂z̃]``, at scale ``m / (ndx + nz)``:
how the solution moves with its target or obstacles, which the state's gains do not say.

``sobolev_sample_weight (B,)`` (optional) multiplies each sample's Sobolev residual: :func:`sobolev_cap_weights`
gives ``w_i = min(1, τ / s_i)`` with ``s_i`` the sample's target scale ``||D_i||_F² / ndx`` (over its predicted
entries) and ``τ`` a quantile of the training set's scales, so the few samples whose solver gains are orders of
magnitude larger than the rest (the steps before a stiff terminal cost) are matched in relative rather than
absolute error and cannot dominate the loss and its clipped gradient.

``sobolev_entry_weight (D_a,)`` (optional) multiplies each action entry's squared Sobolev residual:
:func:`sobolev_entry_weights` gives ``w_d = min(1, mean(c) / c_d)`` with ``c_d`` entry ``d``'s mean squared target
``||D_{·,d}||² / ndx`` over the training set: the entries whose gains are stiffer than the average entry's are
matched as if they were average, so they cannot dominate the term (on `quadrotor/columns_9`'s training set the yaw
rate at 8.5x the mean, 56% of the term, the altitude at 3.0x and one attitude entry at 1.1x) and the rest is unchanged.

``sobolev_fraction = f < 1`` computes the Sobolev term on the first ``round(f · B)`` samples of the batch only
(the batches are random permutations, so they are a uniform subset): the same expectation with more variance.
The dual pass then carries ``B`` primal rows and ``f · B`` tangent rows (:mod:`.models.dual`), about ``1 + f``
instead of ``2`` forward-backward costs per step. The regression term always uses the whole batch.

The direct policy ``â = π(cond(o_t, z))`` uses the same two terms with ``H - h = 1`` entry and target
``∂a_t/∂x̃_t`` (the normalised feedback gain ``K_t`` for torque tasks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .diffusion import DDPMSchedule

__all__ = ["LossOutput", "make_cond", "cond_tangent", "sobolev_tangent_target", "random_directions", "denoiser_jvp",
           "diffusion_loss", "direct_loss", "check_sobolev_fraction", "check_sobolev_cap_quantile",
           "sobolev_target_scales", "sobolev_cap_weights", "sobolev_entry_scales",
           "sobolev_entry_weights"]

_JVP_METHODS = ("dual", "autograd")


@dataclass
class LossOutput:
    loss: torch.Tensor
    mse: torch.Tensor
    sobolev: torch.Tensor


def make_cond(obs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``obs (B, h, D_o)`` or ``(B, D_o)``, ``params (B, nz)`` -> ``(B, h*D_o + nz)``."""
    return torch.cat([obs.reshape(obs.shape[0], -1), params], dim=-1)


def cond_tangent(obs_jac: torch.Tensor, v: torch.Tensor, history: int, nz: int) -> torch.Tensor:
    """Conditioning tangent of a state direction: ``obs_jac (B, D_o, ndx)``, ``v (B, ndx)`` ->
    ``(B, h*D_o + nz)``, nonzero only in the current (last) observation slot."""
    b, no = obs_jac.shape[0], obs_jac.shape[1]
    do = torch.einsum("bod,bd->bo", obs_jac, v)
    parts = [obs_jac.new_zeros(b, (history - 1) * no), do, obs_jac.new_zeros(b, nz)]
    return torch.cat(parts, dim=-1)


def sobolev_tangent_target(obs_jac: torch.Tensor, jac: torch.Tensor, v: torch.Tensor, history: int, cond_params: int,
                           obs_param_jac: torch.Tensor | None = None, param_jac: torch.Tensor | None = None,
                           param_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditioning tangent and the derivative target of directions ``v (B, ndx [+ nz])``: ``obs_jac (B, D_o,
    ndx)``, ``jac (B, ..., ndx)``; with the parameter derivatives ``obs_param_jac (B, h, D_o, nz)`` and ``param_jac
    (B, ..., nz)`` (both or neither), ``v``'s last ``nz`` entries move the parameters (see the module's docstring).
    ``cond_params``: the conditioning's parameter columns (``nz``, plus one with the time to go). ``param_weight``
    (w): the parameter part of each direction is scaled by ``sqrt(w)``, which weighs the parameter block of the
    squared residual by ``w``."""
    ndx = obs_jac.shape[-1]
    vx = v[:, :ndx]
    tangent = cond_tangent(obs_jac, vx, history, cond_params)
    target = torch.einsum("b...d,bd->b...", jac, vx)
    if (obs_param_jac is None) != (param_jac is None):
        raise ValueError("obs_param_jac, param_jac: give both parameter derivatives or neither")
    if param_jac is None:
        return tangent, target
    nz = param_jac.shape[-1]
    if v.shape[1] != ndx + nz or obs_param_jac.shape[1] != history or nz > cond_params:
        raise ValueError(f"directions: expected {ndx} + {nz} entries over {history} observation slots and at most "
                         f"{cond_params} parameter columns, got {v.shape[1]}, {obs_param_jac.shape[1]} slots")
    vz = v[:, ndx:] if param_weight == 1.0 else v[:, ndx:] * math.sqrt(param_weight)
    b = v.shape[0]
    do = torch.einsum("bhoz,bz->bho", obs_param_jac, vz).reshape(b, -1)
    tail = [vz, vz.new_zeros(b, cond_params - nz)]
    tangent = tangent + torch.cat([do, *tail], dim=-1)
    return tangent, target + torch.einsum("b...z,bz->b...", param_jac, vz)


def random_directions(batch: int, num: int, dim: int, generator: torch.Generator | None = None,
                      dtype=torch.float32) -> torch.Tensor:
    """``(batch, num, dim)`` independent directions, uniform on the unit sphere."""
    v = torch.randn(batch, num, dim, generator=generator, dtype=dtype)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def denoiser_jvp(net: nn.Module, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor,
                 tangent: torch.Tensor, method: str = "dual") -> tuple[torch.Tensor, torch.Tensor]:
    """``(net(sample, step, cond), ∂net/∂cond · tangent)`` with ``sample`` held fixed, differentiable with
    respect to the weights; ``tangent (Q, D_c)`` holds the directions at the first ``Q <= B`` samples. ``method="dual"`` uses the network's fused ``forward_dual`` (fast);
    ``"autograd"`` uses ``torch.func.jvp`` (reference)."""
    if method == "dual":
        return net.forward_dual(sample, step, cond, tangent)
    if method == "autograd":
        q = tangent.shape[0]
        full = tangent if q == cond.shape[0] else torch.cat([tangent, tangent.new_zeros(cond.shape[0] - q, cond.shape[1])])
        out, jv = torch.func.jvp(lambda c: net(sample, step, c), (cond,), (full,))
        return out, jv[:q]
    raise ValueError(f"method: expected one of {_JVP_METHODS}, got {method!r}")


def _check_weight(sobolev_weight: float, num_directions: int, sobolev_fraction: float = 1.0) -> None:
    if not (sobolev_weight >= 0.0):
        raise ValueError(f"sobolev_weight: expected a non-negative float, got {sobolev_weight!r}")
    if not isinstance(num_directions, int) or num_directions < 1:
        raise ValueError(f"num_directions: expected a positive integer, got {num_directions!r}")
    check_sobolev_fraction(sobolev_fraction)


def _check_unit_interval(name: str, value: float | None, allow_none: bool = False) -> None:
    """``value`` a number in (0, 1] (or None where allowed), else a ``ValueError`` naming ``name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value <= 1.0
    if not (ok or (allow_none and value is None)):
        raise ValueError(f"{name}: expected a float in (0, 1]{' or None' if allow_none else ''}, got {value!r}")


def check_sobolev_fraction(sobolev_fraction: float) -> None:
    _check_unit_interval("sobolev_fraction", sobolev_fraction)


def sobolev_target_scales(jac: torch.Tensor) -> torch.Tensor:
    """Per-sample scale ``s_i = ||D_i||_F² / ndx / entries`` of derivative targets ``jac (B, ..., ndx)`` (the
    predicted entries only): the expected squared target ``E[(D_i v)²]`` per entry for a uniform unit ``v``."""
    b, ndx = jac.shape[0], jac.shape[-1]
    return jac.reshape(b, -1, ndx).pow(2).sum(-1).mean(-1) / ndx


def check_sobolev_cap_quantile(quantile: float | None, allow_none: bool = False) -> None:
    _check_unit_interval("sobolev_cap_quantile", quantile, allow_none)


def sobolev_cap_weights(scales: torch.Tensor, quantile: float) -> torch.Tensor:
    """``min(1, τ / s_i)`` with ``τ`` the ``quantile`` of ``scales (B,)`` (in (0, 1]; 1 gives all ones)."""
    check_sobolev_cap_quantile(quantile)
    tau = torch.quantile(scales.double(), float(quantile)).to(scales.dtype)
    return (tau / scales.clamp_min(torch.finfo(scales.dtype).tiny)).clamp(max=1.0)


def sobolev_entry_scales(jac: torch.Tensor) -> torch.Tensor:
    """``c_d = mean ||jac[..., d, :]||² / ndx`` (``(D_a,)``, float64) of derivative targets ``jac (B, ..., D_a, ndx)``
    (the predicted entries only): each action entry's mean squared target, over everything but the entry."""
    if jac.dim() < 3:
        raise ValueError(f"jac: expected (B, ..., D_a, ndx), got shape {tuple(jac.shape)}")
    return jac.double().pow(2).sum(-1).reshape(-1, jac.shape[-2]).mean(0) / jac.shape[-1]


def sobolev_entry_weights(jac: torch.Tensor) -> torch.Tensor:
    """``w_d = min(1, mean(c) / c_d)`` (``(D_a,)``) for derivative targets ``jac (B, ..., D_a, ndx)``, ``c`` their
    :func:`sobolev_entry_scales`: weighted by ``w``, no entry's mean squared target exceeds the entries' mean
    ``mean(c)``, and the entries below it keep weight 1."""
    c = sobolev_entry_scales(jac)
    mean = c.mean()
    if not bool(mean > 0):
        return torch.ones(jac.shape[-2], dtype=jac.dtype)
    return (mean / c.clamp_min(torch.finfo(torch.float64).tiny)).clamp(max=1.0).to(jac.dtype)


def _weighted_residual(res: torch.Tensor, weight: torch.Tensor | None, sb: int, m: int,
                       entry_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the squared residual ``res (m·sb, ..., D_a)`` over rows and entries, each row's scaled by its weight
    and each action entry's (the last axis) by ``entry_weight``."""
    sq = res.pow(2)
    if entry_weight is not None:
        sq = sq * entry_weight
    sq = sq.reshape(res.shape[0], -1).mean(-1)
    if weight is not None:
        sq = sq * _tangent_rows(weight, sb, m)
    return sq.mean() * m


def _regression(res: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of the squared regression residual ``res (B, ...)``, each sample's scaled by ``weight (B,)`` if given
    (:func:`_weighted_residual` with every sample a row)."""
    return res.pow(2).mean() if weight is None else _weighted_residual(res, weight, res.shape[0], 1)


def _check_weight_vector(name: str, weight: torch.Tensor | None, size: int) -> None:
    """``weight`` None or a tensor of shape ``(size,)``, else a ``ValueError`` naming ``name``."""
    if weight is not None and (not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (size,)):
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"{name}: expected a tensor of shape ({size},), got {got}")


def _sobolev_rows(batch: int, sobolev_fraction: float) -> int:
    """The number of leading samples of a batch that get the Sobolev term."""
    return batch if sobolev_fraction >= 1.0 else min(batch, max(1, round(sobolev_fraction * batch)))


def _tangent_rows(x: torch.Tensor, sb: int, m: int) -> torch.Tensor:
    """The first ``sb`` samples once per direction (``m · sb`` rows, direction-major): the rows with a tangent."""
    return x[:sb] if m == 1 else x[:sb].repeat((m,) + (1,) * (x.dim() - 1))


def _optional_tangent_rows(x: torch.Tensor | None, sb: int, m: int) -> torch.Tensor | None:
    return None if x is None else _tangent_rows(x, sb, m)


def _dual_rows(x: torch.Tensor, sb: int, m: int) -> torch.Tensor:
    """The primal rows of a dual pass: the tangent rows, then the samples without the Sobolev term."""
    head = _tangent_rows(x, sb, m)
    return head if sb == x.shape[0] else torch.cat([head, x[sb:]])


def _undo_dual_rows(y: torch.Tensor, sb: int, m: int) -> torch.Tensor:
    """One output per sample from the output of :func:`_dual_rows`' rows (the first direction's copy)."""
    return y if m == 1 else torch.cat([y[:sb], y[m * sb:]])


def diffusion_loss(net: nn.Module, schedule: DDPMSchedule, obs: torch.Tensor, params: torch.Tensor,
                   chunks: torch.Tensor, chunk_jac: torch.Tensor | None, obs_jac: torch.Tensor | None, history: int,
                   *, sobolev_weight: float = 0.0, num_directions: int = 1, generator: torch.Generator | None = None,
                   steps: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   directions: torch.Tensor | None = None, method: str = "dual",
                   past_actions: bool = True, sobolev_fraction: float = 1.0,
                   sobolev_sample_weight: torch.Tensor | None = None, chunk_param_jac: torch.Tensor | None = None,
                   obs_param_jac: torch.Tensor | None = None, parameter_weight: float = 1.0,
                   sobolev_entry_weight: torch.Tensor | None = None,
                   regression_sample_weight: torch.Tensor | None = None) -> LossOutput:
    """Loss of one batch (normalised tensors as in :class:`~sobolev_warmstart.data.ChunkDataset`):
    ``obs (B, h, D_o)``, ``params (B, nz)``, ``chunks (B, H, D_a)``, ``chunk_jac (B, H, D_a, ndx)``,
    ``obs_jac (B, D_o, ndx)``. ``steps (B,)``, ``noise (B, H, D_a)`` and ``directions (S, m, ndx)`` are drawn
    from ``generator`` unless given, ``S = round(sobolev_fraction · B)`` the samples with the Sobolev term (the
    first ``S``). ``past_actions``: the history entries of the noisy sample are the chunk's own (inpainting) or
    zeros (as :class:`~sobolev_warmstart.diffusion.DDPMSampler` samples). ``sobolev_sample_weight (B,)``: per-sample
    factors of the Sobolev residual (see the module's docstring), all ones if omitted. ``chunk_param_jac (B, H, D_a,
    nz)``, ``obs_param_jac (B, h, D_o, nz)``: the parameter Sobolev targets, both or neither (``directions`` then
    ``(S, m, ndx + nz)``), their block weighted by ``parameter_weight``. ``sobolev_entry_weight (D_a,)``: per action
    entry factors of the Sobolev residual (:func:`sobolev_entry_weights`), all ones if omitted.
    ``regression_sample_weight (B,)``: per-sample factors of the regression residual (the reported ``mse`` is the
    weighted one), all ones if omitted."""
    _check_weight(sobolev_weight, num_directions, sobolev_fraction)
    b, horizon, na = chunks.shape
    _check_weight_vector("sobolev_entry_weight", sobolev_entry_weight, na)
    _check_weight_vector("regression_sample_weight", regression_sample_weight, b)
    if steps is None:
        steps = torch.randint(0, schedule.num_steps, (b,), generator=generator)
    if noise is None:
        noise = torch.randn(chunks.shape, generator=generator, dtype=chunks.dtype)
    noisy = schedule.add_noise(chunks, noise, steps)
    known = chunks[:, :history] if past_actions else torch.zeros_like(chunks[:, :history])
    noisy = torch.cat([known, noisy[:, history:]], dim=1)
    cond = make_cond(obs, params)
    if sobolev_weight == 0.0:
        pred = net(noisy, steps, cond)
        mse = _regression((pred - chunks)[:, history:], regression_sample_weight)
        return LossOutput(mse, mse.detach(), torch.zeros((), dtype=mse.dtype))
    if chunk_jac is None or obs_jac is None:
        raise ValueError("chunk_jac, obs_jac: required when sobolev_weight > 0")
    m, sb = num_directions, _sobolev_rows(b, sobolev_fraction)
    dim = obs_jac.shape[-1] + (0 if chunk_param_jac is None else chunk_param_jac.shape[-1])
    if directions is None:
        directions = random_directions(sb, m, dim, generator, chunks.dtype)
    _check_weight_vector("sobolev_sample_weight", sobolev_sample_weight, b)
    v = directions.transpose(0, 1).reshape(m * sb, dim)  # direction-major: [v_0 of all; v_1 of all; ...]

    tangent, target = sobolev_tangent_target(
        _tangent_rows(obs_jac, sb, m), _tangent_rows(chunk_jac, sb, m), v, obs.shape[1], params.shape[1],
        _optional_tangent_rows(obs_param_jac, sb, m), _optional_tangent_rows(chunk_param_jac, sb, m), parameter_weight)
    pred, jv = denoiser_jvp(net, _dual_rows(noisy, sb, m), _dual_rows(steps, sb, m), _dual_rows(cond, sb, m),
                            tangent, method)
    pred = _undo_dual_rows(pred, sb, m)
    mse = _regression((pred - chunks)[:, history:], regression_sample_weight)
    sob = _weighted_residual((jv - target)[:, history:], sobolev_sample_weight, sb, m,
                             sobolev_entry_weight)  # Σ_j mean over (batch, entries)
    return LossOutput(mse + sobolev_weight * sob, mse.detach(), sob.detach())


def direct_loss(net: nn.Module, obs: torch.Tensor, params: torch.Tensor, actions: torch.Tensor,
                action_jac: torch.Tensor | None, obs_jac: torch.Tensor | None, *, sobolev_weight: float = 0.0,
                num_directions: int = 1, generator: torch.Generator | None = None,
                directions: torch.Tensor | None = None, sobolev_fraction: float = 1.0,
                sobolev_sample_weight: torch.Tensor | None = None, action_param_jac: torch.Tensor | None = None,
                obs_param_jac: torch.Tensor | None = None, parameter_weight: float = 1.0,
                sobolev_entry_weight: torch.Tensor | None = None,
                regression_sample_weight: torch.Tensor | None = None) -> LossOutput:
    """Direct policy loss: ``obs (B, D_o)`` (current observation), ``params (B, nz)``, ``actions (B, D_a)``,
    ``action_jac (B, D_a, ndx)``, ``obs_jac (B, D_o, ndx)``; ``sobolev_fraction`` and ``sobolev_sample_weight`` as
    in :func:`diffusion_loss`; ``action_param_jac (B, D_a, nz)`` and ``obs_param_jac (B, D_o, nz)`` (the current
    observation's), ``parameter_weight``, ``sobolev_entry_weight`` and ``regression_sample_weight`` as there."""
    _check_weight(sobolev_weight, num_directions, sobolev_fraction)
    _check_weight_vector("sobolev_entry_weight", sobolev_entry_weight, actions.shape[-1])
    _check_weight_vector("regression_sample_weight", regression_sample_weight, obs.shape[0])
    cond = make_cond(obs, params)
    if sobolev_weight == 0.0:
        mse = _regression(net(cond) - actions, regression_sample_weight)
        return LossOutput(mse, mse.detach(), torch.zeros((), dtype=mse.dtype))
    if action_jac is None or obs_jac is None:
        raise ValueError("action_jac, obs_jac: required when sobolev_weight > 0")
    b, m = obs.shape[0], num_directions
    dim = obs_jac.shape[-1] + (0 if action_param_jac is None else action_param_jac.shape[-1])
    sb = _sobolev_rows(b, sobolev_fraction)
    if directions is None:
        directions = random_directions(sb, m, dim, generator, obs.dtype)
    _check_weight_vector("sobolev_sample_weight", sobolev_sample_weight, b)
    v = directions.transpose(0, 1).reshape(m * sb, dim)

    obs_param_slots = None if obs_param_jac is None else obs_param_jac[:, None]  # one observation slot
    tangent, target = sobolev_tangent_target(
        _tangent_rows(obs_jac, sb, m), _tangent_rows(action_jac, sb, m), v, 1, params.shape[1],
        _optional_tangent_rows(obs_param_slots, sb, m), _optional_tangent_rows(action_param_jac, sb, m),
        parameter_weight)
    pred, jv = net.forward_dual(_dual_rows(cond, sb, m), tangent)
    mse = _regression(_undo_dual_rows(pred, sb, m) - actions, regression_sample_weight)
    sob = _weighted_residual(jv - target, sobolev_sample_weight, sb, m, sobolev_entry_weight)
    return LossOutput(mse + sobolev_weight * sob, mse.detach(), sob.detach())
