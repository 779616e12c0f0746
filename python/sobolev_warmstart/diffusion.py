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

The sampler takes all its randomness as one tensor ``noise (K, B, H, D)``: ``noise[0]`` is the initial sample
``a_{K-1}`` and ``noise[i]`` (``i >= 1``) the posterior noise of the step from ``k = K - i``. The first ``h``
chunk entries are overwritten before every network call and in the result: with the executed actions when the
policy conditions on its past actions (``past_actions=True``, the reference's inpainting), with zeros otherwise.

Conditioning on past actions invites the copycat failure of imitation learning: on smooth optimal trajectories
``a_{t0}`` is close to ``a_{t0-1}``, so the denoiser learns to extend the history rather than to read the state,
and a closed-loop rollout drifts (docs/results/ablations.md: pendulum Diff with the MLP denoiser, policy cost /
TO median 23.8x with past actions, 1.1x without, three training seeds). ``past_actions=False`` is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DiffusionConfig", "squaredcos_betas", "DDPMSchedule", "DDPMSampler"]


@dataclass(frozen=True)
class DiffusionConfig:
    """``num_steps``: K (training and sampling); ``clip_sample``: clip the clean estimate to
    ``[-clip_sample_range, clip_sample_range]`` while sampling (sensible with min-max normalised actions);
    ``past_actions``: condition on the ``h`` executed actions by inpainting them (the reference), or not (the
    history entries are zeros, see the module docstring)."""

    num_steps: int = 5
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    past_actions: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.num_steps, int) or isinstance(self.num_steps, bool) or self.num_steps < 1:
            raise ValueError(f"num_steps: expected a positive integer, got {self.num_steps!r}")
        if not isinstance(self.clip_sample, bool):
            raise ValueError(f"clip_sample: expected a bool, got {self.clip_sample!r}")
        if not (isinstance(self.clip_sample_range, (int, float)) and self.clip_sample_range > 0):
            raise ValueError(f"clip_sample_range: expected a positive float, got {self.clip_sample_range!r}")
        if not isinstance(self.past_actions, bool):
            raise ValueError(f"past_actions: expected a bool, got {self.past_actions!r}")


def squaredcos_betas(num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """``(K,)`` float64 betas of the square-cosine schedule."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1.0 - alpha_bar((k + 1) / num_steps) / alpha_bar(k / num_steps), max_beta)
                         for k in range(num_steps)], dtype=torch.float64)


class DDPMSchedule(nn.Module):
    """Schedule tensors (float32 buffers, computed in float64) and the per-step coefficients."""

    def __init__(self, num_steps: int = 5):
        super().__init__()
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps: expected a positive integer, got {num_steps!r}")
        self.num_steps = num_steps
        betas = squaredcos_betas(num_steps)
        abar = torch.cumprod(1.0 - betas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        c0 = abar_prev.sqrt() * betas / (1.0 - abar)
        c1 = (1.0 - betas).sqrt() * (1.0 - abar_prev) / (1.0 - abar)
        var = ((1.0 - abar_prev) / (1.0 - abar) * betas).clamp_min(1e-20)
        sigma = var.sqrt()
        sigma[0] = 0.0
        for name, v in (("betas", betas), ("alphas_cumprod", abar), ("c0", c0), ("c1", c1), ("sigma", sigma),
                        ("sqrt_abar", abar.sqrt()), ("sqrt_one_minus_abar", (1.0 - abar).sqrt())):
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


class DDPMSampler(nn.Module):
    """Reverse diffusion with inpainting, in normalised coordinates, all randomness given as input.

    ``forward(cond (B, D_c), history (B, h, D), noise (K, B, H, D)) -> (B, H, D)``. ``denoiser(sample, step,
    cond)`` predicts the clean chunk. With ``past_actions=False`` the history entries are zeros (``history``
    only gives their shape). TorchScript- and torch.export-compatible.
    """

    def __init__(self, denoiser: nn.Module, num_steps: int, history: int, clip_sample: bool = True,
                 clip_sample_range: float = 1.0, past_actions: bool = True):
        super().__init__()
        self.denoiser = denoiser
        self.schedule = DDPMSchedule(num_steps)
        self.num_steps = num_steps
        self.history = history
        self.clip_sample = clip_sample
        self.clip_sample_range = float(clip_sample_range)
        self.past_actions = past_actions

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
        for i in range(self.num_steps):
            k = self.num_steps - 1 - i
            x = self.inpaint(x, history)
            step = torch.full([batch], k, dtype=torch.long, device=x.device)
            x0 = self.denoiser(x, step, cond)
            if self.clip_sample:
                x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
            mean = self.schedule.c0[k] * x0 + self.schedule.c1[k] * x
            if k > 0:
                x = mean + self.schedule.sigma[k] * noise[i + 1]
            else:
                x = mean
        return self.inpaint(x, history)
