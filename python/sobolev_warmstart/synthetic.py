"""Synthetic solved trajectories with exact derivatives, for tests, benchmarks and examples without the core.

A double integrator ``q_{t+1} = q_t + dt v_t + dt² u_t``, ``v_{t+1} = v_t + dt u_t`` driven to a target
position ``z`` by the finite-horizon LQR controller ``u_t = K_t (x_t - (z, 0))``. Its feedback gains are
exact (and stationary: the terminal cost is the infinite-horizon cost-to-go, so the policy is a function of
the state and target alone), so the chained closed-loop derivatives follow in closed form (DESIGN.md):
``∂x_{t0+k}/∂x_{t0} = Φ_{t0+k-1} ... Φ_{t0}`` with ``Φ_t = A + B K_t`` and ``∂u_{t0+k}/∂x_{t0} = K_{t0+k} ∂x_{t0+k}/∂x_{t0}``.

Variants: ``action_space="state"`` uses the action variable ``a_t = (cos q_{t+1}, sin q_{t+1})`` (like the UR5
task); ``observation="angle"`` observes ``o = (cos q, sin q, v)`` instead of ``x``.
"""

from __future__ import annotations

import numpy as np

from .data import TaskInfo, TrajectoryData

__all__ = ["lqr_double_integrator"]


def _lqr_gains(A, B, Q, R, Qf, T):
    P = Qf
    K = np.zeros((T, B.shape[1], A.shape[0]))
    for t in reversed(range(T)):
        K[t] = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        Acl = A + B @ K[t]
        P = Q + K[t].T @ R @ K[t] + Acl.T @ P @ Acl
    return K


def _dare(A, B, Q, R, iters: int = 10_000, tol: float = 1e-12):
    P = Q.copy()
    for _ in range(iters):
        K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        Acl = A + B @ K
        Pn = Q + K.T @ R @ K + Acl.T @ P @ Acl
        if np.max(np.abs(Pn - P)) < tol * max(1.0, np.max(np.abs(P))):
            return Pn
        P = Pn
    return P


def lqr_double_integrator(num_instances: int = 16, horizon: int = 40, chunk_offsets: int = 16, *,
                          dt: float = 0.05, seed: int = 0, action_space: str = "torque",
                          observation: str = "identity", param_jacobians: bool = False) -> TrajectoryData:
    """``num_instances`` solved instances with random initial states in [-1, 1]² and targets in [-1, 1].

    ``chunk_offsets`` is the size of axis 2 of ``action_jacobians`` (the core's H). ``param_jacobians``: also the
    exact derivatives with respect to the target at a fixed current state (``action_param_jacobians``: with
    ``s_{t0} = 0``, ``s_{t+1} = Φ_t s_t - B K_t e``, ``∂u_t/∂z = K_t (s_t - e)``, ``e = (1, 0)``; the observations do
    not depend on the target)."""
    if action_space not in ("torque", "state"):
        raise ValueError(f"action_space: expected 'torque' or 'state', got {action_space!r}")
    if observation not in ("identity", "angle"):
        raise ValueError(f"observation: expected 'identity' or 'angle', got {observation!r}")
    rng = np.random.default_rng(seed)
    N, T, Hj = num_instances, horizon, chunk_offsets
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[dt * dt], [dt]])
    Q, R = np.diag([1.0, 0.1]) * dt, np.array([[0.01 * dt]])
    Qf = _dare(A, B, Q, R)  # terminal cost = cost-to-go of the infinite horizon: stationary gains
    K = _lqr_gains(A, B, Q, R, Qf, T)
    Phi = A[None] + B[None] @ K  # (T, 2, 2)

    x0 = rng.uniform(-1, 1, size=(N, 2))
    z = rng.uniform(-1, 1, size=(N, 1))
    ref = np.concatenate([z, np.zeros((N, 1))], axis=1)
    xs = np.zeros((N, T + 1, 2))
    us = np.zeros((N, T, 1))
    xs[:, 0] = x0
    for t in range(T):
        us[:, t] = (xs[:, t] - ref) @ K[t].T
        xs[:, t + 1] = xs[:, t] @ A.T + us[:, t] @ B.T

    # chained state derivatives S[t0, k] = ∂x_{min(t0+k, T)}/∂x_{t0}, k = 0..Hj
    S = np.zeros((T, Hj + 1, 2, 2))
    for t0 in range(T):
        M = np.eye(2)
        for k in range(Hj + 1):
            S[t0, k] = M
            if t0 + k < T:
                M = Phi[t0 + k] @ M
    tk = np.minimum(np.arange(T)[:, None] + np.arange(Hj)[None, :], T - 1)  # (T, Hj): action index
    kk = tk - np.arange(T)[:, None]  # offset actually used
    if action_space == "torque":
        actions = us.copy()
        du = K[tk] @ S[np.arange(T)[:, None], kk]  # (T, Hj, 1, 2), same for all instances
        action_jac = np.broadcast_to(du, (N, T, Hj, 1, 2)).copy()
        na = 1
    else:
        q1 = xs[:, 1:, 0]  # q_{t+1}
        actions = np.stack([np.cos(q1), np.sin(q1)], axis=-1)
        dx = S[np.arange(T)[:, None], kk + 1][..., 0, :]  # ∂q_{t+1}/∂x_{t0}: (T, Hj, 2)
        qa = q1[:, tk]  # (N, T, Hj)
        dg = np.stack([-np.sin(qa), np.cos(qa)], axis=-1)  # (N, T, Hj, 2)
        action_jac = dg[..., :, None] * dx[None, :, :, None, :]  # (N, T, Hj, 2, 2)
        na = 2
    extra = {}
    if param_jacobians:
        e = np.array([1.0, 0.0])
        Sz = np.zeros((T, Hj + 1, 2))  # ∂x_{min(t0+k, T)}/∂z at a fixed x_{t0}
        for t0 in range(T):
            sv = np.zeros(2)
            for k in range(Hj + 1):
                Sz[t0, k] = sv
                if t0 + k < T:
                    sv = Phi[t0 + k] @ sv - (B @ K[t0 + k] @ e)
        rows = np.arange(T)[:, None]
        if action_space == "torque":
            dz = np.einsum("tkud,tkd->tku", K[tk], Sz[rows, kk] - e)[..., None]  # (T, Hj, 1, 1)
            pjac = np.broadcast_to(dz, (N, T, Hj, 1, 1)).copy()
        else:
            pjac = dg[..., :, None] * Sz[rows, kk + 1][None, :, :, None, 0:1]  # (N, T, Hj, 2, 1)
        extra = {"action_param_jacobians": pjac}
    if observation == "identity":
        obs = xs.copy()
        obs_jac = np.broadcast_to(np.eye(2), (N, T + 1, 2, 2)).copy()
    else:
        q, v = xs[..., 0], xs[..., 1]
        obs = np.stack([np.cos(q), np.sin(q), v], axis=-1)
        obs_jac = np.zeros((N, T + 1, 3, 2))
        obs_jac[..., 0, 0] = -np.sin(q)
        obs_jac[..., 1, 0] = np.cos(q)
        obs_jac[..., 2, 1] = 1.0
    initial_actions = None
    if action_space == "state":
        initial_actions = np.stack([np.cos(x0[:, 0]), np.sin(x0[:, 0])], axis=-1)  # a_{-1} = g(q_0)
    task = TaskInfo(name=f"lqr_double_integrator_{action_space}_{observation}", nx=2, ndx=2, nu=1, na=na,
                    no=obs.shape[-1], nz=1, dt=dt, horizon=T, action_space=action_space)
    err = xs - ref[:, None]
    cost = (np.einsum("nti,ij,ntj->n", err[:, :T], Q, err[:, :T]) + np.einsum("nti,ij,ntj->n", us, R, us)
            + np.einsum("ni,ij,nj->n", err[:, T], Qf, err[:, T]))
    return TrajectoryData(task=task, xs=xs, us=us, observations=obs, observation_jacobians=obs_jac,
                          actions=actions, action_jacobians=action_jac, params=z,
                          converged=np.ones(N, dtype=bool), cost=cost,
                          feedback_gains=np.broadcast_to(K, (N, T, 1, 2)).copy(),
                          initial_actions=initial_actions, **extra,
                          observation_param_jacobians=np.zeros((*obs.shape, 1)) if param_jacobians else None)
