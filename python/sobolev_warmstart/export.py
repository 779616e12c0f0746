"""Export a trained policy for the C++ runner: native (``.safetensors``), TorchScript (``.pt``) and torch.export +
AOTInductor (``.pt2``).

The native file (:func:`export_native`, the fastest to run) holds the weights, normalisers and DDPM coefficients
as float32 tensors in the `safetensors <https://huggingface.co/docs/safetensors>`_ layout, and the architecture in
its metadata; the C++ runner evaluates it with a compact Eigen forward (``cpp/src/native_network.cpp``), without
libtorch's per-operator overhead, to float32 rounding of the eager policy. Any safetensors reader opens it.

The TorchScript and AOTInductor files hold the whole sampler: normalisers, network, the fixed number of denoising steps, inpainting and
un-normalisation, in float32 on CPU. Signatures (``B`` free, the other sizes fixed by the metadata):

- diffusion policies: ``forward(obs_history (B, h, no), params (B, nz), history_actions (B, h, na),
  noise (K, B, H, na)) -> chunk (B, H, na)`` in physical units; see :mod:`sobolev_warmstart.policy`;
- direct (MLP) policies: ``forward(obs (B, no), params (B, nz)) -> action (B, na)``.

A policy trained with ``ChunkSpec.time_to_go`` takes ``params (B, nz + 1)``: the task parameters, then the time to
go ``(T - t0) / T`` of the chunk's (or action's) step; its metadata says ``"time_to_go": true``.

Metadata (JSON: ``kind``, ``task`` {name, nx, ndx, nu, na, no, nz, dt, horizon, action_space}, ``horizon`` H,
``history`` h, ``action_steps`` A, ``num_steps`` K, ``time_to_go``, ``schema_version``, ``format_version``,
``signature``) is
stored as the TorchScript extra file ``metadata.json`` (C++: ``torch::jit::load(path, device, extra_files)``)
and as the ``.pt2`` package metadata key ``sobolev_warmstart`` (C++: ``AOTIModelPackageLoader::get_metadata()``);
the native file stores it under the same key of the safetensors ``__metadata__``, with an ``architecture`` field
added.
TorchScript is deprecated upstream; the ``.pt2`` is the long-term format. AOTInductor compiles for the
exporting machine's CPU and needs a C++ compiler at export time.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .data import atomic_write_bytes, write_safetensors
from .policy import DiffusionPolicy, MLPPolicy

__all__ = ["export_metadata", "export_policy", "export_backend", "export_native", "load_native", "native_architecture",
           "export_torchscript", "load_torchscript", "export_aoti", "load_aoti", "EXPORT_SUFFIXES",
           "METADATA_FILE", "METADATA_KEY"]

METADATA_FILE = "metadata.json"
METADATA_KEY = "sobolev_warmstart"
_SIGNATURES = {
    "diffusion": "forward(obs_history (B, h, no), params (B, nz), history_actions (B, h, na), "
                 "noise (K, B, H, na)) -> chunk (B, H, na), float32, physical units",
    "mlp": "forward(obs (B, no), params (B, nz)) -> action (B, na), float32, physical units",
}


def export_metadata(policy: DiffusionPolicy | MLPPolicy) -> dict:
    meta = policy.metadata()
    meta["signature"] = _SIGNATURES[policy.kind]
    return meta


def _check_policy(policy) -> None:
    if not isinstance(policy, (DiffusionPolicy, MLPPolicy)):
        raise TypeError(f"policy: expected a DiffusionPolicy or MLPPolicy, got {type(policy).__name__}")


def example_inputs(policy: DiffusionPolicy | MLPPolicy, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zero inputs of the exported signature."""
    if policy.kind == "diffusion":
        return (torch.zeros(batch, policy.history_steps, policy.no), torch.zeros(batch, policy.param_dim),
                torch.zeros(batch, policy.history_steps, policy.na),
                torch.zeros(policy.num_steps, batch, policy.horizon, policy.na))
    return torch.zeros(batch, policy.no), torch.zeros(batch, policy.param_dim)


def export_torchscript(policy: DiffusionPolicy | MLPPolicy, path: str | os.PathLike) -> Path:
    """Script the policy and save it (atomically) with ``metadata.json`` as an extra file."""
    _check_policy(policy)
    policy = policy.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(policy)
    extra = {METADATA_FILE: json.dumps(export_metadata(policy))}

    def write(f):
        torch.jit.save(scripted, f, _extra_files=extra)

    atomic_write_bytes(path, write)
    return Path(path)


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict]:
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[METADATA_FILE])


def export_aoti(policy: DiffusionPolicy | MLPPolicy, path: str | os.PathLike, max_batch: int = 4096) -> Path:
    """torch.export the policy with a dynamic batch size (1..``max_batch``) and compile it with AOTInductor
    into a ``.pt2`` package (written atomically) carrying the metadata."""
    _check_policy(policy)
    policy = policy.eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    if policy.kind == "diffusion":
        dynamic = {"obs_history": {0: batch}, "params": {0: batch}, "history_actions": {0: batch},
                   "noise": {1: batch}}
    else:
        dynamic = {"obs": {0: batch}, "params": {0: batch}}
    with torch.no_grad():
        program = torch.export.export(policy, example_inputs(policy), dynamic_shapes=dynamic)
    meta = {METADATA_KEY: json.dumps(export_metadata(policy))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".pt2", dir=path.parent)
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=tmp,
                                                 inductor_configs={"aot_inductor.metadata": meta})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_aoti(path: str | os.PathLike):
    """``(callable, metadata)`` of a ``.pt2`` package."""
    model = torch._inductor.aoti_load_package(str(path))
    meta = model.get_metadata()
    if METADATA_KEY not in meta:
        raise ValueError(f"{path}: not a sobolev_warmstart policy package (no {METADATA_KEY!r} metadata)")
    return model, json.loads(meta[METADATA_KEY])


# ------------------------------------------------------------------------------------------------ native
def native_architecture(policy: DiffusionPolicy | MLPPolicy) -> dict:
    """What the native C++ forward needs beyond the tensors: the network, its sizes and the sampler settings."""
    if policy.kind == "mlp":
        return {"network": "mlp", "hidden_dims": list(policy.mlp_config.hidden_dims)}
    d = policy.diffusion_config
    arch = {"step_embed_dim": policy.unet_config.step_embed_dim, "clip_sample": d.clip_sample,
            "clip_sample_range": float(d.clip_sample_range), "past_actions": d.past_actions}
    if policy.denoiser == "mlp":
        arch.update(network="mlp_denoiser", hidden_dims=list(policy.mlp_config.hidden_dims))
    else:
        u = policy.unet_config
        arch.update(network="unet", down_dims=list(u.down_dims), kernel_size=u.kernel_size, n_groups=u.n_groups,
                    group_norm_eps=float(policy.net.final[0].norm.eps))
    return arch


def _native_tensors(policy: DiffusionPolicy | MLPPolicy) -> dict[str, np.ndarray]:
    """Parameters and buffers (non-persistent ones included: the step embedding's frequencies), each once."""
    out: dict[str, np.ndarray] = {}
    for name, t in [*policy.named_parameters(), *policy.named_buffers()]:
        if not name.startswith("sampler.denoiser."):  # the same module as ``net``
            out[name] = np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy(), dtype="<f4")
    return out


def export_native(policy: DiffusionPolicy | MLPPolicy, path: str | os.PathLike) -> Path:
    """Write the policy as a ``.safetensors`` file for the native C++ forward (atomically); milliseconds."""
    _check_policy(policy)
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path: expected a .safetensors file name, got {str(path)!r}")
    meta = export_metadata(policy.eval())
    meta["architecture"] = native_architecture(policy)
    write_safetensors(path, _native_tensors(policy), {METADATA_KEY: json.dumps(meta)})
    return path


def load_native(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """``(tensors, metadata)`` of a file written by :func:`export_native` (numpy arrays; no torch)."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: not a safetensors file (header length {n} exceeds the file size)")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    if METADATA_KEY not in meta:
        raise ValueError(f"{path}: not a sobolev_warmstart policy file (no {METADATA_KEY!r} metadata)")
    data = raw[8 + n:]
    tensors = {}
    for name, v in header.items():
        if v["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} has dtype {v['dtype']}, expected F32")
        b, e = v["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"]).copy()
    return tensors, json.loads(meta[METADATA_KEY])


#: Exported file suffix -> backend, as :func:`export_policy` and the C++ runner read it.
EXPORT_SUFFIXES = {".safetensors": "native", ".pt": "torchscript", ".pt2": "aoti"}


def export_backend(path: str | os.PathLike, argument: str = "path") -> str:
    """The backend a file name's suffix names (:data:`EXPORT_SUFFIXES`); a clear error naming ``argument`` else."""
    suffix = Path(path).suffix
    if suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"{argument}: expected a .safetensors (native), .pt (TorchScript) or .pt2 (AOTInductor) "
                         f"file name, got {str(path)!r}")
    return EXPORT_SUFFIXES[suffix]


def export_policy(policy: DiffusionPolicy | MLPPolicy, path: str | os.PathLike) -> Path:
    """Export for the C++ runner in the format the suffix names: ``.safetensors`` (native, milliseconds),
    ``.pt`` (TorchScript, ~1 s) or ``.pt2`` (AOTInductor, ~1 min to compile)."""
    fn = {"native": export_native, "torchscript": export_torchscript, "aoti": export_aoti}[export_backend(path)]
    return fn(policy, path)
