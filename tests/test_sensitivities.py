"""Chained derivatives against finite differences of the closed-loop rollout, observation and
action Jacobians, dynamics Jacobians, and inverse dynamics checked with pinocchio."""

import numpy as np
import pinocchio as pin
import pytest

import sobolev_warmstart as sw

from conftest import pinocchio_model, tangent_difference, tangent_perturb

H = 6
EPS = 1e-6


def closed_loop_rollout(task, model, xs_star, us_star, K, t0, x_start, steps):
    """x_{t+1} = f(x_t, u*_t + K_t (x_t (-) x*_t)) from x_{t0} = x_start; returns states and actions."""
    xs, us = [x_start], []
    x = x_start
    for t in range(t0, min(t0 + steps, task.horizon)):
        u = us_star[t] + K[t] @ tangent_difference(model, xs_star[t], x)
        x = task.step(x[None], u[None])[0]
        xs.append(x)
        us.append(u)
    return xs, us


@pytest.mark.parametrize("name,variant", [("pendulum", "default"), ("double_pendulum", "default"),
                                          ("ur5", "random_start_random_target"), ("quadrotor", "columns_3"),
                                          ("double_pendulum", "reference"),
                                          ("ur5", "reference_random_start_random_target"),
                                          ("quadrotor", "reference_columns_1")])
def test_chained_derivatives_match_finite_differences_of_the_closed_loop(solved, name, variant):
    task, x0s, params, r = solved(name, variant)
    model = pinocchio_model(task)
    d = sw.chained_derivatives(task, r, horizon=H)
    T, ndx, na = task.horizon, task.ndx, task.na
    assert d.state_jacobians.shape == (len(r), T, H, ndx, ndx)
    assert d.action_jacobians.shape == (len(r), T, H, na, ndx)
    i = int(np.flatnonzero(r.converged)[0])
    K = r.feedback_gains[i]
    for t0 in [0, T // 2, T - 3]:
        fd_states = np.zeros((H, ndx, ndx))
        fd_actions = np.zeros((H, na, ndx))
        for j in range(ndx):
            e = np.zeros(ndx)
            e[j] = EPS
            plus = closed_loop_rollout(task, model, r.xs[i], r.us[i], K, t0, tangent_perturb(model, r.xs[i, t0], e), H)
            minus = closed_loop_rollout(task, model, r.xs[i], r.us[i], K, t0, tangent_perturb(model, r.xs[i, t0], -e), H)
            for k in range(H):
                s = min(k, len(plus[0]) - 1)  # past the end: the last state repeats
                fd_states[k, :, j] = tangent_difference(model, minus[0][s], plus[0][s]) / (2 * EPS)
                m = min(k, len(plus[1]) - 1)
                if task.action_space == "torque":
                    fd_actions[k, :, j] = (plus[1][m] - minus[1][m]) / (2 * EPS)
                else:  # a_t = g(q_{t+1})
                    a_p = task.action(plus[1][m], plus[0][m + 1])
                    a_m = task.action(minus[1][m], minus[0][m + 1])
                    fd_actions[k, :, j] = (a_p - a_m) / (2 * EPS)
        scale_x = max(1.0, np.abs(fd_states).max())
        scale_a = max(1.0, np.abs(fd_actions).max())
        np.testing.assert_allclose(d.state_jacobians[i, t0], fd_states, atol=1e-5 * scale_x)
        np.testing.assert_allclose(d.action_jacobians[i, t0], fd_actions, atol=1e-5 * scale_a)
    # Offset 0: identity for states; K_t0 for torque actions.
    np.testing.assert_allclose(d.state_jacobians[i, :, 0], np.broadcast_to(np.eye(ndx), (T, ndx, ndx)))
    if task.action_space == "torque":
        np.testing.assert_allclose(d.action_jacobians[i, :, 0], K)
        np.testing.assert_allclose(d.actions[i], r.us[i])


@pytest.mark.parametrize("name,variant", [("ur5", "fixed_start_random_target"), ("quadrotor", "columns_1")])
def test_dynamics_jacobians_and_closed_loop_match_finite_differences(solved, name, variant):
    task, x0s, params, r = solved(name, variant)
    model = pinocchio_model(task)
    x, u = r.xs[0, 7], r.us[0, 7]
    A, B = task.dynamics_jacobians(x, u)
    fx = task.step(x[None], u[None])[0]
    for j in range(task.ndx):
        e = np.zeros(task.ndx)
        e[j] = EPS
        xp = task.step(tangent_perturb(model, x, e)[None], u[None])[0]
        xm = task.step(tangent_perturb(model, x, -e)[None], u[None])[0]
        np.testing.assert_allclose(A[:, j], tangent_difference(model, xm, xp) / (2 * EPS), atol=1e-5 * max(1, np.abs(A).max()))
    for j in range(task.nu):
        e = np.zeros(task.nu)
        e[j] = EPS
        xp = task.step(x[None], (u + e)[None])[0]
        xm = task.step(x[None], (u - e)[None])[0]
        np.testing.assert_allclose(B[:, j], tangent_difference(model, xm, xp) / (2 * EPS), atol=1e-5 * max(1, np.abs(B).max()))
    d = sw.chained_derivatives(task, r, horizon=2)
    np.testing.assert_allclose(d.closed_loop_jacobians[0, 7], A + B @ r.feedback_gains[0, 7], atol=1e-12)
    assert np.allclose(tangent_difference(model, fx, r.xs[0, 8]), 0.0, atol=1e-4)


def test_observation_jacobian_on_the_quadrotor_manifold(solved):
    """(p, R e_x, R e_y, v) and its Jacobian against central differences on SE(3), at several states of several
    instances; the C++ chained derivatives store the same."""
    task, x0s, params, r = solved("quadrotor", "columns_3")
    assert task.no == 15
    model = pinocchio_model(task)
    d = sw.chained_derivatives(task, r, horizon=2)
    for i, t in [(0, 20), (1, 5), (2, 40)]:
        x, z = r.xs[i, t], params[i]
        o, J = task.observation(x, z)
        R = pin.Quaternion(x[6], x[3], x[4], x[5]).toRotationMatrix()
        np.testing.assert_allclose(o, np.concatenate([x[:3], R[:, 0], R[:, 1], x[7:]]), atol=1e-12)
        for j in range(task.ndx):
            e = np.zeros(task.ndx)
            e[j] = EPS
            fd = (task.observation(tangent_perturb(model, x, e), z)[0]
                  - task.observation(tangent_perturb(model, x, -e), z)[0]) / (2 * EPS)
            np.testing.assert_allclose(J[:, j], fd, atol=1e-6)
        np.testing.assert_allclose(d.observations[i, t], o)
        np.testing.assert_allclose(d.observation_jacobians[i, t], J)
    with pytest.raises(ValueError, match=r"params: expected shape"):
        task.observation(r.xs[0, 0], params[0, :3])


@pytest.mark.parametrize("name,variant", [("ur5", "random_start_random_target"), ("quadrotor", "columns_3"),
                                          ("pendulum", "default")])
def test_action_state_jacobians_match_finite_differences(solved, name, variant):
    """d a / d x_{t+1} at a fixed control (what a chunk relative to the last known action subtracts from its
    derivative targets): central differences on the state manifold for the state actions, zero for torques."""
    task, x0s, params, r = solved(name, variant)
    model = pinocchio_model(task)
    xs = r.xs[:3, [1, 17, 30]].reshape(-1, task.nx)
    J = task.action_state_jacobians(xs)
    assert J.shape == (len(xs), task.na, task.ndx)
    u = np.zeros(task.nu)
    if task.action_space == "torque":
        np.testing.assert_array_equal(J, 0.0)
        return
    for k, x in enumerate(xs):
        for j in range(task.ndx):
            e = np.zeros(task.ndx)
            e[j] = EPS
            fd = (task.action(u, tangent_perturb(model, x, e)) - task.action(u, tangent_perturb(model, x, -e))) / (2 * EPS)
            np.testing.assert_allclose(J[k, :, j], fd, atol=1e-6)
    with pytest.raises(ValueError, match=r"xs_next: expected shape \(N, %d\)" % task.nx):
        task.action_state_jacobians(xs[:, :-1])


def test_ur5_observes_its_end_effector_offset_to_the_target(solved):
    """o = (q, v, e = p_ee(q) - p*, J(q)^T e, J(q) v) against pinocchio's own kinematics, its Jacobian against central
    differences, and the C++ chained derivatives store the same; the offset moves with the target."""
    task, x0s, params, r = solved("ur5", "random_start_random_target")
    assert task.no == 24
    model = pinocchio_model(task)
    data = model.createData()
    frame = model.getFrameId("tool0")
    d = sw.chained_derivatives(task, r, horizon=2)
    for i, t in [(0, 0), (1, 17), (2, 35)]:
        x, z = r.xs[i, t], params[i]
        jac = pin.computeFrameJacobian(model, data, x[:6], frame, pin.LOCAL_WORLD_ALIGNED)[:3]
        e = data.oMf[frame].translation - z
        o, J = task.observation(x, z)
        np.testing.assert_allclose(o, np.concatenate([x, e, jac.T @ e, jac @ x[6:]]), atol=1e-12)
        for j in range(task.ndx):
            e = np.zeros(task.ndx)
            e[j] = EPS
            fd = (task.observation(x + e, z)[0] - task.observation(x - e, z)[0]) / (2 * EPS)
            np.testing.assert_allclose(J[:, j], fd, atol=1e-6)
        np.testing.assert_allclose(d.observations[i, t], o)
        np.testing.assert_allclose(d.observation_jacobians[i, t], J)
        o2, J2 = task.observation(x, z + 0.1)
        np.testing.assert_allclose(o2[12:15], o[12:15] - 0.1, atol=1e-12)
        np.testing.assert_allclose(J2[:15], J[:15])


def test_ur5_observations_do_not_depend_on_which_task_or_thread_computed_them_before(solved):
    """The observation reuses a per-thread kinematics workspace: calls interleaved across two UR5 tasks (another
    model's workspace in between), a task built after others were destroyed, and the chained derivatives'
    observations in 2 threads all equal a fresh task's serial ones."""
    task, x0s, params, r = solved("ur5", "random_start_random_target")
    other = sw.make_task("ur5", "reference_random_start_random_target")
    states = [(r.xs[i, t], params[i]) for i in range(len(params)) for t in (0, 11, 29)]
    serial = [task.observation(x, z) for x, z in states]  # (o, do/dx): both use the workspace
    for (x, z), (o, J) in zip(states, serial):
        other.observation(x[::-1].copy(), z + 0.3)
        o2, J2 = task.observation(x, z)
        np.testing.assert_array_equal(o2, o)
        np.testing.assert_array_equal(J2, J)
    for _ in range(3):
        sw.make_task("ur5", "fixed_start_random_target").observation(r.xs[0, 0], params[0])
    fresh = sw.make_task("ur5", "random_start_random_target")
    for (x, z), (o, J) in zip(states, serial):
        o2, J2 = fresh.observation(x, z)
        np.testing.assert_array_equal(o2, o)
        np.testing.assert_array_equal(J2, J)
    one, two = (sw.chained_derivatives(task, r, horizon=2, num_threads=n) for n in (1, 2))
    np.testing.assert_array_equal(two.observations, one.observations)
    np.testing.assert_array_equal(two.observation_jacobians, one.observation_jacobians)


def test_state_actions_of_the_ur5_are_cos_sin_and_velocity_of_the_next_state(solved):
    task, x0s, params, r = solved("ur5", "random_start_random_target")
    assert task.action_space == "state" and task.na == 18
    d = sw.chained_derivatives(task, r, horizon=3)
    q_next, v_next = r.xs[:, 1:, :6], r.xs[:, 1:, 6:]
    np.testing.assert_allclose(d.actions, np.concatenate([np.cos(q_next), np.sin(q_next), v_next], axis=-1),
                               atol=1e-14)


def test_ur5_state_actions_are_executed_through_their_velocity(solved):
    """The solver's own actions reproduce its trajectory; the (cos, sin) part is not used to decode."""
    task, x0s, params, r = solved("ur5", "random_start_random_target")
    d = sw.chained_derivatives(task, r, horizon=1)
    a = d.actions[:, 5].copy()
    u, x_next, realised = sw._core.execute_actions(task, r.xs[:, 5], a)
    np.testing.assert_allclose(x_next, r.xs[:, 6], atol=1e-8)
    np.testing.assert_allclose(u, r.us[:, 5], atol=1e-6 * max(1.0, np.abs(r.us).max()))
    np.testing.assert_allclose(realised, a, atol=1e-8)
    a[:, :12] = 0.0  # a corrupted configuration part changes nothing
    np.testing.assert_allclose(sw._core.execute_actions(task, r.xs[:, 5], a)[1], r.xs[:, 6], atol=1e-8)


def test_quadrotor_state_actions_are_the_next_state_features_executed_through_the_velocity(solved):
    """The reference's state control on SE(3): a = (p, R e_x, R e_y, v) of the next state; the solver's own
    actions give back its thrusts and its trajectory, and only the velocity part is decoded."""
    task, x0s, params, r = solved("quadrotor", "columns_3")
    assert task.action_space == "state" and task.na == 15
    d = sw.chained_derivatives(task, r, horizon=1)
    for t in (0, 17, task.horizon - 1):
        np.testing.assert_allclose(d.actions[:, t], d.observations[:, t + 1], atol=1e-14)
        a = d.actions[:, t].copy()
        u, x_next, realised = sw._core.execute_actions(task, r.xs[:, t], a)
        # 1e-6: the solver's states meet the dynamics to its tolerance (6e-8 measured on these instances).
        np.testing.assert_allclose(x_next, r.xs[:, t + 1], atol=1e-6)
        np.testing.assert_allclose(u, r.us[:, t], atol=1e-6 * max(1.0, np.abs(r.us).max()))
        np.testing.assert_allclose(realised, a, atol=1e-6)
        a[:, :9] = 0.0  # a corrupted pose part changes nothing
        np.testing.assert_allclose(sw._core.execute_actions(task, r.xs[:, t], a)[1], r.xs[:, t + 1], atol=1e-6)


@pytest.mark.parametrize("name,variant", [("pendulum", "default"), ("ur5", "random_start_random_target"),
                                          ("quadrotor", "columns_3")])
def test_inverse_dynamics_recovers_the_controls(solved, name, variant):
    """States from an exact rollout of the solver's controls give back those controls."""
    task, x0s, params, r = solved(name, variant)
    xs = [r.xs[:, 0]]
    for t in range(task.horizon):
        xs.append(np.stack([task.step(xs[-1][i : i + 1], r.us[i, t : t + 1])[0] for i in range(len(r))]))
    xs = np.stack(xs, axis=1)
    us, residuals = sw.inverse_dynamics(task, xs)
    np.testing.assert_allclose(us, r.us, atol=1e-6 * max(1.0, np.abs(r.us).max()))
    assert residuals.max() < 1e-6
    # Independent RNEA with pinocchio's Python bindings for one step.
    model = pinocchio_model(task)
    data = model.createData()
    q, v, q1 = xs[0, 5, : model.nq], xs[0, 5, model.nq :], xs[0, 6, : model.nq]
    v1 = pin.difference(model, q, q1) / task.dt
    tau = pin.rnea(model, data, q, v, (v1 - v) / task.dt)
    np.testing.assert_allclose(task.actuation @ us[0, 5], tau, atol=1e-6 * max(1.0, np.abs(tau).max()))


def test_inverse_dynamics_of_an_unreachable_motion_reports_a_residual():
    """A sideways jump of the quadrotor needs a lateral force no rotor makes."""
    task = sw.make_task("quadrotor", "columns_0")
    x0s, params = task.sample_instances(1, seed=0)
    xs = np.repeat(x0s[:, None], task.horizon + 1, axis=1)
    xs[0, 1:, 1] += 0.01 * np.arange(1, task.horizon + 1) ** 2
    _, residuals = sw.inverse_dynamics(task, xs)
    assert residuals.max() > 1.0


def test_sensitivity_inputs_are_checked(solved):
    task, x0s, params, r = solved("pendulum")
    with pytest.raises(ValueError, match=r"feedback_gains: expected shape"):
        sw._core.chained_derivatives(task, r.xs, r.us, r.feedback_gains[:, :, :, :1], params, 4)
    with pytest.raises(ValueError, match=r"params: expected shape"):
        sw._core.chained_derivatives(task, r.xs, r.us, r.feedback_gains, params[:1], 4)
    with pytest.raises(ValueError, match="horizon: expected a chunk horizon >= 1"):
        sw.chained_derivatives(task, r, horizon=0)
    quad = sw.make_task("quadrotor", "columns_0")
    xs = np.zeros((1, 3, quad.nx))
    with pytest.raises(ValueError, match="xs: state 0 is not a valid state"):
        sw.inverse_dynamics(quad, xs)
    with pytest.raises(ValueError, match="xs: expected at least 2 states"):
        sw.inverse_dynamics(quad, np.zeros((1, 1, quad.nx)))


def test_trajectory_data_from_a_state_controlled_solve_starts_its_history_at_g_q0(solved):
    task, x0s, params, r = solved("ur5", "random_start_random_target")
    data = sw.TrajectoryData.from_solve(task, r, sw.chained_derivatives(task, r, horizon=4))
    q0, v0 = r.xs[:, 0, :6], r.xs[:, 0, 6:]
    np.testing.assert_allclose(data.initial_actions, np.concatenate([np.cos(q0), np.sin(q0), v0], axis=1))
    np.testing.assert_array_equal(data.params, params)
    assert data.action_jacobians.shape == (len(r), task.horizon, 4, task.na, task.ndx)
