"""Chained closed-loop derivatives and inverse dynamics, computed in C++."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import _core
from .solver import SolveResult, SolverOptions, solve
from .tasks import Task


@dataclass
class ChainedDerivatives:
    """Sensitivities of a batch of solutions to the current state, for chunks of H steps.

    With Phi_t = A_t + B_t K_t (closed-loop Jacobian of the solver's feedback policy):
    state_jacobians[i, t0, k] = d x_{min(t0+k, T)} / d x_{t0}        (N, T, H, ndx, ndx)
    action_jacobians[i, t0, k] = d a_{min(t0+k, T-1)} / d x_{t0}     (N, T, H, na, ndx)
    (offsets past the end repeat the last index, like edge-padded chunks)
    actions: (N, T, na) the action variables (torques, or g(q_{t+1}) for state actions);
    observations: (N, T+1, no); observation_jacobians: (N, T+1, no, ndx) = d o(x_t) / d x_t;
    closed_loop_jacobians: (N, T, ndx, ndx) = Phi_t. All in tangent coordinates of the state.
    """

    state_jacobians: np.ndarray
    action_jacobians: np.ndarray
    actions: np.ndarray
    observations: np.ndarray
    observation_jacobians: np.ndarray
    closed_loop_jacobians: np.ndarray


def chained_derivatives(task: Task, result: SolveResult, horizon: int, num_threads: int = 0) -> ChainedDerivatives:
    """Chain the solver's feedback gains with the dynamics Jacobians along each solution."""
    if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool):
        raise TypeError(f"horizon: expected an integer chunk horizon, got {type(horizon).__name__}")
    out = _core.chained_derivatives(task, result.xs, result.us, result.feedback_gains, result.params, int(horizon),
                                    num_threads)
    return ChainedDerivatives(**out)


def inverse_dynamics(task: Task, xs: np.ndarray, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Controls that make the dynamics follow the configurations of ``xs`` (N, T+1, nx).

    Returns (us (N, T, nu), residuals (N, T)): u_t = argmin |A u - RNEA(q_t, v_t, a_t)| with
    v_{t+1} = (q_{t+1} (-) q_t)/dt and a_t = (v_{t+1} - v_t)/dt; the residual is 0 for a fully
    actuated robot and measures the unreachable part of the wrench for the quadrotor.
    """
    return _core.inverse_dynamics(task, np.asarray(xs, dtype=np.float64), num_threads)


#: The re-solves' settings over a task's own (:func:`parameter_jacobians`): a tolerance well below the step, a budget
#: for solves that start at the solution, no gains (only the trajectories are differenced).
RESOLVE_SETTINGS = {"tol": 1e-6, "max_iters": 200, "refresh_gains": False}


@dataclass
class ParameterJacobians:
    """Sensitivities of a batch of solutions to the task parameters ``z``, by central differences of re-solves.

    ``d·/dz`` is the total derivative along the family of solutions (each re-solve from the solution itself at
    ``z ± eps e_k``); the policy's partial derivative at a fixed current state ``x_{t0}`` follows by removing what
    the state's own change explains, with the closed-loop chunk derivative ``∂a/∂x_{t0}`` (``action_jacobians``):

        state_jacobians[i, t]              = d x*_t / dz                                        (N, T+1, ndx, nz)
        action_param_jacobians[i, t0, k]   = d a*_{t0+k}/dz - ∂a_{t0+k}/∂x_{t0} · d x*_{t0}/dz   (N, T, Hj, na, nz)
        observation_param_jacobians[i, t]  = ∂o(x*_t; z)/∂z at the fixed state                   (N, T+1, no, nz)

    (offsets past the end repeat the last action, as in ``action_jacobians``). ``converged (N,)``: every re-solve of
    the instance met the tolerance; ``iterations (N,)``: their total Newton iterations.
    """
    state_jacobians: np.ndarray
    action_param_jacobians: np.ndarray
    observation_param_jacobians: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


def parameter_jacobians(task: Task, xs: np.ndarray, us: np.ndarray, params: np.ndarray, feedback_gains: np.ndarray,
                        action_jacobians: np.ndarray, *, eps: float = 1e-3, options=None) -> ParameterJacobians:
    """Derivatives of solved trajectories ``xs (N, T+1, nx)``, ``us (N, T, nu)`` of instances ``params (N, nz)``
    with respect to the parameters (see :class:`ParameterJacobians`), from ``2 nz`` re-solves per instance at
    ``z ± eps e_k``, each warm-started from the solution. ``feedback_gains (N, T, nu, ndx)`` and
    ``action_jacobians (N, T, Hj, na, ndx)`` are the solutions' own (:func:`chained_derivatives`). ``options``: the
    re-solves' :class:`~sobolev_warmstart.solver.SolverOptions` (default: the task variant's penalty with
    :data:`RESOLVE_SETTINGS`, tolerance 1e-6 and 200 iterations): the differences divide the solver's error by ``2 eps``, so the tolerance must be well
    below ``eps`` (1e-6 against 1e-3 agrees with 1e-8 to about 1e-3 relative on the UR5's targets). Where the solution
    is not smooth in ``z`` at the scale of ``eps`` (the quadrotor's columns: which constraints are active changes) the
    differences are not derivatives; ``converged`` and ``iterations`` (a few per re-solve where they hold, ~100
    among columns) tell (docs/results/ablations.md, round 27)."""
    if task.nz == 0:
        raise ValueError(f"task: {task.name}/{task.variant} has no parameters (nz = 0): nothing to differentiate")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps: expected a finite step > 0, got {eps!r}")
    xs, us = np.asarray(xs, dtype=np.float64), np.asarray(us, dtype=np.float64)
    params, gains = np.asarray(params, dtype=np.float64), np.asarray(feedback_gains, dtype=np.float64)
    ajac = np.asarray(action_jacobians, dtype=np.float64)
    n, T, nz = xs.shape[0], task.horizon, task.nz
    shapes = {"xs": (xs, (n, T + 1, task.nx)), "us": (us, (n, T, task.nu)), "params": (params, (n, nz)),
              "feedback_gains": (gains, (n, T, task.nu, task.ndx))}
    for name, (a, shape) in shapes.items():
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if ajac.ndim != 5 or ajac.shape[:2] != (n, T) or ajac.shape[3:] != (task.na, task.ndx):
        raise ValueError(f"action_jacobians: expected shape ({n}, {T}, Hj, {task.na}, {task.ndx}), got {ajac.shape}")
    if options is None:
        options = SolverOptions.for_task(task, **RESOLVE_SETTINGS)
    elif not isinstance(options, SolverOptions):
        raise TypeError(f"options: expected a SolverOptions or None, got {type(options).__name__}")
    hj = ajac.shape[2]
    dx = np.zeros((n, T + 1, task.ndx, nz))
    da = np.zeros((n, T, task.na, nz))
    do = np.zeros((n, T + 1, task.no, nz))
    converged = np.ones(n, bool)
    iterations = np.zeros(n, int)
    for k in range(nz):
        step = np.zeros(nz)
        step[k] = eps
        ends = []
        for sign in (1.0, -1.0):
            res = solve(task, xs[:, 0], params + sign * step, xs, us, options)
            converged &= np.asarray(res.converged, bool)
            iterations += np.asarray(res.iterations, int)
            ends.append((res, chained_derivatives(task, res, 1), chained_derivatives(
                task, SolveResult(**{**vars(res), "xs": xs, "us": us, "feedback_gains": gains}), 1)))
        (plus, dplus, oplus), (minus, dminus, ominus) = ends
        flat = task.difference(minus.xs.reshape(-1, task.nx), plus.xs.reshape(-1, task.nx))
        dx[..., k] = flat.reshape(n, T + 1, task.ndx) / (2 * eps)
        da[..., k] = (dplus.actions - dminus.actions) / (2 * eps)
        do[..., k] = (oplus.observations - ominus.observations) / (2 * eps)
    idx = np.minimum(np.arange(T)[:, None] + np.arange(hj)[None, :], T - 1)  # (T, Hj)
    total = da[:, idx]  # (N, T, Hj, na, nz)
    explained = np.einsum("ntkad,ntdz->ntkaz", ajac, dx[:, :T])
    return ParameterJacobians(state_jacobians=dx, action_param_jacobians=total - explained,
                              observation_param_jacobians=do, converged=converged, iterations=iterations)


def with_parameter_jacobians(task: Task, data, *, eps: float = 1e-3, options=None):
    """``(data with its parameter Sobolev targets, the ParameterJacobians)``: :func:`parameter_jacobians` of a
    :class:`~sobolev_warmstart.data.TrajectoryData`'s solutions (which need their ``feedback_gains``), stored in its
    ``action_param_jacobians`` and ``observation_param_jacobians``."""
    if data.feedback_gains is None:
        raise ValueError("data: the parameter derivatives need the solutions' feedback_gains, got None")
    pj = parameter_jacobians(task, data.xs, data.us, data.params, data.feedback_gains, data.action_jacobians,
                             eps=eps, options=options)
    return dataclasses.replace(data, action_param_jacobians=pj.action_param_jacobians,
                               observation_param_jacobians=pj.observation_param_jacobians), pj
