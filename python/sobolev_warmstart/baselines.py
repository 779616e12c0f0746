"""Baselines a practitioner would try before a learned policy: nearest-neighbour lookup in the solved training set.

:class:`NearestNeighbourLookup` holds the solved training instances ``(x0, z) -> (xs*, us*, K)`` and answers a new
instance ``(x0, z)`` with the nearest training instance in normalised ``(x0, z)``: every coordinate divided by the
training set's standard deviation (at least ``std_floor``, so that a coordinate constant over the training set
does not divide by zero: it then adds the same term to every distance). Quaternion and angle coordinates are used
as stored. Two guesses come from the neighbour:

- ``"nn"``: its solved trajectory ``(xs*, us*)``, the first state replaced by the new ``x0``;
- ``"nn_feedback"``: its feedback law ``u_t = u*_t + K_t (x_t ⊖ x*_t)`` closed around the task's dynamics from the
  new ``x0``, controls clamped to their bounds (:func:`~sobolev_warmstart.warmstart.closed_loop_rollout`, what
  :func:`~sobolev_warmstart.warmstart.perturbed_solution_guess` does with ``sigma = 0``). A dynamically feasible
  guess that follows the neighbour where the gains hold.

:func:`~sobolev_warmstart.evaluate.evaluate_methods` takes a lookup as the policy of the methods ``"nn"`` and
``"nn_feedback"``; the lookup's wall time (and the feedback rollout's) is their rollout time.

Example::

    lookup = sw.NearestNeighbourLookup.from_solve(task, sw.solve(task, x_train, p_train))   # or .load(dataset.npz)
    xs, us = lookup.guess(task, x0s, params)                 # "nn"
    xs, us = lookup.feedback_guess(task, x0s, params)        # "nn_feedback"
    ev = sw.evaluate_methods(task, {"nn": lookup, "nn_feedback": lookup, "sob_diff": "policy.pt"}, x0s, params)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import ChunkDataset, TaskInfo, TrajectoryData, load_dataset, write_safetensors
from .rollout import RolloutResult, _instances, rollout
from .solver import SolveResult
from . import _core
from .tasks import Task
from .warmstart import _with_fallback_guesses, closed_loop_rollout, diverged_rollouts, guess_costs

__all__ = ["NearestNeighbourLookup", "LookupFallback", "BASELINES", "neighbour_order", "LOOKUP_METADATA_KEY"]

#: The instance seed :meth:`LookupFallback.calibrated` rolls the policy out on by default: not a training seed (those
#: count up from 0) nor one of the published held-out sets (1e6, 9e6 + 1, 11e6 + 1, 12e6 + 1).
CALIBRATION_SEED = 5_000_001

#: The key of an exported lookup's metadata JSON in its safetensors ``__metadata__`` (cpp/src/lookup.cpp reads it).
LOOKUP_METADATA_KEY = "sobolev_warmstart_lookup"
_LOOKUP_FORMAT = 1

#: The lookup's methods: the neighbour's trajectory, and its feedback law closed around the dynamics.
BASELINES = ("nn", "nn_feedback")
_CHUNK = 256  # query rows per distance block (memory: _CHUNK x N_train x (nx + nz) floats)


def _array(name: str, value: Any, shape: tuple) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a float array, got {type(value).__name__}") from None
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise ValueError(f"{name}: expected shape {want}, got {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {int(np.size(arr) - np.isfinite(arr).sum())} "
                         "NaN/inf entries")
    return arr


def _normalised_features(x0s: np.ndarray, params: np.ndarray, std_floor: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features (N, nx + nz), offset, scale)``: ``(x0, z)`` centred and divided by their std (at least
    ``std_floor``), the space the lookup measures distances in."""
    feats = np.concatenate([x0s, params], axis=1)
    offset = feats.mean(axis=0)
    scale = np.maximum(feats.std(axis=0), std_floor)
    return (feats - offset) / scale, offset, scale


def neighbour_order(x0s: np.ndarray, params: np.ndarray, k: int, std_floor: float = 1e-6) -> np.ndarray:
    """``(N, k)`` int: each instance's ``k`` nearest *other* instances of the same set, nearest first (ties: the
    lower index), in the lookup's normalised ``(x0, z)``. What consolidation re-solves each instance from."""
    feats, _, _ = _normalised_features(np.asarray(x0s, float), np.asarray(params, float), std_floor)
    d = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _at_least_one(value, name: str, meaning: str) -> float:
    """``value`` as a float; ValueError naming ``name`` (and what it means) unless it is a finite number >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            np.isfinite(value) and value >= 1):
        raise ValueError(f"{name}: expected a finite number >= 1 ({meaning}), got {value!r}")
    return float(value)


class NearestNeighbourLookup:
    """Nearest solved training instance in normalised ``(x0, z)`` (module docstring).

    task: the task (or its :class:`~sobolev_warmstart.data.TaskInfo`) the instances were solved for. x0s (N, nx),
    params (N, nz), xs (N, T+1, nx), us (N, T, nu): the training instances and their solutions (``xs[:, 0]`` is
    normally ``x0s``); feedback_gains (N, T, nu, ndx): their gains, needed for :meth:`feedback_guess` only.
    std_floor: the least scale of a coordinate. Constructors: :meth:`from_solve` (a batch solve),
    :meth:`from_data` (a ``TrajectoryData``/``ChunkDataset``), :meth:`load` (a dataset file, e.g. the loop's
    ``iter_XXX/trajectories.npz``).
    """

    def __init__(self, task: Task | TaskInfo, x0s, params, xs, us, feedback_gains=None, *, std_floor: float = 1e-6):
        if isinstance(task, Task):
            task = TaskInfo.from_task(task)
        if not isinstance(task, TaskInfo):
            raise TypeError(f"task: expected a sobolev_warmstart Task or TaskInfo, got {type(task).__name__}")
        if not (isinstance(std_floor, (int, float)) and np.isfinite(std_floor) and std_floor > 0):
            raise ValueError(f"std_floor: expected a positive float, got {std_floor!r}")
        x0s = _array("x0s", x0s, (None, task.nx))
        n = x0s.shape[0]
        if n < 1:
            raise ValueError("x0s: expected at least one training instance, got an empty training set")
        T = task.horizon
        self.task = task
        self.x0s = x0s
        self.params = _array("params", np.zeros((n, 0)) if params is None and task.nz == 0 else params, (n, task.nz))
        self.xs = _array("xs", xs, (n, T + 1, task.nx))
        self.us = _array("us", us, (n, T, task.nu))
        self.feedback_gains = None if feedback_gains is None else _array(
            "feedback_gains", feedback_gains, (n, T, task.nu, task.ndx))
        self._train, self.offset, self.scale = _normalised_features(self.x0s, self.params, float(std_floor))
        self._solution_costs: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_solve(cls, task: Task, result: SolveResult, *, converged_only: bool = True,
                   std_floor: float = 1e-6) -> "NearestNeighbourLookup":
        """From a batch solve (:func:`~sobolev_warmstart.solver.solve`, with its gains): ``x0 = xs[:, 0]``,
        ``z = result.params``; only the converged instances unless ``converged_only=False``."""
        if not isinstance(task, Task):
            raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
        if not isinstance(result, SolveResult):
            raise TypeError(f"result: expected a SolveResult (sobolev_warmstart.solve), got {type(result).__name__}")
        keep = np.asarray(result.converged, bool) if converged_only else np.ones(len(result), bool)
        if not keep.any():
            raise ValueError(f"result: none of its {len(result)} instances converged: an empty training set "
                             "(converged_only=False uses them anyway)")
        xs = np.asarray(result.xs)[keep]
        return cls(task, xs[:, 0], np.asarray(result.params)[keep], xs, np.asarray(result.us)[keep],
                   np.asarray(result.feedback_gains)[keep], std_floor=std_floor)

    @classmethod
    def from_data(cls, data: TrajectoryData | ChunkDataset, *, converged_only: bool = True,
                  std_floor: float = 1e-6) -> "NearestNeighbourLookup":
        """From solved trajectories (a ``TrajectoryData`` or the ``.data`` of a ``ChunkDataset``); instances
        flagged not converged are left out unless ``converged_only=False``, and relabelled ones (``label_start``
        > 0: a policy's steps, then the solver's) always, since they are not the solution of their instance."""
        if isinstance(data, ChunkDataset):
            data = data.data
        if not isinstance(data, TrajectoryData):
            raise TypeError(f"data: expected a TrajectoryData or ChunkDataset, got {type(data).__name__}")
        data = data.solved_part("to look up")
        if converged_only and data.converged is not None:
            if not np.asarray(data.converged, bool).any():
                raise ValueError(f"data: none of its {data.num_instances} instances converged: an empty training set")
            data = data.select(np.asarray(data.converged, bool))
        return cls(data.task, data.xs[:, 0], data.params, data.xs, data.us, data.feedback_gains, std_floor=std_floor)

    @classmethod
    def load(cls, path: str | os.PathLike, *, converged_only: bool = True,
             std_floor: float = 1e-6) -> "NearestNeighbourLookup":
        """From a dataset file written by :func:`~sobolev_warmstart.data.save_dataset` (``collect``, the loop)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a dataset file path, got {type(path).__name__}")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path: no dataset file at {path}")
        return cls.from_data(load_dataset(path), converged_only=converged_only, std_floor=std_floor)

    def export(self, path: str | os.PathLike, task: Task) -> Path:
        """Write the lookup for the C++ core (a ``.safetensors`` file, atomically; float64): the training instances'
        normalised ``(x0, z)`` with the normaliser, their solutions, and the objective along each solution on
        ``task``, which gives the fallback's bound. ``_core.Lookup(path)``, the C++ ``NearestNeighbourLookup::load``
        and ``sw_bench_warm_start --lookup=FILE`` read it; their nearest instances, guesses and bounds equal
        :meth:`nearest`, :meth:`guess` and :meth:`LookupFallback.plan`'s. The feedback gains are not written
        (``nn_feedback`` stays in Python)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a file path, got {type(path).__name__}")
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"path: expected a .safetensors file name, got {str(path)!r}")
        costs = self.solution_costs(task)  # checks the task
        meta = {"format": _LOOKUP_FORMAT, "task": task.name, "variant": task.variant, "size": len(self),
                **{k: int(getattr(task, k)) for k in ("nx", "ndx", "nu", "nz", "horizon")}}
        write_safetensors(path, {"features": self._train, "offset": self.offset, "scale": self.scale, "xs": self.xs,
                                 "us": self.us, "solution_costs": costs},
                          {LOOKUP_METADATA_KEY: json.dumps(meta)})
        return path

    # ---------------------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return int(self.x0s.shape[0])

    @property
    def has_feedback(self) -> bool:
        """Whether the training set carries feedback gains (needed by :meth:`feedback_guess`)."""
        return self.feedback_gains is not None

    def __repr__(self) -> str:
        return (f"NearestNeighbourLookup({self.task.name}, {len(self)} training instances, "
                f"{'with' if self.has_feedback else 'without'} feedback gains)")

    def check_task(self, task: Task) -> None:
        """Raise ``ValueError`` unless ``task`` has the training set's name and dimensions."""
        if not isinstance(task, Task):
            raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
        for key in ("name", "nx", "ndx", "nu", "nz", "horizon"):
            if getattr(self.task, key) != getattr(task, key):
                raise ValueError(f"task: the lookup was built for {key} = {getattr(self.task, key)!r}, task "
                                 f"{task.name}/{task.variant} has {getattr(task, key)!r}")

    def _query(self, task: Task | None, x0s, params) -> tuple[np.ndarray, np.ndarray]:
        if task is not None:
            self.check_task(task)
            x0s, params = _instances(task, x0s, params)
        x0s = _array("x0s", x0s, (None, self.task.nx))
        if params is None and self.task.nz == 0:
            params = np.zeros((x0s.shape[0], 0))
        params = _array("params", params, (x0s.shape[0], self.task.nz))
        return x0s, params

    def features(self, x0s, params) -> np.ndarray:
        """``(N, nx + nz)``: the normalised ``(x0, z)`` in which distances are measured."""
        x0s, params = self._query(None, x0s, params)
        return (np.concatenate([x0s, params], axis=1) - self.offset) / self.scale

    def nearest(self, x0s, params) -> np.ndarray:
        """``(N,)`` int: index of the nearest training instance of each query (the lowest index on a tie)."""
        q = self.features(x0s, params)
        out = np.empty(q.shape[0], dtype=np.int64)
        for s in range(0, q.shape[0], _CHUNK):
            d = q[s:s + _CHUNK, None, :] - self._train[None, :, :]
            out[s:s + _CHUNK] = np.argmin(np.einsum("qnd,qnd->qn", d, d), axis=1)
        return out

    def guess(self, task: Task, x0s, params) -> tuple[np.ndarray, np.ndarray]:
        """``"nn"``: ``(xs (N, T+1, nx), us (N, T, nu))``, the nearest training solution with ``xs[:, 0] = x0s``."""
        x0s, params = self._query(task, x0s, params)
        idx = self.nearest(x0s, params)
        xs = self.xs[idx].copy()
        xs[:, 0] = x0s
        return xs, self.us[idx].copy()

    def feedback_guess(self, task: Task, x0s, params) -> tuple[np.ndarray, np.ndarray]:
        """``"nn_feedback"``: ``(xs, us)`` of the nearest training instance's feedback law closed around the
        dynamics from ``x0s``, controls clamped to their bounds. A rollout whose state leaves 1e6 (or turns
        non-finite) is held from there with zero control, as the C++ rollout does."""
        xs, us, _ = self._feedback(task, x0s, params)
        return xs, us

    def _feedback(self, task: Task, x0s, params):
        if not self.has_feedback:
            raise ValueError("feedback_gains: the lookup's training set has no feedback gains (build it from a "
                             "solve result or a dataset that kept them) and cannot give nn_feedback guesses")
        x0s, params = self._query(task, x0s, params)
        idx = self.nearest(x0s, params)
        return closed_loop_rollout(task, x0s, self.xs[idx], self.us[idx], self.feedback_gains[idx])

    def rollout(self, task: Task, x0s, params, *, feedback: bool = False) -> RolloutResult:
        """The guesses of ``"nn"`` (``feedback=False``) or ``"nn_feedback"`` as a :class:`RolloutResult`, so that
        they are scored and refined like a policy's rollouts: ``time`` is the lookup's wall time (with the feedback
        rollout) shared among the instances, ``errors`` flags the feedback rollouts that diverged."""
        t0 = time.perf_counter()
        if feedback:
            xs, us, diverged = self._feedback(task, x0s, params)
        else:
            xs, us = self.guess(task, x0s, params)
            diverged = np.zeros(len(xs), bool)
        wall = time.perf_counter() - t0
        n = len(xs)
        if task.action_space == "torque":
            actions = us.copy()
        else:  # the action variable of each step (not part of the timed lookup)
            actions = np.stack([[task.action(us[i, t], xs[i, t + 1]) for t in range(task.horizon)]
                                for i in range(n)]).reshape(n, task.horizon, task.na)
        errors = ["the feedback rollout diverged (|x| > 1e6 or non-finite)" if d else "" for d in diverged]
        return RolloutResult(xs=xs, us=us, actions=actions, time=np.full(n, wall / max(n, 1)),
                             policy_time=np.full(n, wall / max(n, 1)), errors=errors, num_replans=1,
                             action_steps=0, wall_time=wall, policy_calls=1, policy_call_time=wall,
                             backend="nn_feedback" if feedback else "nn")

    def solution_costs(self, task: Task) -> np.ndarray:
        """``(N_train,)``: each training instance's objective along its own solution (computed once per lookup)."""
        self.check_task(task)
        if self._solution_costs is None:
            self._solution_costs = np.asarray(_core.trajectory_costs(task, self.x0s, self.params, self.xs, self.us, 0),
                                              dtype=np.float64)
        return self._solution_costs


class LookupFallback:
    """Where a policy's rollout is no plausible guess, the solver starts from the lookup's (``"nn"``) instead.

    A rollout is replaced when it diverged (beyond the divergence bound, or non-finite) or when its objective exceeds
    ``cost_ratio`` times the cost of the nearest training instance's solution: what an instance near this one cost
    to fly. A policy can wander on a few instances (the pendubot's Sob+Diff: 7-12% of its rollouts cost hundreds of
    times the solver's, and their refines take about 200 iterations, some the whole budget); the lookup's guess is
    free, since the neighbour is found anyway to set the bound. ``cost_ratio`` is generous (30 by default) so that a
    policy that is merely imprecise keeps its guesses (the random-start UR5s' rollouts cost 6-12x TO's and still
    warm-start better than the lookup); docs/results/ablations.md, round 45. A fixed ratio suits one precision only:
    :meth:`calibrated` sets it from the policy's own typical ratio (round 47), what the scorecard, the loop and the
    command line use.

    :func:`~sobolev_warmstart.warmstart.warm_start` and :func:`~sobolev_warmstart.warmstart.refine_rollouts` take it as
    ``fallback``; :func:`~sobolev_warmstart.evaluate.evaluate_methods` evaluates it as the method ``"sob_diff_nn"``.
    """

    def __init__(self, lookup: NearestNeighbourLookup, cost_ratio: float = 30.0):
        if not isinstance(lookup, NearestNeighbourLookup):
            raise TypeError(f"lookup: expected a NearestNeighbourLookup, got {type(lookup).__name__}")
        self.lookup, self.cost_ratio = lookup, self.check_cost_ratio(cost_ratio)
        #: How :meth:`calibrated` chose ``cost_ratio`` (None for a fixed one): factor, median_ratio, instances, seed.
        self.calibration: dict | None = None

    @classmethod
    def calibrated(cls, lookup: NearestNeighbourLookup, task: Task, policy, *, factor: float = 3.0,
                   max_ratio: float = 100.0, instances: int = 64, seed: int = CALIBRATION_SEED,
                   action_steps: int | None = None, divergence_bound: float = 1e3,
                   num_threads: int = 0) -> "LookupFallback":
        """A fallback whose bound follows the policy's own precision: ``cost_ratio = factor * m`` within
        ``[1, max_ratio]``, with ``m`` the median, over ``instances`` fresh instances of ``task`` (``seed``; nothing is
        solved), of the policy's rollout objective over its nearest training solution's. It replaces the rollouts
        several times worse than the policy's typical one; ``max_ratio`` keeps a policy whose typical rollout is
        itself no guess (hundreds of times its neighbour's cost) from keeping its rollouts: those then mostly start
        from the lookup's guesses.

        A fixed ratio suits one precision only (docs/results/ablations.md, round 47): 30 replaces 56-71% of
        ``ur5/reference_random_start_random_target``'s rollouts, whose typical ratio is 36-53 but which warm-start
        better than the lookup, and none of the pendulum's, whose typical ratio is 1.04 and whose worst quarter
        refines slower than the lookup's guess. ``policy``: an exported file or runner (as :func:`~.rollout.rollout`
        takes it), rolled out with seed 0 and ``action_steps`` (None: its own)."""
        factor, max_ratio = cls.check_factor(factor), cls.check_cost_ratio(max_ratio, "max_ratio")
        if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)) or instances < 1:
            raise ValueError(f"instances: expected a positive integer, got {instances!r}")
        lookup.check_task(task)
        x0s, params = task.sample_instances(int(instances), seed=seed)
        ro = rollout(task, x0s, params, policy, action_steps=action_steps, seed=0, num_threads=num_threads)
        cost = guess_costs(task, x0s, params, ro.xs, ro.us, divergence_bound, num_threads)
        neighbour = lookup.solution_costs(task)[lookup.nearest(x0s, params)]
        median = float(np.median(cost / neighbour))
        out = cls(lookup, min(max_ratio, max(1.0, factor * median)))
        out.calibration = {"factor": factor, "max_ratio": max_ratio, "median_ratio": median,
                           "instances": int(instances), "seed": int(seed)}
        return out

    @staticmethod
    def check_cost_ratio(cost_ratio, name: str = "cost_ratio") -> float:
        """``cost_ratio`` as a float; ValueError naming ``name`` unless it is a finite number >= 1."""
        return _at_least_one(cost_ratio, name, "a rollout costing more than this many times its nearest training "
                                               "solution is replaced")

    @staticmethod
    def check_factor(factor, name: str = "factor") -> float:
        """:meth:`calibrated`'s ``factor`` as a float; ValueError naming ``name`` unless it is a finite number >= 1."""
        return _at_least_one(factor, name, "the bound in multiples of the policy's median cost ratio")

    def __repr__(self) -> str:
        how = "" if self.calibration is None else (f", calibrated: {self.calibration['factor']:g} x the policy's "
                                                   f"median {self.calibration['median_ratio']:.3g}")
        return f"LookupFallback({self.lookup!r}, cost_ratio={self.cost_ratio:g}{how})"

    def plan(self, task: Task, x0s, params) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``(xs (N, T+1, nx), us (N, T, nu), cost_bound (N,), seconds)``: each instance's fallback guess, the
        objective above which its rollout is replaced, and the lookup's wall time."""
        t0 = time.perf_counter()
        x0s, params = self.lookup._query(task, x0s, params)
        return (*self._plan(task, x0s, params), time.perf_counter() - t0)

    def _plan(self, task: Task, x0s: np.ndarray, params: np.ndarray):
        """:meth:`plan` without the timing, on instances already checked."""
        idx = self.lookup.nearest(x0s, params)
        xs = self.lookup.xs[idx].copy()
        xs[:, 0] = x0s
        return xs, self.lookup.us[idx].copy(), self.cost_ratio * self.lookup.solution_costs(task)[idx]

    def apply(self, task: Task, x0s, params, ro: RolloutResult, divergence_bound: float,
              num_threads: int = 0) -> tuple[RolloutResult, np.ndarray, np.ndarray]:
        """``(guesses, replaced (N,), rollout_cost (N,))``: ``ro`` with the replaced instances' guesses swapped
        for the lookup's (their ``errors`` cleared), the wall time of the lookup and of scoring the rollouts shared
        among every instance's ``time``;
        ``rollout_cost`` is the objective along the policy's own rollouts (a diverged one held as
        :func:`~sobolev_warmstart.warmstart.guess_costs` holds it)."""
        t0 = time.perf_counter()
        x0s, params = self.lookup._query(task, x0s, params)
        xs, us, bound = self._plan(task, x0s, params)
        cost = guess_costs(task, x0s, params, ro.xs, ro.us, divergence_bound, num_threads)
        replaced = diverged_rollouts(ro.xs, divergence_bound) | ~(cost <= bound)
        seconds = time.perf_counter() - t0  # the lookup and the rollouts' costs: what the fallback adds to a guess
        return _with_fallback_guesses(task, ro, (xs, us, bound, seconds), replaced), replaced, cost
