"""Typed configurations of the command line and the collect/train loop, read from TOML/JSON and ``--set``.

A configuration is a tree of dataclasses: :class:`LoopConfig` (Algorithm 1) holds a :class:`ChunkSpec`
(``chunk``), :class:`SolverOptions` (``solver``), :class:`TrainConfig` (``train``, with the policy kind in
``train.policy``) and an :class:`EvalConfig` (``eval``); :class:`CollectConfig` is the TO-alone dataset of
``sobolev-warmstart collect``. Each is built from a plain mapping by :func:`from_dict`, which checks every key
and value and names the offending one with its dotted path::

    loop.trian: unknown key; expected one of action_steps, chunk, collect_batch, ...
    loop.train.epochs: expected an integer, got 'ten' (str)
    loop.solver.tol: expected a tolerance > 0, got 0.0

Sources, later ones winning: an embedded preset (:data:`PRESETS`, e.g. ``"default"``: a pendubot loop that
finishes in a few minutes on two cores), a ``.toml`` or ``.json`` file, and ``key=value`` overrides with dotted
keys whose values are JSON literals (``train.epochs=50``, ``train.unet.down_dims=[16,32]``,
``train.sobolev_weight=null``) or else strings (``task=ur5``). Errors raise :class:`ConfigError` (a
``ValueError``); the command line prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from .data import ChunkSpec
from .export import EXPORT_SUFFIXES
from .solver import VARIANT_SOLVER_SETTINGS, SolverOptions
from .train import TrainConfig

__all__ = [
    "ConfigError", "BackendConfig", "BACKENDS", "CollectConfig", "EvalConfig", "LoopConfig", "PRESETS", "EXPORT_BACKENDS",
    "from_dict", "to_dict", "load_config_file", "parse_override", "apply_overrides", "preset",
    "load_loop_config", "diff_configs",
]

#: Export backend -> file suffix (the inverse of :data:`~sobolev_warmstart.export.EXPORT_SUFFIXES`).
EXPORT_BACKENDS = {backend: suffix for suffix, backend in EXPORT_SUFFIXES.items()}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key (dotted path) and what was expected."""


# --------------------------------------------------------------------------------------------- configs
#: Where collection batches run (``backend.name``).
BACKENDS = ("local", "ray")


@dataclass
class BackendConfig:
    """Where the solves of a collection run, batch by batch; results do not depend on it.

    name: ``"local"`` (this process, the solver's OpenMP threads) or ``"ray"`` (one Ray task per batch, for
    collections larger than one machine: ``pip install "sobolev_warmstart[ray]"`` on every node). address: the
    Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ...; None: ``RAY_ADDRESS`` if set, else a new
    local instance). cpus_per_task: CPUs each batch task reserves, which are also its solver threads.
    """

    name: str = "local"
    address: str | None = None
    cpus_per_task: int = 1

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ConfigError(f"name: expected one of {', '.join(BACKENDS)}, got {self.name!r}")
        _check_int("cpus_per_task", self.cpus_per_task, 1)


@dataclass
class CollectConfig:
    """A TO-alone dataset: ``instances`` seeded instances of ``task``/``variant`` solved from the default guess,
    the converged ones kept with their chained derivatives, chunked with ``chunk``. ``consolidate_neighbours``
    (0: off): then each kept solution is re-solved from its k nearest instances' solutions for
    ``consolidate_rounds`` rounds and the cheapest converged one kept (:func:`~sobolev_warmstart.consolidate.
    consolidate_data`); the dataset's normalisers stay fitted on TO alone's solutions. ``symmetry_copies`` (0: off):
    then each kept (consolidated) trajectory is followed by this many copies rotated about the family's symmetry,
    each confirmed by the solver (:func:`~sobolev_warmstart.symmetry.augment_by_symmetry`; only variants with a
    declared symmetry)."""

    task: str = "pendulum"
    variant: str = ""
    instances: int = 64
    seed: int = 0
    batch: int = 32
    chunk: ChunkSpec = field(default_factory=ChunkSpec)
    solver: SolverOptions = field(default_factory=SolverOptions)
    backend: BackendConfig = field(default_factory=BackendConfig)
    consolidate_neighbours: int = 0
    consolidate_rounds: int = 2
    symmetry_copies: int = 0

    def __post_init__(self) -> None:
        _check_task(self.task, self.variant)
        _check_int("instances", self.instances, 1)
        _check_int("seed", self.seed, 0)
        _check_int("batch", self.batch, 1)
        _check_int("consolidate_neighbours", self.consolidate_neighbours, 0)
        _check_int("consolidate_rounds", self.consolidate_rounds, 1)
        _check_symmetry(self.task, self.variant, self.symmetry_copies)


@dataclass
class EvalConfig:
    """Held-out evaluation after the last iteration: ``instances`` instances sampled with ``seed`` (disjoint
    from the training seeds), TO alone vs the final policy's warm start. ``enabled = false`` skips it."""

    instances: int = 32
    seed: int = 1_000_000
    enabled: bool = True

    def __post_init__(self) -> None:
        _check_int("instances", self.instances, 1)
        _check_int("seed", self.seed, 0)


@dataclass
class LoopConfig:
    """Algorithm 1 of the reference: alternate data collection and policy training.

    task, variant: the problem family (``sobolev-warmstart tasks``; empty variant: the task's first).
    run_dir: folder of the run (``iter_XXX/``, ``final/``, ``summary.*``); may differ between a run and its
    resumption. iterations: collection rounds; the first solves with TO alone, each later one trains a freshly
    initialised policy on all accepted trajectories so far and solves every instance twice (default guess and
    policy rollout), keeping the lower-cost converged solve. instances: new instances per iteration, sampled with
    seed ``seed + iteration - 1``. collect_batch: instances solved and saved per file (an interruption loses at
    most one batch). action_steps: executed actions per replan in rollouts (None: the policy's own A).
    export: ``"native"`` (``.safetensors`` for the C++ runner's compact forward, the fastest; milliseconds to write),
    ``"torchscript"`` (``.pt``, ~1 s) or ``"aoti"`` (``.pt2``, ~1 min to compile).
    max_iters_growth: the solver budget of iteration ``k`` is ``round(solver.max_iters * growth**(k-1))``.
    divergence_bound: a rollout with a non-finite state or a coordinate beyond it is not refined (its warm
    solve counts as not converged; the default-guess solve of the instance still runs).
    chunk: chunk layout of the training data; solver: ProxDDP settings (base budget, also used by the
    evaluation); train: the policy kind and training settings (the loop sets ``checkpoint_dir`` and
    re-seeds each iteration with ``train.seed + iteration``); eval: held-out evaluation; backend: where the
    collection batches are solved (:class:`BackendConfig`: this process or a Ray cluster).
    consolidate_neighbours (0: off), consolidate_rounds: before each training, all accepted trajectories so far are
    consolidated (:func:`~sobolev_warmstart.consolidate.consolidate_data`: each re-solved from its k nearest
    instances' solutions, the cheapest converged kept; ``iter_XXX/consolidated.npz``, normalisers of the
    unconsolidated set); the policy trains and the final lookups look up on them.
    symmetry_copies (0: off): before each training, after the consolidation, each accepted trajectory is followed by
    this many copies rotated about the family's symmetry, each confirmed by the solver
    (:func:`~sobolev_warmstart.symmetry.augment_by_symmetry`, seeded by the iteration; ``iter_XXX/symmetric.npz``,
    normalisers of the set without copies; only variants with a declared symmetry); the policy trains and the final
    lookups look up on them too.
    """

    task: str = "pendulum"
    variant: str = ""
    run_dir: str | None = None
    iterations: int = 3
    instances: int = 32
    seed: int = 0
    collect_batch: int = 8
    action_steps: int | None = None
    export: str = "native"
    max_iters_growth: float = 1.0
    divergence_bound: float = 1e3
    chunk: ChunkSpec = field(default_factory=ChunkSpec)
    solver: SolverOptions = field(default_factory=SolverOptions)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    consolidate_neighbours: int = 0
    consolidate_rounds: int = 2
    symmetry_copies: int = 0

    def __post_init__(self) -> None:
        _check_task(self.task, self.variant)
        _check_symmetry(self.task, self.variant, self.symmetry_copies)
        if self.run_dir is not None:
            self.run_dir = os.fspath(self.run_dir)
        _check_int("iterations", self.iterations, 1)
        _check_int("consolidate_neighbours", self.consolidate_neighbours, 0)
        _check_int("consolidate_rounds", self.consolidate_rounds, 1)
        _check_int("instances", self.instances, 1)
        _check_int("seed", self.seed, 0)
        _check_int("collect_batch", self.collect_batch, 1)
        if self.export not in EXPORT_BACKENDS:
            raise ConfigError(f"export: expected one of {', '.join(EXPORT_BACKENDS)}, got {self.export!r}")
        g = self.max_iters_growth
        if not (isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and g >= 1.0):
            raise ConfigError(f"max_iters_growth: expected a factor >= 1 (1: a fixed budget), got {g!r}")
        b = self.divergence_bound
        if not (isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and b > 0):
            raise ConfigError(f"divergence_bound: expected a positive number, got {b!r}")
        if self.train.checkpoint_dir is not None:
            raise ConfigError("train.checkpoint_dir: set by the loop (run_dir/iter_XXX/train); leave it unset")
        free = self.chunk.horizon - self.chunk.history
        if self.chunk.relative_actions and not self.train.is_diffusion:
            raise ConfigError(f"chunk.relative_actions: a direct ({self.train.policy}) policy has no known action to "
                              "be relative to; expected false")
        if self.action_steps is not None:
            _check_int("action_steps", self.action_steps, 1)
            if self.train.policy in ("mlp", "sob_mlp") and self.action_steps != 1:
                raise ConfigError(f"action_steps: a direct ({self.train.policy}) policy executes one action per "
                                  f"call, expected 1 or null, got {self.action_steps}")
            if self.train.is_diffusion and self.action_steps > free:
                raise ConfigError(f"action_steps: expected 1..{free} (chunk.horizon {self.chunk.horizon} minus "
                                  f"chunk.history {self.chunk.history}), got {self.action_steps}")
        if self.train.is_diffusion and self.train.denoiser == "unet":
            from .models import validate_horizon
            try:
                validate_horizon(self.chunk.horizon, self.train.unet.down_dims)
            except ValueError as exc:
                raise ConfigError(f"chunk.{exc}") from None
        span = range(self.seed, self.seed + self.iterations)
        if self.eval.enabled and self.eval.seed in span:
            raise ConfigError(f"eval.seed: expected a seed outside the training seeds {self.seed}.."
                              f"{self.seed + self.iterations - 1} (held-out instances), got {self.eval.seed}")

    def max_iters(self, iteration: int) -> int:
        """Solver budget of ``iteration`` (1-based)."""
        return max(1, int(round(self.solver.max_iters * self.max_iters_growth ** (iteration - 1))))

    def instance_seed(self, iteration: int) -> int:
        """Seed of ``task.sample_instances`` for ``iteration`` (1-based)."""
        return self.seed + iteration - 1

    @property
    def export_suffix(self) -> str:
        return EXPORT_BACKENDS[self.export]


def _check_int(key: str, value: Any, lo: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"{key}: expected an integer >= {lo}, got {value!r}")


def _check_task(task: str, variant: str) -> None:
    from .tasks import available_tasks
    tasks = available_tasks()
    if task not in tasks:
        raise ConfigError(f"task: unknown task {task!r}; expected one of {', '.join(tasks)}")
    if variant and variant not in tasks[task]:
        raise ConfigError(f"variant: unknown variant {variant!r} of {task}; expected one of {', '.join(tasks[task])}")


def _check_symmetry(task: str, variant: str, copies: Any) -> None:
    _check_int("symmetry_copies", copies, 0)
    if copies:
        from .symmetry import SYMMETRIC_VARIANTS, has_symmetry
        from .tasks import available_tasks
        key = f"{task}/{variant or available_tasks()[task][0]}"
        if not has_symmetry(key):
            raise ConfigError(f"symmetry_copies: {key} has no declared symmetry; expected 0, or a variant among "
                              f"{', '.join(sorted(SYMMETRIC_VARIANTS))}")


# ------------------------------------------------------------------------------------- dict <-> config
def to_dict(config) -> dict:
    """Plain JSON types (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} keys"
    if origin in (tuple, list):
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(tp, getattr(tp, "__name__", str(tp)))


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _convert(value: Any, tp, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: expected {_describe(tp)}, got null")
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, path)
            except ConfigError:
                if len(args) == 2:  # Optional[X]: X's own message is the most precise
                    raise
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {_got(value)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            value = to_dict(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {_got(value)}")
        return _build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            out = [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
            return tuple(out) if origin is tuple else out
    elif tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    else:  # pragma: no cover - a field type this module does not know
        raise ConfigError(f"{path}: unsupported field type {tp!r}")
    raise ConfigError(f"{path}: expected {_describe(tp)}, got {_got(value)}")


def _build(cls, data: Mapping[str, Any], path: str):
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"{path}.{key}: unknown key; expected one of {', '.join(sorted(fields))}")
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        head = msg.split(":", 1)[0]
        if head and head.split(".")[0] in fields:
            raise ConfigError(f"{path}.{msg}") from None
        raise ConfigError(f"{path}: {msg}") from None


def from_dict(cls, data: Mapping[str, Any], path: str = "config"):
    """Build the dataclass ``cls`` from ``data`` (nested mappings for nested configs), checking every key and
    value; errors name the dotted path from ``path``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected {_describe(cls)}, got {_got(data)}")
    return _build(cls, data, path)


# ------------------------------------------------------------------------------------ files, overrides
def load_config_file(path: str | os.PathLike) -> dict:
    """Read a ``.toml`` or ``.json`` file into a mapping (TOML needs Python 3.11's tomllib or ``tomli``)."""
    p = Path(path)
    if p.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"{p}: expected a .toml or .json config file, got suffix {p.suffix or '(none)'!r}")
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    if p.suffix.lower() == ".toml":
        try:
            import tomllib  # Python >= 3.11
        except ModuleNotFoundError:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ConfigError(f"{p}: reading TOML needs Python >= 3.11 or the tomli package; "
                                  "use a .json config file instead") from None
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    else:
        try:
            data = json.loads(text.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a table of config keys at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=50"`` -> ``(["train", "epochs"], 50)``: the value is a JSON literal if it parses as one
    (numbers, true/false, null, lists, objects, quoted strings), else the string as written."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=50")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: expected a dotted key such as train.epochs, got {key!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str], path: str = "config") -> dict:
    """A deep copy of ``data`` with each ``KEY=VALUE`` override set (intermediate tables are created; unknown
    keys are reported when the config is built)."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, p in enumerate(parts[:-1]):
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            elif not isinstance(child, dict):
                where = ".".join([path] + parts[: i + 1])
                raise ConfigError(f"{where}: is {_got(child)}, not a table; cannot set {'.'.join(parts)}")
            node = child
        node[parts[-1]] = value
    return out


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict:
    """``top`` over ``base``, recursively for tables."""
    out = copy.deepcopy(dict(base))
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: :func:`diff_configs`' value for a key one side lacks.
ABSENT = "<absent>"


def diff_configs(saved: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two config dicts, with (saved, now) values (:data:`ABSENT` for a
    key one side lacks)."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k, ABSENT), now.get(k, ABSENT)
        key = f"{prefix}{k}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += diff_configs(a, b, key + ".")
        elif a != b:
            out.append((key, a, b))
    return out


# ---------------------------------------------------------------------------------------------- presets
_TINY_UNET = {"down_dims": [16, 32], "n_groups": 4, "step_embed_dim": 16}
_PAST_ACTIONS = {"past_actions": True}


def _variant_solver(key: str, max_iters: int = 500) -> dict[str, Any]:
    """A preset's solver: the measured settings of variant ``key`` ("task/variant"; solver.VARIANT_SOLVER_SETTINGS: the
    pendubot's initial penalty, round 23; the UR5s' stall switch, rounds 37-39) over the budget."""
    return {"max_iters": max_iters, "num_threads": 0, **VARIANT_SOLVER_SETTINGS.get(key, {})}


_PENDUBOT_SOLVER = _variant_solver("double_pendulum/default")

#: Named loop configurations (plain dicts, over the dataclass defaults). ``default`` is measured to finish in a
#: few minutes on two cores; the others take the scorecard's recipe of their variant, their loops measured against
#: the earlier starting points in docs/loop.md (of the reference-difficulty ones, only ur5_reference's, after).
PRESETS: dict[str, dict[str, Any]] = {
    # Pendubot swing-up (the double pendulum), small enough for a laptop: 2 x 96 instances, a tiny U-Net, 20
    # epochs, two actions executed per replan (ablations round 24: the final policies of three loop seeds run at
    # A = 1 diverge on 0-16% of the held-out rollouts, at A = 2 on 0-3%). 6-9 min on two cores (docs/loop.md). The
    # pendubot, not the pendulum: on the pendulum even a guess within 1e-4 of the optimum saves no ProxDDP
    # iteration (benchmarks/bench_guess_quality.py). lambda = 0.01 as for the pendulum (docs/training.md). The
    # pendubot's policy conditions on its past actions: there they help (Sob+Diff 142 vs 198 refine iterations,
    # three training seeds, docs/results/ablations.md), unlike on the pendulum, the quadrotor and the UR5.
    # The training set is consolidated before each training (8 neighbours): over three loop seeds the warm start
    # then converges on 32/32 held-out instances every time (26-32 without), in 17-25 ms against 28-43 ms, at refined
    # costs 3.63-3.76 against TO alone's 4.25 (4.39-38.2 without; docs/loop.md, ablations round 19).
    # The policy is sampled with DDIM on two of its five steps (round 26: the final policies of three earlier default
    # loops, re-exported, took 29.0 -> 27.8 refine iterations on average over two held-out sets, 1.0 ms rollouts
    # instead of 2.4, 1 of 576 rollouts diverged instead of 2; the preset's own loops over three seeds then need
    # 22.1 / 22.9 / 21.1 iterations against DDPM's 25.0 / 22.8 / 20.9, docs/loop.md).
    "default": {
        "task": "double_pendulum", "variant": "", "iterations": 2, "instances": 96, "seed": 0, "collect_batch": 16,
        "consolidate_neighbours": 8,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 2},
        "solver": _PENDUBOT_SOLVER,
        "train": {"policy": "sob_diff", "epochs": 20, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.01,
                  "unet": _TINY_UNET, "diffusion": {**_PAST_ACTIONS, "sampling_steps": [4, 0]}, "num_threads": 1},
        "eval": {"instances": 32, "seed": 1_000_000},
    },
    # The presets below take the scorecard's measured recipe of their variant (scorecard.settings_for; docs/results/
    # ablations.md): the MLP denoiser (the U-Net with past actions on the double pendulum), A = 2 on the pendubot and
    # among 9 columns as in the scorecard (round 24; the pendulum and the UR5 presets keep A = 1, where the scorecard
    # since round 25 executes 2: measured on the scorecard's policies, not in a loop), H = 8, the variant's lambda,
    # consolidation where the scorecard consolidates; epochs at about the scorecard's
    # gradient steps per trajectory. Their loops against the earlier U-Net / A = 8 starting points: docs/loop.md.
    # Pendulum swing-up: 4 x 64 instances.
    "pendulum": {
        "task": "pendulum", "iterations": 4, "instances": 64, "collect_batch": 16, "consolidate_neighbours": 8,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 1},
        "train": {"policy": "sob_diff", "epochs": 10, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.01,
                  "denoiser": "mlp", "num_threads": 1},
        "eval": {"instances": 64},
    },
    # Pendubot swing-up: 9% of the default-guess solves fail at the penalty 0.1 (16% at 1e-3, README); rejected
    # instances are counted. Two actions per replan, as the default preset (round 24: the final policies of its two
    # loops, run at A = 1, diverge on 0% and 7% of the held-out rollouts at A = 1, on 0% and 0.5% at A = 2).
    "double_pendulum": {
        "task": "double_pendulum", "iterations": 4, "instances": 64, "collect_batch": 16, "consolidate_neighbours": 8,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 2}, "solver": _PENDUBOT_SOLVER,
        "train": {"policy": "sob_diff", "epochs": 20, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.01,
                  "unet": _TINY_UNET, "diffusion": _PAST_ACTIONS, "num_threads": 1},
        "eval": {"instances": 64},
    },
    # The UR5 reaching a random target from a random start, with the scorecard's measured recipe
    # (docs/results/ablations.md, rounds 19-21): the MLP denoiser, one action per replan, lambda = 0.001, the
    # training set consolidated (8 neighbours) and each trajectory followed by three copies rotated about the base
    # axis, confirmed by the solver (sobolev_warmstart.symmetry); 10 epochs (8000 steps on the last 4 x 256). The
    # solver's stall switch since round 39, as the scorecard's (this loop with it is level with the loop without it,
    # docs/loop.md).
    "ur5": {
        "task": "ur5", "variant": "random_start_random_target", "iterations": 4, "instances": 64,
        "collect_batch": 16, "consolidate_neighbours": 8, "symmetry_copies": 3,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 1},
        "solver": _variant_solver("ur5/random_start_random_target"),
        "train": {"policy": "sob_diff", "epochs": 10, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.001,
                  "denoiser": "mlp", "mlp": {"hidden_dims": [256, 256]}, "num_threads": 1},
        "eval": {"instances": 64},
    },
    # Among 9 columns, trained with the columns in every order (shuffle_exchangeable_params); two actions per replan
    # (round 24: the final policies of its two loops, run at A = 1, need 54.0 and 55.5 refine iterations at A = 2
    # against 56.0 and 58.1 at A = 1 on the held-out set). The scorecard's rounds 41-42: the final replan's chunk
    # weighted 3x (final_steps) and half the DDPM posterior's noise (sampling_temperature); in this loop (round 46) the
    # final policy's own rollout costs 1.05x TO alone's instead of 1.15x (median), its warm start needing 28.5 median
    # refine iterations instead of 36.0 (mean 59.5 against 55.1, one refine more failing; docs/loop.md).
    "quadrotor": {
        "task": "quadrotor", "variant": "columns_9", "iterations": 4, "instances": 64, "collect_batch": 16,
        "consolidate_neighbours": 8,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 2},
        "train": {"policy": "sob_diff", "epochs": 20, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.1,
                  "sobolev_cap_quantile": 0.9, "shuffle_exchangeable_params": True, "denoiser": "mlp",
                  "final_steps": 2, "final_steps_weight": 3.0, "diffusion": {"sampling_temperature": 0.5},
                  "num_threads": 1},
        "eval": {"instances": 64},
    },
    # Reference-difficulty variants (README, "Reference-difficulty variants"): the reference's solver budget of
    # 1000 iterations; TO alone from the default guess fails often (double pendulum: 56%, quadrotor among 9
    # columns: 72% at ~23 s per solve on this machine), so the first collection keeps few trajectories and the
    # later ones depend on the policy. The scorecard's recipes of these variants (no consolidation: on so few
    # trajectories it helps the lookup, not the policies, round 18), epochs at about the earlier presets' gradient
    # steps; ur5_reference's loop measured (docs/loop.md), the other two not.
    "double_pendulum_reference": {
        "task": "double_pendulum", "variant": "reference", "iterations": 4, "instances": 64, "collect_batch": 16,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 1},
        "solver": {"max_iters": 1000, "num_threads": 0},
        "train": {"policy": "sob_diff", "epochs": 20, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.01,
                  "unet": _TINY_UNET, "diffusion": _PAST_ACTIONS, "num_threads": 1},
        "eval": {"instances": 64},
    },
    # seven rotated copies of each trajectory (the scorecard's, chosen on one held-out set; ablations round 21), so
    # 3 epochs: about 9000 steps on the last 8 x 256 trajectories
    "ur5_reference": {
        "task": "ur5", "variant": "reference_random_start_random_target", "iterations": 4, "instances": 64,
        "collect_batch": 16, "symmetry_copies": 7,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 1},
        "solver": _variant_solver("ur5/reference_random_start_random_target", max_iters=1000),
        "train": {"policy": "sob_diff", "epochs": 3, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.01,
                  "denoiser": "mlp", "num_threads": 1},
        "eval": {"instances": 64},
    },
    "quadrotor_reference": {
        "task": "quadrotor", "variant": "reference_columns_9", "iterations": 4, "instances": 64, "collect_batch": 16,
        "chunk": {"horizon": 8, "history": 1, "action_steps": 1},
        "solver": {"max_iters": 1000, "num_threads": 0},
        "train": {"policy": "sob_diff", "epochs": 40, "batch_size": 64, "lr": 3e-3, "sobolev_weight": 0.1,
                  "shuffle_exchangeable_params": True, "denoiser": "mlp", "num_threads": 1},
        "eval": {"instances": 64},
    },
}


def preset(name: str) -> dict:
    """A deep copy of the preset ``name`` (:data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def load_loop_config(preset_name: str | None = "default", file: str | os.PathLike | None = None,
                     overrides: Iterable[str] = (), **fields: Any) -> LoopConfig:
    """The loop config from a preset (``None``: the dataclass defaults), then a file, then ``--set`` overrides,
    then keyword ``fields`` (e.g. ``run_dir=...``)."""
    data = preset(preset_name) if preset_name is not None else {}
    if file is not None:
        data = deep_merge(data, load_config_file(file))
    data = apply_overrides(data, overrides, "loop")
    data.update({k: v for k, v in fields.items()})
    return from_dict(LoopConfig, data, "loop")
