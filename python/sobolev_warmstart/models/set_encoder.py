"""A permutation-invariant, robot-relative encoding of a set of points in the conditioning (DeepSets).

Among the quadrotor's columns the conditioning holds each column's centre as two absolute numbers of ``z``, in an
arbitrary order; which column is in the way is a nonlinear function of where the robot is, which 62 training
layouts did not teach a plain denoiser (docs/results/ablations.md, round 43: the policy flies one path whatever the
columns). This encoder hands it that function's natural inputs instead. For every member ``j`` of the set (a
column) and the robot's position ``p`` (the anchor, read from the current observation) and a context point ``g``
(the goal), all in physical units from the conditioning's affine normalisation:

    e_j = φ((c_j - p) / L, (g - p) / L),     features = (1 / C) Σ_j e_j,

with ``φ`` a small Mish MLP and ``L`` a length scale. The mean over the members does not depend on their order, and
every term is smooth in ``p`` and ``c_j`` (round 10's nearest-first offsets jumped where two columns swapped rank).
:class:`SetConditionedDenoiser` appends the features to the conditioning of any denoiser; its dual pass carries the
conditioning tangent through ``φ`` too, so the Sobolev term also fits how the actions move with the robot's position
relative to each column.

The encoder knows where the points sit in the conditioning and their affine maps, given as numbers at construction
(:func:`~sobolev_warmstart.policy.set_encoder_layout` reads them off the task and the normalisers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .dual import linear_dual, mish_dual
from .unet import check_tangent

__all__ = ["SetEncoderConfig", "SetLayout", "RelativeSetEncoder", "SetConditionedDenoiser"]


@dataclass(frozen=True)
class SetEncoderConfig:
    """``hidden_dims``: the widths of φ's hidden layers (Mish); ``width``: the features it adds to the
    conditioning; ``length_scale`` (L, metres): the relative positions are divided by it."""

    hidden_dims: tuple[int, ...] = (64, 64)
    width: int = 32
    length_scale: float = 1.0

    def __post_init__(self) -> None:
        dims = tuple(self.hidden_dims)
        object.__setattr__(self, "hidden_dims", dims)
        if not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims):
            raise ValueError(f"hidden_dims: expected a non-empty tuple of positive integers, got {self.hidden_dims!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ValueError(f"width: expected a positive integer, got {self.width!r}")
        if not (isinstance(self.length_scale, (int, float)) and not isinstance(self.length_scale, bool)
                and 0 < self.length_scale < float("inf")):
            raise ValueError(f"length_scale: expected a positive finite float, got {self.length_scale!r}")


@dataclass(frozen=True)
class SetLayout:
    """Where the points sit in the conditioning vector (indices of their coordinates, all points of one
    dimension ``d``) and the affine map from the conditioning's (normalised) values to physical units, ``raw =
    cond * scale + offset`` per conditioning entry: ``anchor (d,)`` (the robot), ``context (d,)`` (the goal),
    ``members (C, d)`` (the columns, interchangeable)."""

    anchor: tuple[int, ...]
    context: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        d, n = len(self.anchor), len(self.offset)
        if d < 1 or len(self.context) != d or not self.members or any(len(m) != d for m in self.members):
            raise ValueError(f"members, context: expected points of the anchor's {d} coordinates, got "
                             f"{len(self.context)} and {[len(m) for m in self.members]}")
        if len(self.scale) != n:
            raise ValueError(f"scale: expected {n} entries like offset, got {len(self.scale)}")
        every = list(self.anchor) + list(self.context) + [i for m in self.members for i in m]
        if any(not 0 <= i < n for i in every):
            raise ValueError(f"indices: expected entries of a conditioning of {n}, got {every}")

    def to_dict(self) -> dict:
        return {"anchor": list(self.anchor), "context": list(self.context), "members": [list(m) for m in self.members],
                "offset": list(self.offset), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict) -> "SetLayout":
        return cls(tuple(d["anchor"]), tuple(d["context"]), tuple(tuple(m) for m in d["members"]),
                   tuple(float(v) for v in d["offset"]), tuple(float(v) for v in d["scale"]))


class RelativeSetEncoder(nn.Module):
    """``cond (B, D_c)`` -> ``(B, width)``: the mean over the members of φ(member - anchor, context - anchor)
    (see the module's docstring)."""

    def __init__(self, layout: SetLayout, config: SetEncoderConfig | None = None):
        super().__init__()
        config = SetEncoderConfig() if config is None else config
        self.cond_dim, self.width = len(layout.offset), config.width
        self.members, self.dim = len(layout.members), len(layout.anchor)
        idx = torch.tensor([list(layout.anchor), list(layout.context)] + [list(m) for m in layout.members])
        offset = torch.tensor(layout.offset, dtype=torch.float32)[idx]
        scale = torch.tensor(layout.scale, dtype=torch.float32)[idx] / config.length_scale
        self.register_buffer("index", idx.reshape(-1))
        self.register_buffer("offset", offset / config.length_scale)  # (2 + C, d), in units of L
        self.register_buffer("scale", scale)
        layers: list[nn.Module] = []
        w = 2 * self.dim
        for h in config.hidden_dims:
            layers += [nn.Linear(w, h), nn.Mish()]
            w = h
        layers.append(nn.Linear(w, config.width))
        self.phi = nn.Sequential(*layers)

    def _inputs(self, points: torch.Tensor) -> torch.Tensor:
        """``points (B, 2 + C, d)`` (anchor, context, members) -> φ's inputs ``(B * C, 2 d)``; linear, so it maps
        tangents too (the offset cancels in the differences)."""
        b = points.shape[0]
        rel = points[:, 1:] - points[:, :1]  # context and members relative to the anchor
        member = rel[:, 1:]
        context = rel[:, :1].expand(b, self.members, self.dim)
        return torch.cat([member, context], dim=-1).reshape(b * self.members, 2 * self.dim)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        if cond.dim() != 2 or cond.shape[1] != self.cond_dim:
            raise ValueError(f"cond: expected shape (B, {self.cond_dim}), got {list(cond.shape)}")
        b = cond.shape[0]
        points = cond[:, self.index].reshape(b, 2 + self.members, self.dim) * self.scale + self.offset
        return self.phi(self._inputs(points)).reshape(b, self.members, self.width).mean(dim=1)

    @torch.jit.unused
    def forward_dual(self, cond: torch.Tensor, cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, ∂features/∂cond · cond_tangent)`` for ``cond (B, D_c)``, ``cond_tangent (Q, D_c)``,
        ``Q <= B`` (the first ``Q`` rows'), differentiable with respect to the weights."""
        check_tangent(cond, cond_tangent)
        b, q = cond.shape[0], cond_tangent.shape[0]
        points = cond[:, self.index].reshape(b, 2 + self.members, self.dim) * self.scale + self.offset
        dpoints = cond_tangent[:, self.index].reshape(q, 2 + self.members, self.dim) * self.scale
        z = torch.cat([self._inputs(points), self._inputs(dpoints)])
        p = b * self.members
        for layer in self.phi:
            z = linear_dual(z, layer, p) if isinstance(layer, nn.Linear) else mish_dual(z, p)
        return (z[:p].reshape(b, self.members, self.width).mean(dim=1),
                z[p:].reshape(q, self.members, self.width).mean(dim=1))


class SetConditionedDenoiser(nn.Module):
    """``denoiser(sample, step, [cond, encoder(cond)])``: any denoiser built for a conditioning of ``D_c +
    encoder.width`` entries, called with ``D_c``. Its dual pass carries the tangent through the encoder."""

    def __init__(self, inner: nn.Module, encoder: RelativeSetEncoder):
        super().__init__()
        self.inner, self.encoder = inner, encoder
        self.cond_dim = encoder.cond_dim

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.inner(sample, step, torch.cat([cond, self.encoder(cond)], dim=1))

    @torch.jit.unused
    def forward_dual(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor,
                     cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, df = self.encoder.forward_dual(cond, cond_tangent)
        return self.inner.forward_dual(sample, step, torch.cat([cond, f], dim=1), torch.cat([cond_tangent, df], dim=1))
