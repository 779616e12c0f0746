"""Direct policy network ``a = π(cond)`` (the PDDP projection of Le Lidec et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .dual import linear_dual, mish_dual

__all__ = ["MLPConfig", "MLP"]


@dataclass(frozen=True)
class MLPConfig:
    """Hidden widths of :class:`MLP`; smooth Mish activations so that its derivative is informative."""

    hidden_dims: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        dims = tuple(self.hidden_dims)
        object.__setattr__(self, "hidden_dims", dims)
        if any(not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"hidden_dims: expected a tuple of positive integers, got {self.hidden_dims!r}")


class MLP(nn.Module):
    """``cond (B, D_c)`` -> ``(B, D_a)``."""

    def __init__(self, cond_dim: int, action_dim: int, config: MLPConfig | None = None):
        super().__init__()
        config = MLPConfig() if config is None else config
        if cond_dim < 1:
            raise ValueError(f"cond_dim: expected a positive integer, got {cond_dim!r}")
        if action_dim < 1:
            raise ValueError(f"action_dim: expected a positive integer, got {action_dim!r}")
        self.cond_dim = cond_dim
        self.action_dim = action_dim
        layers: list[nn.Module] = []
        d = cond_dim
        for w in config.hidden_dims:
            layers += [nn.Linear(d, w), nn.Mish()]
            d = w
        layers.append(nn.Linear(d, action_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[1] != self.cond_dim:
            raise ValueError(f"cond: expected shape (B, {self.cond_dim}), got {list(cond.shape)}")
        return self.net(cond)

    @torch.jit.unused
    def forward_dual(self, cond: torch.Tensor, cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(π(cond), ∂π/∂cond · cond_tangent)`` for ``cond (B, D)`` and ``cond_tangent (Q, D)``, ``Q <= B``
        (the directions at the first ``Q`` rows), differentiable with respect to the weights."""
        if cond.dim() != 2 or cond.shape[1] != self.cond_dim or cond_tangent.dim() != 2 \
                or cond_tangent.shape[1] != self.cond_dim or cond_tangent.shape[0] > cond.shape[0]:
            raise ValueError(f"cond, cond_tangent: expected shapes (B, {self.cond_dim}) and (Q, {self.cond_dim}) "
                             f"with Q <= B, got {list(cond.shape)} and {list(cond_tangent.shape)}")
        b = cond.shape[0]
        z = torch.cat([cond, cond_tangent])
        for layer in self.net:
            z = linear_dual(z, layer, b) if isinstance(layer, nn.Linear) else mish_dual(z, b)
        return z[:b], z[b:]
