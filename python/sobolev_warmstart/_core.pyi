"""Type stubs of the C++ extension sobolev_warmstart._core (cpp/bindings/)."""

from typing import Optional

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

class Task:
    """A family of optimal control problems (read-only, shared by all threads)."""

    @property
    def name(self) -> str: ...
    @property
    def variant(self) -> str: ...
    @property
    def nq(self) -> int: ...
    @property
    def nv(self) -> int: ...
    @property
    def nx(self) -> int: ...
    @property
    def ndx(self) -> int: ...
    @property
    def nu(self) -> int: ...
    @property
    def na(self) -> int: ...
    @property
    def no(self) -> int: ...
    @property
    def nz(self) -> int: ...
    @property
    def horizon(self) -> int: ...
    @property
    def dt(self) -> float: ...
    @property
    def action_space(self) -> str:
        """'torque' (a = u) or 'state' (a = g(q_{t+1}))."""
    @property
    def u_lower(self) -> Array: ...
    @property
    def u_upper(self) -> Array: ...
    @property
    def actuation(self) -> Array:
        """(nv, nu): generalised forces = actuation @ u."""
    def describe(self) -> str: ...
    def sample_instances(self, n: int, seed: int) -> tuple[Array, Array]:
        """(x0s (n, nx), params (n, nz))."""
    def check_instances(self, x0s: Array, params: Array) -> None: ...
    def default_initial_guess(self, x0: Array, params: Array) -> tuple[Array, Array]:
        """(xs (T+1, nx), us (T, nu))."""
    def step(self, xs: Array, us: Array) -> Array:
        """(N, nx), (N, nu) -> (N, nx): one step of the discrete dynamics per row."""
    def dynamics_jacobians(self, x: Array, u: Array) -> tuple[Array, Array]:
        """(A (ndx, ndx), B (ndx, nu)) in tangent coordinates."""
    def observation(self, x: Array) -> tuple[Array, Array]:
        """(o (no,), d o / d x (no, ndx))."""
    def action(self, u: Array, x_next: Array) -> Array:
        """The action variable (na,) of control u leading to x_next."""

def available_tasks() -> list[tuple[str, list[str]]]: ...
def make_task(name: str, variant: str, robots_dir: str) -> Task: ...
def solve_batch(
    task: Task,
    x0s: Array,
    params: Array,
    xs_init: Optional[Array] = None,
    us_init: Optional[Array] = None,
    tol: float = 1e-4,
    mu_init: float = 1e-3,
    max_iters: int = 500,
    num_threads: int = 0,
    refresh_gains: bool = True,
    dual_init: str = "adjoint",
    step_acceptance: str = "filter",
) -> dict:
    """Keys: xs, us, feedback_gains, cost, iterations, converged, primal_infeasibility,
    dual_infeasibility, solve_time, setup_time, errors."""

def chained_derivatives(task: Task, xs: Array, us: Array, feedback_gains: Array, horizon: int, num_threads: int = 0) -> dict:
    """Keys: state_jacobians, action_jacobians, actions, observations, observation_jacobians,
    closed_loop_jacobians."""

def inverse_dynamics(task: Task, xs: Array, num_threads: int = 0) -> tuple[Array, Array]:
    """(us (N, T, nu), residuals (N, T))."""
