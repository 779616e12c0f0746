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
    def difference(self, x0s: Array, x1s: Array) -> Array:
        """x1 (-) x0 per row: (N, nx), (N, nx) -> (N, ndx)."""
    def dynamics_jacobians(self, x: Array, u: Array) -> tuple[Array, Array]:
        """(A (ndx, ndx), B (ndx, nu)) in tangent coordinates."""
    def observation(self, x: Array, params: Array) -> tuple[Array, Array]:
        """(o (no,), d o / d x (no, ndx)) of state x in the instance with task parameters params (nz,)."""
    def action(self, u: Array, x_next: Array) -> Array:
        """The action variable (na,) of control u leading to x_next."""
    def action_state_jacobians(self, xs_next: Array) -> Array:
        """d a / d x_{t+1} at a fixed control: (N, nx) -> (N, na, ndx); zero for torque actions."""

def available_tasks() -> list[tuple[str, list[str]]]: ...
def make_task(name: str, variant: str, robots_dir: str, horizon: int = 0) -> Task: ...
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
    lams_init: Optional[Array] = None,
    vs_init: Optional[Array] = None,
) -> dict:
    """Keys: xs, us, feedback_gains, cost, iterations, converged, primal_infeasibility,
    dual_infeasibility, solve_time, setup_time, errors, lams (n, n_lams), vs (n, n_vs)."""

def multiplier_sizes(task: Task) -> tuple[int, int]:
    """(n_lams, n_vs): the sizes of one instance's multipliers in solve_batch's lams and vs."""

def chained_derivatives(
    task: Task, xs: Array, us: Array, feedback_gains: Array, params: Array, horizon: int, num_threads: int = 0
) -> dict:
    """Keys: state_jacobians, action_jacobians, actions, observations, observation_jacobians,
    closed_loop_jacobians."""

def inverse_dynamics(task: Task, xs: Array, num_threads: int = 0) -> tuple[Array, Array]:
    """(us (N, T, nu), residuals (N, T))."""

class Lookup:
    """A nearest-neighbour lookup loaded in C++ from the file NearestNeighbourLookup.export writes."""
    def __init__(self, path: str) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def task_name(self) -> str: ...
    @property
    def task_variant(self) -> str: ...
    def check_task(self, task: Task) -> None: ...
    def nearest(self, task: Task, x0s: Array, params: Array) -> Array:
        """(n,) int64: each instance's nearest training instance."""
    def fallback(self, task: Task, x0s: Array, params: Array, cost_ratio: float) -> tuple[Array, Array, Array]:
        """(xs (n, T+1, nx), us (n, T, nu), cost_bound (n,)), as LookupFallback.plan gives them."""
    def calibrate(self, task: Task, runner: PolicyRunner, factor: float = 3.0, max_ratio: float = 100.0,
                  instances: int = 64, seed: int = 5000001, action_steps: int = 0, divergence_bound: float = 1e3,
                  num_threads: int = 0) -> tuple[float, float]:
        """(cost_ratio, median_ratio), as LookupFallback.calibrated computes them."""

class PolicyRunner:
    """An exported policy (.safetensors native, .pt TorchScript or .pt2 AOTInductor) loaded in C++; thread-safe."""
    def __init__(self, path: str, num_runners: int = 0) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def task_name(self) -> str: ...
    @property
    def horizon(self) -> int: ...
    @property
    def history(self) -> int: ...
    @property
    def action_steps(self) -> int: ...
    @property
    def num_steps(self) -> int: ...
    @property
    def time_to_go(self) -> bool:
        """Whether the last column of params is the time to go (T - t0) / T."""
    @property
    def param_dim(self) -> int:
        """Columns of params: the task's nz, plus one with time_to_go."""
    @property
    def metadata_json(self) -> str: ...
    def check_task(self, task: Task) -> None: ...
    def sample_chunks(self, obs_history: Array, params: Array, history_actions: Array, noise: Array) -> Array:
        """float32 (B, h, no), (B, param_dim), (B, h, na), (K, B, H, na) -> chunks (B, H, na)."""
    def act(self, obs: Array, params: Array) -> Array:
        """float32 (B, no), (B, param_dim) -> actions (B, na)."""

def trajectory_costs(task: Task, x0s: Array, params: Array, xs: Array, us: Array, num_threads: int = 0) -> Array:
    """Objective of each instance at (xs, us), constraints not included: (n,)."""

def constraint_violations(task: Task, x0s: Array, params: Array, xs: Array, us: Array, num_threads: int = 0) -> Array:
    """Largest path- or terminal-constraint violation of each instance at (xs, us), as the solver measures primal
    infeasibility (inf-norm of c - proj_C(c), in the constraints' units; the dynamics not included): (n,)."""

def rollout_noise(seed: int, instances: list[int], num_replans: int, count: int) -> Array:
    """float32 (n, num_replans, count): the draws of a seeded rollout, count = K*H*na."""

def execute_actions(task: Task, xs: Array, actions: Array) -> tuple[Array, Array, Array]:
    """(us (N, nu), xs_next (N, nx), realised actions (N, na)): one rollout step per row."""

def initial_actions(task: Task, x0s: Array) -> Array:
    """(N, na): the action variable before t = 0."""

def rollout(
    task: Task,
    runner: PolicyRunner,
    x0s: Array,
    params: Array,
    action_steps: int = 0,
    seed: int = 0,
    batch_size: int = 0,
    num_threads: int = 0,
    noise: Optional[Array] = None,
) -> dict:
    """Keys: xs, us, actions, time, policy_time, errors, num_replans, action_steps, wall_time,
    policy_calls, policy_call_time."""

def warm_start(
    task: Task,
    runner: PolicyRunner,
    x0s: Array,
    params: Array,
    action_steps: int = 0,
    seed: int = 0,
    batch_size: int = 0,
    solve_from_default: bool = True,
    tol: float = 1e-4,
    mu_init: float = 1e-3,
    max_iters: int = 500,
    num_threads: int = 0,
    refresh_gains: bool = True,
    dual_init: str = "adjoint",
    step_acceptance: str = "filter",
) -> dict:
    """Keys: rollout (dict as rollout()), policy_cost, warm, default (dicts as solve_batch, or None),
    rollout_wall_time, warm_wall_time, default_wall_time."""
