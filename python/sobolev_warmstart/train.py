"""One training API for the four policies of the reference: ``train(dataset, config) -> policy``.

- ``"mlp"``: direct policy ``a_t = π(o_t, z)`` regressed on the solver's actions (PDDP projection),
- ``"sob_mlp"``: the same plus the stochastic Sobolev term on ``∂π/∂x`` vs the feedback gains (PDDP+S),
- ``"diff"``: DDPM diffusion policy on chunks (``λ = 0``),
- ``"sob_diff"``: DDPM plus the stochastic Sobolev term at every denoising step.

An epoch is one pass over all samples: the ``N · T`` chunks for diffusion policies, the ``N · T`` state-action
pairs for direct policies. Training is seeded and deterministic for a given thread count. With a
``checkpoint_dir``, a checkpoint (config JSON + weights + normalisers + optimiser state + history) is written
atomically every ``checkpoint_every`` epochs; calling ``train`` again with the same config resumes from it and
gives the same weights as an uninterrupted run.

With ``ema_power``, the returned policy (and the checkpoint's ``model``) holds an exponential moving average of
the weights, as Diffusion Policy trains its denoisers: after optimiser step ``t`` (from 1),
``w_ema <- d_t w_ema + (1 - d_t) w`` with the warmup decay ``d_t = min(1 - (1 + t)^-p, 0.9999)``
(:func:`ema_decay`; ``p = 0.75``: ``d`` = 0.994 after 1000 steps, an average over the last ~180). The optimiser's
own weights are kept in the checkpoint as ``train_model`` for resumption.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .data import ChunkDataset, atomic_write_bytes, exchangeable_params, shuffle_param_groups
from .diffusion import DiffusionConfig
from .losses import (check_sobolev_cap_quantile, check_sobolev_fraction, diffusion_loss, direct_loss,
                     sobolev_cap_weights, sobolev_entry_weights, sobolev_target_scales)
from .models import DENOISERS, MLPConfig, UNetConfig, validate_horizon
from .policy import DiffusionPolicy, MLPPolicy, policy_from_state, policy_state

__all__ = ["POLICY_KINDS", "SOBOLEV_SCHEDULES", "TrainConfig", "train", "load_checkpoint", "ema_decay",
           "sobolev_weight_at", "regression_sample_weights", "CHECKPOINT_NAME"]

POLICY_KINDS = ("mlp", "sob_mlp", "diff", "sob_diff")
SOBOLEV_SCHEDULES = ("constant", "cosine")
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
EMA_MAX_DECAY = 0.9999
# fields that may change between an interrupted run and its resumption
_RESUME_FREE = ("epochs", "checkpoint_dir", "checkpoint_every", "resume", "progress", "num_threads")


def _positive_int(name: str, v: Any) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")


@dataclass
class TrainConfig:
    """Training configuration, validated at construction; saved as JSON beside every checkpoint.

    ``sobolev_weight`` (λ) defaults to 1.0 for ``sob_*`` policies and must be 0 for ``mlp``/``diff``.
    ``lr_schedule``: ``"cosine"`` (to zero over all epochs, after ``warmup_steps``) or ``"constant"``.
    ``denoiser`` (diffusion policies): ``"unet"`` (architecture in ``unet``) or ``"mlp"`` (hidden widths in
    ``mlp``, the step embedding's width in ``unet.step_embed_dim``). ``mlp`` is also the direct policies' network.
    ``sobolev_fraction``: the share of each batch that gets the Sobolev term (:func:`~sobolev_warmstart.losses.
    diffusion_loss`); a step costs about ``1 + sobolev_fraction`` plain steps.
    ``sobolev_cap_quantile`` (q in (0, 1], or None): samples whose derivative target is larger than the training
    set's q-quantile have their Sobolev residual divided by their target's scale over that quantile
    (:func:`~sobolev_warmstart.losses.sobolev_cap_weights`); None weighs every sample alike.
    ``sobolev_cap_entries``: the action entries whose derivative targets are larger than the average entry's (mean
    squared over the training set) have their Sobolev residual scaled down to the average
    (:func:`~sobolev_warmstart.losses.sobolev_entry_weights`; ``sobolev_cap_quantile`` then acts on the capped
    targets); False weighs every entry by its targets' size.
    ``sobolev_schedule``: ``"constant"`` (λ throughout) or ``"cosine"`` (λ times ``(1 + cos(π p)) / 2`` at the share
    ``p`` of the optimiser steps done: the gains shape the policy first, the regression has the last steps to itself;
    :func:`sobolev_weight_at`; no effect on a policy without the Sobolev term, whose λ is 0).
    ``final_steps`` / ``final_steps_weight``: the samples starting in each trajectory's last ``final_steps`` steps
    (the chunks that execute its final actions, where a stiff terminal cost makes an action's error costliest) have
    their regression residual multiplied by ``final_steps_weight`` (:func:`regression_sample_weights`); 0 / 1 weigh
    every sample alike. Every policy, with or without the Sobolev term.
    ``shuffle_exchangeable_params``: every batch sees the task parameters' interchangeable groups (the quadrotor's
    columns, :func:`~sobolev_warmstart.data.exchangeable_params`) in a random order per sample: the same problem,
    so the same trajectory and derivative targets, seen under every ordering of its columns.
    ``ema_power`` (p > 0, or None): the policy returned and saved is an exponential moving average of the weights
    with decay ``min(1 - (1 + step)^-p, 0.9999)`` (:func:`ema_decay`, Diffusion Policy's 0.75); None returns the
    optimiser's last weights.
    ``parameter_sobolev_weight`` (w >= 0): where the dataset holds the parameter derivatives
    (``ChunkDataset.chunk_param_jac``), the Sobolev term of ``sob_*`` policies weighs the parameter block of the
    Jacobian by ``w`` against the state block (the parameter part of each direction scaled by ``sqrt(w)``); 0 ignores
    them. Without them in the dataset it has no effect.
    """

    policy: str = "sob_diff"
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    sobolev_weight: float | None = None
    num_directions: int = 1
    sobolev_fraction: float = 1.0
    sobolev_cap_quantile: float | None = None
    sobolev_cap_entries: bool = False
    sobolev_schedule: str = "constant"
    final_steps: int = 0
    final_steps_weight: float = 1.0
    shuffle_exchangeable_params: bool = False
    ema_power: float | None = None
    parameter_sobolev_weight: float = 1.0
    seed: int = 0
    denoiser: str = "unet"
    unet: UNetConfig = field(default_factory=UNetConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    resume: bool = True
    progress: bool = True
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICY_KINDS:
            raise ValueError(f"policy: expected one of {POLICY_KINDS}, got {self.policy!r}")
        for key in ("epochs", "batch_size", "num_directions", "checkpoint_every"):
            _positive_int(key, getattr(self, key))
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive float, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a non-negative float, got {self.weight_decay!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule: expected 'cosine' or 'constant', got {self.lr_schedule!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected a non-negative integer, got {self.warmup_steps!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip: expected a positive float or None, got {self.grad_clip!r}")
        sob = self.policy.startswith("sob_")
        if self.sobolev_weight is None:
            self.sobolev_weight = 1.0 if sob else 0.0
        w = self.sobolev_weight
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"sobolev_weight: expected a non-negative float, got {w!r}")
        if sob and w == 0:
            raise ValueError(f"sobolev_weight: policy {self.policy!r} needs a positive weight, got 0 "
                             f"(use policy {self.policy[4:]!r} for training without the Sobolev term)")
        if not sob and w != 0:
            raise ValueError(f"sobolev_weight: policy {self.policy!r} trains without the Sobolev term, expected 0, "
                             f"got {w!r} (use policy 'sob_{self.policy}')")
        check_sobolev_fraction(self.sobolev_fraction)
        check_sobolev_cap_quantile(self.sobolev_cap_quantile, allow_none=True)
        if not sob and self.sobolev_cap_quantile is not None:
            raise ValueError(f"sobolev_cap_quantile: policy {self.policy!r} trains without the Sobolev term, "
                             f"expected None, got {self.sobolev_cap_quantile!r}")
        if not isinstance(self.sobolev_cap_entries, bool):
            raise ValueError(f"sobolev_cap_entries: expected a bool, got {self.sobolev_cap_entries!r}")
        if not sob and self.sobolev_cap_entries:
            raise ValueError(f"sobolev_cap_entries: policy {self.policy!r} trains without the Sobolev term, "
                             f"expected False, got True")
        if self.sobolev_schedule not in SOBOLEV_SCHEDULES:
            raise ValueError(f"sobolev_schedule: expected one of {SOBOLEV_SCHEDULES}, got {self.sobolev_schedule!r}")
        if not isinstance(self.final_steps, int) or isinstance(self.final_steps, bool) or self.final_steps < 0:
            raise ValueError(f"final_steps: expected a non-negative integer, got {self.final_steps!r}")
        w = self.final_steps_weight
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0):
            raise ValueError(f"final_steps_weight: expected a positive float, got {w!r}")
        if not isinstance(self.shuffle_exchangeable_params, bool):
            raise ValueError(f"shuffle_exchangeable_params: expected a bool, got {self.shuffle_exchangeable_params!r}")
        if self.ema_power is not None and not (isinstance(self.ema_power, (int, float))
                                               and not isinstance(self.ema_power, bool)
                                               and math.isfinite(self.ema_power) and self.ema_power > 0):
            raise ValueError(f"ema_power: expected a positive float or None, got {self.ema_power!r}")
        w = self.parameter_sobolev_weight
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0):
            raise ValueError(f"parameter_sobolev_weight: expected a non-negative float, got {w!r}")
        if self.denoiser not in DENOISERS:
            raise ValueError(f"denoiser: expected one of {DENOISERS}, got {self.denoiser!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**self.unet)
        if isinstance(self.mlp, dict):
            self.mlp = MLPConfig(**self.mlp)
        if isinstance(self.diffusion, dict):
            self.diffusion = DiffusionConfig(**self.diffusion)
        for key, cls in (("unet", UNetConfig), ("mlp", MLPConfig), ("diffusion", DiffusionConfig)):
            if not isinstance(getattr(self, key), cls):
                raise TypeError(f"{key}: expected a {cls.__name__} or a dict, got {type(getattr(self, key)).__name__}")
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)
        if self.num_threads is not None:
            _positive_int("num_threads", self.num_threads)

    @property
    def is_diffusion(self) -> bool:
        return self.policy in ("diff", "sob_diff")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d))  # tuples -> lists, plain JSON types

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}")
        return cls(**d)


def _lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = config.warmup_steps

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if config.lr_schedule == "constant":
            return 1.0
        p = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0)))

    return f


def sobolev_weight_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """λ at optimiser step ``step`` (from 0) of ``total_steps``: ``config.sobolev_weight`` under
    ``config.sobolev_schedule`` (``"cosine"``: times ``(1 + cos(π step / total_steps)) / 2``, positive on every
    step)."""
    if config.sobolev_schedule == "constant" or config.sobolev_weight == 0.0:
        return config.sobolev_weight
    return config.sobolev_weight * 0.5 * (1.0 + math.cos(math.pi * min(step / max(1, total_steps), 1.0)))


def ema_decay(step: int, power: float) -> float:
    """The weight of the average after optimiser step ``step`` (from 1): ``min(1 - (1 + step)^-power, 0.9999)``,
    Diffusion Policy's warmup schedule (inverse gamma 1), so early averages forget their random start quickly."""
    return min(1.0 - (1.0 + step) ** -power, EMA_MAX_DECAY)


def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, w in zip(ema.parameters(), net.parameters()):
            e.lerp_(w, 1.0 - decay)
        for e, w in zip(ema.buffers(), net.buffers()):
            e.copy_(w)


def _training_tensors(dataset: ChunkDataset, config: TrainConfig) -> tuple[torch.Tensor, ...]:
    h = dataset.spec.history
    if config.is_diffusion:
        return dataset.obs, dataset.params, dataset.chunks, dataset.chunk_jac, dataset.obs_jac
    return dataset.obs[:, -1], dataset.params, dataset.chunks[:, h], dataset.chunk_jac[:, h], dataset.obs_jac


def _parameter_tensors(dataset: ChunkDataset, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The parameter Sobolev targets the loss takes (chunk or action, then observation), or None: only for policies
    with the Sobolev term, and only where the data hold them."""
    if dataset.chunk_param_jac is None or config.sobolev_weight == 0.0 or config.parameter_sobolev_weight == 0.0:
        return None
    if config.is_diffusion:
        return dataset.chunk_param_jac, dataset.obs_param_jac
    return dataset.chunk_param_jac[:, dataset.spec.history], dataset.obs_param_jac[:, -1]


def _sobolev_targets(dataset: ChunkDataset, config: TrainConfig) -> torch.Tensor:
    """The derivative targets the Sobolev term matches, ``(B, ..., D_a, ndx [+ nz])``: the predicted entries, with
    the parameter block (weighted) where the dataset holds it."""
    h = dataset.spec.history
    jac = dataset.chunk_jac[:, h:] if config.is_diffusion else dataset.chunk_jac[:, h]
    extra = _parameter_tensors(dataset, config)
    if extra is not None:  # the whole Jacobian [∂/∂x̃, ∂/∂z̃]
        pjac = extra[0][:, h:] if config.is_diffusion else extra[0]
        jac = torch.cat([jac, pjac * math.sqrt(config.parameter_sobolev_weight)], dim=-1)
    return jac


def sobolev_entry_weights_of(dataset: ChunkDataset, config: TrainConfig) -> torch.Tensor | None:
    """Per action entry factors of the Sobolev residual for ``config.sobolev_cap_entries`` (None when it is
    off), computed once over the whole dataset's predicted entries."""
    if not config.sobolev_cap_entries:
        return None
    return sobolev_entry_weights(_sobolev_targets(dataset, config))


def sobolev_sample_weights(dataset: ChunkDataset, config: TrainConfig) -> torch.Tensor | None:
    """Per-sample factors of the Sobolev residual for ``config.sobolev_cap_quantile`` (None when it is None, as it
    is for every policy without the Sobolev term): computed once over the whole dataset's predicted entries (as
    capped by ``sobolev_cap_entries``)."""
    if config.sobolev_cap_quantile is None:
        return None
    jac = _sobolev_targets(dataset, config)
    entry = sobolev_entry_weights_of(dataset, config)
    if entry is not None:
        jac = jac * entry.sqrt()[:, None]
    return sobolev_cap_weights(sobolev_target_scales(jac), config.sobolev_cap_quantile)


def regression_sample_weights(dataset: ChunkDataset, config: TrainConfig) -> torch.Tensor | None:
    """Per-sample factors of the regression residual for ``config.final_steps`` / ``final_steps_weight``:
    ``final_steps_weight`` where the sample starts at ``t0 >= T - final_steps``, 1 elsewhere; None when every
    sample weighs alike. ``final_steps`` beyond the horizon T is refused (it would weigh every sample: a rescaled
    loss, not the final steps)."""
    if config.final_steps > dataset.task.horizon:
        raise ValueError(f"final_steps: expected at most the task's horizon T = {dataset.task.horizon} (the last steps "
                         f"of each trajectory), got {config.final_steps}")
    if config.final_steps == 0 or config.final_steps_weight == 1.0:
        return None
    final = dataset.start >= dataset.task.horizon - config.final_steps
    return torch.where(final, config.final_steps_weight, 1.0).to(dataset.chunks.dtype)


def _dataset_signature(dataset: ChunkDataset) -> dict:
    sig = {"task": dataset.task.to_dict(), "spec": dataset.spec.to_dict(), "samples": len(dataset),
           "normalisers": dataset.normalisers.to_dict()}
    if dataset.chunk_param_jac is not None:  # only when present: checkpoints of data without them still resume
        sig["parameter_jacobians"] = True
    return sig


def load_checkpoint(path: str | os.PathLike) -> tuple[DiffusionPolicy | MLPPolicy, TrainConfig, dict]:
    """``(policy, config, state)`` from a checkpoint file (or a folder holding ``checkpoint.pt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    state = torch.load(p, map_location="cpu", weights_only=True)
    policy = policy_from_state(state, str(p))
    config = TrainConfig.from_dict(json.loads(state["config"]))
    return policy, config, state


def train(dataset: ChunkDataset, config: TrainConfig | None = None, *,
          callback: Callable[[int, dict], None] | None = None) -> DiffusionPolicy | MLPPolicy:
    """Train a policy of kind ``config.policy`` on ``dataset``; returns it in eval mode, with the per-epoch
    means of the loss terms in ``policy.train_history`` (list of dicts with ``epoch``, ``loss``, ``mse``,
    ``sobolev``). ``callback(epoch, logs)`` runs after each epoch (and its checkpoint)."""
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if not isinstance(dataset, ChunkDataset):
        raise TypeError(f"dataset: expected a ChunkDataset, got {type(dataset).__name__}")
    if config.is_diffusion and config.denoiser == "unet":
        validate_horizon(dataset.spec.horizon, config.unet.down_dims)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    groups = exchangeable_params(dataset.task) if config.shuffle_exchangeable_params else None
    if config.shuffle_exchangeable_params and groups is None:
        raise ValueError(f"shuffle_exchangeable_params: task {dataset.task.name!r} (nz = {dataset.task.nz}) has no "
                         f"interchangeable parameter groups (data.EXCHANGEABLE_PARAMS: at least two groups)")

    torch.manual_seed(config.seed)
    if config.is_diffusion:
        policy = DiffusionPolicy(dataset.task, dataset.spec, dataset.normalisers, config.unet, config.diffusion,
                                 config.denoiser, config.mlp)
    else:
        policy = MLPPolicy(dataset.task, dataset.spec, dataset.normalisers, config.mlp)
    net = policy.net
    ema = copy.deepcopy(policy) if config.ema_power is not None else None
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    tensors = _training_tensors(dataset, config)
    param_tensors = _parameter_tensors(dataset, config)
    sample_weights = sobolev_sample_weights(dataset, config)
    entry_weights = sobolev_entry_weights_of(dataset, config)
    regression_weights = regression_sample_weights(dataset, config)
    n = len(dataset)
    steps_per_epoch = math.ceil(n / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, steps_per_epoch * config.epochs))
    history: list[dict] = []
    start_epoch = 0

    ckpt_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    ckpt_path = ckpt_dir / CHECKPOINT_NAME if ckpt_dir else None
    if ckpt_path is not None and config.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(json.loads(state["config"])).to_dict()
        now = config.to_dict()
        diff = sorted(k for k in now if k not in _RESUME_FREE and now[k] != saved[k])
        if diff:
            raise ValueError(f"config: cannot resume from {ckpt_path}: fields {diff} differ from the checkpoint's "
                             f"(start a new checkpoint_dir or set resume=False)")
        if json.loads(state["dataset"]) != json.loads(json.dumps(_dataset_signature(dataset))):
            raise ValueError(f"dataset: cannot resume from {ckpt_path}: it was trained on another dataset "
                             f"(task, chunk spec, size or normalisers differ)")
        if saved["epochs"] != config.epochs:
            raise ValueError(f"epochs: cannot resume from {ckpt_path} with epochs={config.epochs}: the learning-rate "
                             f"schedule was laid out for epochs={saved['epochs']}")
        if ema is not None:
            policy.load_state_dict(state["train_model"])
            ema.load_state_dict(state["model"])
        else:
            policy.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = list(json.loads(state["history"]))
        start_epoch = int(state["epoch"])

    def save_checkpoint(epoch: int) -> None:
        extra = {"config": json.dumps(config.to_dict()), "epoch": epoch, "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "history": json.dumps(history),
                 "dataset": json.dumps(_dataset_signature(dataset))}
        if ema is not None:  # "model" is what load_checkpoint rebuilds: the average
            extra["train_model"] = policy.state_dict()
        state = policy_state(policy if ema is None else ema, extra)
        atomic_write_bytes(ckpt_path, lambda f: torch.save(state, f))
        text = json.dumps(config.to_dict(), indent=2).encode()
        atomic_write_bytes(ckpt_dir / CONFIG_NAME, lambda f: f.write(text))

    h = dataset.spec.history
    bar = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs,
               disable=not config.progress, desc=config.policy, unit="epoch")
    for epoch in bar:
        net.train()
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)  # resumable at epoch boundaries
        perm = torch.randperm(n, generator=g)
        sums = {"loss": 0.0, "mse": 0.0, "sobolev": 0.0}
        for s in range(steps_per_epoch):
            idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
            batch = [t[idx] for t in tensors]
            pbatch = None if param_tensors is None else [t[idx] for t in param_tensors]
            if groups is not None:  # tensors[1]: the normalised task parameters
                if pbatch is None:
                    batch[1] = shuffle_param_groups(batch[1], dataset.normalisers.params, *groups, generator=g)
                else:
                    batch[1], *pbatch = shuffle_param_groups(batch[1], dataset.normalisers.params, *groups,
                                                             generator=g, jacobians=pbatch)
            weight = None if sample_weights is None else sample_weights[idx]
            rweight = None if regression_weights is None else regression_weights[idx]
            weight_now = sobolev_weight_at(config, epoch * steps_per_epoch + s, steps_per_epoch * config.epochs)
            if config.is_diffusion:
                pkw = {} if pbatch is None else {"chunk_param_jac": pbatch[0], "obs_param_jac": pbatch[1],
                                                 "parameter_weight": config.parameter_sobolev_weight}
                out = diffusion_loss(net, policy.sampler.schedule, *batch, h, sobolev_weight=weight_now,
                                     num_directions=config.num_directions, generator=g,
                                     past_actions=config.diffusion.past_actions,
                                     sobolev_fraction=config.sobolev_fraction, sobolev_sample_weight=weight,
                                     sobolev_entry_weight=entry_weights, regression_sample_weight=rweight, **pkw)
            else:
                pkw = {} if pbatch is None else {"action_param_jac": pbatch[0], "obs_param_jac": pbatch[1],
                                                 "parameter_weight": config.parameter_sobolev_weight}
                out = direct_loss(net, *batch, sobolev_weight=weight_now,
                                  num_directions=config.num_directions, generator=g,
                                  sobolev_fraction=config.sobolev_fraction, sobolev_sample_weight=weight,
                                  sobolev_entry_weight=entry_weights, regression_sample_weight=rweight, **pkw)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                _ema_update(ema, policy, ema_decay(epoch * steps_per_epoch + s + 1, config.ema_power))
            w = idx.numel() / n
            sums["loss"] += w * out.loss.item()
            sums["mse"] += w * out.mse.item()
            sums["sobolev"] += w * out.sobolev.item()
        if not all(math.isfinite(v) for v in sums.values()):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1}: {sums}; lower lr or sobolev_weight")
        logs = {"epoch": epoch + 1, **sums}
        history.append(logs)
        bar.set_postfix(loss=f"{sums['loss']:.4g}", mse=f"{sums['mse']:.4g}")
        if ckpt_path is not None and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs):
            save_checkpoint(epoch + 1)
        if callback is not None:
            callback(epoch + 1, logs)
    bar.close()
    if ema is not None:
        policy = ema
    policy.eval()
    policy.train_history = history
    return policy
