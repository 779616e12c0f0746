"""Closed-loop data: the solver relabels the states a policy's own rollouts reach (DAgger-style).

A policy trained on solved trajectories sees, when rolled out, states its data never held: its own small errors
compound. :func:`relabel_rollouts` rolls the policy out from the training instances, stops it at chosen steps
``t``, and asks the solver what it should do from there: the tail of the instance's problem, ``T - t`` steps from
the reached state ``x_t`` (the tasks' stages do not depend on the time, so a task of horizon ``T - t``,
``make_task(..., horizon=T - t)``, is exactly that tail). Each solved tail is returned as a whole trajectory of
horizon ``T``: the policy's own steps ``0..t-1``, then the solver's. ``label_start = t`` marks where the solver's
part begins: only chunks from ``t`` on are training samples, with the policy's last action as their history, and
their derivative targets chain the tail's feedback gains, as for any solved trajectory.

Each tail is solved twice, from the training solution's own tail (its first state replaced by ``x_t``) and from
the policy's rollout tail; the cheaper converged solution is kept, so the labels stay near the training data's
strategy where the solver can reach it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from .data import TaskInfo, TrajectoryData, concatenate_trajectories
from .rollout import rollout
from .sensitivities import chained_derivatives
from .solver import SolverOptions, solve
from .tasks import Task, make_task
from .warmstart import diverged_rollouts

__all__ = ["RelabelReport", "relabel_rollouts"]


@dataclass
class RelabelReport:
    """What :func:`relabel_rollouts` did. ``times``: the steps relabelled; per time, ``attempted`` tails (rollouts
    that stayed inside the bound and are valid instances there), ``kept`` (converged) and the mean solver
    ``iterations`` of the kept ones; ``from_data``: how many kept solutions came from the training solution's
    tail (the rest from the policy's); ``rollout_time_s``, ``solve_time_s``: wall times."""

    times: tuple[int, ...]
    rolled_out: int
    attempted: list[int]
    kept: list[int]
    iterations: list[float]
    from_data: int
    rollout_time_s: float
    solve_time_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_times(times, horizon: int) -> tuple[int, ...]:
    if isinstance(times, (str, bytes)) or not hasattr(times, "__iter__"):
        raise TypeError(f"times: expected a sequence of steps (int), got {times!r}")
    values = list(times)
    if not values or any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in values):
        raise ValueError(f"times: expected at least one integer step, got {values!r}")
    if min(values) < 1 or max(values) > horizon - 1:
        raise ValueError(f"times: expected steps in [1, {horizon - 1}] (inside the horizon {horizon}), got {values}")
    return tuple(sorted({int(t) for t in values}))


def _valid_instances(task: Task, x0s: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: the instances the task accepts (e.g. no quadrotor column covering the reached state)."""
    ok = np.zeros(len(x0s), bool)
    for i in range(len(x0s)):
        try:
            task.check_instances(x0s[i:i + 1], params[i:i + 1])
            ok[i] = True
        except ValueError:
            pass
    return ok


def _solve_tails(task: Task, source: TrajectoryData, ro_xs: np.ndarray, ro_us: np.ndarray, inside: np.ndarray,
                 steps: tuple[int, ...], options: SolverOptions, offsets: int):
    """Solves, for each step ``t`` of ``steps``, the tail problems from the states ``ro_xs[:, t]`` of the rows
    ``inside`` that are valid instances there, from the training solution's tail (its first state replaced) and from
    ``ro_xs, ro_us``'s own tail, keeping the cheaper converged one (module docstring). Returns ``(parts, attempted,
    kept, iterations, from_data)``: the kept tails as whole trajectories (``ro``'s steps before ``t``, then the
    solver's; ``label_start = t``) and :class:`RelabelReport`'s counts."""
    T, params = source.task.horizon, source.params
    parts, attempted, kept, iterations, from_data = [], [], [], [], 0
    for t in steps:
        tail_task = make_task(task.name, task.variant, horizon=T - t)
        idx = np.flatnonzero(inside)
        idx = idx[_valid_instances(tail_task, ro_xs[idx, t], params[idx])]
        attempted.append(len(idx))
        if not len(idx):
            kept.append(0)
            iterations.append(float("nan"))
            continue
        start, p = ro_xs[idx, t], params[idx]
        expert_xs = source.xs[idx, t:].copy()
        expert_xs[:, 0] = start
        from_expert = solve(tail_task, start, p, expert_xs, source.us[idx, t:], options=options)
        from_policy = solve(tail_task, start, p, ro_xs[idx, t:], ro_us[idx, t:], options=options)
        cost_e = np.where(from_expert.converged, from_expert.cost, np.inf)
        cost_p = np.where(from_policy.converged, from_policy.cost, np.inf)
        use_expert = cost_e <= cost_p
        ok = np.isfinite(np.minimum(cost_e, cost_p))
        kept.append(int(ok.sum()))
        from_data += int((use_expert & ok).sum())
        if not ok.any():
            iterations.append(float("nan"))
            continue

        def kept_tails(name: str) -> np.ndarray:
            """The kept tails' ``name`` array, from whichever of the two solves was kept."""
            a, b = np.asarray(getattr(from_expert, name)), np.asarray(getattr(from_policy, name))
            return np.where(use_expert.reshape(-1, *[1] * (a.ndim - 1)), a, b)[ok]

        iterations.append(float(np.mean(kept_tails("iterations"))))
        rows = idx[ok]
        gains = kept_tails("feedback_gains")
        composite = SimpleNamespace(  # the steps before t (no gains: they are never targets), then the solver's
            xs=np.concatenate([ro_xs[rows, :t], kept_tails("xs")], axis=1),
            us=np.concatenate([ro_us[rows, :t], kept_tails("us")], axis=1),
            feedback_gains=np.concatenate([np.zeros((len(rows), t, *gains.shape[2:])), gains], axis=1),
            params=params[rows], cost=kept_tails("cost"), converged=np.ones(len(rows), bool))
        derivs = chained_derivatives(task, composite, offsets, num_threads=options.num_threads)
        part = TrajectoryData.from_solve(task, composite, derivs)
        parts.append(dataclasses.replace(part, label_start=np.full(len(rows), t)))
    return parts, attempted, kept, iterations, from_data


def relabel_rollouts(task: Task, data: TrajectoryData, policy, times: Sequence[int], *, seed: int = 0,
                     action_steps: int | None = None, divergence_bound: float = 1e3,
                     options: SolverOptions | None = None) -> tuple[TrajectoryData, RelabelReport]:
    """Roll ``policy`` out from the solved instances of ``data`` (those with no ``label_start``, or 0: the
    originally solved ones) and relabel the states it reaches at each step of ``times`` with the solver's
    solution of the tail problem (module docstring). Returns the relabelled trajectories (horizon ``T``, with
    ``label_start``, chained derivatives over ``data``'s chunk offsets, ``cost`` the tail's objective) and a
    :class:`RelabelReport`.

    ``policy``: anything :func:`~sobolev_warmstart.rollout.rollout` takes (an exported file, an eager policy).
    ``seed``, ``action_steps``: the rollout's (None: the policy's own A). ``divergence_bound``: rollouts leaving it
    are not relabelled. ``options``: the tail solves' settings (default :class:`SolverOptions`; the feedback gains
    are refreshed, as the derivative targets need them).
    """
    if not isinstance(data, TrajectoryData):
        raise TypeError(f"data: expected a TrajectoryData, got {type(data).__name__}")
    info = data.task
    if TaskInfo.from_task(task) != info:
        raise ValueError(f"task: expected the data's task ({info}), got {TaskInfo.from_task(task)}")
    if data.action_param_jacobians is not None:
        raise ValueError("data: holds parameter derivatives (action_param_jacobians), which relabelled "
                         "trajectories would lack; relabel data without them")
    T, offsets = info.horizon, data.action_jacobians.shape[2]
    steps = _check_times(times, T)
    options = options if options is not None else SolverOptions()
    if not isinstance(options, SolverOptions):
        raise TypeError(f"options: expected a SolverOptions, got {type(options).__name__}")
    options = dataclasses.replace(options, refresh_gains=True)
    source = data.solved_part("to roll the policy out from")
    x0s, params = source.xs[:, 0], source.params
    t0 = time.perf_counter()
    ro = rollout(task, x0s, params, policy, action_steps=action_steps, seed=seed,
                 num_threads=options.num_threads)
    rollout_time = time.perf_counter() - t0
    ro_xs, ro_us = np.asarray(ro.xs, dtype=np.float64), np.asarray(ro.us, dtype=np.float64)
    inside = ~diverged_rollouts(ro_xs, divergence_bound)
    t1 = time.perf_counter()
    parts, attempted, kept, iterations, from_data = _solve_tails(task, source, ro_xs, ro_us, inside, steps, options,
                                                                 offsets)
    report = RelabelReport(times=steps, rolled_out=len(x0s), attempted=attempted, kept=kept, iterations=iterations,
                           from_data=from_data, rollout_time_s=rollout_time,
                           solve_time_s=time.perf_counter() - t1)
    if not parts:
        raise RuntimeError(f"relabel_rollouts: no tail solve converged at steps {list(steps)} "
                           f"(attempted {attempted})")
    return concatenate_trajectories(parts), report
