"""User-facing policies: normaliser + network (+ sampler), in physical units.

``DiffusionPolicy.forward(obs_history, params, history_actions, noise) -> chunk`` is exactly what is exported
(TorchScript / AOTInductor) and what the C++ runner calls:

- ``obs_history (B, h, D_o)``: observations ``o_{t0-h+1..t0}`` (repeat ``o_0`` before the start),
- ``params (B, nz)``: task parameters ``z`` (``nz`` may be 0); ``(B, nz + 1)`` for a policy trained with
  ``ChunkSpec.time_to_go``, the last column the time to go ``(T - t0) / T`` of the chunk's start,
- ``history_actions (B, h, D_a)``: the known actions ``a_{t0-h..t0-1}`` (before the start: the dataset's
  ``initial_actions``, zeros unless given); they condition the sample only with ``past_actions=True``,
- ``noise (K, B, H, D_a)``: standard normal draws, ``noise[0]`` the initial sample (a policy sampled with DDIM,
  :meth:`DiffusionPolicy.set_sampling_steps`, uses only ``noise[0]``),
- returns ``(B, H, D_a)``: the chunk ``a_{t0-h..t0-h+H-1}``; its first ``h`` entries equal ``history_actions``,
  entries ``h .. h+A-1`` are the ones to execute. A policy trained with ``ChunkSpec.relative_actions`` samples the
  chunk relative to ``history_actions[:, -1]`` and adds it back (its metadata says ``"relative_actions": true``).

``MLPPolicy.forward(obs (B, D_o), params (B, nz)) -> (B, D_a)`` is the direct policy ``a_t = π(o_t, z)`` (``params``
``(B, nz + 1)`` with the time to go ``(T - t) / T``, as above). ``param_dim`` is the width of ``params``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, List, Sequence

import numpy as np
import torch
from torch import nn

from .data import SCHEMA_VERSION, TIME_TO_GO_NORMALISER, ChunkSpec, Normalisers, TaskInfo, atomic_write_bytes
from .diffusion import DDPMSampler, DiffusionConfig, check_sampling_steps
from .models import DENOISERS, MLP, ChunkMLPDenoiser, ConditionalUNet1D, MLPConfig, UNetConfig

__all__ = ["DiffusionPolicy", "MLPPolicy", "save_policy", "load_policy", "POLICY_FORMAT_VERSION"]

#: Version of the saved policy/checkpoint layout.
POLICY_FORMAT_VERSION = 1
_POLICY_FORMAT = "sobolev_warmstart.policy"


class _Normalising(nn.Module):
    """Normaliser buffers (float32): ``{a,o,z}_offset``, ``{a,o,z}_scale``; with ``spec.time_to_go`` the ``z``
    buffers gain the time to go's fixed entry (:data:`~sobolev_warmstart.data.TIME_TO_GO_NORMALISER`)."""

    def _set_normalisers(self, normalisers: Normalisers, spec: ChunkSpec) -> None:
        self.normalisers = normalisers
        self.param_dim = normalisers.params.dim + int(spec.time_to_go)
        for key, n in (("a", normalisers.action), ("o", normalisers.observation), ("z", normalisers.params)):
            offset, scale = n.offset, n.scale
            if key == "z" and spec.time_to_go:
                offset = np.append(offset, TIME_TO_GO_NORMALISER[0])
                scale = np.append(scale, TIME_TO_GO_NORMALISER[1])
            self.register_buffer(f"{key}_offset", torch.as_tensor(offset, dtype=torch.float32))
            self.register_buffer(f"{key}_scale", torch.as_tensor(scale, dtype=torch.float32))


def _check_input(name: str, x: torch.Tensor, shape: List[int]) -> None:
    """Raise naming ``name`` unless ``x`` has ``shape``. TorchScript- and torch.export-compatible."""
    ok = x.dim() == len(shape)
    if ok:
        for i in range(len(shape)):
            if x.shape[i] != shape[i]:
                ok = False
    if not ok:
        raise ValueError("{}: expected shape {}, got {}".format(name, shape, list(x.shape)))


class DiffusionPolicy(_Normalising):
    """Normalisers + denoiser + DDPM sampler with inpainting. See the module docstring.

    ``denoiser``: ``"unet"`` (the reference's conditional 1-D U-Net, ``unet`` its architecture) or ``"mlp"``
    (:class:`~sobolev_warmstart.models.ChunkMLPDenoiser` over the flattened chunk, ``mlp`` its hidden widths and
    ``unet.step_embed_dim`` its step embedding)."""

    def __init__(self, task: TaskInfo, spec: ChunkSpec, normalisers: Normalisers, unet: UNetConfig | None = None,
                 diffusion: DiffusionConfig | None = None, denoiser: str = "unet", mlp: MLPConfig | None = None):
        super().__init__()
        if denoiser not in DENOISERS:
            raise ValueError(f"denoiser: expected one of {DENOISERS}, got {denoiser!r}")
        self.task, self.spec = task, spec
        self.unet_config = UNetConfig() if unet is None else unet
        self.mlp_config = MLPConfig() if mlp is None else mlp
        self.denoiser = denoiser
        self.diffusion_config = DiffusionConfig() if diffusion is None else diffusion
        self._set_normalisers(normalisers, spec)
        cond_dim = spec.history * task.no + self.param_dim
        if denoiser == "unet":
            self.net = ConditionalUNet1D(task.na, cond_dim, spec.horizon, self.unet_config)
        else:
            self.net = ChunkMLPDenoiser(task.na, cond_dim, spec.horizon, self.mlp_config,
                                        self.unet_config.step_embed_dim)
        d = self.diffusion_config
        self.sampler = DDPMSampler(self.net, d.num_steps, spec.history, d.clip_sample, d.clip_sample_range,
                                   d.past_actions, d.sampling_steps, d.sampling_temperature)
        self.num_steps, self.horizon, self.history_steps = d.num_steps, spec.horizon, spec.history
        self.relative_actions = bool(spec.relative_actions)
        self.na, self.no, self.nz = task.na, task.no, task.nz

    @property
    def kind(self) -> str:
        return "diffusion"

    def forward(self, obs_history: torch.Tensor, params: torch.Tensor, history_actions: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        _check_input("obs_history", obs_history, [b, self.history_steps, self.no])
        _check_input("params", params, [b, self.param_dim])
        _check_input("history_actions", history_actions, [b, self.history_steps, self.na])
        _check_input("noise", noise, [self.num_steps, b, self.horizon, self.na])
        o = (obs_history - self.o_offset) / self.o_scale
        z = (params - self.z_offset) / self.z_scale
        base = history_actions[:, -1:] if self.relative_actions else torch.zeros_like(history_actions[:, -1:])
        hist = (history_actions - base - self.a_offset) / self.a_scale
        cond = torch.cat([o.reshape(b, self.history_steps * self.no), z], dim=1)
        chunk = self.sampler(cond, hist, noise)
        # the known history is returned exactly as given (no round trip through the normaliser)
        return torch.cat([history_actions, chunk[:, self.history_steps:] * self.a_scale + self.a_offset + base], dim=1)

    @torch.no_grad()
    def sample(self, obs_history, params, history_actions, noise=None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Convenience wrapper accepting numpy arrays or tensors (unbatched inputs get a batch axis of 1);
        draws the noise from ``generator`` unless given."""
        o = torch.as_tensor(np.asarray(obs_history, dtype=np.float32))
        z = torch.as_tensor(np.asarray(params, dtype=np.float32))
        a = torch.as_tensor(np.asarray(history_actions, dtype=np.float32))
        single = o.dim() == 2
        if single:
            o, z, a = o[None], z.reshape(1, -1), a[None]
        if noise is None:
            noise = torch.randn(self.num_steps, o.shape[0], self.horizon, self.na, generator=generator)
        out = self(o, z, a, torch.as_tensor(noise, dtype=torch.float32))
        return out[0] if single else out

    def set_sampling_steps(self, sampling_steps: Sequence[int] | str | None) -> "DiffusionPolicy":
        """Sample with the DDPM posterior on the K trained steps (None) or deterministically (DDIM) on a descending
        subsequence of them starting at K-1, e.g. ``(4, 0)``: two network calls per chunk instead of five
        (:class:`~sobolev_warmstart.diffusion.DiffusionConfig`). Changes this policy (and what it saves and
        exports); returns it."""
        steps = check_sampling_steps(sampling_steps, self.num_steps)
        self.diffusion_config = dataclasses.replace(self.diffusion_config, sampling_steps=steps)
        self.sampler.set_sampling_steps(steps)
        return self

    def set_sampling_temperature(self, temperature: float) -> "DiffusionPolicy":
        """Scale the DDPM posterior's noise by ``temperature`` (1: as trained, 0: only the initial draw is random;
        :class:`~sobolev_warmstart.diffusion.DiffusionConfig`). Changes this policy (and what it saves and exports);
        returns it."""
        self.diffusion_config = dataclasses.replace(self.diffusion_config, sampling_temperature=temperature)
        self.sampler.set_sampling_temperature(self.diffusion_config.sampling_temperature)
        return self

    def metadata(self) -> dict[str, Any]:
        """``sampler``: ``"ddpm"`` or ``"ddim"``; ``sampling_steps``: the denoiser's step at each network call;
        ``sampling_temperature``: the DDPM posterior's noise scale (already in the sampler's tables)."""
        return {"kind": self.kind, "task": self.task.to_dict(), "horizon": self.horizon, "history": self.history_steps,
                "action_steps": self.spec.action_steps, "num_steps": self.num_steps,
                "sampler": "ddpm" if self.sampler.sampling_steps is None else "ddim",
                "sampling_steps": list(self.sampler.steps),
                "sampling_temperature": self.sampler.sampling_temperature, "na": self.na, "no": self.no,
                "nz": self.nz, "time_to_go": bool(self.spec.time_to_go),
                "relative_actions": self.relative_actions, "schema_version": SCHEMA_VERSION,
                "format_version": POLICY_FORMAT_VERSION}

    def build_config(self) -> dict[str, Any]:
        return {"unet": _asdict(self.unet_config), "diffusion": _asdict(self.diffusion_config),
                "denoiser": self.denoiser, "mlp": _asdict(self.mlp_config)}


class MLPPolicy(_Normalising):
    """Direct policy ``a = π(o, z)`` in physical units: ``forward(obs (B, D_o), params (B, nz)) -> (B, D_a)``."""

    def __init__(self, task: TaskInfo, spec: ChunkSpec, normalisers: Normalisers, mlp: MLPConfig | None = None):
        super().__init__()
        if spec.relative_actions:
            raise ValueError("spec.relative_actions: a direct (mlp) policy has no known action to be relative to; "
                             "expected False")
        self.task, self.spec = task, spec
        self.mlp_config = MLPConfig() if mlp is None else mlp
        self._set_normalisers(normalisers, spec)
        self.net = MLP(task.no + self.param_dim, task.na, self.mlp_config)
        self.na, self.no, self.nz = task.na, task.no, task.nz

    @property
    def kind(self) -> str:
        return "mlp"

    def forward(self, obs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        _check_input("obs", obs, [b, self.no])
        _check_input("params", params, [b, self.param_dim])
        cond = torch.cat([(obs - self.o_offset) / self.o_scale, (params - self.z_offset) / self.z_scale], dim=1)
        return self.net(cond) * self.a_scale + self.a_offset

    @torch.no_grad()
    def act(self, obs, params) -> torch.Tensor:
        """Numpy or tensor inputs; unbatched inputs get a batch axis of 1."""
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        z = torch.as_tensor(np.asarray(params, dtype=np.float32))
        single = o.dim() == 1
        if single:
            o, z = o[None], z.reshape(1, -1)
        out = self(o, z)
        return out[0] if single else out

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": self.task.to_dict(), "na": self.na, "no": self.no, "nz": self.nz,
                "time_to_go": bool(self.spec.time_to_go), "history": 1, "schema_version": SCHEMA_VERSION,
                "format_version": POLICY_FORMAT_VERSION}

    def build_config(self) -> dict[str, Any]:
        return {"mlp": _asdict(self.mlp_config)}


def _asdict(cfg) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def policy_state(policy: DiffusionPolicy | MLPPolicy, extra: dict | None = None) -> dict:
    """Everything needed to rebuild the policy, as plain types and tensors (``torch.load(weights_only=True)``)."""
    state = {"format": _POLICY_FORMAT, "format_version": POLICY_FORMAT_VERSION, "kind": policy.kind,
             "task": json.dumps(policy.task.to_dict()), "spec": json.dumps(policy.spec.to_dict()),
             "normalisers": json.dumps(policy.normalisers.to_dict()), "build": json.dumps(policy.build_config()),
             "model": policy.state_dict()}
    if extra:
        state.update(extra)
    return state


def policy_from_state(state: dict, source: str = "state") -> DiffusionPolicy | MLPPolicy:
    if state.get("format") != _POLICY_FORMAT:
        raise ValueError(f"{source}: not a sobolev_warmstart policy file (format {state.get('format')!r})")
    if state.get("format_version") != POLICY_FORMAT_VERSION:
        raise ValueError(f"{source}: policy format version {state.get('format_version')} is not supported "
                         f"(this code reads version {POLICY_FORMAT_VERSION})")
    task = TaskInfo.from_dict(json.loads(state["task"]))
    spec = ChunkSpec(**json.loads(state["spec"]))
    nrm = Normalisers.from_dict(json.loads(state["normalisers"]))
    build = json.loads(state["build"])
    if state["kind"] == "diffusion":
        # files written before the MLP denoiser existed hold a U-Net
        diffusion = {"past_actions": True, **build["diffusion"]}  # files before the setting conditioned on them
        policy = DiffusionPolicy(task, spec, nrm, UNetConfig(**build["unet"]), DiffusionConfig(**diffusion),
                                 build.get("denoiser", "unet"), MLPConfig(**build.get("mlp", {})))
    elif state["kind"] == "mlp":
        policy = MLPPolicy(task, spec, nrm, MLPConfig(**build["mlp"]))
    else:
        raise ValueError(f"{source}: unknown policy kind {state['kind']!r}")
    model = state["model"]
    if getattr(policy, "denoiser", None) == "mlp" and any(k.startswith("net.net.") for k in model):
        # the MLP denoiser's first layout (its own Sequential, before it wrapped an MLP): same layers, other names
        model = {k.replace("net.net.", "net.mlp.net.", 1).replace("sampler.denoiser.net.", "sampler.denoiser.mlp.net.", 1): v
                 for k, v in model.items()}
    policy.load_state_dict(model)
    return policy.eval()


def save_policy(policy: DiffusionPolicy | MLPPolicy, path: str | os.PathLike) -> None:
    """Save weights, normalisers and build configuration atomically (``torch.save`` of plain types)."""
    state = policy_state(policy)
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_policy(path: str | os.PathLike, task: str | None = None) -> DiffusionPolicy | MLPPolicy:
    """Load a policy saved by :func:`save_policy` or a training checkpoint; ``task`` checks the task name."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    policy = policy_from_state(state, str(path))
    if task is not None and policy.task.name != task:
        raise ValueError(f"{path}: expected a policy for task {task!r}, got {policy.task.name!r}")
    return policy
