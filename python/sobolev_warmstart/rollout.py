"""Policy rollouts (Algorithm 2 of the reference): the warm starts of the solver.

From the initial state, sample a chunk of ``H`` action variables (its first ``h`` entries the known history),
execute the next ``A`` through the task's dynamics (torques clamped to the bounds; state actions decoded to the
next configuration and turned into torques by inverse dynamics), replan, until the horizon ``T`` is covered.

Two implementations with one contract:

- :func:`rollout` with an exported policy file (``.safetensors`` native, ``.pt`` TorchScript or ``.pt2`` AOTInductor) or a
  :class:`PolicyRunner`: everything runs in C++ (no Python, GIL released); ``N`` instances advance in lockstep
  groups, one batched network call per replan and group, groups across OpenMP threads.
- :func:`rollout` with an eager :class:`~sobolev_warmstart.policy.DiffusionPolicy` / ``MLPPolicy``: the Python
  reference, batched over all instances in PyTorch, with the same physics step (``_core.execute_actions``).

Noise: instance ``i`` at replan ``r`` of a rollout seeded with ``seed`` draws from its own counter-based stream
(:func:`rollout_noise`), so a rollout is reproducible and does not depend on batching, threads or the backend.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import _core
from .data import time_to_go
from .policy import DiffusionPolicy, MLPPolicy
from .solver import instance_arrays
from .tasks import Task

__all__ = ["PolicyRunner", "RolloutResult", "load_policy_runner", "rollout", "rollout_noise", "num_replans"]

#: A policy exported for C++ (``sobolev_warmstart.export_native`` / ``export_torchscript`` / ``export_aoti``), loaded once.
PolicyRunner = _core.PolicyRunner


@dataclass
class RolloutResult:
    """Per-instance rollouts (first axis: instance).

    xs (N, T+1, nx), us (N, T, nu), actions (N, T, na): the realised action variables; time (N,): seconds per
    instance (the lockstep group's wall time shared among its instances); policy_time (N,): the part spent in
    network calls; errors: per instance, empty or why the rollout stopped (a non-finite state: it is held from
    there with zero control). num_replans: policy calls per instance; action_steps: A used; wall_time: the
    whole batch [s]; policy_calls and policy_call_time: batched calls made and their summed time [s].
    """

    xs: np.ndarray
    us: np.ndarray
    actions: np.ndarray
    time: np.ndarray
    policy_time: np.ndarray
    errors: list[str]
    num_replans: int
    action_steps: int
    wall_time: float
    policy_calls: int
    policy_call_time: float
    backend: str = "cpp"

    def __len__(self) -> int:
        return int(self.xs.shape[0])

    @property
    def replan_latency(self) -> float:
        """Mean seconds per batched policy call."""
        return self.policy_call_time / max(1, self.policy_calls)


def load_policy_runner(path: str | os.PathLike, num_runners: int = 0) -> PolicyRunner:
    """Load an exported policy into the C++ runner (``.safetensors``: native Eigen forward, ``.pt``: TorchScript,
    ``.pt2``: AOTInductor)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"policy_path: expected a path to a .safetensors, .pt or .pt2 file, got {type(path).__name__}")
    return PolicyRunner(str(path), num_runners)


def num_replans(horizon: int, action_steps: int, kind: str = "diffusion") -> int:
    """Policy calls per instance to cover ``horizon`` steps executing ``action_steps`` per call."""
    return horizon if kind == "mlp" else -(-horizon // action_steps)


def rollout_noise(seed: int, n: int, replans: int, num_steps: int, horizon: int, na: int,
                  instances=None) -> np.ndarray:
    """The standard normal draws of a seeded rollout: ``(n, replans, K, H, na)`` float32.

    ``instances`` (default ``0..n-1``) are the instance indices whose streams are drawn.
    """
    ids = np.arange(n) if instances is None else np.asarray(instances, dtype=np.int64).reshape(-1)
    count = num_steps * horizon * na
    draws = _core.rollout_noise(int(seed), [int(i) for i in ids], int(replans), int(count))
    return draws.reshape(len(ids), replans, num_steps, horizon, na)


def _instances(task: Task, x0s, params) -> tuple[np.ndarray, np.ndarray]:
    x0s, params = instance_arrays(task, x0s, params)
    task.check_instances(x0s, params)
    return x0s, params


def _check_action_steps(action_steps) -> int:
    if action_steps is None:
        return 0
    if not isinstance(action_steps, (int, np.integer)) or isinstance(action_steps, bool) or action_steps < 1:
        raise ValueError(f"action_steps: expected a positive integer (or None for the policy's own), got {action_steps!r}")
    return int(action_steps)


def as_runner(policy) -> PolicyRunner | None:
    """The C++ runner for a path or runner; None for an eager policy; TypeError otherwise."""
    if isinstance(policy, PolicyRunner):
        return policy
    if isinstance(policy, (str, os.PathLike)):
        return load_policy_runner(policy)
    if isinstance(policy, (DiffusionPolicy, MLPPolicy)):
        return None
    raise TypeError("policy: expected a path to an exported .safetensors/.pt/.pt2 file, a PolicyRunner, or a DiffusionPolicy/"
                    f"MLPPolicy, got {type(policy).__name__}")


def rollout(task: Task, x0s, params, policy, *, action_steps: int | None = None, seed: int = 0,
            noise: np.ndarray | None = None, batch_size: int = 0, num_threads: int = 0) -> RolloutResult:
    """Roll out ``policy`` from each instance ``(x0s (N, nx), params (N, nz))``.

    policy: an exported file or :class:`PolicyRunner` (C++ path), or an eager ``DiffusionPolicy`` /
    ``MLPPolicy`` (Python reference). action_steps: A, executed actions per replan (None: the policy's own;
    at most H - h). seed: noise seed. noise: optional ``(N, R, K, H, na)`` draws replacing the seeded ones.
    batch_size: lockstep group size of the C++ path (0: split evenly over the threads; 1: sequential batch-1
    rollouts). num_threads: OpenMP threads (0: all).
    """
    x0s, params = _instances(task, x0s, params)
    steps = _check_action_steps(action_steps)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    runner = as_runner(policy)
    if runner is not None:
        noise_arr = None if noise is None else np.ascontiguousarray(noise, dtype=np.float32)
        out = _core.rollout(task, runner, x0s, params, action_steps=steps, seed=int(seed), batch_size=int(batch_size),
                            num_threads=int(num_threads), noise=noise_arr)
        return RolloutResult(**out, backend=f"cpp/{runner.backend}")
    return _rollout_eager(task, policy, x0s, params, steps, int(seed), noise)


@torch.no_grad()
def _rollout_eager(task: Task, policy, x0s: np.ndarray, params: np.ndarray, action_steps: int, seed: int,
                   noise) -> RolloutResult:
    """The Python reference: the eager network batched over all instances, the C++ physics step."""
    if policy.task.name != task.name:
        raise ValueError(f"policy: trained for task {policy.task.name!r}, got task {task.name!r}")
    for key in ("nx", "nu", "na", "no", "nz", "horizon"):
        if getattr(policy.task, key) != getattr(task, key):
            raise ValueError(f"policy: trained for {key} = {getattr(policy.task, key)}, task has {getattr(task, key)}")
    policy = policy.eval()
    n, T = x0s.shape[0], task.horizon
    start = time.perf_counter()
    xs = np.zeros((n, T + 1, task.nx))
    us = np.zeros((n, T, task.nu))
    actions = np.zeros((n, T, task.na))
    obs = np.zeros((n, T + 1, task.no))
    xs[:, 0] = x0s
    obs[:, 0] = [task.observation(x, z)[0] for x, z in zip(x0s, params)]
    first = _core.initial_actions(task, x0s)
    z_task = torch.as_tensor(params, dtype=torch.float32)

    def z_at(t: int) -> torch.Tensor:  # the policy's params at step t: z, then the time to go if it reads it
        if not policy.spec.time_to_go:
            return z_task
        return torch.cat([z_task, torch.full((n, 1), float(time_to_go(t, T)))], dim=1)

    call_time, calls = 0.0, 0

    alive = np.ones(n, dtype=bool)
    hold_u = np.clip(np.zeros(task.nu), task.u_lower, task.u_upper)

    def execute(t: int, a: np.ndarray) -> None:
        # as in C++: an instance whose action or state turns non-finite or beyond 1e6 is held there
        a = np.asarray(a, dtype=np.float64)
        alive[:] &= np.isfinite(a).all(axis=1)
        xs[~alive, t + 1], us[~alive, t] = xs[~alive, t], hold_u
        actions[~alive, t] = actions[~alive, t - 1] if t > 0 else first[~alive]
        if alive.any():
            u, x_next, a_real = _core.execute_actions(task, xs[alive, t], a[alive])
            ok = np.isfinite(x_next).all(axis=1) & (np.abs(x_next).max(axis=1) <= 1e6)
            idx = np.flatnonzero(alive)
            us[idx[ok], t], xs[idx[ok], t + 1], actions[idx[ok], t] = u[ok], x_next[ok], a_real[ok]
            bad = idx[~ok]
            xs[bad, t + 1], us[bad, t] = xs[bad, t], hold_u
            actions[bad, t] = actions[bad, t - 1] if t > 0 else first[bad]
            alive[bad] = False
        obs[:, t + 1] = [task.observation(x, z)[0] for x, z in zip(xs[:, t + 1], params)]

    if policy.kind == "mlp":
        if action_steps not in (0, 1):
            raise ValueError(f"action_steps: a direct (mlp) policy executes one action per call, got {action_steps}")
        if noise is not None:
            raise ValueError("noise: a direct (mlp) policy takes no noise")
        A, R = 1, T
        for t in range(T):
            c0 = time.perf_counter()
            a = policy(torch.as_tensor(obs[:, t], dtype=torch.float32), z_at(t)).double().numpy()
            call_time += time.perf_counter() - c0
            calls += 1
            execute(t, a)
    else:
        H, h, K = policy.horizon, policy.history_steps, policy.num_steps
        A = action_steps or policy.spec.action_steps
        if h + A > H:
            raise ValueError(f"action_steps: expected 1..{H - h} (chunk horizon {H} minus history {h}), got {A}")
        R = num_replans(T, A)
        if noise is None:
            noise = rollout_noise(seed, n, R, K, H, task.na)
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != (n, R, K, H, task.na):
            raise ValueError(f"noise: expected shape {(n, R, K, H, task.na)}, got {noise.shape}")
        for r, t0 in enumerate(range(0, T, A)):
            o_hist = obs[:, np.maximum(0, np.arange(t0 - h + 1, t0 + 1))]
            ta = np.arange(t0 - h, t0)
            a_hist = np.where((ta < 0)[None, :, None], first[:, None, :], actions[:, np.maximum(ta, 0)])
            c0 = time.perf_counter()
            chunk = policy(torch.as_tensor(o_hist, dtype=torch.float32), z_at(t0),
                           torch.as_tensor(a_hist, dtype=torch.float32),
                           torch.as_tensor(noise[:, r]).transpose(0, 1).contiguous()).double().numpy()
            call_time += time.perf_counter() - c0
            calls += 1
            for j in range(A):
                if t0 + j >= T:
                    break
                execute(t0 + j, chunk[:, h + j])
    wall = time.perf_counter() - start
    errors = ["" if alive[i] else "rollout diverged (non-finite action or state, or |x| > 1e6); the state is "
              "held from there with zero control" for i in range(n)]
    return RolloutResult(xs=xs, us=us, actions=actions, time=np.full(n, wall / max(n, 1)),
                         policy_time=np.full(n, call_time / max(n, 1)), errors=errors, num_replans=R,
                         action_steps=A, wall_time=wall, policy_calls=calls, policy_call_time=call_time,
                         backend="python/eager")
