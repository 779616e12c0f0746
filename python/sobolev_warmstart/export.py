"""Export a trained policy for the C++ runner: TorchScript (``.pt``) and torch.export + AOTInductor (``.pt2``).

Both files hold the whole sampler: normalisers, network, the fixed number of denoising steps, inpainting and
un-normalisation, in float32 on CPU. Signatures (``B`` free, the other sizes fixed by the metadata):

- diffusion policies: ``forward(obs_history (B, h, no), params (B, nz), history_actions (B, h, na),
  noise (K, B, H, na)) -> chunk (B, H, na)`` in physical units; see :mod:`sobolev_warmstart.policy`;
- direct (MLP) policies: ``forward(obs (B, no), params (B, nz)) -> action (B, na)``.

Metadata (JSON: ``kind``, ``task`` {name, nx, ndx, nu, na, no, nz, dt, horizon, action_space}, ``horizon`` H,
``history`` h, ``action_steps`` A, ``num_steps`` K, ``schema_version``, ``format_version``, ``signature``) is
stored as the TorchScript extra file ``metadata.json`` (C++: ``torch::jit::load(path, device, extra_files)``)
and as the ``.pt2`` package metadata key ``sobolev_warmstart`` (C++: ``AOTIModelPackageLoader::get_metadata()``).
TorchScript is deprecated upstream; the ``.pt2`` is the long-term format. AOTInductor compiles for the
exporting machine's CPU and needs a C++ compiler at export time.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

from .data import atomic_write_bytes
from .policy import DiffusionPolicy, MLPPolicy

__all__ = ["export_metadata", "export_torchscript", "load_torchscript", "export_aoti", "load_aoti",
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
        return (torch.zeros(batch, policy.history_steps, policy.no), torch.zeros(batch, policy.nz),
                torch.zeros(batch, policy.history_steps, policy.na),
                torch.zeros(policy.num_steps, batch, policy.horizon, policy.na))
    return torch.zeros(batch, policy.no), torch.zeros(batch, policy.nz)


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
