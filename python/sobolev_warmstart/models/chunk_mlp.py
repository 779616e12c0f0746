"""MLP denoiser of action chunks: the light alternative to the U-Net for short chunks and few action variables.

``x0 = net(sample, step, cond)`` with the same contract as :class:`~.unet.ConditionalUNet1D`: the noisy chunk is
flattened and concatenated with the diffusion-step embedding and the conditioning vector, so the state enters the
prediction additively at the first layer (the U-Net only modulates normalised features with it, FiLM). Diffusion
denoisers of this form are the usual choice in offline RL (Diffusion-QL, IDQL) for low-dimensional actions.
"""

from __future__ import annotations

import torch
from torch import nn

from .dual import linear_dual, mish_dual
from .mlp import MLPConfig
from .unet import StepEmbedding

__all__ = ["ChunkMLPDenoiser"]


class ChunkMLPDenoiser(nn.Module):
    """``sample (B, H, D_a)``, ``step (B,)``, ``cond (B, D_c)`` -> clean chunk ``(B, H, D_a)``; hidden widths
    from ``MLPConfig.hidden_dims`` (Mish activations), a sinusoidal step embedding of ``step_embed_dim``."""

    def __init__(self, action_dim: int, cond_dim: int, horizon: int, config: MLPConfig | None = None,
                 step_embed_dim: int = 16):
        super().__init__()
        config = MLPConfig() if config is None else config
        if action_dim < 1:
            raise ValueError(f"action_dim: expected a positive integer, got {action_dim!r}")
        if cond_dim < 0:
            raise ValueError(f"cond_dim: expected a non-negative integer, got {cond_dim!r}")
        if horizon < 1:
            raise ValueError(f"horizon: expected a positive integer, got {horizon!r}")
        if not config.hidden_dims:
            raise ValueError("hidden_dims: the denoiser needs at least one hidden layer, got ()")
        self.horizon, self.action_dim, self.cond_dim = horizon, action_dim, cond_dim
        self.step_embed = StepEmbedding(step_embed_dim)
        d = horizon * action_dim + step_embed_dim + cond_dim
        layers: list[nn.Module] = []
        for w in config.hidden_dims:
            layers += [nn.Linear(d, w), nn.Mish()]
            d = w
        layers.append(nn.Linear(d, horizon * action_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if sample.shape[1] != self.horizon or sample.shape[2] != self.action_dim:
            raise ValueError(f"sample: expected shape (B, {self.horizon}, {self.action_dim}), got {list(sample.shape)}")
        if cond.shape[1] != self.cond_dim:
            raise ValueError(f"cond: expected shape (B, {self.cond_dim}), got {list(cond.shape)}")
        b = sample.shape[0]
        x = torch.cat([sample.reshape(b, self.horizon * self.action_dim), self.step_embed(step), cond], dim=-1)
        return self.net(x).reshape(b, self.horizon, self.action_dim)

    @torch.jit.unused
    def forward_dual(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor,
                     cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(net(sample, step, cond), ∂net/∂cond · cond_tangent)`` with the sample held fixed, both
        ``(B, H, D_a)``; differentiable with respect to the weights; equal to ``torch.func.jvp``."""
        if sample.shape[1] != self.horizon or sample.shape[2] != self.action_dim:
            raise ValueError(f"sample: expected shape (B, {self.horizon}, {self.action_dim}), got {list(sample.shape)}")
        if cond.shape[1] != self.cond_dim or cond_tangent.shape != cond.shape:
            raise ValueError(f"cond, cond_tangent: expected shape (B, {self.cond_dim}) both, got "
                             f"{list(cond.shape)} and {list(cond_tangent.shape)}")
        b = sample.shape[0]
        flat = sample.reshape(b, self.horizon * self.action_dim)
        e = self.step_embed(step)
        z = torch.cat([torch.cat([flat, e, cond], dim=-1),
                       torch.cat([torch.zeros_like(flat), torch.zeros_like(e), cond_tangent], dim=-1)])
        for layer in self.net:
            z = linear_dual(z, layer) if isinstance(layer, nn.Linear) else mish_dual(z)
        z = z.reshape(2 * b, self.horizon, self.action_dim)
        return z[:b], z[b:]
