"""MLP denoiser of action chunks: the light alternative to the U-Net for short chunks and few action variables.

``x0 = net(sample, step, cond)`` with the same contract as :class:`~.unet.ConditionalUNet1D`: the noisy chunk is
flattened and concatenated with the diffusion-step embedding and the conditioning vector, so the state enters the
prediction additively at the first layer (the U-Net only modulates normalised features with it, FiLM). Diffusion
denoisers of this form are the usual choice in offline RL (Diffusion-QL, IDQL) for low-dimensional actions. The
layers are an :class:`~.mlp.MLP` (and its dual pass) over that concatenation.
"""

from __future__ import annotations

import torch
from torch import nn

from .mlp import MLP, MLPConfig
from .unet import StepEmbedding, check_denoiser_inputs, check_tangent

__all__ = ["ChunkMLPDenoiser"]


class ChunkMLPDenoiser(nn.Module):
    """``sample (B, H, D_a)``, ``step (B,)``, ``cond (B, D_c)`` -> clean chunk ``(B, H, D_a)``; hidden widths
    from ``MLPConfig.hidden_dims`` (at least one; Mish activations), a sinusoidal step embedding of
    ``step_embed_dim``."""

    def __init__(self, action_dim: int, cond_dim: int, horizon: int, config: MLPConfig | None = None,
                 step_embed_dim: int = 16):
        super().__init__()
        config = MLPConfig() if config is None else config
        for name, v, low in (("action_dim", action_dim, 1), ("cond_dim", cond_dim, 0), ("horizon", horizon, 1)):
            if v < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
        if not config.hidden_dims:
            raise ValueError("hidden_dims: the denoiser needs at least one hidden layer, got ()")
        self.horizon, self.action_dim, self.cond_dim = horizon, action_dim, cond_dim
        self.step_embed = StepEmbedding(step_embed_dim)
        self.mlp = MLP(horizon * action_dim + step_embed_dim + cond_dim, horizon * action_dim, config)

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        check_denoiser_inputs(sample, cond, self.horizon, self.action_dim, self.cond_dim)
        b = sample.shape[0]
        x = torch.cat([sample.reshape(b, self.horizon * self.action_dim), self.step_embed(step), cond], dim=-1)
        return self.mlp(x).reshape(b, self.horizon, self.action_dim)

    @torch.jit.unused
    def forward_dual(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor,
                     cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(net(sample, step, cond), ∂net/∂cond · cond_tangent)`` with the sample held fixed, both
        ``(B, H, D_a)``, the tangent output ``(Q, H, D_a)`` for ``cond_tangent (Q, D_c)``, ``Q <= B``;
        differentiable with respect to the weights; equal to ``torch.func.jvp``."""
        check_denoiser_inputs(sample, cond, self.horizon, self.action_dim, self.cond_dim)
        check_tangent(cond, cond_tangent)
        b, q = sample.shape[0], cond_tangent.shape[0]
        flat = sample.reshape(b, self.horizon * self.action_dim)
        e = self.step_embed(step)
        x = torch.cat([flat, e, cond], dim=-1)
        dx = torch.cat([torch.zeros_like(flat[:q]), torch.zeros_like(e[:q]), cond_tangent], dim=-1)
        y, dy = self.mlp.forward_dual(x, dx)
        return y.reshape(b, self.horizon, self.action_dim), dy.reshape(q, self.horizon, self.action_dim)
