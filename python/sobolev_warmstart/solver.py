"""Batch trajectory optimization with Aligator's ProxDDP, in C++ threads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from .tasks import Task


@dataclass(frozen=True)
class SolverOptions:
    """ProxDDP settings.

    tol: primal and dual feasibility tolerance. mu_init: initial augmented-Lagrangian penalty.
    max_iters: Newton iteration budget per instance; a solve that exhausts it is reported as not
    converged. num_threads: OpenMP threads across instances (0: all cores); results do not depend
    on it. refresh_gains: recompute the feedback gains by one backward pass at the returned solution
    (otherwise they are those of the last iteration's backward pass, one step earlier).
    dual_init: 'adjoint' starts the costates from the adjoint sweep of the initial guess and the
    control-bound multipliers from them when that makes the guess stationary in the controls to
    within 100 tol (so a guess that is already optimal is recognised at once, even with active
    bounds), and every multiplier from zero otherwise (costates swept through unstable dynamics
    from a merely good guess derail long-horizon solves); 'costates' keeps the swept costates
    whatever the guess (bound multipliers gated as for 'adjoint'); 'zero' always from zero
    (ProxDDP's default, which stalls on near-optimal guesses). step_acceptance: 'filter' (default: robust from
    near-optimal guesses) or 'linesearch' (Aligator's default nonmonotone merit linesearch, which
    can stall next to the optimum). stall_iters: with the filter, once the iterate is primal-feasible (<= tol) and its
    dual infeasibility, within 10 tol, has not halved in this many iterations, the merit linesearch takes over, and
    hands back to the filter for good at its first rejected or infeasible step; 0 (default) never switches. The filter
    can hover just above the dual tolerance at an optimum for hundreds of iterations (a UR5 reach from a rollout within
    4% of the optimal cost: 500 iterations without converging; 16 with stall_iters=10). Off by default: it lowers the
    UR5 refines' iterations and leaves the pendulum and 9 columns as they were, but on the pendubot at mu_init 1e-3 it
    loses refines (docs/results/ablations.md, round 37); :data:`VARIANT_SOLVER_SETTINGS` turns it on for the UR5s.
    """

    tol: float = 1e-4
    mu_init: float = 1e-3
    max_iters: int = 500
    num_threads: int = 0
    refresh_gains: bool = True
    dual_init: str = "adjoint"
    step_acceptance: str = "filter"
    stall_iters: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"tol: expected a tolerance > 0, got {self.tol!r}")
        if not (isinstance(self.mu_init, (int, float)) and self.mu_init > 0):
            raise ValueError(f"mu_init: expected a penalty > 0, got {self.mu_init!r}")
        if not (isinstance(self.max_iters, int) and self.max_iters >= 1):
            raise ValueError(f"max_iters: expected an integer >= 1, got {self.max_iters!r}")
        if not (isinstance(self.num_threads, int) and self.num_threads >= 0):
            raise ValueError(f"num_threads: expected an integer >= 0 (0: all cores), got {self.num_threads!r}")
        if self.dual_init not in ("adjoint", "costates", "zero"):
            raise ValueError(f"dual_init: expected 'adjoint', 'costates' or 'zero', got {self.dual_init!r}")
        if self.step_acceptance not in ("linesearch", "filter"):
            raise ValueError(f"step_acceptance: expected 'linesearch' or 'filter', got {self.step_acceptance!r}")
        if not (isinstance(self.stall_iters, int) and not isinstance(self.stall_iters, bool) and self.stall_iters >= 0):
            raise ValueError(f"stall_iters: expected an integer >= 0 (0: never switch), got {self.stall_iters!r}")

    @classmethod
    def for_task(cls, task: Task, **overrides) -> SolverOptions:
        """The settings measured best for ``task``'s variant (:data:`VARIANT_SOLVER_SETTINGS`, what the scorecard
        solves it with; the defaults elsewhere), with ``overrides`` (any field) on top:
        ``SolverOptions.for_task(sw.make_task("ur5", "fixed_start_random_target"), num_threads=1)``."""
        if not isinstance(task, Task):
            raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
        return cls(**{**VARIANT_SOLVER_SETTINGS.get(f"{task.name}/{task.variant}", {}), **overrides})


#: Solver settings per task variant (``"task/variant"``) where :class:`SolverOptions`' defaults are not TO alone's
#: best. On the pendubot ProxDDP's initial penalty 0.1 instead of 1e-3 lets the early iterates leave the dynamics more
#: freely: TO alone 118.8 -> 65.6 mean iterations and 28 -> 32 of 32 converged (held-out seed 1e6, where it was
#: chosen), 125.2 -> 81.8 and 59 -> 62 of 64 (seed 2e6), and every warm start gains too; on the other variants, 1e-4 to
#: 1 swept, 1e-3 is TO alone's best or within 9%, and larger penalties fail among the quadrotor's columns
#: (docs/results/ablations.md, round 23). On the UR5s the stall switch (``stall_iters=10``, round 37) ends the
#: filter's hovering above the dual tolerance: every method's refines 0.1-4.2 mean iterations shorter on the random
#: starts over three held-out sets of 256, two of ``ur5/fixed_start_random_target``'s Sob+Diff refines 500 -> 16 and
#: 82 on seed 1e6, and no refine lost to it; it stays off elsewhere (the pendubot loses refines with it, the pendulum
#: and the quadrotor barely move). The scorecard (every solve of the variant: collection, consolidation, refines), the
#: pendubot's loop presets and studies take them.
VARIANT_SOLVER_SETTINGS: dict[str, dict[str, float | int]] = {
    "double_pendulum/default": {"mu_init": 0.1},
    **{f"ur5/{v}": {"stall_iters": 10} for v in (
        "fixed_start_fixed_target", "fixed_start_random_target", "random_start_fixed_target",
        "random_start_random_target", "reference_random_start_random_target")},
}


@dataclass
class SolveResult:
    """Per-instance results of a batch solve (first axis: instance).

    xs: (N, T+1, nx) states; us: (N, T, nu) controls; feedback_gains: (N, T, nu, ndx), with
    u_t ~ us[t] + K_t (x (-) xs[t]); cost, primal/dual infeasibility, solve_time, setup_time [s]: (N,);
    iterations: (N,) int; converged: (N,) bool (False when the budget ran out or the solve raised,
    see errors); params: (N, nz) the task parameters solved for. lams (N, n_lams), vs (N, n_vs): the solver's
    multipliers at the returned iterate (costates of the initial condition and the dynamics, then of the path
    and terminal constraints, all stages concatenated; ``multiplier_sizes(task)``), which
    :func:`solve` can start another solve from (``lams_init``, ``vs_init``).
    """

    xs: np.ndarray
    us: np.ndarray
    feedback_gains: np.ndarray
    cost: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    primal_infeasibility: np.ndarray
    dual_infeasibility: np.ndarray
    solve_time: np.ndarray
    setup_time: np.ndarray
    errors: list[str]
    params: np.ndarray
    lams: np.ndarray
    vs: np.ndarray

    def __len__(self) -> int:
        return int(self.cost.shape[0])



def multiplier_sizes(task: Task) -> tuple[int, int]:
    """``(n_lams, n_vs)``: the sizes of one instance's multipliers in :class:`SolveResult` (``lams``, ``vs``)."""
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
    return tuple(_core.multiplier_sizes(task))


def instance_arrays(task: Task, x0s, params) -> tuple[np.ndarray, np.ndarray]:
    """``(x0s (N, nx), params (N, nz))`` as float64 arrays; ``params`` may be None when ``nz == 0``."""
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
    x0s = np.asarray(x0s, dtype=np.float64)
    if params is None:
        if task.nz != 0:
            raise ValueError(f"params: task {task.name} needs parameters of shape (N, {task.nz}), got None")
        params = np.zeros((x0s.shape[0] if x0s.ndim == 2 else 0, 0))
    return x0s, np.asarray(params, dtype=np.float64)


def solve(
    task: Task,
    x0s: np.ndarray,
    params: np.ndarray | None = None,
    xs_init: np.ndarray | None = None,
    us_init: np.ndarray | None = None,
    options: SolverOptions | None = None,
    lams_init: np.ndarray | None = None,
    vs_init: np.ndarray | None = None,
) -> SolveResult:
    """Solve N instances of ``task`` with ProxDDP, one solver per thread, the GIL released.

    x0s: (N, nx) initial states; params: (N, nz) task parameters (None when nz == 0);
    xs_init: (N, T+1, nx) and us_init: (N, T, nu) initial guesses, or None for the task's default
    guess (``task.describe()`` says which). lams_init (N, n_lams) and vs_init (N, n_vs): the multipliers to
    start from, both or neither (e.g. a neighbouring instance's ``SolveResult.lams``/``vs``); they replace
    ``options.dual_init``'s estimate.
    """
    x0s, params = instance_arrays(task, x0s, params)
    options = options or SolverOptions()
    out = _core.solve_batch(
        task, x0s, params, xs_init, us_init,
        tol=float(options.tol), mu_init=float(options.mu_init), max_iters=options.max_iters,
        num_threads=options.num_threads, refresh_gains=options.refresh_gains,
        dual_init=options.dual_init, step_acceptance=options.step_acceptance, stall_iters=options.stall_iters,
        lams_init=lams_init, vs_init=vs_init,
    )
    return SolveResult(params=params.copy(), **out)

