"""Warm starts: a policy's rollout refined by the solver, compared with the solver alone.

``warm_start(task, x0s, params, policy)`` rolls the policy out from each instance (:mod:`.rollout`), scores the
rollout with the task's objective ("policy cost"), solves from it with ProxDDP, and (by default) solves the same
instances from the task's default guess ("TO alone"). With an exported policy file the whole path runs in C++.

The reference's dual solve keeps, per instance, the lower-cost converged one of the two solves
(:func:`select_dual`); an instance where neither converged is rejected.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from . import _core
from .rollout import RolloutResult, _check_action_steps, _instances, as_runner, rollout
from .solver import SolveResult, SolverOptions, solve
from .tasks import Task

__all__ = ["WarmStartResult", "DualSolve", "warm_start", "select_dual", "refine_rollouts", "refine_guesses",
           "guess_costs", "guess_violations", "default_guesses", "diverged_rollouts", "perturbed_solution_guess", "closed_loop_rollout", "state_difference"]


@dataclass
class DualSolve:
    """Per-instance choice between the default-guess and the policy-guess solve.

    result: a :class:`SolveResult` whose rows come from the chosen solve (from ``warm`` where nothing
    converged); source: (N,) ``"policy"``, ``"default"`` or ``"none"``; accepted: (N,) bool, False where neither
    solve converged (the reference rejects those instances).
    """

    result: SolveResult
    source: np.ndarray
    accepted: np.ndarray

    @property
    def num_rejected(self) -> int:
        return int((~self.accepted).sum())


def _rows(a: SolveResult, b: SolveResult, take_b: np.ndarray) -> SolveResult:
    """Row-wise merge: row i from ``b`` where ``take_b[i]``, else from ``a``."""
    fields = {}
    for f in dataclasses.fields(SolveResult):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if f.name == "errors":
            fields[f.name] = [eb if t else ea for ea, eb, t in zip(va, vb, take_b)]
        else:
            mask = take_b.reshape((-1,) + (1,) * (np.ndim(va) - 1))
            fields[f.name] = np.where(mask, vb, va)
    return SolveResult(**fields)


def select_dual(default: SolveResult, warm: SolveResult) -> DualSolve:
    """The reference's dual solve: per instance, the converged solve of lower cost (the policy's on a tie);
    the only converged one if one failed; rejected if both failed."""
    if len(default) != len(warm):
        raise ValueError(f"warm: expected {len(default)} instances like default, got {len(warm)}")
    dc, wc = np.asarray(default.converged, bool), np.asarray(warm.converged, bool)
    take_warm = wc & (~dc | (warm.cost <= default.cost))
    take_warm |= ~dc & ~wc
    source = np.where(take_warm, "policy", "default").astype(object)
    accepted = dc | wc
    source[~accepted] = "none"
    return DualSolve(result=_rows(default, warm, take_warm), source=source.astype(str), accepted=accepted)


@dataclass
class WarmStartResult:
    """Per-instance results of :func:`warm_start` (first axis: instance).

    rollout: the policy's rollouts (with their times); policy_cost (N,): the task objective along each rollout
    (constraints not included); warm: the solve from the rollout; default: the solve from the default guess
    ("TO alone"), or None when not requested; wall times of the three stages [s]. Instances whose rollout
    diverged (``rollout.errors``) are solved from the default guess in ``warm``. replaced (N,) bool, with a
    ``fallback`` (:class:`~sobolev_warmstart.baselines.LookupFallback`) only: the instances whose solve started from
    the lookup's guess instead of the rollout; ``rollout`` then holds the guesses the solver started from (the
    lookup's time shared into ``rollout.time``) and ``policy_cost`` still the policy's own rollouts' objective.
    """

    rollout: RolloutResult
    policy_cost: np.ndarray
    warm: SolveResult
    default: SolveResult | None
    rollout_wall_time: float
    warm_wall_time: float
    default_wall_time: float
    replaced: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.warm)

    def dual(self) -> DualSolve:
        """The dual solve (needs ``default``)."""
        if self.default is None:
            raise ValueError("default: the dual solve needs the default-guess solve (warm_start(compare_default=True))")
        return select_dual(self.default, self.warm)

    def summary(self) -> dict[str, float]:
        """Means over instances: policy cost, refined cost and iterations (converged only where said),
        rollout/solve/total times [s], convergence rates; the same for TO alone when present."""
        w = self.warm
        conv = np.asarray(w.converged, bool)
        out = {
            "instances": float(len(w)),
            "policy_cost": float(np.mean(self.policy_cost)),
            "warm_cost_converged": float(np.mean(w.cost[conv])) if conv.any() else float("nan"),
            "warm_iterations": float(np.mean(w.iterations)),
            "warm_converged": float(conv.mean()),
            "rollout_time": float(np.mean(self.rollout.time)),
            "warm_solve_time": float(np.mean(w.solve_time)),
            "warm_total_time": float(np.mean(self.rollout.time + w.solve_time)),
        }
        if self.default is not None:
            d = self.default
            dconv = np.asarray(d.converged, bool)
            out.update({
                "default_cost_converged": float(np.mean(d.cost[dconv])) if dconv.any() else float("nan"),
                "default_iterations": float(np.mean(d.iterations)),
                "default_converged": float(dconv.mean()),
                "default_solve_time": float(np.mean(d.solve_time)),
            })
        return out


def warm_start(task: Task, x0s, params, policy, *, action_steps: int | None = None, seed: int = 0,
               options: SolverOptions | None = None, batch_size: int = 0,
               compare_default: bool = True, fallback=None) -> WarmStartResult:
    """Warm-start the solver with ``policy``'s rollouts on instances ``(x0s (N, nx), params (N, nz))``.

    policy: an exported ``.pt``/``.pt2`` file or :class:`~sobolev_warmstart.rollout.PolicyRunner` (the whole path
    in C++, GIL released), or an eager policy (Python rollout, then the same C++ solves). action_steps: A
    (None: the policy's own). seed: rollout noise seed. options: solver settings (their ``num_threads`` also
    sets the rollout threads). batch_size: lockstep group size (0: split evenly over threads).
    compare_default: also solve from the default guess ("TO alone") for comparison and :meth:`dual`.
    fallback: a :class:`~sobolev_warmstart.baselines.LookupFallback`: where a rollout diverged or costs more than its
    bound, the solve starts from the lookup's guess (``result.replaced``); the lookup runs before the C++ path
    (milliseconds) and its time is shared into ``rollout.time``. None: diverged rollouts start from the default guess.
    """
    options = options or SolverOptions()
    if not isinstance(options, SolverOptions):
        raise TypeError(f"options: expected a SolverOptions, got {type(options).__name__}")
    x0s, params = _instances(task, x0s, params)
    steps = _check_action_steps(action_steps)
    runner = as_runner(policy)
    if fallback is not None and not callable(getattr(fallback, "plan", None)):
        raise TypeError(f"fallback: expected a LookupFallback or None, got {type(fallback).__name__}")
    plan = None if fallback is None else fallback.plan(task, x0s, params)
    if runner is not None:
        extra = {} if plan is None else {"fallback_xs": plan[0], "fallback_us": plan[1],
                                         "fallback_cost_bound": plan[2]}
        out = _core.warm_start(task, runner, x0s, params, action_steps=steps, seed=int(seed),
                               batch_size=int(batch_size), solve_from_default=bool(compare_default),
                               tol=float(options.tol), mu_init=float(options.mu_init), max_iters=options.max_iters,
                               num_threads=options.num_threads, refresh_gains=options.refresh_gains,
                               dual_init=options.dual_init, step_acceptance=options.step_acceptance,
                               stall_iters=options.stall_iters, **extra)
        ro = RolloutResult(**out["rollout"], backend=f"cpp/{runner.backend}")
        replaced = None
        if plan is not None:
            replaced = np.asarray(out["replaced"], bool)
            ro = _with_fallback_guesses(task, ro, plan, replaced)
        return WarmStartResult(
            rollout=ro, policy_cost=out["policy_cost"],
            warm=SolveResult(params=params.copy(), **out["warm"]),
            default=None if out["default"] is None else SolveResult(params=params.copy(), **out["default"]),
            rollout_wall_time=out["rollout_wall_time"], warm_wall_time=out["warm_wall_time"],
            default_wall_time=out["default_wall_time"], replaced=replaced)
    ro = rollout(task, x0s, params, policy, action_steps=action_steps, seed=seed, batch_size=batch_size,
                 num_threads=options.num_threads)
    policy_cost = _core.trajectory_costs(task, x0s, params, np.nan_to_num(ro.xs, posinf=1e300, neginf=-1e300),
                                         np.nan_to_num(ro.us, posinf=1e300, neginf=-1e300), options.num_threads)
    # as in C++: a diverged rollout is no guess; those instances start from the fallback guess, or the default one
    xs_init, us_init = ro.xs.copy(), ro.us.copy()
    replaced = None
    if plan is not None:
        replaced = np.array([bool(e) or not (c <= b) for e, c, b in zip(ro.errors, policy_cost, plan[2])])
    for i, err in enumerate(ro.errors):
        if replaced is not None and replaced[i]:
            xs_init[i], us_init[i] = plan[0][i], plan[1][i]
        elif err:
            xs_init[i], us_init[i] = task.default_initial_guess(x0s[i], params[i])
    t0 = time.perf_counter()
    warm = solve(task, x0s, params, xs_init, us_init, options)
    t1 = time.perf_counter()
    default = solve(task, x0s, params, options=options) if compare_default else None
    t2 = time.perf_counter()
    if replaced is not None:
        ro = _with_fallback_guesses(task, ro, plan, replaced)
    return WarmStartResult(rollout=ro, policy_cost=policy_cost, warm=warm, default=default,
                           rollout_wall_time=ro.wall_time, warm_wall_time=t1 - t0,
                           default_wall_time=t2 - t1 if compare_default else 0.0, replaced=replaced)


def _with_fallback_guesses(task: Task, ro: RolloutResult, plan, replaced: np.ndarray) -> RolloutResult:
    """``ro`` with the replaced instances' guesses swapped for the fallback's (``plan = (xs, us, bound, seconds)``
    of :meth:`~sobolev_warmstart.baselines.LookupFallback.plan`), their errors cleared, the lookup's time shared
    among every instance."""
    xs, us, actions = ro.xs.copy(), ro.us.copy(), ro.actions.copy()
    xs[replaced], us[replaced] = plan[0][replaced], plan[1][replaced]
    for i in np.flatnonzero(replaced):
        actions[i] = us[i] if task.action_space == "torque" else [
            task.action(us[i, t], xs[i, t + 1]) for t in range(task.horizon)]
    share = plan[3] / max(len(xs), 1)
    return dataclasses.replace(ro, xs=xs, us=us, actions=actions, time=ro.time + share,
                               errors=["" if r else e for r, e in zip(replaced, ro.errors)],
                               wall_time=ro.wall_time + plan[3])


def state_difference(task: Task, xs: np.ndarray, xs_ref: np.ndarray) -> np.ndarray:
    """``xs ⊖ xs_ref``: the tangent vectors ``(..., ndx)`` from states ``xs_ref`` to ``xs`` (both ``(..., nx)``),
    in the convention of the solver's feedback gains (``u ≈ u*_t + K_t (x ⊖ x*_t)``).

    Vector states: the difference. The quadrotor's free-flyer state ``(p, quaternion xyzw, v (6))``: Pinocchio's
    ``difference`` on the configuration, ``log6(M_ref^-1 M)`` as (linear, angular), and ``v - v_ref`` (tested
    against Pinocchio). Other manifold states raise ``ValueError``.
    """
    xs = np.asarray(xs, dtype=np.float64)
    xs_ref = np.asarray(xs_ref, dtype=np.float64)
    if task.nx == task.ndx:
        return xs - xs_ref
    if not (task.nq == 7 and task.nv == 6 and task.nx == 13 and task.ndx == 12):
        raise ValueError(f"task: no state difference for {task.name}'s manifold state (nx {task.nx}, ndx "
                         f"{task.ndx}); vector states and the free-flyer (nx 13, ndx 12) are supported")
    return np.concatenate([_free_flyer_difference(xs_ref[..., :7], xs[..., :7]),
                           xs[..., 7:] - xs_ref[..., 7:]], axis=-1)


def _quat_conj_mul(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """``conj(q0) ⊗ q1`` for unit quaternions stored (x, y, z, w)."""
    v0, w0 = -q0[..., :3], q0[..., 3:]
    v1, w1 = q1[..., :3], q1[..., 3:]
    w = w0 * w1 - np.sum(v0 * v1, axis=-1, keepdims=True)
    v = w0 * v1 + w1 * v0 + np.cross(v0, v1)
    return np.concatenate([v, w], axis=-1)


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = (q[..., i] for i in range(4))
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1)], axis=-2)


def _skew(w: np.ndarray) -> np.ndarray:
    z = np.zeros_like(w[..., 0])
    return np.stack([np.stack([z, -w[..., 2], w[..., 1]], -1), np.stack([w[..., 2], z, -w[..., 0]], -1),
                     np.stack([-w[..., 1], w[..., 0], z], -1)], axis=-2)


def _free_flyer_difference(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Pinocchio's free-flyer ``difference(q0, q1) = log6(M0^-1 M1)`` as (linear, angular), ``q = (p, xyzw)``."""
    quat0 = q0[..., 3:] / np.linalg.norm(q0[..., 3:], axis=-1, keepdims=True)
    quat1 = q1[..., 3:] / np.linalg.norm(q1[..., 3:], axis=-1, keepdims=True)
    rel = _quat_conj_mul(quat0, quat1)
    rel = np.where(rel[..., 3:] < 0, -rel, rel)  # the rotation angle in [0, pi]
    n = np.linalg.norm(rel[..., :3], axis=-1, keepdims=True)
    theta = 2.0 * np.arctan2(n, rel[..., 3:])
    small = n < 1e-8
    ratio = np.where(small, 2.0 / np.maximum(rel[..., 3:], 1e-300), theta / np.where(small, 1.0, n))
    w = ratio * rel[..., :3]                                   # log3 of the relative rotation
    p = np.einsum("...ji,...j->...i", _quat_to_matrix(quat0), q1[..., :3] - q0[..., :3])  # R0^T (p1 - p0)
    th = theta[..., 0]
    th_safe = np.where(th < 1e-4, 1.0, th)
    coef = np.where(th < 1e-4, 1.0 / 12.0 + th * th / 720.0,
                    (1.0 - th_safe * np.sin(th_safe) / (2.0 * (1.0 - np.cos(th_safe)))) / (th_safe * th_safe))
    W = _skew(w)
    v = p - 0.5 * np.einsum("...ij,...j->...i", W, p) + coef[..., None] * np.einsum("...ij,...j->...i", W @ W, p)
    return np.concatenate([v, w], axis=-1)


def closed_loop_rollout(task: Task, x0s, xs_ref: np.ndarray, us_ref: np.ndarray, gains: np.ndarray,
                        noise: np.ndarray | None = None, bound: float = 1e6) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """Close the feedback laws ``u_t = u*_t + K_t (x_t ⊖ x*_t) (+ noise_t)`` around the task's dynamics from
    ``x0s (N, nx)``: ``(xs (N, T+1, nx), us (N, T, nu), diverged (N,))``.

    xs_ref (N, T+1, nx), us_ref (N, T, nu), gains (N, T, nu, ndx): one reference trajectory and its gains per
    instance; noise (N, T, nu) is added before the controls are clamped to the task's bounds. A rollout whose
    state turns non-finite or leaves ``bound`` (the C++ rollout's 1e6 by default) is stopped there and flagged:
    its state is held with zero control, as the C++ rollout does."""
    x0s = np.asarray(x0s, dtype=np.float64)
    n, T = us_ref.shape[:2]
    lo, hi = np.asarray(task.u_lower), np.asarray(task.u_upper)
    xs = np.empty((n, T + 1, task.nx))
    us = np.zeros((n, T, task.nu))
    xs[:, 0] = x0s
    alive = ~diverged_rollouts(x0s[:, None], bound)
    for t in range(T):
        xs[:, t + 1] = xs[:, t]
        if not alive.any():
            continue
        a = np.flatnonzero(alive)
        u = us_ref[a, t] + np.einsum("nij,nj->ni", gains[a, t], state_difference(task, xs[a, t], xs_ref[a, t]))
        if noise is not None:
            u = u + noise[a, t]
        us[a, t] = np.clip(u, lo, hi)
        xs[a, t + 1] = task.step(xs[a, t], us[a, t])
        alive[a] = ~diverged_rollouts(xs[a, t + 1, None], bound)
    return xs, us, ~alive


def perturbed_solution_guess(task: Task, x0s, solution: SolveResult, sigma: float,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dynamically feasible guess ``(xs (N, T+1, nx), us (N, T, nu))`` at a chosen distance from a solution.

    The solution's feedback law ``u_t = u*_t + K_t (x_t ⊖ x*_t) + sigma * s * w_t`` is closed around the task's
    dynamics from ``x0s`` (:func:`closed_loop_rollout`), with ``w_t ~ N(0, 1)`` (seeded), ``s`` half the torque
    range and the torques clamped to their bounds. It stands for a policy of a given quality, with no policy
    involved: solving from it tells how many iterations a warm start that good can save on a task
    (``benchmarks/bench_guess_quality.py``). ``sigma = 0`` is the nearest-neighbour baseline's ``nn_feedback``
    guess (:mod:`.baselines`).
    """
    if not isinstance(solution, SolveResult):
        raise TypeError(f"solution: expected a SolveResult, got {type(solution).__name__}")
    if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma: expected a finite noise scale >= 0, got {sigma!r}")
    n, T = solution.us.shape[:2]
    for name, shape in (("xs", (n, task.horizon + 1, task.nx)), ("us", (n, task.horizon, task.nu)),
                        ("feedback_gains", (n, task.horizon, task.nu, task.ndx))):
        if np.shape(getattr(solution, name)) != shape:
            raise ValueError(f"solution: expected {name} of shape {shape} for task {task.name}, got "
                             f"{np.shape(getattr(solution, name))}")
    x0s = np.asarray(x0s, dtype=np.float64)
    if x0s.shape != (n, task.nx):
        raise ValueError(f"x0s: expected shape ({n}, {task.nx}) to match the solution, got {x0s.shape}")
    lo, hi = np.asarray(task.u_lower), np.asarray(task.u_upper)
    scale = np.where(np.isfinite(hi - lo), 0.5 * (hi - lo), 1.0)
    noise = float(sigma) * scale * np.random.default_rng(seed).standard_normal(solution.us.shape)
    xs, us, diverged = closed_loop_rollout(task, x0s, solution.xs, solution.us, solution.feedback_gains, noise)
    if diverged.any():
        raise ValueError(f"sigma: the closed loop perturbed by sigma = {sigma} diverged "
                         f"(instances {np.flatnonzero(diverged).tolist()})")
    return xs, us


def diverged_rollouts(xs: np.ndarray, bound: float) -> np.ndarray:
    """``(N,)`` bool: rollouts ``xs (N, T+1, nx)`` with a non-finite state or a coordinate beyond ``bound``."""
    xs = np.asarray(xs, dtype=np.float64)
    finite = np.isfinite(xs).all(axis=(1, 2))
    big = np.abs(np.where(np.isfinite(xs), xs, 0.0)).max(axis=(1, 2)) > bound
    return ~finite | big


def _expand(part: SolveResult, ok: np.ndarray, xs: np.ndarray, us: np.ndarray, params: np.ndarray,
            reason: str) -> SolveResult:
    """A SolveResult over all instances from the solve of the ``ok`` ones; the others keep their guess
    ``(xs, us)`` (the rollout as it is), are not converged, with NaN cost and zero iterations and time."""
    n = ok.shape[0]
    out = {}
    for f in dataclasses.fields(SolveResult):
        if f.name in ("errors", "params"):
            continue
        v = np.asarray(getattr(part, f.name))
        fill = {"xs": xs, "us": us}.get(f.name)
        if fill is None:
            fill = np.zeros((n,) + v.shape[1:], dtype=v.dtype)
            if v.dtype.kind == "f" and f.name not in ("solve_time", "setup_time", "feedback_gains"):
                fill[:] = np.nan
        full = np.array(fill, dtype=v.dtype, copy=True)
        full[ok] = v
        out[f.name] = full
    errors = [reason] * n
    for i, e in zip(np.flatnonzero(ok), part.errors):
        errors[i] = e
    return SolveResult(errors=errors, params=params.copy(), **out)


def refine_rollouts(task: Task, x0s: np.ndarray, params: np.ndarray, policy, action_steps: int | None,
                    seed: int, options: SolverOptions, bound: float,
                    fallback=None) -> tuple[WarmStartResult, np.ndarray]:
    """Roll out, score, and refine the rollouts that stayed within ``bound``: ``(result, diverged (N,))``.

    Unlike :func:`warm_start` (which solves a diverged instance from the default guess), a diverged instance
    is not refined: a warm solve that did not converge, with no iteration, NaN cost and its rollout (non-finite
    values zeroed) as solution. The loop's dual solve and the evaluation of the methods use it, with a bound
    (1e3 by default) below the C++ rollout's own 1e6: a diverged guess is worthless, and guesses with huge
    coordinates have been seen to abort the solver. Without divergence, ``result.warm`` is
    ``warm_start(...).warm`` (same noise streams, same solver, same results). With a ``fallback``
    (:class:`~sobolev_warmstart.baselines.LookupFallback`) the rollouts that diverged or cost more than their bound
    are replaced by the lookup's guesses before anything is refined (so none is left diverged), as
    ``warm_start(..., fallback=...)`` does; ``result.replaced`` says where, ``result.policy_cost`` is the policy's own
    rollouts' objective."""
    ro = rollout(task, x0s, params, policy, action_steps=action_steps, seed=seed, num_threads=options.num_threads)
    if fallback is None:
        return refine_guesses(task, x0s, params, ro, options, bound)
    guesses, replaced, cost = fallback.apply(task, x0s, params, ro, bound, options.num_threads)
    result, diverged = refine_guesses(task, x0s, params, guesses, options, bound)
    return dataclasses.replace(result, policy_cost=cost, replaced=replaced), diverged


def default_guesses(task: Task, x0s: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The task's default ("TO alone") guesses of a batch: ``(xs (N, T+1, nx), us (N, T, nu))``."""
    guesses = [task.default_initial_guess(x, p) for x, p in zip(x0s, params)]
    return np.stack([g[0] for g in guesses]), np.stack([g[1] for g in guesses])


def _held_guesses(xs: np.ndarray, us: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Guesses as a diverged one is scored: states clipped to ``bound`` (non-finite ones to the bound too),
    non-finite controls as zero, the control a diverged rollout is held with: large, finite, comparable."""
    xs = np.clip(np.nan_to_num(xs, nan=bound, posinf=bound, neginf=-bound), -bound, bound)
    us = np.nan_to_num(us, nan=0.0, posinf=0.0, neginf=0.0)
    return xs, us


def guess_costs(task: Task, x0s: np.ndarray, params: np.ndarray, xs: np.ndarray, us: np.ndarray, bound: float,
                num_threads: int = 0) -> np.ndarray:
    """The objective along guesses ``(xs (N, T+1, nx), us (N, T, nu))``; a diverged guess is scored with its states
    clipped to ``bound`` (non-finite ones to the bound too) and its non-finite controls as zero, the control a
    diverged rollout is held with: large, finite, comparable."""
    return np.asarray(_core.trajectory_costs(task, x0s, params, *_held_guesses(xs, us, bound), num_threads),
                      dtype=np.float64)


def guess_violations(task: Task, x0s: np.ndarray, params: np.ndarray, xs: np.ndarray, us: np.ndarray, bound: float,
                     num_threads: int = 0) -> np.ndarray:
    """The largest path- or terminal-constraint violation along guesses ``(xs (N, T+1, nx), us (N, T, nu))``, as the
    solver measures primal infeasibility (``_core.constraint_violations``: the infinity norm of ``c - proj_C(c)`` in
    the constraints' own units, the dynamics left out): among the quadrotor's columns, the keep-out radius squared
    minus the squared horizontal distance to the nearest column it enters, or how far it leaves the height band.
    0 on a guess that keeps every constraint; a diverged guess is held as in :func:`guess_costs`."""
    return np.asarray(_core.constraint_violations(task, x0s, params, *_held_guesses(xs, us, bound), num_threads),
                      dtype=np.float64)


def refine_guesses(task: Task, x0s: np.ndarray, params: np.ndarray, ro: RolloutResult, options: SolverOptions,
                   bound: float) -> tuple[WarmStartResult, np.ndarray]:
    """Score the guesses ``ro`` (a policy's rollouts, or any guesses with their times, e.g. the nearest-neighbour
    baselines of :mod:`.baselines`) and refine those that stayed within ``bound``; what
    :func:`refine_rollouts` does after its rollout."""
    diverged = diverged_rollouts(ro.xs, bound)
    policy_cost = guess_costs(task, x0s, params, ro.xs, ro.us, bound, options.num_threads)
    ok = ~diverged
    reason = f"not refined: the rollout diverged (|x| > {bound:g} or non-finite)"
    t0 = time.perf_counter()
    if ok.all():
        warm = solve(task, x0s, params, ro.xs, ro.us, options)
    else:
        part = solve(task, x0s[ok], params[ok], ro.xs[ok], ro.us[ok], options)
        warm = _expand(part, ok, np.nan_to_num(ro.xs), np.nan_to_num(ro.us), params, reason)
    warm_wall = time.perf_counter() - t0
    result = WarmStartResult(rollout=ro, policy_cost=policy_cost, warm=warm, default=None,
                             rollout_wall_time=ro.wall_time, warm_wall_time=warm_wall, default_wall_time=0.0)
    return result, diverged
