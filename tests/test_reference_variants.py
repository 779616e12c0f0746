"""Reference-difficulty variants (double_pendulum/reference, quadrotor/reference_columns_K,
ur5/reference_random_start_random_target): documented, sampled as described, and solvable, from the
default guess given the reference's budget or from a near-optimal guess. How hard they are is measured by
benchmarks/bench_guess_quality.py (README, "Reference-difficulty variants"), not asserted here."""

import numpy as np
import pytest

import sobolev_warmstart as sw

REFERENCE = [("double_pendulum", "reference"), ("quadrotor", "reference_columns_9"),
             ("ur5", "reference_random_start_random_target")]
BUDGET = sw.SolverOptions(max_iters=1000)


@pytest.mark.parametrize("name,variant", REFERENCE)
def test_reference_variants_are_listed_and_documented(name, variant):
    assert variant in sw.available_tasks()[name]
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(5, seed=3)
    assert x0s.shape == (5, task.nx) and params.shape == (5, task.nz)
    again = task.sample_instances(5, seed=3)
    np.testing.assert_array_equal(again[0], x0s)  # seeded: reproducible
    np.testing.assert_array_equal(again[1], params)
    task.check_instances(x0s, params)
    assert task.dt == 0.01
    text = task.describe()
    assert "reference difficulty" in text and "dt = 0.01" in text and "1000" in text


def test_reference_double_pendulum_has_both_joints_torque_controlled_within_a_box():
    task = sw.make_task("double_pendulum", "reference")
    assert task.nu == 2 and task.action_space == "torque"
    np.testing.assert_allclose(task.actuation, np.eye(2))
    # Below the 0.75 N m the shoulder needs to hold the arm horizontal: a pumping swing is forced.
    assert np.all(task.u_upper < 0.75) and np.all(task.u_lower == -task.u_upper)
    assert task.horizon * task.dt == pytest.approx(2.0)


def test_reference_quadrotor_columns_block_the_straight_path():
    task = sw.make_task("quadrotor", "reference_columns_9")
    x0s, params = task.sample_instances(50, seed=5)
    task.check_instances(x0s, params)  # columns clear of start and goal
    for x0, z in zip(x0s, params):
        start, goal = x0[:2], z[:2]
        centres = z[3:].reshape(9, 2)
        along = goal - start
        side = np.array([-along[1], along[0]]) / np.linalg.norm(along)
        s = (centres[:3] - start) @ along / (along @ along)
        assert np.all((s >= 0.2) & (s <= 0.8))
        assert np.all(np.abs((centres[:3] - start) @ side) <= 0.15 + 1e-12)
        dists = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(9) * 10
        assert dists.min() >= 0.85 - 1e-12
    # Same layout without columns: the baseline of the difficulty measurement.
    free = sw.make_task("quadrotor", "reference_columns_0")
    assert free.horizon == task.horizon and free.dt == task.dt and free.nz == 3


def test_existing_variants_are_unchanged_by_the_reference_ones():
    """The reference variants sit beside the existing ones, whose settings and instances stay valid."""
    assert sw.make_task("double_pendulum").nu == 1 and sw.make_task("double_pendulum").dt == 0.02
    assert sw.make_task("quadrotor", "columns_9").dt == 0.05
    ur5 = sw.make_task("ur5", "random_start_random_target")
    assert ur5.dt == 0.02 and ur5.horizon == 50
    x0s, params = sw.make_task("quadrotor", "columns_9").sample_instances(3, seed=0)
    x0r, paramsr = sw.make_task("quadrotor", "reference_columns_9").sample_instances(3, seed=0)
    # The first instance's start and goal are drawn before any column: the same in both families.
    np.testing.assert_array_equal(x0s[0], x0r[0])
    np.testing.assert_array_equal(params[0, :3], paramsr[0, :3])
    assert not np.array_equal(params[0, 3:], paramsr[0, 3:])


@pytest.mark.parametrize("name,variant,n", [("ur5", "reference_random_start_random_target", 4),
                                            ("quadrotor", "reference_columns_0", 2)])
def test_reference_variants_converge_with_the_reference_budget_and_faster_from_their_solution(name, variant, n):
    """Seeded instances converge from the default guess within the reference's 1000 iterations, and re-solving
    from their perturbed solution (sigma = 1e-3) converges to the same cost in fewer iterations than TO alone."""
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(n, seed=0)
    r = sw.solve(task, x0s, params, options=BUDGET)
    assert r.converged.all(), (r.iterations, r.converged)  # measured: 64/64 (UR5), columns_0 64/64 (quadrotor)
    assert np.all(r.primal_infeasibility <= 1e-4)
    xs, us = sw.perturbed_solution_guess(task, x0s, r, 1e-3, seed=0)
    warm = sw.solve(task, x0s, params, xs, us, options=BUDGET)
    assert warm.converged.all(), (warm.iterations, warm.converged)
    assert warm.iterations.sum() < r.iterations.sum()
    np.testing.assert_allclose(warm.cost, r.cost, rtol=1e-2)


def test_reference_double_pendulum_converges_on_seeded_instances_and_from_its_solutions():
    """TO alone fails on most instances within 1000 iterations (56% of 64 measured), so only some of four seeded
    instances are asked to converge (3 of 4 on seed 0); re-solving from those solutions converges again at the
    same cost. (A near-optimal *perturbed* guess does not save iterations on this variant: 53% of the optimal
    torques sit on their bounds; README, "Reference-difficulty variants".)"""
    task = sw.make_task("double_pendulum", "reference")
    x0s, params = task.sample_instances(4, seed=0)
    r = sw.solve(task, x0s, params, options=BUDGET)
    assert 1 <= r.converged.sum(), (r.iterations, r.converged)
    idx = np.flatnonzero(r.converged)
    assert np.all(r.primal_infeasibility[idx] <= 1e-4)
    assert np.all(np.abs(r.us[idx]) <= task.u_upper + 1e-4)
    again = sw.solve(task, x0s[idx], params[idx], r.xs[idx], r.us[idx], options=BUDGET)
    assert again.converged.all(), (again.iterations, again.converged)
    np.testing.assert_allclose(again.cost, r.cost[idx], rtol=1e-2)
