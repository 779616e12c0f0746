"""Conditional 1-D temporal U-Net (in the style of Janner et al. 2022 and Diffusion Policy, Chi et al. 2023).

The network knows nothing of data: it maps a (noisy) chunk, a diffusion step and a flat conditioning vector
(observation history and task parameters, already normalised) to a chunk of the same shape. Residual blocks
of Conv1d + GroupNorm + Mish, modulated by FiLM (per-channel scale and bias) computed from the conditioning
vector and a sinusoidal embedding of the diffusion step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .dual import conv1d_dual, conv_transpose1d_dual, group_norm_dual, linear_dual, mish_dual

__all__ = ["UNetConfig", "ConditionalUNet1D", "validate_horizon"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`ConditionalUNet1D`. The default has about 280k parameters for small tasks (one action, a few observations)."""

    down_dims: tuple[int, ...] = (16, 32, 64)
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 32

    def __post_init__(self) -> None:
        dims = tuple(self.down_dims)
        object.__setattr__(self, "down_dims", dims)
        if len(dims) < 1 or any(not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"down_dims: expected a non-empty tuple of positive integers, got {self.down_dims!r}")
        if not isinstance(self.n_groups, int) or self.n_groups < 1 or any(d % self.n_groups for d in dims):
            raise ValueError(f"n_groups: expected a positive integer dividing every entry of down_dims {dims}, "
                             f"got {self.n_groups!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected a positive odd integer, got {self.kernel_size!r}")
        if not isinstance(self.step_embed_dim, int) or self.step_embed_dim < 2 or self.step_embed_dim % 2:
            raise ValueError(f"step_embed_dim: expected a positive even integer, got {self.step_embed_dim!r}")


def validate_horizon(horizon: int, down_dims) -> None:
    """The U-Net halves the time axis ``len(down_dims) - 1`` times and doubles it back: the horizon must be a
    multiple of ``2 ** (len(down_dims) - 1)``."""
    f = 2 ** (len(down_dims) - 1)
    if not isinstance(horizon, int) or horizon < f or horizon % f:
        raise ValueError(f"horizon: the U-Net with {len(down_dims)} levels needs a multiple of {f} "
                         f"(>= {f}), got {horizon!r}; change horizon or down_dims")


def check_denoiser_inputs(sample: torch.Tensor, cond: torch.Tensor, horizon: int, action_dim: int,
                          cond_dim: int) -> None:
    """Raise naming the argument unless ``sample`` is ``(B, horizon, action_dim)`` and ``cond`` ``(B, cond_dim)``:
    the input contract every denoiser shares. TorchScript-compatible."""
    if sample.shape[1] != horizon or sample.shape[2] != action_dim:
        raise ValueError(f"sample: expected shape (B, {horizon}, {action_dim}), got {list(sample.shape)}")
    if cond.shape[1] != cond_dim:
        raise ValueError(f"cond: expected shape (B, {cond_dim}), got {list(cond.shape)}")


def check_tangent(cond: torch.Tensor, cond_tangent: torch.Tensor) -> None:
    """Raise unless the conditioning tangent is ``(Q, D_c)`` with ``Q <= B`` for a conditioning ``(B, D_c)``:
    the directions at the first ``Q`` samples."""
    if cond_tangent.dim() != 2 or cond_tangent.shape[1:] != cond.shape[1:] or cond_tangent.shape[0] > cond.shape[0]:
        raise ValueError(f"cond_tangent: expected shape (Q, {cond.shape[1]}) with Q <= {cond.shape[0]} (the "
                         f"directions at the first Q samples of cond), got {list(cond_tangent.shape)}")


class StepEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step followed by a small MLP. ``k: (B,)`` -> ``(B, dim)``."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        arg = k.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1))


class ConvBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish, keeping the length."""

    def __init__(self, cin: int, cout: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(n_groups, cout)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    @torch.jit.unused
    def forward_dual(self, z: torch.Tensor, p: int) -> torch.Tensor:
        z = conv1d_dual(z, self.conv, p)
        return mish_dual(group_norm_dual(z, self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps, p),
                         p)


class FiLMResBlock(nn.Module):
    """Two conv blocks; the first one's output is modulated channel-wise by ``scale * h + bias`` computed
    from the conditioning vector; residual connection (1x1 conv when the width changes)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block1 = ConvBlock(cin, cout, kernel_size, n_groups)
        self.block2 = ConvBlock(cout, cout, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        sb = self.film(cond)
        scale, bias = sb[:, : self.cout, None], sb[:, self.cout :, None]
        h = self.block2(scale * h + bias)
        return h + self.skip(x)

    @torch.jit.unused
    def forward_dual(self, z: torch.Tensor, mcond: torch.Tensor, p: int) -> torch.Tensor:
        """Dual version (``p`` primal rows, :mod:`.dual`); ``mcond = [mish(c); mish'(c) dc]`` (the FiLM's Mish
        is shared by all blocks)."""
        h = self.block1.forward_dual(z, p)
        sb = linear_dual(mcond, self.film[1], p)
        scale, bias = sb[:p, : self.cout, None], sb[:p, self.cout :, None]
        dscale, dbias = sb[p:, : self.cout, None], sb[p:, self.cout :, None]
        hp, ht = h[:p], h[p:]
        q = ht.shape[0]
        h = torch.cat([scale * hp + bias, torch.addcmul(dbias, dscale, hp[:q]).addcmul_(scale[:q], ht)])
        h = self.block2.forward_dual(h, p)
        skip = z if isinstance(self.skip, nn.Identity) else conv1d_dual(z, self.skip, p)
        return h + skip


class DownLevel(nn.Module):
    """Two FiLM residual blocks, then (except at the deepest level) a stride-2 convolution halving the time
    axis. Returns the downsampled features and the skip features."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel_size: int, n_groups: int, downsample: bool):
        super().__init__()
        self.res1 = FiLMResBlock(cin, cout, cond_dim, kernel_size, n_groups)
        self.res2 = FiLMResBlock(cout, cout, cond_dim, kernel_size, n_groups)
        self.sample = nn.Conv1d(cout, cout, 3, stride=2, padding=1) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.res2(self.res1(x, cond), cond)
        return self.sample(skip), skip

    @torch.jit.unused
    def forward_dual(self, z: torch.Tensor, mcond: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.res2.forward_dual(self.res1.forward_dual(z, mcond, p), mcond, p)
        out = skip if isinstance(self.sample, nn.Identity) else conv1d_dual(skip, self.sample, p)
        return out, skip


class UpLevel(nn.Module):
    """Concatenate the skip features, two FiLM residual blocks, then a transposed convolution doubling the
    time axis."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.res1 = FiLMResBlock(2 * cin, cout, cond_dim, kernel_size, n_groups)
        self.res2 = FiLMResBlock(cout, cout, cond_dim, kernel_size, n_groups)
        self.sample = nn.ConvTranspose1d(cout, cout, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, skip], dim=1)
        return self.sample(self.res2(self.res1(x, cond), cond))

    @torch.jit.unused
    def forward_dual(self, z: torch.Tensor, skip: torch.Tensor, mcond: torch.Tensor, p: int) -> torch.Tensor:
        z = torch.cat([z, skip], dim=1)
        return conv_transpose1d_dual(self.res2.forward_dual(self.res1.forward_dual(z, mcond, p), mcond, p),
                                     self.sample, p)


class ConditionalUNet1D(nn.Module):
    """``x0 = net(sample, step, cond)``.

    Shapes: ``sample (B, H, D_a)``, ``step (B,)`` (integer diffusion step, any dtype), ``cond (B, D_c)``
    -> ``(B, H, D_a)``. ``H`` must be a multiple of ``2 ** (len(down_dims) - 1)`` (checked at construction
    for ``horizon`` and at every call).
    """

    def __init__(self, action_dim: int, cond_dim: int, horizon: int, config: UNetConfig | None = None):
        super().__init__()
        config = UNetConfig() if config is None else config
        validate_horizon(horizon, config.down_dims)
        if action_dim < 1:
            raise ValueError(f"action_dim: expected a positive integer, got {action_dim!r}")
        if cond_dim < 0:
            raise ValueError(f"cond_dim: expected a non-negative integer, got {cond_dim!r}")
        self.horizon = horizon
        self.action_dim = action_dim
        self.cond_dim = cond_dim
        k, g, e = config.kernel_size, config.n_groups, config.step_embed_dim
        self.step_embed = StepEmbedding(e)
        c = e + cond_dim
        dims = (action_dim,) + tuple(config.down_dims)
        levels = len(config.down_dims)
        self.down = nn.ModuleList([
            DownLevel(dims[i], dims[i + 1], c, k, g, downsample=i < levels - 1) for i in range(levels)])
        top = dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(top, top, c, k, g), FiLMResBlock(top, top, c, k, g)])
        self.up = nn.ModuleList([UpLevel(dims[i + 1], dims[i], c, k, g) for i in reversed(range(1, levels))])
        self.final = nn.Sequential(ConvBlock(dims[1], dims[1], k, g), nn.Conv1d(dims[1], action_dim, 1))

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        check_denoiser_inputs(sample, cond, self.horizon, self.action_dim, self.cond_dim)
        c = torch.cat([self.step_embed(step), cond], dim=-1)
        x = sample.transpose(1, 2)
        skips: list[torch.Tensor] = []
        for level in self.down:
            x, skip = level(x, c)
            skips.append(skip)
        for blk in self.mid:
            x = blk(x, c)
        for level in self.up:
            x = level(x, skips.pop(), c)
        return self.final(x).transpose(1, 2)

    @torch.jit.unused
    def forward_dual(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor,
                     cond_tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and its directional derivative along ``cond_tangent (Q, D_c)``, the sample held fixed:
        ``(net(sample, step, cond), ∂net/∂cond · cond_tangent)``, ``(B, H, D_a)`` and ``(Q, H, D_a)``: the
        tangents of the first ``Q <= B`` samples. Differentiable with respect to the weights (for training on
        the derivative); equal to ``torch.func.jvp``."""
        check_denoiser_inputs(sample, cond, self.horizon, self.action_dim, self.cond_dim)
        check_tangent(cond, cond_tangent)
        b, q = sample.shape[0], cond_tangent.shape[0]
        e = self.step_embed(step)
        c = torch.cat([torch.cat([e, cond], dim=-1), torch.cat([torch.zeros_like(e[:q]), cond_tangent], dim=-1)])
        mcond = mish_dual(c, b)
        x = sample.transpose(1, 2)
        z = torch.cat([x, torch.zeros_like(x[:q])])
        skips: list[torch.Tensor] = []
        for level in self.down:
            z, skip = level.forward_dual(z, mcond, b)
            skips.append(skip)
        for blk in self.mid:
            z = blk.forward_dual(z, mcond, b)
        for level in self.up:
            z = level.forward_dual(z, skips.pop(), mcond, b)
        z = self.final[0].forward_dual(z, b)
        z = conv1d_dual(z, self.final[1], b).transpose(1, 2)
        return z[:b], z[b:]
