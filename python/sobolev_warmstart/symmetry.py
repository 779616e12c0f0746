"""Exact symmetries of a task's instance family, used to give the policies more solved trajectories for free.

The UR5 reaching a random target from a random start is invariant under a rotation about the base's vertical axis:
gravity is along that axis, the first joint (shoulder pan) turns about it, the target shell is centred on it and
the start distribution is uniform in the first joint. Rotating a solved instance by an angle ``phi`` (the first
joint's whole trajectory shifted by ``phi``, the target rotated by ``phi`` about z, torques and the other joints
unchanged) gives the solution of another instance of the same family, with the same cost and feedback gains.

:func:`augment_by_symmetry` makes such copies of solved trajectories and hands each to the solver as its warm start:
the solver confirms it, and its result, gains and chained derivatives are computed by the core exactly as for a
collected solve, so a copy is a solver solution, not an extrapolation. Most copies need no iteration (0.035 on
average over the scorecard's 762; 69 of 72 over instance seeds 3-14, where the other three took 3, 4 and 46
iterations back to the same cost, to 3e-9 relative: the warm start carries no multipliers). The angle of each copy is drawn so that the first joint's start stays in
``[-pi, pi)``, the family's start distribution. Non-converged confirmations are dropped.

Only variants whose instance distribution is itself invariant are listed (:data:`SYMMETRIC_VARIANTS`): with a fixed
target or a fixed start, a rotated instance would leave the family.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .data import ChunkDataset, TrajectoryData, build_dataset
from .sensitivities import chained_derivatives
from .solver import SolverOptions, solve
from .tasks import Task

__all__ = ["SYMMETRIC_VARIANTS", "has_symmetry", "rotate_about_base", "augment_by_symmetry", "augment_dataset",
           "SymmetryReport"]

#: task/variant keys whose instance family is invariant under a rotation about the base's vertical axis.
SYMMETRIC_VARIANTS = frozenset({"ur5/random_start_random_target", "ur5/reference_random_start_random_target"})


def has_symmetry(task: Task | str) -> bool:
    """True where :func:`augment_by_symmetry` applies to the family of ``task`` (a task, or its ``"name/variant"``)."""
    return (task if isinstance(task, str) else f"{task.name}/{task.variant}") in SYMMETRIC_VARIANTS


def rotate_about_base(xs: np.ndarray, params: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UR5 states ``xs (N, ..., nx)`` and targets ``params (N, 3)`` rotated by ``phi (N,)`` about the base's z axis:
    the first joint shifted by ``phi``, the target's (x, y) rotated by it."""
    xs = np.array(xs, dtype=float, copy=True)
    params = np.array(params, dtype=float, copy=True)
    phi = np.asarray(phi, dtype=float)
    if phi.shape != (len(xs),) or params.shape != (len(xs), 3):
        raise ValueError(f"phi, params: expected shapes ({len(xs)},) and ({len(xs)}, 3), got {phi.shape} and "
                         f"{params.shape}")
    xs[..., 0] += phi.reshape((-1,) + (1,) * (xs.ndim - 2))
    c, s = np.cos(phi), np.sin(phi)
    x, y = params[:, 0].copy(), params[:, 1].copy()
    params[:, 0], params[:, 1] = c * x - s * y, s * x + c * y
    return xs, params


@dataclass
class SymmetryReport:
    """What :func:`augment_by_symmetry` did: copies asked per trajectory, copies kept (confirmed by the solver), the
    solver's mean iterations to confirm them, the wall time [s], and ``origin``: for each returned trajectory, the
    index of the solved one it was made from."""

    copies: int
    solved: int
    kept: int
    iterations_mean: float
    time_s: float
    origin: np.ndarray

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "origin"}


def augment_by_symmetry(task: Task, data: TrajectoryData, copies: int, *, seed: int = 0,
                        options: SolverOptions | None = None) -> tuple[TrajectoryData, SymmetryReport]:
    """``data``'s trajectories, each followed by ``copies`` rotated copies confirmed by the solver (module
    docstring), with chained derivatives over as many steps as ``data``'s. The order is solved trajectory ``i``, then
    its kept copies, then ``i + 1``; ``report.origin`` names each trajectory's solved one (select the first ``k`` with
    their copies by ``origin < k``). Raises ``ValueError`` for a task without a declared symmetry or data of another
    task."""
    if not has_symmetry(task):
        raise ValueError(f"task: {task.name}/{task.variant} has no declared symmetry; expected one of "
                         f"{', '.join(sorted(SYMMETRIC_VARIANTS))}")
    if not isinstance(data, TrajectoryData):
        raise TypeError(f"data: expected a TrajectoryData, got {type(data).__name__}")
    if (data.task.name, data.task.horizon, data.task.nz) != (task.name, task.horizon, task.nz):
        raise ValueError(f"data: expected trajectories of {task.name}/{task.variant} (horizon {task.horizon}), got "
                         f"{data.task.name} with horizon {data.task.horizon}")
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 0:
        raise ValueError(f"copies: expected a non-negative int, got {copies!r}")
    if data.action_param_jacobians is not None and copies > 0:
        raise ValueError("data: holds parameter derivatives (action_param_jacobians); make the rotated copies first "
                         "and compute the derivatives of the whole set after them (sw.with_parameter_jacobians)")
    if copies > 0:
        data.refuse_relabelled("make the rotated copies of the solved ones and relabel after")
    if copies == 0:
        return data, SymmetryReport(0, data.num_instances, 0, 0.0, 0.0, np.arange(data.num_instances))
    t0 = time.perf_counter()
    n = data.num_instances
    rng = np.random.default_rng(seed)
    x0 = data.xs[:, 0, 0]
    # the rotated start's first joint uniform in [-pi, pi), as the family draws it
    target_q0 = rng.uniform(-np.pi, np.pi, size=(copies, n))
    rotated_copies = [rotate_about_base(data.xs, data.params, target_q0[k] - x0) for k in range(copies)]
    xs = np.concatenate([rx for rx, _ in rotated_copies])
    params = np.concatenate([rp for _, rp in rotated_copies])
    us = np.concatenate([data.us] * copies)
    result = solve(task, xs[:, 0], params, xs_init=xs, us_init=us, options=options)
    derivs = chained_derivatives(task, result, data.action_jacobians.shape[2],
                                 num_threads=options.num_threads if options is not None else 0)
    rotated = TrajectoryData.from_solve(task, result, derivs)
    keep = np.asarray(result.converged, bool)
    # interleave: solved i, then its kept copies
    order = [(src, j) for i in range(n)
             for src, j in [(data, i)] + [(rotated, k * n + i) for k in range(copies) if keep[k * n + i]]]
    merged = {}
    for name in data.arrays():
        if getattr(rotated, name) is None:
            raise RuntimeError(f"augment_by_symmetry: the confirmed copies lack {name!r}")
        merged[name] = np.stack([getattr(src, name)[j] for src, j in order])
    out = TrajectoryData(task=data.task, **merged)
    report = SymmetryReport(copies=copies, solved=n, kept=int(keep.sum()),
                            iterations_mean=float(np.mean(result.iterations)), time_s=time.perf_counter() - t0,
                            origin=np.array([j if src is data else j % n for src, j in order]))
    return out, report


def augment_dataset(task: Task, dataset: ChunkDataset, copies: int, *, seed: int = 0,
                    options: SolverOptions | None = None) -> tuple[ChunkDataset, SymmetryReport]:
    """:func:`augment_by_symmetry` on a chunk dataset's trajectories, returned as a chunk dataset with the same spec
    and **the same normalisers** (those of the solved trajectories, as :func:`~sobolev_warmstart.consolidate.
    consolidate_dataset` keeps them)."""
    if not isinstance(dataset, ChunkDataset):
        raise TypeError(f"dataset: expected a ChunkDataset (build_dataset), got {type(dataset).__name__}")
    data, report = augment_by_symmetry(task, dataset.data, copies, seed=seed, options=options)
    return build_dataset(data, dataset.spec, normalisers=dataset.normalisers), report
