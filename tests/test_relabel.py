"""Closed-loop data: tail problems (a task of a shorter horizon), trajectories relabelled from part-way
(``label_start``), and the relabelling of a policy's own rollouts (``sw.relabel_rollouts``)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.data import ChunkSpec, build_dataset, concatenate_trajectories
from sobolev_warmstart.relabel import relabel_rollouts

TIGHT = sw.SolverOptions(tol=1e-6, max_iters=500, num_threads=1)
SPEC = ChunkSpec(horizon=8, history=1, action_steps=2)


@pytest.mark.parametrize("name,variant", [("ur5", "fixed_start_random_target"), ("double_pendulum", "default"),
                                          ("quadrotor", "columns_0")])
def test_a_shorter_horizon_is_the_tail_of_the_problem(name, variant):
    """The stages do not depend on the time, so from the state a solution reaches at step t the task of horizon
    T - t is solved by the rest of that solution (Bellman): it converges from it at once, where it stays. Measured
    on instance seed 3 at tolerance 1e-6: every instance converged, the tails in 0-1 iterations, states within 3e-5
    of the full solution's (2.8e-4 at tolerance 1e-5)."""
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(6, seed=3)
    full = sw.solve(task, x0s, params, options=TIGHT)
    ok = np.asarray(full.converged)
    assert ok.sum() >= 3
    t = task.horizon // 5
    tail = sw.make_task(name, variant, horizon=task.horizon - t)
    assert tail.horizon == task.horizon - t and (tail.nx, tail.nu, tail.nz) == (task.nx, task.nu, task.nz)
    assert f"T = {task.horizon - t} steps" in tail.describe()
    xs, us = np.asarray(full.xs)[ok], np.asarray(full.us)[ok]
    res = sw.solve(tail, xs[:, t], params[ok], xs[:, t:], us[:, t:], options=TIGHT)
    assert res.converged.all() and res.iterations.max() <= 5
    np.testing.assert_allclose(res.xs, xs[:, t:], atol=1e-3)


def test_make_task_refuses_a_bad_horizon():
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="horizon: expected a number of steps >= 1"):
            sw.make_task("pendulum", horizon=bad)
    assert sw.make_task("pendulum", horizon=None).horizon == sw.make_task("pendulum").horizon


@pytest.fixture(scope="module")
def reaches():
    task = sw.make_task("ur5", "fixed_start_random_target")
    x0s, params = task.sample_instances(6, seed=5)
    res = sw.solve(task, x0s, params, options=sw.SolverOptions(num_threads=1))
    assert res.converged.all()
    data = sw.TrajectoryData.from_solve(task, res, sw.chained_derivatives(task, res, SPEC.horizon - SPEC.history))
    return task, data


def test_chunks_before_label_start_are_left_out(reaches):
    task, data = reaches
    T = task.horizon
    start = np.array([0, 3, 10, 0, 49, 25])
    plain = build_dataset(data, SPEC)
    marked = build_dataset(dataclasses.replace(data, label_start=start), SPEC, normalisers=plain.normalisers)
    assert len(plain) == data.num_instances * T and len(marked) == int((T - start).sum())
    keep = (plain.start >= plain.instance.new_tensor(start)[plain.instance]).numpy()
    for name in ("obs", "params", "chunks", "chunk_jac", "obs_jac", "instance", "start"):
        np.testing.assert_array_equal(getattr(marked, name).numpy(), getattr(plain, name).numpy()[keep])


@pytest.mark.parametrize("bad,match", [(np.array([0, 1]), r"\(6,\) integers"), (np.full(6, 50), r"in \[0, 50\)"),
                                       (np.full(6, -1), r"in \[0, 50\)"), (np.zeros(6), "integers")])
def test_label_start_is_checked(reaches, bad, match):
    _, data = reaches
    with pytest.raises(ValueError, match="label_start: expected .*" + match):
        dataclasses.replace(data, label_start=bad)


def test_concatenated_trajectories_keep_order_and_mark_solved_parts(reaches, tmp_path):
    task, data = reaches
    a, b = data.select([0, 1, 2]), dataclasses.replace(data.select([3, 4]), label_start=np.array([7, 9]))
    both = concatenate_trajectories([a, b])
    np.testing.assert_array_equal(both.xs, data.xs[:5])
    np.testing.assert_array_equal(both.action_jacobians, data.action_jacobians[:5])
    np.testing.assert_array_equal(both.label_start, [0, 0, 0, 7, 9])
    assert concatenate_trajectories([a, a]).label_start is None
    assert concatenate_trajectories([a, dataclasses.replace(b, cost=None)]).cost is None  # only where all have it
    ds = build_dataset(both, SPEC)
    sw.save_dataset(ds, tmp_path / "d.npz")
    np.testing.assert_array_equal(sw.load_dataset(tmp_path / "d.npz").data.label_start, both.label_start)
    x0s, params = task.sample_instances(1, seed=0)
    r = sw.solve(task, x0s, params, options=sw.SolverOptions(num_threads=1))
    with pytest.raises(ValueError, match=r"parts\[1\]: expected 7 chunk offsets in action_jacobians, got 4"):
        concatenate_trajectories([a, sw.TrajectoryData.from_solve(task, r, sw.chained_derivatives(task, r, 4))])
    other = sw.make_task("pendulum")
    r = sw.solve(other, *other.sample_instances(1, seed=0), options=sw.SolverOptions(num_threads=1))
    with pytest.raises(ValueError, match=r"parts\[1\]: expected the task of parts\[0\]"):
        concatenate_trajectories([a, sw.TrajectoryData.from_solve(other, r, sw.chained_derivatives(other, r, 7))])
    with pytest.raises(TypeError, match="parts: expected a non-empty sequence"):
        concatenate_trajectories([])


@pytest.fixture(scope="module")
def relabelled(reaches):
    task, data = reaches
    ds = build_dataset(data, SPEC)
    config = sw.TrainConfig(policy="sob_diff", epochs=30, batch_size=64, lr=3e-3, progress=False, num_threads=1,
                            sobolev_weight=0.01, denoiser="mlp")
    policy = sw.train(ds, config).eval()
    out, report = relabel_rollouts(task, data, policy, [4, 20], seed=2, options=sw.SolverOptions(num_threads=1))
    return task, data, policy, out, report


def test_relabelled_trajectories_are_the_policy_then_the_solver(relabelled):
    """Each relabelled trajectory follows the policy's own seeded rollout up to its label_start t and the solver's
    solution of the tail problem from the reached state after it; its derivative targets from t on are the tail's
    own chained derivatives, on the task of horizon T - t."""
    task, data, policy, out, report = relabelled
    T = task.horizon
    assert report.times == (4, 20) and report.rolled_out == data.num_instances
    assert sum(report.kept) == out.num_instances >= 10 and report.attempted == [6, 6]
    ro = sw.rollout(task, data.xs[:, 0], data.params, policy, seed=2)
    for t in (4, 20):
        rows = np.flatnonzero(out.label_start == t)
        src = [int(np.flatnonzero((data.params == out.params[r]).all(1))[0]) for r in rows]
        np.testing.assert_allclose(out.xs[rows, : t + 1], ro.xs[src, : t + 1], atol=1e-9)
        np.testing.assert_allclose(out.us[rows, :t], ro.us[src, :t], atol=1e-9)
        tail = sw.make_task(task.name, task.variant, horizon=T - t)
        check = sw.solve(tail, out.xs[rows, t], out.params[rows], out.xs[rows, t:], out.us[rows, t:],
                         options=sw.SolverOptions(num_threads=1))
        assert check.converged.all() and check.iterations.max() <= 2  # already the tail's solution
        own_tail = SimpleNamespace(xs=out.xs[rows, t:], us=out.us[rows, t:], params=out.params[rows],
                                   feedback_gains=out.feedback_gains[rows, t:])
        der = sw.chained_derivatives(tail, own_tail, SPEC.horizon - SPEC.history)
        np.testing.assert_allclose(out.action_jacobians[rows, t:], der.action_jacobians, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.observations[rows, t:], der.observations, rtol=1e-12, atol=1e-12)


def test_relabelled_data_train_with_the_solved_ones(relabelled):
    task, data, _, out, _ = relabelled
    both = concatenate_trajectories([data, out])
    ds = build_dataset(both, SPEC, normalisers=build_dataset(data, SPEC).normalisers)
    assert len(ds) == data.num_instances * task.horizon + int((task.horizon - out.label_start).sum())
    config = sw.TrainConfig(policy="sob_diff", epochs=1, batch_size=64, progress=False, num_threads=1,
                            sobolev_weight=0.01, denoiser="mlp")
    assert np.isfinite(sw.train(ds, config).train_history[-1]["loss"])


def test_relabel_rollouts_refuses_bad_input(relabelled):
    task, data, policy, _, _ = relabelled
    with pytest.raises(ValueError, match=r"times: expected steps in \[1, 49\]"):
        relabel_rollouts(task, data, policy, [0, 10])
    with pytest.raises(ValueError, match=r"times: expected steps in \[1, 49\]"):
        relabel_rollouts(task, data, policy, [50])
    with pytest.raises(ValueError, match="times: expected at least one integer step"):
        relabel_rollouts(task, data, policy, [])
    with pytest.raises(ValueError, match="times: expected at least one integer step"):
        relabel_rollouts(task, data, policy, [2.5])
    with pytest.raises(ValueError, match="task: expected the data's task"):
        relabel_rollouts(sw.make_task("ur5", "fixed_start_random_target", horizon=40), data, policy, [5])
    with pytest.raises(TypeError, match="data: expected a TrajectoryData"):
        relabel_rollouts(task, {"xs": data.xs}, policy, [5])
    with pytest.raises(TypeError, match="options: expected a SolverOptions"):
        relabel_rollouts(task, data, policy, [5], options={"tol": 1e-4})
    with pytest.raises(ValueError, match="data: every instance is relabelled"):
        relabel_rollouts(task, dataclasses.replace(data, label_start=np.full(data.num_instances, 3)), policy, [5])


def test_relabelled_trajectories_are_not_looked_up_consolidated_or_rotated(relabelled):
    """They are not the solutions of their instances: the lookup leaves them out, consolidation and the rotated
    copies refuse them by name."""
    task, data, _, out, _ = relabelled
    both = concatenate_trajectories([data, out])
    lookup = sw.NearestNeighbourLookup.from_data(both)
    assert len(lookup) == data.num_instances
    with pytest.raises(ValueError, match="data: every instance is relabelled"):
        sw.NearestNeighbourLookup.from_data(out)
    with pytest.raises(ValueError, match=r"data: holds relabelled trajectories \(label_start > 0\)"):
        sw.consolidate_data(task, both, SPEC.horizon - SPEC.history)
    rsrt = sw.make_task("ur5", "random_start_random_target")  # same dimensions, a declared symmetry
    with pytest.raises(ValueError, match=r"data: holds relabelled trajectories \(label_start > 0\)"):
        sw.augment_by_symmetry(rsrt, both, 1)
