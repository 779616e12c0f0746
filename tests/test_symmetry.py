"""The UR5's base-yaw symmetry: rotated copies of solved instances are solutions of other instances of the family."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import run_variant, settings_for
from sobolev_warmstart.symmetry import augment_by_symmetry, has_symmetry, rotate_about_base

OPTIONS = sw.SolverOptions(max_iters=500, num_threads=1)


@pytest.fixture(scope="module")
def solved_reaches():
    task = sw.make_task("ur5", "random_start_random_target")
    x0s, params = task.sample_instances(6, seed=3)
    r = sw.solve(task, x0s, params, options=OPTIONS)
    assert r.converged.all()
    return task, x0s, params, r, sw.TrajectoryData.from_solve(task, r, sw.chained_derivatives(task, r, 4))


def test_a_rotated_instance_solved_from_scratch_costs_what_the_original_does(solved_reaches):
    """The symmetry is exact: the rotated problem, solved from the task's default guess (itself rotated with the
    start), reaches the original's optimal cost; and the rotated solution as a guess is already optimal on most
    instances. Measured over instance seeds 3-14 (72 instances, random angles): fresh costs equal to 1e-13, the same
    convergence; confirmations at 0 iterations on 69, at 3, 4 and 46 on the others, costs equal to 3e-9 and controls
    to 0.017."""
    task, x0s, params, r, _ = solved_reaches
    phi = np.array([0.4, -1.3, 2.9, -2.2, 1.0, 3.0])
    xs, p = rotate_about_base(np.asarray(r.xs), params, phi)
    fresh = sw.solve(task, xs[:, 0], p, options=OPTIONS)
    np.testing.assert_array_equal(fresh.converged, r.converged)
    np.testing.assert_allclose(fresh.cost, r.cost, rtol=1e-5)
    confirmed = sw.solve(task, xs[:, 0], p, xs_init=xs, us_init=np.asarray(r.us), options=OPTIONS)
    assert confirmed.converged.all() and (confirmed.iterations == 0).sum() >= 4
    np.testing.assert_allclose(confirmed.cost, r.cost, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(confirmed.us), np.asarray(r.us), atol=0.1)


def test_augmented_data_interleaves_confirmed_copies_with_their_origins(solved_reaches):
    task, _, params, _, data = solved_reaches
    out, report = augment_by_symmetry(task, data, 2, seed=5, options=OPTIONS)
    # all 12 confirmed on every instance seed 3-14 (their mean iterations: 0 to 7.7)
    assert report.solved == 6 and report.kept == out.num_instances - 6 and report.kept >= 10
    assert set(report.origin) == set(range(6))
    assert list(report.origin) == sorted(report.origin)
    for j, i in enumerate(report.origin):
        first = j == 0 or report.origin[j - 1] != i
        if first:  # the solved trajectory itself, unchanged
            np.testing.assert_array_equal(out.xs[j], data.xs[i])
            continue
        # the other joints, velocities, torques and cost are the origin's; the first joint starts in [-pi, pi)
        np.testing.assert_allclose(out.xs[j, :, 1:], data.xs[i, :, 1:], atol=1e-3)
        assert -np.pi <= out.xs[j, 0, 0] < np.pi
        assert np.isclose(out.cost[j], data.cost[i], rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(out.params[j]), np.linalg.norm(params[i]), rtol=1e-12)
        np.testing.assert_allclose(out.params[j, 2], params[i, 2], atol=1e-12)
        # the observation's joint-space direction J^T e is invariant; the offset e is rotated, its length is kept
        np.testing.assert_allclose(out.observations[j, 5, 15:21], data.observations[i, 5, 15:21], atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(out.observations[j, 5, 12:15]),
                                   np.linalg.norm(data.observations[i, 5, 12:15]), atol=1e-3)
    same, _ = augment_by_symmetry(task, data, 2, seed=5, options=OPTIONS)
    np.testing.assert_array_equal(same.xs, out.xs)


def test_symmetry_is_refused_where_the_family_is_not_invariant(solved_reaches):
    task, _, _, _, data = solved_reaches
    assert has_symmetry(task) and not has_symmetry(sw.make_task("ur5", "random_start_fixed_target"))
    assert has_symmetry("ur5/reference_random_start_random_target") and not has_symmetry("quadrotor/columns_0")
    with pytest.raises(ValueError, match="task: ur5/fixed_start_random_target has no declared symmetry"):
        augment_by_symmetry(sw.make_task("ur5", "fixed_start_random_target"), data, 1)
    with pytest.raises(ValueError, match="data: expected trajectories of ur5/reference_random_start_random_target"):
        augment_by_symmetry(sw.make_task("ur5", "reference_random_start_random_target"), data, 1)
    with pytest.raises(TypeError, match="data: expected a TrajectoryData"):
        augment_by_symmetry(task, {"xs": data.xs}, 1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="copies: expected a non-negative int"):
            augment_by_symmetry(task, data, bad)
    with pytest.raises(ValueError, match="phi, params"):
        rotate_about_base(data.xs, data.params, np.zeros(2))
    with pytest.raises(ValueError, match="symmetry_copies: ur5/random_start_fixed_target has no declared symmetry"):
        dataclasses.replace(settings_for("ur5/random_start_fixed_target", "smoke"), symmetry_copies=1)


def test_scorecard_trains_on_the_copies_and_counts_solved_trajectories(tmp_path):
    s = dataclasses.replace(settings_for("ur5/random_start_random_target", "smoke"), symmetry_copies=2)
    doc = run_variant(s.key, tmp_path, "smoke", threads=1, settings=s)
    info = json.loads((tmp_path / "ur5" / "random_start_random_target" / "collect" / "collect.json").read_text())
    solved = doc["training_trajectories"]
    assert info["symmetry"]["solved"] == solved and max(info["symmetry"]["origin"]) == solved - 1
    assert doc["trained_trajectories"] == solved + info["symmetry"]["kept"] > solved
    subset = doc["sample_efficiency"]["subsets"][0]
    assert subset["trajectories"] < solved


def test_loop_trains_and_looks_up_on_the_copies_of_all_trajectories_so_far(tmp_path):
    """LoopConfig.symmetry_copies: before each training the accepted trajectories so far, consolidated, get their
    rotated copies once (saved, reused on resumption), the normalisers stay those of the set without consolidation
    or copies, and the final lookups see the copies too."""
    from sobolev_warmstart.config import load_loop_config
    from sobolev_warmstart.data import build_dataset, load_dataset
    from sobolev_warmstart.loop import load_trajectories, run_loop

    run = tmp_path / "run"
    cfg = load_loop_config("ur5", run_dir=str(run), overrides=[
        "iterations=2", "instances=4", "collect_batch=4", "consolidate_neighbours=2", "consolidate_rounds=1",
        "symmetry_copies=2",
        "train.policy=sob_mlp", "train.mlp.hidden_dims=[32,32]", "train.epochs=2", "train.batch_size=256",
        "solver.num_threads=1", "eval.instances=2"])
    result = run_loop(cfg, progress=False)
    raw = load_trajectories(run, [1, 2])
    saved = load_dataset(run / "final/symmetric.npz")
    report = json.loads((run / "final/symmetry.json").read_text())
    assert report["solved"] == raw.num_instances and report["kept"] >= raw.num_instances  # of 2 per trajectory
    assert saved.data.num_instances == raw.num_instances + report["kept"]
    consolidated = load_dataset(run / "final/consolidated.npz").data  # each of them precedes its copies, unrotated
    rows = [next(j for j in range(saved.data.num_instances) if np.array_equal(saved.data.xs[j], consolidated.xs[i]))
            for i in range(consolidated.num_instances)]
    assert rows == sorted(rows) and rows[0] == 0
    assert saved.normalisers.to_dict() == build_dataset(raw, cfg.chunk).normalisers.to_dict()
    assert sw.load_policy(run / "final/policy.pt").normalisers.to_dict() == saved.normalisers.to_dict()
    assert result.evaluation["baselines"]["training_instances"] == saved.data.num_instances
    np.testing.assert_array_equal(result.training_set().xs, saved.data.xs)  # the public accessor reads the same
    first = json.loads((run / "iter_002/metrics.json").read_text())["train"]
    assert first["symmetry"]["solved"] == json.loads((run / "iter_001/metrics.json").read_text())["accepted"]
    assert first["trajectories"] == first["symmetry"]["solved"] + first["symmetry"]["kept"]
    stamp = (run / "final/symmetric.npz").stat().st_mtime_ns
    run_loop(cfg, progress=False)  # finished: nothing is augmented again
    assert (run / "final/symmetric.npz").stat().st_mtime_ns == stamp


def test_collect_adds_copies_and_configs_refuse_them_where_the_family_is_not_invariant(tmp_path, capfd):
    from sobolev_warmstart.cli import main
    from sobolev_warmstart.config import ConfigError, load_loop_config

    out = tmp_path / "d.npz"
    assert main(["collect", "--task", "ur5", "--variant", "random_start_random_target", "-n", "3", "--threads", "1",
                 "--symmetry-copies", "2", "-q", "-o", str(out)]) == 0
    assert re.search(r"symmetry copies\s+[56] of 6 confirmed", capfd.readouterr().out)
    assert sw.load_dataset(out).data.num_instances >= 8
    assert main(["collect", "--task", "ur5", "--variant", "random_start_fixed_target", "-n", "3",
                 "--symmetry-copies", "1", "-q", "-o", str(out)]) == 2
    assert "collect.symmetry_copies: ur5/random_start_fixed_target has no declared symmetry" in capfd.readouterr().err
    with pytest.raises(ConfigError, match="symmetry_copies: ur5/fixed_start_fixed_target has no declared symmetry"):
        load_loop_config("ur5", overrides=["variant=\"\""])  # the task's first variant, with the preset's copies
    with pytest.raises(ConfigError, match="symmetry_copies: expected an integer >= 0"):
        load_loop_config("ur5", overrides=["symmetry_copies=-1"])


def test_augment_dataset_keeps_the_spec_and_normalisers_and_refuses_trajectories(solved_reaches):
    task, _, _, _, data = solved_reaches
    dataset = sw.build_dataset(data, sw.ChunkSpec(horizon=5, history=1, action_steps=1))
    out, report = sw.augment_dataset(task, dataset, 1, seed=2, options=OPTIONS)
    assert out.spec == dataset.spec and out.normalisers.to_dict() == dataset.normalisers.to_dict()
    assert out.data.num_instances == data.num_instances + report.kept
    with pytest.raises(TypeError, match="dataset: expected a ChunkDataset"):
        sw.augment_dataset(task, data, 1)
