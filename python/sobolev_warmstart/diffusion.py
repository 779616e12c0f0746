"""DDPM with the square-cosine schedule and clean-sample (x0) prediction, and a deterministic sampler.

Notation: ``K`` diffusion steps (5 by default), ``ᾱ_k = prod_{j<=k} (1 - β_k)`` with the square-cosine
schedule of Nichol & Dhariwal (2021), ``β_k = min(1 - ᾱ(k+1/K) / ᾱ(k/K), 0.999)``,
``ᾱ(s) = cos²((s + 0.008) / 1.008 · π/2)``. Forward noising ``a_k = sqrt(ᾱ_k) a_0 + sqrt(1 - ᾱ_k) ε``. One
posterior step from ``a_k`` given the network's clean estimate ``x̂0`` (optionally clipped to
``[-r, r]``):

    a_{k-1} = c0_k x̂0 + c1_k a_k + σ_k ε_k,
    c0_k = sqrt(ᾱ_{k-1}) β_k / (1 - ᾱ_k),  c1_k = sqrt(1 - β_k) (1 - ᾱ_{k-1}) / (1 - ᾱ_k),
    σ_k² = (1 - ᾱ_{k-1}) / (1 - ᾱ_k) β_k   (zero at k = 0, where ᾱ_{-1} = 1),

the same as diffusers' ``DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="sample")`` with
``K`` training and inference steps (checked in the tests against diffusers itself).

Sampling in fewer network calls (``sampling_steps``, docs/results/ablations.md rounds 25 and 26): the policy trained with
``K`` steps is sampled deterministically (DDIM, η = 0) on a descending subsequence ``s_0 = K-1 > s_1 > ... > s_{n-1}
>= 0`` of its steps. From ``a_k`` and the clipped clean estimate ``x̂0``, with ``ε̂ = (a_k - sqrt(ᾱ_k) x̂0) /
sqrt(1 - ᾱ_k)``, the next sample is ``a_k' = sqrt(ᾱ_k') x̂0 + sqrt(1 - ᾱ_k') ε̂`` and the last call's ``x̂0`` is the
chunk (``ᾱ_{-1} = 1``). With clipping, ``ε̂`` follows from the clipped ``x̂0``, so each step re-noises the clipped
estimate (diffusers' ``DDIMScheduler`` derives ``ε̂`` from the unclipped one; the same without clipping, checked in
the tests). Both samplers are one affine step per call, ``a' = c0_i x̂0 + c1_i a + σ_i ε_i``: the DDPM
posterior on ``k = K-1-i`` (the coefficients above), or DDIM with ``σ_i = 0``. The per-call tables
(``call_c0``, ``call_c1``, ``call_sigma``, the steps in ``steps``) are what every path runs: eager, TorchScript,
torch.export and the native C++ forward.

A sampling temperature ``τ`` (``sampling_temperature``, docs/results/ablations.md round 42) scales the DDPM
posterior's noise, ``σ_k -> τ σ_k``, and leaves the initial draw as it is: 1 is the sampler as trained, 0 keeps
only the initial draw's randomness. It is folded into the per-call ``call_sigma`` table, so every path samples
with it. DDIM adds no posterior noise, so a temperature other than 1 with ``sampling_steps`` is refused.

The sampler takes all its randomness as one tensor ``noise (K, B, H, D)``: ``noise[0]`` is the initial sample
``a_{K-1}`` and ``noise[i]`` (``i >= 1``) the posterior noise of the step from ``k = K - i`` (DDIM uses
``noise[0]`` only; the shape stays the trained K's, so the seeded draws are the same whichever sampler runs). The
first ``h`` chunk entries are overwritten before every network call and in the result: with the executed actions
when the policy conditions on its past actions (``past_actions=True``, the reference's inpainting), with zeros
otherwise.

Conditioning on past actions invites the copycat failure of imitation learning: on smooth optimal trajectories
``a_{t0}`` is close to ``a_{t0-1}``, so the denoiser learns to extend the history rather than to read the state,
and a closed-loop rollout drifts (docs/results/ablations.md: pendulum Diff with the MLP denoiser, policy cost /
TO median 23.8x with past actions, 1.1x without, three training seeds). ``past_actions=False`` is the default.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import List

import torch
from torch import nn

__all__ = ["DiffusionConfig", "squaredcos_betas", "DDPMSchedule", "DDPMSampler", "check_sampling_steps",
           "check_sampling_temperature", "sampling_plan"]


@dataclass(frozen=True)
class DiffusionConfig:
    """``num_steps``: K (training and sampling); ``clip_sample``: clip the clean estimate to
    ``[-clip_sample_range, clip_sample_range]`` while sampling (sensible with min-max normalised actions);
    ``past_actions``: condition on the ``h`` executed actions by inpainting them (the reference), or not (the
    history entries are zeros, see the module docstring); ``sampling_steps``: None to sample with the DDPM posterior
    on all K steps (as trained), or a descending subsequence of ``K-1, ..., 0`` starting at ``K-1`` to sample
    deterministically (DDIM) in that many network calls, e.g. ``(4, 0)``: two calls instead of five. It does not
    change training; :meth:`~sobolev_warmstart.policy.DiffusionPolicy.set_sampling_steps` changes it on a trained
    policy. ``sampling_temperature``: ``τ >= 0`` scaling the DDPM posterior's noise (1: as trained; see the module
    docstring); it does not change training either, and
    :meth:`~sobolev_warmstart.policy.DiffusionPolicy.set_sampling_temperature` changes it on a trained policy."""

    num_steps: int = 5
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    past_actions: bool = False
    sampling_steps: tuple[int, ...] | None = None
    sampling_temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.num_steps, int) or isinstance(self.num_steps, bool) or self.num_steps < 1:
            raise ValueError(f"num_steps: expected a positive integer, got {self.num_steps!r}")
        if not isinstance(self.clip_sample, bool):
            raise ValueError(f"clip_sample: expected a bool, got {self.clip_sample!r}")
        if not (isinstance(self.clip_sample_range, (int, float)) and self.clip_sample_range > 0):
            raise ValueError(f"clip_sample_range: expected a positive float, got {self.clip_sample_range!r}")
        if not isinstance(self.past_actions, bool):
            raise ValueError(f"past_actions: expected a bool, got {self.past_actions!r}")
        if self.sampling_steps is not None:
            object.__setattr__(self, "sampling_steps", check_sampling_steps(self.sampling_steps, self.num_steps))
        object.__setattr__(self, "sampling_temperature",
                           check_sampling_temperature(self.sampling_temperature, self.sampling_steps))


def check_sampling_temperature(temperature, sampling_steps=None) -> float:
    """``temperature`` as a float; a ValueError naming ``sampling_temperature`` unless it is a finite number >= 0,
    and unless it is 1 where DDIM samples (``sampling_steps`` set: no posterior noise to scale)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"sampling_temperature: expected a finite number >= 0 (1: the DDPM sampler as trained), "
                         f"got {temperature!r}")
    if sampling_steps is not None and temperature != 1:
        raise ValueError(f"sampling_temperature: DDIM (sampling_steps {tuple(sampling_steps)}) adds no posterior "
                         f"noise to scale; expected 1 with sampling_steps set, got {temperature!r}")
    return float(temperature)


def check_sampling_steps(steps, num_steps: int) -> tuple[int, ...] | None:
    """``steps`` as a tuple of ints (None stays None: the DDPM sampler); a ValueError naming ``sampling_steps``
    unless it is a strictly descending sequence of integers starting at ``num_steps - 1`` and ending at 0 or above.
    Accepts a comma-separated string (``"4,0"``) as the command line and settings files write it."""
    if steps is None:
        return None
    what = (f"sampling_steps: expected a strictly descending sequence of integers that starts at {num_steps - 1} "
            "and ends at 0 or above")
    given = steps
    if isinstance(steps, str):
        try:
            steps = [int(v) for v in steps.split(",")]
        except ValueError:
            raise ValueError(f"{what}, such as '{num_steps - 1},0'; got {given!r}") from None
    try:
        if any(isinstance(k, bool) for k in steps):
            raise TypeError
        out = tuple(operator.index(k) for k in steps)  # ints, numpy integers; not floats or bools
    except TypeError:
        raise ValueError(f"{what}; got {given!r}") from None
    if not out or out[0] != num_steps - 1 or out[-1] < 0 or any(a <= b for a, b in zip(out, out[1:])):
        raise ValueError(f"{what}; got {given!r}")
    return out


def squaredcos_betas(num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """``(K,)`` float64 betas of the square-cosine schedule."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1.0 - alpha_bar((k + 1) / num_steps) / alpha_bar(k / num_steps), max_beta)
                         for k in range(num_steps)], dtype=torch.float64)


def _schedule_coefficients(num_steps: int) -> dict[str, torch.Tensor]:
    """The schedule's float64 tensors, indexed by the step k (see the module docstring)."""
    betas = squaredcos_betas(num_steps)
    abar = torch.cumprod(1.0 - betas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    c0 = abar_prev.sqrt() * betas / (1.0 - abar)
    c1 = (1.0 - betas).sqrt() * (1.0 - abar_prev) / (1.0 - abar)
    sigma = ((1.0 - abar_prev) / (1.0 - abar) * betas).clamp_min(1e-20).sqrt()
    sigma[0] = 0.0
    return {"betas": betas, "alphas_cumprod": abar, "c0": c0, "c1": c1, "sigma": sigma, "sqrt_abar": abar.sqrt(),
            "sqrt_one_minus_abar": (1.0 - abar).sqrt()}


class DDPMSchedule(nn.Module):
    """Schedule tensors (float32 buffers, computed in float64) and the per-step coefficients."""

    def __init__(self, num_steps: int = 5):
        super().__init__()
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps: expected a positive integer, got {num_steps!r}")
        self.num_steps = num_steps
        for name, v in _schedule_coefficients(num_steps).items():
            self.register_buffer(name, v.float())

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``x0, noise: (B, ...)``, ``k: (B,)`` integer steps -> ``a_k``."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return self.sqrt_abar[k].view(shape) * x0 + self.sqrt_one_minus_abar[k].view(shape) * noise

    def posterior_step(self, x0_pred: torch.Tensor, k: int, sample: torch.Tensor,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
        """One step ``a_k -> a_{k-1}`` given the clean estimate (already clipped if clipping is used).
        ``noise`` is required for ``k > 0`` and ignored at ``k = 0``."""
        mean = self.c0[k] * x0_pred + self.c1[k] * sample
        if k > 0:
            if noise is None:
                raise ValueError(f"noise: required for step k = {k} > 0")
            mean = mean + self.sigma[k] * noise
        return mean


def sampling_plan(num_steps: int, steps: tuple[int, ...] | None,
                  temperature: float = 1.0) -> dict[str, torch.Tensor | list]:
    """The per-call tables of a sampler: ``steps`` (the denoiser's step of each call), ``noisy`` (whether the call
    adds posterior noise) and the float64 coefficients ``c0``, ``c1``, ``sigma`` of ``a' = c0 x̂0 + c1 a + σ ε``.
    ``steps`` None: the DDPM posterior on ``K-1, ..., 0``, its ``σ`` scaled by ``temperature``; a checked
    subsequence: DDIM (η = 0) on it."""
    coef = _schedule_coefficients(num_steps)
    temperature = check_sampling_temperature(temperature, steps)
    if steps is None:
        order = list(range(num_steps - 1, -1, -1))
        return {"steps": order, "noisy": [k > 0 for k in order],
                **{name: coef[name][order] for name in ("c0", "c1")}, "sigma": temperature * coef["sigma"][order]}
    steps = check_sampling_steps(steps, num_steps)
    abar, c0, c1 = coef["alphas_cumprod"], [], []
    for i, k in enumerate(steps):
        nxt = abar[steps[i + 1]] if i + 1 < len(steps) else torch.ones((), dtype=torch.float64)
        c1.append((1.0 - nxt).sqrt() / (1.0 - abar[k]).sqrt())
        c0.append(nxt.sqrt() - c1[-1] * abar[k].sqrt())
    return {"steps": list(steps), "noisy": [False] * len(steps), "c0": torch.stack(c0), "c1": torch.stack(c1),
            "sigma": torch.zeros(len(steps), dtype=torch.float64)}


class DDPMSampler(nn.Module):
    """Reverse diffusion with inpainting, in normalised coordinates, all randomness given as input.

    ``forward(cond (B, D_c), history (B, h, D), noise (K, B, H, D)) -> (B, H, D)``. ``denoiser(sample, step,
    cond)`` predicts the clean chunk. With ``past_actions=False`` the history entries are zeros (``history``
    only gives their shape). ``sampling_steps``: None for the DDPM posterior on the K trained steps, or DDIM's
    steps (:class:`DiffusionConfig`); :meth:`set_sampling_steps` changes it. ``sampling_temperature``: the DDPM
    posterior's noise scale (:class:`DiffusionConfig`); :meth:`set_sampling_temperature` changes it. TorchScript-
    and torch.export-compatible.
    """

    def __init__(self, denoiser: nn.Module, num_steps: int, history: int, clip_sample: bool = True,
                 clip_sample_range: float = 1.0, past_actions: bool = True,
                 sampling_steps: tuple[int, ...] | None = None, sampling_temperature: float = 1.0):
        super().__init__()
        self.denoiser = denoiser
        self.schedule = DDPMSchedule(num_steps)
        self.num_steps = num_steps
        self.history = history
        self.clip_sample = clip_sample
        self.clip_sample_range = float(clip_sample_range)
        self.past_actions = past_actions
        self.sampling_temperature = check_sampling_temperature(sampling_temperature, sampling_steps)
        self.set_sampling_steps(sampling_steps)

    def set_sampling_steps(self, sampling_steps: tuple[int, ...] | None) -> None:
        """Sample with the DDPM posterior (None) or DDIM on ``sampling_steps``: sets the per-call tables, which are
        not part of the state dict (they follow from K, the steps and the temperature)."""
        plan = sampling_plan(self.num_steps, sampling_steps, self.sampling_temperature)
        self.sampling_steps = None if sampling_steps is None else tuple(plan["steps"])
        self.steps: List[int] = plan["steps"]
        self.noisy: List[bool] = plan["noisy"]
        for name in ("c0", "c1", "sigma"):
            self.register_buffer(f"call_{name}", plan[name].float(), persistent=False)

    def set_sampling_temperature(self, temperature: float) -> None:
        """Scale the DDPM posterior's noise by ``temperature`` (1: as trained): resets the per-call tables."""
        self.sampling_temperature = check_sampling_temperature(temperature, self.sampling_steps)
        self.set_sampling_steps(self.sampling_steps)

    def inpaint(self, sample: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        if not self.past_actions:
            history = torch.zeros_like(history)
        return torch.cat([history, sample[:, self.history:]], dim=1)

    def forward(self, cond: torch.Tensor, history: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if noise.dim() != 4 or noise.shape[0] != self.num_steps:
            raise ValueError(f"noise: expected shape ({self.num_steps}, B, H, D), got {list(noise.shape)}")
        if history.dim() != 3 or history.shape[1] != self.history:
            raise ValueError(f"history: expected shape (B, {self.history}, D), got {list(history.shape)}")
        x = noise[0]
        batch = x.shape[0]
        for i in range(len(self.steps)):
            x = self.inpaint(x, history)
            step = torch.full([batch], self.steps[i], dtype=torch.long, device=x.device)
            x0 = self.denoiser(x, step, cond)
            if self.clip_sample:
                x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
            x = self.call_c0[i] * x0 + self.call_c1[i] * x
            if self.noisy[i]:
                x = x + self.call_sigma[i] * noise[i + 1]
        return self.inpaint(x, history)
