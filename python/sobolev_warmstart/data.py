"""Training data for the policies: solved trajectories -> normalised chunks with Sobolev targets.

Notation (DESIGN.md): a batch of ``N`` solved instances of one task with horizon ``T``; chunks of ``H``
action variables whose first ``h`` entries are the known history (the ``h`` actions before the chunk's
start time ``t0``) and whose next ``A`` entries are executed. The network is conditioned on the
observation history ``o_{t0-h+1..t0}`` (edge-padded at the start) and the task parameters ``z``.

Derivative targets: for a chunk starting at ``t0`` the entry ``j >= h`` is the action ``a_{t0-h+j}``, whose
derivative with respect to the current state is ``action_jacobians[i, t0, j-h]`` (contract of the C++
core). Everything is stored in normalised coordinates, with the chain rule through the affine normalisers:
``d ã / d x̃ = diag(1/σ_a) · D · diag(σ_x)`` and ``d õ / d x̃ = diag(1/σ_o) · ∂o/∂x · diag(σ_x)``.

The saved format is one ``.npz`` file (no pickles) holding the trajectory arrays, the chunk specification,
the fitted normalisers and a JSON header with ``format`` and ``schema_version``; it is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "SCHEMA_VERSION",
    "TaskInfo",
    "TrajectoryData",
    "ChunkSpec",
    "TIME_TO_GO_NORMALISER",
    "time_to_go",
    "Normaliser",
    "Normalisers",
    "ChunkDataset",
    "build_dataset",
    "save_dataset",
    "load_dataset",
    "atomic_write_bytes",
    "link_file",
    "link_tree",
]

#: Version of the saved dataset layout; bump when the arrays or header change meaning.
SCHEMA_VERSION = 1
_FORMAT = "sobolev_warmstart.dataset"
_ACTION_SPACES = ("torque", "state")


# --------------------------------------------------------------------------------------------- helpers
def _check_array(name: str, value: Any, shape: tuple, *, dtype=np.float64) -> np.ndarray:
    """Return ``value`` as an array of ``shape`` (``None`` entries are free), or raise naming ``name``."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array convertible to {np.dtype(dtype).name}, got {type(value).__name__}") from exc
    expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(arr.shape)}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return arr


def atomic_write_bytes(path: str | os.PathLike, writer) -> None:
    """Write a file atomically: ``writer(fileobj)`` fills a temporary file in the same folder, which is
    flushed, fsync-ed and renamed over ``path``. A crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


_SAFETENSORS_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64"}


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write float32/float64 arrays and string metadata as a `safetensors <https://huggingface.co/docs/safetensors>`_
    file (atomically, :func:`atomic_write_bytes`): what the C++ core reads, the native policy
    (:func:`~sobolev_warmstart.export.export_native`) and the lookup
    (:meth:`~sobolev_warmstart.baselines.NearestNeighbourLookup.export`)."""
    header: dict = {"__metadata__": dict(metadata)}
    blobs, offset = [], 0
    for name, a in sorted(tensors.items()):
        a = np.ascontiguousarray(a)
        if a.dtype not in _SAFETENSORS_DTYPES:
            raise TypeError(f"tensors[{name!r}]: expected little-endian float32 or float64, got {a.dtype}")
        header[name] = {"dtype": _SAFETENSORS_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    head += b" " * (-len(head) % 8)  # the format pads the header to 8 bytes with spaces

    def write(f):
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)

    atomic_write_bytes(path, write)


def link_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """A hard link of ``src`` at ``dst``, or a copy where the file system has none. Finished files of this package
    are never written in place (every stage writes a new file and renames it, :func:`atomic_write_bytes`), so a
    link shares nothing later."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(src: str | os.PathLike, dst: str | os.PathLike, ignore=None) -> None:
    """``src``'s tree at ``dst`` (which must not exist), each file hard-linked (:func:`link_file`); ``ignore`` as
    :func:`shutil.copytree`'s."""
    shutil.copytree(src, dst, copy_function=link_file, ignore=ignore)


# ------------------------------------------------------------------------------------------ task, data
@dataclass(frozen=True)
class TaskInfo:
    """Metadata of a task, as given by the C++ core."""

    name: str
    nx: int
    ndx: int
    nu: int
    na: int
    no: int
    nz: int
    dt: float
    horizon: int
    action_space: str = "torque"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        for key in ("nx", "ndx", "nu", "na", "no", "horizon"):
            v = getattr(self, key)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key}: expected a positive integer, got {v!r}")
        if not isinstance(self.nz, (int, np.integer)) or isinstance(self.nz, bool) or self.nz < 0:
            raise ValueError(f"nz: expected a non-negative integer, got {self.nz!r}")
        if not (isinstance(self.dt, (float, int)) and np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt: expected a positive finite float, got {self.dt!r}")
        if self.action_space not in _ACTION_SPACES:
            raise ValueError(f"action_space: expected one of {_ACTION_SPACES}, got {self.action_space!r}")
        if self.action_space == "torque" and self.na != self.nu:
            raise ValueError(f"na: a torque task acts with a = u, expected na == nu == {self.nu}, got {self.na}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_task(cls, task) -> "TaskInfo":
        """The dimensions of a core ``Task`` (``sobolev_warmstart.make_task``)."""
        return cls(name=task.name, nx=task.nx, ndx=task.ndx, nu=task.nu, na=task.na, no=task.no, nz=task.nz,
                   dt=task.dt, horizon=task.horizon, action_space=task.action_space)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TaskInfo":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass
class TrajectoryData:
    """Solved instances of one task, as plain numpy arrays (contract of the C++ core's batch solve).

    Shapes: ``xs (N, T+1, nx)``, ``us (N, T, nu)``, ``observations (N, T+1, no)``,
    ``observation_jacobians (N, T+1, no, ndx)``, ``actions (N, T, na)``,
    ``action_jacobians (N, T, Hj, na, ndx)`` with entry ``[i, t0, k] = ∂a_{min(t0+k, T-1)}/∂x_{t0}``,
    ``params (N, nz)``. Optional: ``converged (N,)``, ``cost (N,)``, ``feedback_gains (N, T, nu, ndx)``,
    ``initial_actions (N, na)``: the action variable before ``t = 0``, used as chunk history at the start
    (zeros when not given: the runner must feed the same at ``t0 = 0``). Optional, both or neither (the
    parameter Sobolev targets, :func:`~sobolev_warmstart.sensitivities.parameter_jacobians`):
    ``action_param_jacobians (N, T, Hj, na, nz)`` with entry ``[i, t0, k] = ∂a_{min(t0+k, T-1)}/∂z`` at a fixed
    ``x_{t0}``, and ``observation_param_jacobians (N, T+1, no, nz) = ∂o(x_t; z)/∂z``.
    Optional ``label_start (N,)`` int in ``[0, T)``: the first step from which the trajectory is the solver's; the
    steps before it are a policy's own rollout (:func:`~sobolev_warmstart.relabel.relabel_rollouts`), kept as the
    chunks' history and never a training target (None: 0, every step is the solver's).
    """

    task: TaskInfo
    xs: np.ndarray
    us: np.ndarray
    observations: np.ndarray
    observation_jacobians: np.ndarray
    actions: np.ndarray
    action_jacobians: np.ndarray
    params: np.ndarray | None = None
    converged: np.ndarray | None = None
    cost: np.ndarray | None = None
    feedback_gains: np.ndarray | None = None
    initial_actions: np.ndarray | None = None
    action_param_jacobians: np.ndarray | None = None
    observation_param_jacobians: np.ndarray | None = None
    label_start: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, TaskInfo):
            raise TypeError(f"task: expected a TaskInfo, got {type(self.task).__name__}")
        t = self.task
        xs = np.asarray(self.xs)
        if xs.ndim != 3:
            raise ValueError(f"xs: expected shape (N, T+1, {t.nx}), got {tuple(xs.shape)}")
        n, T = xs.shape[0], t.horizon
        if n < 1:
            raise ValueError("xs: expected at least one instance, got N = 0")
        self.xs = _check_array("xs", xs, (n, T + 1, t.nx))
        self.us = _check_array("us", self.us, (n, T, t.nu))
        self.observations = _check_array("observations", self.observations, (n, T + 1, t.no))
        self.observation_jacobians = _check_array(
            "observation_jacobians", self.observation_jacobians, (n, T + 1, t.no, t.ndx))
        self.actions = _check_array("actions", self.actions, (n, T, t.na))
        self.action_jacobians = _check_array(
            "action_jacobians", self.action_jacobians, (n, T, None, t.na, t.ndx))
        if self.action_jacobians.shape[2] < 1:
            raise ValueError("action_jacobians: expected at least one chunk offset (axis 2), got 0")
        if self.params is None:
            if t.nz != 0:
                raise ValueError(f"params: expected shape ({n}, {t.nz}), got None")
            self.params = np.zeros((n, 0))
        self.params = _check_array("params", self.params, (n, t.nz))
        if self.converged is not None:
            self.converged = _check_array("converged", self.converged, (n,), dtype=bool)
        if self.cost is not None:
            self.cost = _check_array("cost", self.cost, (n,))
        if self.feedback_gains is not None:
            self.feedback_gains = _check_array("feedback_gains", self.feedback_gains, (n, T, t.nu, t.ndx))
        if self.initial_actions is None:
            self.initial_actions = np.zeros((n, t.na))
        self.initial_actions = _check_array("initial_actions", self.initial_actions, (n, t.na))
        if (self.action_param_jacobians is None) != (self.observation_param_jacobians is None):
            raise ValueError("action_param_jacobians, observation_param_jacobians: give both or neither")
        if self.action_param_jacobians is not None:
            self.action_param_jacobians = _check_array(
                "action_param_jacobians", self.action_param_jacobians, (n, T, None, t.na, t.nz))
            self.observation_param_jacobians = _check_array(
                "observation_param_jacobians", self.observation_param_jacobians, (n, T + 1, t.no, t.nz))
        if self.label_start is not None:
            start = np.asarray(self.label_start)
            if start.shape != (n,) or not np.issubdtype(start.dtype, np.integer) or (start < 0).any() \
                    or (start >= T).any():
                raise ValueError(f"label_start: expected ({n},) integers in [0, {T}), got "
                                 f"{start.dtype} array of shape {start.shape}"
                                 + (f" in [{start.min()}, {start.max()}]" if start.size else ""))
            self.label_start = start.astype(np.int64)

    @property
    def num_instances(self) -> int:
        return self.xs.shape[0]

    @classmethod
    def from_arrays(cls, task: TaskInfo, arrays: Mapping[str, Any]) -> "TrajectoryData":
        """Build from a mapping such as the core's solve result; unknown keys (``state_jacobians``) are
        ignored."""
        names = {f.name for f in dataclasses.fields(cls)} - {"task"}
        return cls(task=task, **{k: v for k, v in arrays.items() if k in names})

    @classmethod
    def from_solve(cls, task, result, derivatives) -> "TrajectoryData":
        """From a core batch solve (``sobolev_warmstart.solve``) and its ``chained_derivatives``.

        The history action before ``t = 0`` is zero torque, or ``g(q_0)`` for state actions.
        """
        xs = np.asarray(result.xs)
        if task.action_space == "state":
            initial = np.stack([task.action(np.zeros(task.nu), x0) for x0 in xs[:, 0]]) if len(xs) else None
        else:
            initial = None
        arrays = {**vars(result), **vars(derivatives), "initial_actions": initial}
        return cls.from_arrays(TaskInfo.from_task(task), arrays)

    def select(self, index) -> "TrajectoryData":
        """Subset of instances (boolean mask or integer indices), e.g. ``data.select(data.converged)``."""
        idx = np.asarray(index)
        if idx.dtype == bool and idx.shape != (self.num_instances,):
            raise ValueError(f"index: expected a boolean mask of shape ({self.num_instances},), got {idx.shape}")
        kw = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v if f.name == "task" or v is None else v[idx]
        return TrajectoryData(**kw)

    def solved_part(self, purpose: str) -> "TrajectoryData":
        """The trajectories that are their instance's solution (``label_start`` absent or 0), not relabelled ones
        (a policy's steps, then the solver's); ``ValueError`` naming ``data`` if there is none. ``purpose`` ends
        the message: what the solved trajectories are needed for."""
        if self.label_start is None:
            return self
        solved = self.label_start == 0
        if not solved.any():
            raise ValueError(f"data: every instance is relabelled (label_start > 0); expected solved ones {purpose}")
        return self.select(solved)

    def refuse_relabelled(self, advice: str) -> None:
        """``ValueError`` naming ``data`` if it holds relabelled trajectories, which are not the solutions of their
        instances (for the operations that assume they are); ``advice`` ends the message."""
        if self.label_start is not None and (self.label_start > 0).any():
            raise ValueError("data: holds relabelled trajectories (label_start > 0), which are not solutions of their "
                             f"instances; {advice}")

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "task" and getattr(self, f.name) is not None}


def concatenate_trajectories(parts: Sequence[TrajectoryData]) -> TrajectoryData:
    """The instances of ``parts`` (one task, the same chunk offsets) one after the other. An optional field is kept
    where every part has it; ``label_start`` where any part has it (0 for the parts without: solved throughout)."""
    parts = list(parts)
    if not parts or not all(isinstance(p, TrajectoryData) for p in parts):
        raise TypeError("parts: expected a non-empty sequence of TrajectoryData")
    first = parts[0]
    for i, p in enumerate(parts[1:], 1):
        if p.task != first.task:
            raise ValueError(f"parts[{i}]: expected the task of parts[0] ({first.task}), got {p.task}")
        if p.action_jacobians.shape[2] != first.action_jacobians.shape[2]:
            raise ValueError(f"parts[{i}]: expected {first.action_jacobians.shape[2]} chunk offsets in "
                             f"action_jacobians, got {p.action_jacobians.shape[2]}")
    merged: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(TrajectoryData):
        if f.name in ("task", "label_start"):
            continue
        values = [getattr(p, f.name) for p in parts]
        if all(v is not None for v in values):
            merged[f.name] = np.concatenate(values)
    if any(p.label_start is not None for p in parts):
        merged["label_start"] = np.concatenate([
            p.label_start if p.label_start is not None else np.zeros(p.num_instances, np.int64) for p in parts])
    return TrajectoryData(task=first.task, **merged)


#: Tasks whose parameters end in interchangeable groups: name -> (first index, group size). The quadrotor's
#: z = (goal x, y, z, column 1 x, y, ..., column K x, y): the same problem whatever the columns' order.
EXCHANGEABLE_PARAMS = {"quadrotor": (3, 2)}


def exchangeable_params(task: TaskInfo) -> tuple[int, int] | None:
    """``(start, size)`` when ``z[start:]`` are interchangeable groups of ``size`` entries (at least two of them),
    else None: ``(3, 2)`` for the quadrotor among two or more columns."""
    spec = EXCHANGEABLE_PARAMS.get(task.name)
    if spec is None:
        return None
    start, size = spec
    groups, rest = divmod(task.nz - start, size)
    return spec if groups >= 2 and rest == 0 else None


def shuffle_param_groups(params: torch.Tensor, normaliser: Normaliser, start: int, size: int,
                         generator: torch.Generator, jacobians: Sequence[torch.Tensor] | None = None):
    """A copy of normalised ``params (B, >= nz)`` whose groups ``z[start:nz]`` of ``size`` entries are put in a
    random order per row, in raw units (each slot keeps its own normalisation); columns past ``nz`` (the time to
    go) are kept. ``jacobians``: derivatives with respect to the normalised parameters, ``(B, ..., nz)`` each,
    reordered the same way (returned after the parameters, as a tuple)."""
    nz = normaliser.dim
    groups = (nz - start) // size
    offset = torch.as_tensor(normaliser.offset[start:], dtype=params.dtype)
    scale = torch.as_tensor(normaliser.scale[start:], dtype=params.dtype)
    raw = (params[:, start:nz] * scale + offset).reshape(len(params), groups, size)
    order = torch.argsort(torch.rand(len(params), groups, generator=generator), dim=1)
    raw = torch.gather(raw, 1, order[:, :, None].expand(-1, -1, size)).reshape(len(params), groups * size)
    out = params.clone()
    out[:, start:nz] = (raw - offset) / scale
    if jacobians is None:
        return out
    moved = []
    for jac in jacobians:
        lead = jac.shape[1:-1]
        raw_j = (jac[..., start:nz] / scale).reshape(len(jac), -1, groups, size)  # ∂/∂z in raw units, per group
        index = order[:, None, :, None].expand(-1, raw_j.shape[1], -1, size)
        raw_j = torch.gather(raw_j, 2, index).reshape(len(jac), *lead, groups * size)
        new = jac.clone()
        new[..., start:nz] = raw_j * scale
        moved.append(new)
    return (out, *moved)


# ------------------------------------------------------------------------------------------ chunk spec
#: Offset and scale that normalise the time to go ``(T - t0) / T`` in (0, 1] to (-1, 1], like a min-max
#: normalised task parameter.
TIME_TO_GO_NORMALISER = (0.5, 0.5)


def time_to_go(t0, horizon: int) -> np.ndarray:
    """The time-to-go feature of a chunk starting at step ``t0`` of a horizon of ``horizon`` steps: ``(T - t0) / T``,
    1 at the start and ``1 / T`` at the last step."""
    return (horizon - np.asarray(t0, dtype=np.float64)) / horizon


@dataclass(frozen=True)
class ChunkSpec:
    """Chunk layout: ``horizon`` (H) entries; the first ``history`` (h) are the known past actions, the next
    ``action_steps`` (A) are executed. The observation history has ``history`` entries as well.

    ``time_to_go``: the policy also conditions on the time to go ``(T - t0) / T`` of the chunk's start (a finite-horizon
    optimal policy depends on it: the same state calls for other actions and gains near the end). It is passed as
    one more column of ``params``, after the task parameters (:func:`time_to_go`).

    ``relative_actions``: the chunk is learned relative to the last known action ``a_{t0-1}``: the network predicts
    ``a_{t0-h+j} - a_{t0-1}``, the policy adds ``a_{t0-1}`` back. On state-action tasks ``a_{t0-1}`` is the features
    of the current state ``x_{t0}`` (the next configuration and velocity the previous step reached), so the network
    predicts the change from where the robot is rather than where it will be. Measured not to help: the min-max
    action normaliser keeps the range of the hardest braking steps, and Diff's relative chunks drift
    (docs/results/ablations.md, round 32); direct policies refuse it."""

    horizon: int = 16
    history: int = 1
    action_steps: int = 8
    time_to_go: bool = False
    relative_actions: bool = False

    def __post_init__(self) -> None:
        for key in ("horizon", "history", "action_steps"):
            v = getattr(self, key)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key}: expected a positive integer, got {v!r}")
        for key in ("time_to_go", "relative_actions"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ValueError(f"{key}: expected a bool, got {getattr(self, key)!r}")
        if self.history + self.action_steps > self.horizon:
            raise ValueError(
                f"action_steps: expected history + action_steps <= horizon ({self.horizon}), got "
                f"{self.history} + {self.action_steps}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def chunk_actions(data: TrajectoryData, ii: np.ndarray, t0: np.ndarray, spec: ChunkSpec) -> np.ndarray:
    """``(M, H, na)`` physical chunks of instances ``ii`` starting at ``t0`` (``(M,)`` each): entry ``j`` is
    ``a_{t0-h+j}`` (before 0 the initial action, past ``T-1`` the last action), minus ``a_{t0-1}`` with
    ``spec.relative_actions``."""
    T, H, h = data.task.horizon, spec.horizon, spec.history
    tau = t0[:, None] - h + np.arange(H)[None, :]  # (M, H)
    padded = np.concatenate([data.initial_actions[:, None], data.actions], axis=1)  # index tau + 1
    chunks = padded[ii[:, None], np.clip(tau, -1, T - 1) + 1]
    if spec.relative_actions:
        chunks = chunks - padded[ii, t0][:, None]  # a_{t0-1} sits at index t0
    return chunks


def last_action_jacobians(data: TrajectoryData) -> np.ndarray:
    """``(N, T, na, ndx)``: ``d a_{t-1} / d x_t`` along the trajectories, the derivative of the known action before
    step ``t`` with respect to the state it led to (``a_{-1}``: the initial action, of ``x_0``). Zero on torque tasks,
    whose known action is a past control; on state-action tasks the features' Jacobian of ``x_t``
    (``Task.action_state_jacobians``)."""
    t = data.task
    N, T = data.num_instances, t.horizon
    if t.action_space == "torque" or N == 0:
        return np.zeros((N, T, t.na, t.ndx))
    from .tasks import make_task  # the C++ core (data.py itself needs only numpy)
    core = make_task(t.name)
    if (core.nx, core.ndx, core.na) != (t.nx, t.ndx, t.na):
        raise ValueError(f"data.task: {t.name!r} has nx, ndx, na = {(core.nx, core.ndx, core.na)} in the core, the data "
                         f"{(t.nx, t.ndx, t.na)}")
    return core.action_state_jacobians(data.xs[:, :T].reshape(-1, t.nx)).reshape(N, T, t.na, t.ndx)


# ------------------------------------------------------------------------------------------ normaliser
#: The scales a normaliser can fit: Diffusion Policy's range onto [-1, 1], or mean and standard deviation.
NORMALISER_MODES = ("minmax", "standard")


def check_normaliser_mode(name: str, value: Any, none_means_default: bool = False) -> str:
    """``value`` if it is one of :data:`NORMALISER_MODES`, else ``ValueError`` naming ``name`` (and None among the
    expected values where the caller reads it as its default)."""
    if value not in NORMALISER_MODES:
        expected = "'minmax', 'standard' or None" if none_means_default else "'minmax' or 'standard'"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return value


@dataclass
class Normaliser:
    """Affine per-dimension map ``x̃ = (x - offset) / scale``.

    ``mode = "minmax"`` maps the data range to [-1, 1] (Diffusion Policy's choice for actions); ``"standard"``
    to zero mean and unit variance. Dimensions with (nearly) constant data get ``scale = 1``.
    """

    offset: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        if self.offset.shape != self.scale.shape:
            raise ValueError(f"scale: expected shape {self.offset.shape} like offset, got {self.scale.shape}")
        if not (np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)):
            raise ValueError("scale: expected positive finite entries")

    @property
    def dim(self) -> int:
        return self.offset.shape[0]

    @classmethod
    def fit(cls, data: np.ndarray, mode: str = "minmax", eps: float = 1e-6) -> "Normaliser":
        """Fit on ``data (..., D)``."""
        data = np.asarray(data, dtype=np.float64)
        d = data.shape[-1]
        if d == 0 or data.size == 0:
            return cls(np.zeros(d), np.ones(d))
        flat = data.reshape(-1, d)
        if check_normaliser_mode("mode", mode) == "minmax":
            lo, hi = flat.min(0), flat.max(0)
            offset, scale = 0.5 * (lo + hi), 0.5 * (hi - lo)
        else:
            offset, scale = flat.mean(0), flat.std(0)
        scale = np.where(scale > eps, scale, 1.0)
        return cls(offset, scale)

    @classmethod
    def identity(cls, dim: int) -> "Normaliser":
        return cls(np.zeros(dim), np.ones(dim))

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) - self.offset) / self.scale

    def unnormalise(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) * self.scale + self.offset

    def to_dict(self) -> dict:
        return {"offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Normaliser":
        return cls(np.asarray(d["offset"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64))


@dataclass
class Normalisers:
    """The normalisers of one dataset/model: action ``a`` (na), observation ``o`` (no), parameters ``z``
    (nz), and the scale of the state tangent ``σ_x`` (ndx) used for derivatives (offset unused)."""

    action: Normaliser
    observation: Normaliser
    params: Normaliser
    state: Normaliser

    @classmethod
    def fit(cls, data: TrajectoryData, mode: str = "minmax", state_scale=None,
            spec: ChunkSpec | None = None, action_mode: str | None = None,
            observation_mode: str | None = None) -> "Normalisers":
        """Fit on ``data``. The state tangent scale is fitted on ``xs`` when ``nx == ndx`` (Euclidean-like
        coordinates), else it is one unless ``state_scale (ndx,)`` is given. With ``spec.relative_actions`` the action
        normaliser is fitted on the chunks' actions relative to their last known action (:class:`ChunkSpec`).
        ``action_mode``: the action normaliser's mode when it differs from ``mode`` (None: ``mode``); a
        ``"standard"`` action normaliser maps the actions beyond [-1, 1], so a diffusion policy trained on it should
        sample without clipping (``DiffusionConfig.clip_sample``). ``observation_mode``: likewise the observation
        normaliser's mode (the network's input; the derivative targets ``∂ã/∂x̃`` do not depend on it, the
        observation Jacobians ``∂õ/∂x̃`` follow it)."""
        t = data.task
        action_mode = check_normaliser_mode("action_mode", mode if action_mode is None else action_mode, True)
        observation_mode = check_normaliser_mode("observation_mode",
                                                 mode if observation_mode is None else observation_mode, True)
        if state_scale is not None:
            s = _check_array("state_scale", state_scale, (t.ndx,))
            state = Normaliser(np.zeros(t.ndx), s)
        elif t.nx == t.ndx:
            state = Normaliser.fit(data.xs, mode)
        else:
            state = Normaliser.identity(t.ndx)
        if spec is not None and spec.relative_actions:
            N, T = data.num_instances, t.horizon
            ii, t0 = np.nonzero(np.ones((N, T), dtype=bool))
            actions = chunk_actions(data, ii, t0, spec).reshape(-1, t.na)
        else:
            actions = np.concatenate([data.actions.reshape(-1, t.na), data.initial_actions])
        return cls(
            action=Normaliser.fit(actions, action_mode),
            observation=Normaliser.fit(data.observations, observation_mode),
            params=Normaliser.fit(data.params, mode),
            state=state,
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k).to_dict() for k in ("action", "observation", "params", "state")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Normalisers":
        return cls(**{k: Normaliser.from_dict(d[k]) for k in ("action", "observation", "params", "state")})


# ---------------------------------------------------------------------------------------------- dataset
@dataclass
class ChunkDataset:
    """Normalised training samples, one per (instance, start time ``t0``): ``M = N * T`` samples.

    Tensors (float32, normalised coordinates):
    ``obs (M, h, no)`` observation history; ``params (M, nz)``, ``(M, nz + 1)`` with ``spec.time_to_go`` (the last
    column the normalised time to go of ``t0``); ``chunks (M, H, na)`` with the first ``h``
    entries the known history; ``chunk_jac (M, H, na, ndx)`` = ``∂ã_chunk/∂x̃_{t0}`` (zero on history rows);
    ``obs_jac (M, no, ndx)`` = ``∂õ_{t0}/∂x̃_{t0}``. Where the data hold parameter derivatives
    (``TrajectoryData.action_param_jacobians``), ``chunk_param_jac (M, H, na, nz)`` = ``∂ã_chunk/∂z̃`` at a fixed
    ``x_{t0}`` (zero on history rows) and ``obs_param_jac (M, h, no, nz)`` = ``∂õ/∂z̃`` of each history slot at its
    fixed state; otherwise both are None. Where the data give ``label_start``, an instance's chunks starting before
    it are left out (``M`` is then smaller than ``N * T``); ``instance`` and ``start`` say where each sample is from.
    For direct policies: ``obs[:, -1]``, ``params`` -> ``chunks[:, h]`` with derivative ``chunk_jac[:, h]``
    (for torque tasks, ``K_t`` normalised).
    """

    data: TrajectoryData
    spec: ChunkSpec
    normalisers: Normalisers
    obs: torch.Tensor = field(init=False, repr=False)
    params: torch.Tensor = field(init=False, repr=False)
    chunks: torch.Tensor = field(init=False, repr=False)
    chunk_jac: torch.Tensor = field(init=False, repr=False)
    obs_jac: torch.Tensor = field(init=False, repr=False)
    chunk_param_jac: torch.Tensor | None = field(init=False, repr=False)
    obs_param_jac: torch.Tensor | None = field(init=False, repr=False)
    instance: torch.Tensor = field(init=False, repr=False)
    start: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        d, spec, nrm = self.data, self.spec, self.normalisers
        t = d.task
        H, h = spec.horizon, spec.history
        if d.action_jacobians.shape[2] < H - h:
            raise ValueError(
                f"action_jacobians: expected at least horizon - history = {H - h} chunk offsets on axis 2, "
                f"got {d.action_jacobians.shape[2]}")
        for name, n, dim in (("action", nrm.action.dim, t.na), ("observation", nrm.observation.dim, t.no),
                             ("params", nrm.params.dim, t.nz), ("state", nrm.state.dim, t.ndx)):
            if n != dim:
                raise ValueError(f"normalisers.{name}: expected dimension {dim}, got {n}")
        N, T = d.num_instances, t.horizon
        # the samples, instance by instance: every start t0 from the instance's label_start (0: all of them)
        first = np.zeros(N, np.int64) if d.label_start is None else d.label_start
        ii, t0 = np.nonzero(np.arange(T)[None, :] >= first[:, None])  # (M,) each
        M = len(ii)
        # observation history o_{t0-h+1..t0}, edge-padded at the start
        oi = np.clip(t0[:, None] - h + 1 + np.arange(h)[None, :], 0, T)  # (M, h)
        obs = nrm.observation.normalise(d.observations[ii[:, None], oi])  # (M, h, no)
        chunks = nrm.action.normalise(chunk_actions(d, ii, t0, spec))  # (M, H, na)
        # derivatives: rows j >= h from action_jacobians[:, t0, j - h]
        jac = np.zeros((M, H, t.na, t.ndx))
        jac[:, h:] = d.action_jacobians[ii, t0, : H - h]
        if spec.relative_actions:  # minus d a_{t0-1} / d x_{t0}: the known action the chunk is relative to
            jac[:, h:] -= last_action_jacobians(d)[ii, t0][:, None]
        jac = jac / nrm.action.scale[:, None] * nrm.state.scale
        ojac = d.observation_jacobians[ii, t0] / nrm.observation.scale[:, None] * nrm.state.scale
        prm = nrm.params.normalise(d.params)[ii]
        if spec.time_to_go:
            offset, scale = TIME_TO_GO_NORMALISER
            prm = np.concatenate([prm, ((time_to_go(t0, T) - offset) / scale)[:, None]], axis=-1)

        def f32(a):
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

        self.obs, self.params, self.chunks = f32(obs), f32(prm), f32(chunks)
        self.chunk_jac, self.obs_jac = f32(jac), f32(ojac)
        self.chunk_param_jac = self.obs_param_jac = None
        if d.action_param_jacobians is not None:
            if d.action_param_jacobians.shape[2] < H - h:
                raise ValueError(f"action_param_jacobians: expected at least horizon - history = {H - h} chunk "
                                 f"offsets on axis 2, got {d.action_param_jacobians.shape[2]}")
            pjac = np.zeros((M, H, t.na, t.nz))
            pjac[:, h:] = d.action_param_jacobians[ii, t0, : H - h]
            pjac = pjac / nrm.action.scale[:, None] * nrm.params.scale
            opjac = d.observation_param_jacobians[ii[:, None], oi] / nrm.observation.scale[:, None] * nrm.params.scale
            self.chunk_param_jac = f32(pjac)
            self.obs_param_jac = f32(opjac)
        self.instance = torch.from_numpy(ii.astype(np.int64))
        self.start = torch.from_numpy(t0.astype(np.int64))

    @property
    def task(self) -> TaskInfo:
        return self.data.task

    @property
    def param_dim(self) -> int:
        """Columns of ``params``: the task's ``nz``, plus one with ``spec.time_to_go``."""
        return self.data.task.nz + int(self.spec.time_to_go)

    def __len__(self) -> int:
        return self.chunks.shape[0]

    def history_mask(self) -> torch.Tensor:
        """``(H,)`` bool, True on the known history entries."""
        m = torch.zeros(self.spec.horizon, dtype=torch.bool)
        m[: self.spec.history] = True
        return m

    def metadata(self) -> dict:
        return {"format": _FORMAT, "schema_version": SCHEMA_VERSION, "task": self.task.to_dict(),
                "spec": self.spec.to_dict(), "normalisers": self.normalisers.to_dict()}


def build_dataset(data: TrajectoryData, spec: ChunkSpec | None = None, *, normalisers: Normalisers | None = None,
                  mode: str = "minmax", state_scale=None, only_converged: bool = True,
                  action_mode: str | None = None, observation_mode: str | None = None) -> ChunkDataset:
    """Chunk dataset from solved trajectories. Normalisers are fitted on the (kept) data unless given
    (:meth:`Normalisers.fit`: ``mode``, ``action_mode``, ``observation_mode``, ``state_scale``).
    With ``only_converged`` (default), instances whose ``converged`` flag is False are dropped."""
    if not isinstance(data, TrajectoryData):
        raise TypeError(f"data: expected a TrajectoryData, got {type(data).__name__}")
    spec = ChunkSpec() if spec is None else spec
    if not isinstance(spec, ChunkSpec):
        raise TypeError(f"spec: expected a ChunkSpec, got {type(spec).__name__}")
    if only_converged and data.converged is not None:
        if not data.converged.any():
            raise ValueError("data: no converged instance to train on (converged is all False)")
        data = data.select(data.converged)
    if normalisers is None:
        normalisers = Normalisers.fit(data, mode=mode, state_scale=state_scale, spec=spec, action_mode=action_mode,
                                      observation_mode=observation_mode)
    return ChunkDataset(data=data, spec=spec, normalisers=normalisers)


def save_dataset(dataset: ChunkDataset, path: str | os.PathLike) -> None:
    """Save atomically to ``path`` (.npz, no pickles)."""
    header = json.dumps(dataset.metadata()).encode()
    arrays = {k: np.asarray(v) for k, v in dataset.data.arrays().items()}
    arrays["__header__"] = np.frombuffer(header, dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def load_dataset(path: str | os.PathLike, task: str | None = None) -> ChunkDataset:
    """Load a dataset saved by :func:`save_dataset`. Raises ``ValueError`` if the file is not a dataset, was
    written with another schema version, or (when ``task`` is given) holds another task."""
    with np.load(path, allow_pickle=False) as z:
        if "__header__" not in z.files:
            raise ValueError(f"{path}: not a sobolev_warmstart dataset (no header)")
        header = json.loads(z["__header__"].tobytes().decode())
        arrays = {k: z[k] for k in z.files if k != "__header__"}
    if header.get("format") != _FORMAT:
        raise ValueError(f"{path}: expected format {_FORMAT!r}, got {header.get('format')!r}")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: dataset schema version {header.get('schema_version')} is not supported "
                         f"(this code reads version {SCHEMA_VERSION}); rebuild the dataset")
    info = TaskInfo.from_dict(header["task"])
    if task is not None and info.name != task:
        raise ValueError(f"{path}: expected a dataset of task {task!r}, got {info.name!r}")
    data = TrajectoryData(task=info, **arrays)
    return ChunkDataset(data=data, spec=ChunkSpec(**header["spec"]),
                        normalisers=Normalisers.from_dict(header["normalisers"]))
