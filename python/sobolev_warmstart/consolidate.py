"""Consolidate solved training trajectories: re-solve every instance from its neighbours' solutions, keep the cheapest.

ProxDDP from a task's default guess lands in different local minima on neighbouring instances. On the pendubot's
81 scorecard trajectories it found five swing-up strategies (two to six reversals of the first joint), the costly
ones (mean 5.9 against 3.8) on a third of the instances; a policy trained on them learns from neighbours that
disagree. Warm-started from a neighbour's solution the solver often finds a cheaper minimum
(docs/results/ablations.md, round 18: training costs 25-30% lower on the pendubot and the random-start UR5).

:func:`consolidate` does this over a whole training set: in each round, every instance is solved again from the
solutions of its ``neighbours`` nearest other instances (normalised ``(x0, z)``, as
:class:`~sobolev_warmstart.baselines.NearestNeighbourLookup`; the neighbour's first state replaced by the
instance's own), one batch solve per neighbour rank, and the lowest-cost converged solution is kept, its own
included. A replaced solution passes its cheaper strategy on in the next round. The instances themselves do not
change, only which of the solver's local minima stands for each: the data stay solver solutions, with their
feedback gains, and :func:`consolidate_data` recomputes their chained derivatives.

Train on the result with the normalisers of the unconsolidated data: consolidated solutions gather on a few cheap
strategies, and normalisers fitted on them scale every state a rollout strays to far outside the network's inputs
(round 18: the pendubot's rollouts diverge on 69-94% of instances, 3-9% with TO alone's normalisers).
:func:`consolidate_dataset` does that for a chunk dataset; the scorecard, ``collect --consolidate`` and the loop use it.

Example::

    dataset = sw.build_dataset(sw.TrajectoryData.from_solve(task, solved, sw.chained_derivatives(task, solved, 7)), spec)
    better, report = sw.consolidate_dataset(task, dataset, neighbours=8, rounds=2)   # same normalisers
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .baselines import neighbour_order
from .data import ChunkDataset, TrajectoryData, build_dataset
from .loop import take_rows
from .sensitivities import chained_derivatives
from .solver import SolveResult, SolverOptions, solve
from .tasks import Task
from .warmstart import _rows

__all__ = ["ConsolidationReport", "consolidate", "consolidate_data", "consolidate_dataset"]


@dataclass
class ConsolidationReport:
    """What :func:`consolidate` did: ``cost_before`` / ``cost_after`` (N,) per instance (NaN where not converged),
    per round the solutions replaced (by any cheaper one, rounding-level gains included: a solution re-solved from a
    neighbour's may land on its own minimum), those at least 1% cheaper (or newly converged) and the mean cost after
    it, the batch solves run and the wall time [s].
    ``to_dict()["improved"]``: the instances at least 1% cheaper than before."""

    cost_before: np.ndarray
    cost_after: np.ndarray
    rounds: list[dict] = field(default_factory=list)
    solves: int = 0
    time_s: float = 0.0

    def to_dict(self) -> dict:
        ok = np.isfinite(self.cost_before) & np.isfinite(self.cost_after)
        return {"instances": int(len(self.cost_before)), "rounds": self.rounds, "solves": self.solves,
                "time_s": self.time_s, "cost_mean_before": float(np.mean(self.cost_before[ok])) if ok.any() else None,
                "cost_mean_after": float(np.mean(self.cost_after[ok])) if ok.any() else None,
                "improved": int(np.sum(self.cost_after[ok] < 0.99 * self.cost_before[ok]))}


def _check_positive(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


def consolidate(task: Task, solution: SolveResult, *, neighbours: int = 8, rounds: int = 2,
                options: SolverOptions | None = None) -> tuple[SolveResult, ConsolidationReport]:
    """``(solution', report)``: each instance of the batch ``solution`` (a :func:`~sobolev_warmstart.solve` result
    of the training instances) with the lowest-cost converged solution among its own and those re-solved from
    its ``neighbours`` nearest instances' solutions, over ``rounds`` rounds (module docstring). A round that
    replaces nothing ends the loop. Instances that did not converge are kept as they are (and are neither
    neighbours' guesses nor replaced unless a re-solve converges)."""
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
    if not isinstance(solution, SolveResult):
        raise TypeError(f"solution: expected a SolveResult (sobolev_warmstart.solve), got {type(solution).__name__}")
    n = len(solution)
    neighbours = _check_positive("neighbours", neighbours)
    rounds = _check_positive("rounds", rounds)
    if n < 2:
        raise ValueError(f"solution: expected at least two instances to consolidate, got {n}")
    options = options or SolverOptions()
    start = time.perf_counter()
    x0s = np.asarray(solution.xs)[:, 0].copy()
    params = np.asarray(solution.params)
    best = solution
    cost = lambda r: np.where(np.asarray(r.converged, bool), np.asarray(r.cost, float), np.nan)  # noqa: E731
    report = ConsolidationReport(cost_before=cost(solution), cost_after=cost(solution))
    order = neighbour_order(x0s, params, min(neighbours, n - 1))
    for r in range(rounds):
        replaced = 0
        before = cost(best)
        for j in range(order.shape[1]):
            src = order[:, j]
            usable = np.asarray(best.converged, bool)[src]
            if not usable.any():
                continue
            xs = np.asarray(best.xs)[src].copy()
            xs[:, 0] = x0s
            rows = np.flatnonzero(usable)
            res = solve(task, x0s[rows], params[rows], xs[rows], np.asarray(best.us)[src][rows], options=options)
            report.solves += 1
            current = np.asarray(best.cost, float)[rows]
            was_ok = np.asarray(best.converged, bool)[rows]
            better = np.asarray(res.converged, bool) & (~was_ok | (np.asarray(res.cost) < current))
            if better.any():
                take = np.zeros(n, bool)
                take[rows[better]] = True
                best = _rows(best, _scatter(best, res, rows), take)
                replaced += int(better.sum())
        after = cost(best)
        gained = ~(after >= 0.99 * before)  # 1% cheaper, or converged where it was not (NaN before)
        report.rounds.append({"round": r + 1, "replaced": replaced,
                              "improved": int(np.sum(gained & np.isfinite(after))),
                              "cost_mean": float(np.nanmean(after)) if np.isfinite(after).any() else None})
        if replaced == 0:
            break
    report.cost_after = cost(best)
    report.time_s = time.perf_counter() - start
    return best, report


def _scatter(base: SolveResult, part: SolveResult, rows: np.ndarray) -> SolveResult:
    """``base`` with rows ``rows`` replaced by ``part`` (the shapes of a full batch, for a row-wise merge)."""
    take = np.zeros(len(base), bool)
    take[rows] = True
    idx = np.zeros(len(base), np.int64)
    idx[rows] = np.arange(len(rows))
    return _rows(base, take_rows(part, idx), take)


def consolidate_data(task: Task, data: TrajectoryData, derivative_horizon: int, *, neighbours: int = 8,
                     rounds: int = 2, options: SolverOptions | None = None
                     ) -> tuple[TrajectoryData, ConsolidationReport]:
    """:func:`consolidate` on solved training trajectories: ``data``'s converged instances are solved once from
    their own solutions (to give the solver's result arrays back), consolidated, and returned as a new
    ``TrajectoryData`` with the chained derivatives over ``derivative_horizon`` steps (the chunk's ``H - h``)
    recomputed; instances whose solution does not converge from its own are left out. Parameter derivatives
    (``action_param_jacobians``) are not carried over, since the solutions change: compute them on the result
    (:func:`~sobolev_warmstart.sensitivities.with_parameter_jacobians`)."""
    if not isinstance(data, TrajectoryData):
        raise TypeError(f"data: expected a TrajectoryData, got {type(data).__name__}")
    if data.task.name != task.name:
        raise ValueError(f"data: solved for task {data.task.name!r}, got task {task.name!r}")
    data.refuse_relabelled("consolidate the solved ones and relabel after")
    if data.converged is not None:
        data = data.select(np.asarray(data.converged, bool))
    options = options or SolverOptions()
    own = solve(task, data.xs[:, 0], data.params, data.xs, data.us, options=options)
    best, report = consolidate(task, own, neighbours=neighbours, rounds=rounds, options=options)
    report.cost_before = np.asarray(data.cost, float).copy()
    ok = np.asarray(best.converged, bool)
    sub = take_rows(best, ok)
    der = chained_derivatives(task, sub, derivative_horizon, num_threads=options.num_threads)
    return TrajectoryData.from_solve(task, sub, der), report


def consolidate_dataset(task: Task, dataset: ChunkDataset, *, neighbours: int = 8, rounds: int = 2,
                        options: SolverOptions | None = None) -> tuple[ChunkDataset, ConsolidationReport]:
    """:func:`consolidate_data` on a chunk dataset's trajectories (derivatives over its chunk's ``H - h`` steps),
    returned as a chunk dataset with the same spec and **the same normalisers** (module docstring: why)."""
    if not isinstance(dataset, ChunkDataset):
        raise TypeError(f"dataset: expected a ChunkDataset (build_dataset), got {type(dataset).__name__}")
    spec = dataset.spec
    data, report = consolidate_data(task, dataset.data, spec.horizon - spec.history, neighbours=neighbours,
                                    rounds=rounds, options=options)
    return build_dataset(data, spec, normalisers=dataset.normalisers), report
