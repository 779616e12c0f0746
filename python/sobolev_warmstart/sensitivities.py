"""Chained closed-loop derivatives and inverse dynamics, computed in C++."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from .solver import SolveResult
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
