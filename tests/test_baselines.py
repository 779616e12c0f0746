"""Nearest-neighbour baselines: the lookup, its feedback rollout, and their place in the evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pinocchio as pin
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup, neighbour_order
from sobolev_warmstart.evaluate import METHOD_LABELS, METHODS, METRICS, evaluate_methods
from sobolev_warmstart.warmstart import state_difference


@pytest.fixture(scope="module")
def pendubot():
    """16 solved pendubot instances (with their gains) and a lookup over the converged ones."""
    task = sw.make_task("double_pendulum")
    x0s, params = task.sample_instances(16, seed=7)
    result = sw.solve(task, x0s, params)
    assert result.converged.sum() >= 8
    return task, result, NearestNeighbourLookup.from_solve(task, result)


def test_methods_list_the_baselines_after_to():
    assert METHODS[:3] == ("to", "nn", "nn_feedback")
    assert METHOD_LABELS["nn"] == "NN" and METHOD_LABELS["nn_feedback"] == "NN+feedback"


def test_guess_is_the_neighbours_trajectory_with_x0_replaced(pendubot):
    task, result, lookup = pendubot
    ok = np.flatnonzero(result.converged)
    assert len(lookup) == len(ok) and lookup.has_feedback
    x_new, p_new = task.sample_instances(5, seed=99)
    idx = lookup.nearest(x_new, p_new)
    xs, us = lookup.guess(task, x_new, p_new)
    np.testing.assert_array_equal(xs[:, 0], x_new)
    np.testing.assert_array_equal(xs[:, 1:], result.xs[ok][idx, 1:])
    np.testing.assert_array_equal(us, result.us[ok][idx])


def test_a_training_instance_finds_itself(pendubot):
    task, result, lookup = pendubot
    ok = np.flatnonzero(result.converged)
    x0s = result.xs[ok, 0]
    np.testing.assert_array_equal(lookup.nearest(x0s, result.params[ok]), np.arange(len(ok)))
    xs, us = lookup.guess(task, x0s, result.params[ok])
    np.testing.assert_array_equal(xs, result.xs[ok])
    np.testing.assert_array_equal(us, result.us[ok])
    # its own feedback law from its own x0 reproduces its trajectory (to the solver's tolerance, amplified
    # along the horizon: measured 1e-5)
    xs_fb, us_fb = lookup.feedback_guess(task, x0s, result.params[ok])
    assert np.abs(xs_fb - result.xs[ok]).max() < 1e-3
    assert np.abs(us_fb - result.us[ok]).max() < 1e-3
    np.testing.assert_allclose(task.step(xs_fb[:, :-1].reshape(-1, task.nx), us_fb.reshape(-1, task.nu)),
                               xs_fb[:, 1:].reshape(-1, task.nx), atol=1e-12)  # dynamically feasible
    assert np.all(np.abs(us_fb) <= task.u_upper + 1e-12)


def test_nearest_is_measured_in_normalised_coordinates():
    """Coordinate 0 spreads over 100 units, coordinate 1 over 1: unnormalised, the query's 5-unit gap in
    coordinate 0 would win; normalised (std 50 vs 0.5) the 0.9-unit gap in coordinate 1 costs more."""
    info = sw.TaskInfo(name="toy", nx=2, ndx=2, nu=1, na=1, no=2, nz=0, dt=0.1, horizon=3)
    x0s = np.array([[0.0, 0.0], [100.0, 1.0], [5.0, 1.0], [95.0, 0.0]])
    xs = np.repeat(x0s[:, None], 4, axis=1)
    lookup = NearestNeighbourLookup(info, x0s, None, xs, np.zeros((4, 3, 1)))
    np.testing.assert_allclose(lookup.scale, x0s.std(axis=0))
    query = np.array([[0.0, 0.9]])
    assert int(np.argmin(np.abs(x0s - query).sum(axis=1))) == 0  # raw distances: instance 0
    assert lookup.nearest(query, None).tolist() == [2]           # normalised: instance 2
    # a coordinate constant over the training set does not divide by zero and does not change the ranking
    const = np.concatenate([x0s, np.full((4, 1), 3.0)], axis=1)
    info3 = sw.TaskInfo(name="toy", nx=3, ndx=3, nu=1, na=1, no=3, nz=0, dt=0.1, horizon=3)
    lookup3 = NearestNeighbourLookup(info3, const, None, np.repeat(const[:, None], 4, axis=1), np.zeros((4, 3, 1)))
    assert np.all(np.isfinite(lookup3.scale)) and lookup3.scale[2] > 0
    assert lookup3.nearest(np.array([[0.0, 0.9, 3.0]]), None).tolist() == [2]
    # consolidation's neighbours are ranked in the lookup's space: instance 1 at (100, 1) is nearest to 3 (95, 0)
    # by raw distance (5.1 against 95), to 2 (5, 1) once normalised; no instance is its own neighbour
    order = neighbour_order(x0s, np.zeros((4, 0)), 3)
    assert order[1].tolist() == [2, 3, 0]
    assert not np.any(order == np.arange(4)[:, None])
    feats = lookup.features(x0s, None)
    dist = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    assert np.all(np.diff(np.take_along_axis(dist, order, axis=1), axis=1) >= 0)


def test_bad_input_raises_clear_errors(pendubot):
    task, result, lookup = pendubot
    with pytest.raises(ValueError, match="x0s: expected at least one training instance"):
        NearestNeighbourLookup(task, np.zeros((0, 4)), None, np.zeros((0, 101, 4)), np.zeros((0, 100, 1)))
    with pytest.raises(ValueError, match=r"xs: expected shape \(2, 101, 4\)"):
        NearestNeighbourLookup(task, np.zeros((2, 4)), None, np.zeros((2, 100, 4)), np.zeros((2, 100, 1)))
    with pytest.raises(ValueError, match=r"x0s: expected shape \(N, 4\)"):
        NearestNeighbourLookup(task, np.zeros((2, 3)), None, np.zeros((2, 101, 4)), np.zeros((2, 100, 1)))
    with pytest.raises(TypeError, match="task: expected"):
        NearestNeighbourLookup("double_pendulum", result.xs[:, 0], None, result.xs, result.us)
    with pytest.raises(TypeError, match="result: expected a SolveResult"):
        NearestNeighbourLookup.from_solve(task, (result.xs, result.us))
    failed = sw.solve(task, result.xs[:2, 0], None, options=sw.SolverOptions(max_iters=1))
    with pytest.raises(ValueError, match="result: none of its 2 instances converged"):
        NearestNeighbourLookup.from_solve(task, failed)
    with pytest.raises(ValueError, match=r"x0s: expected shape \(N, 4\), got \(3, 2\)"):
        lookup.nearest(np.zeros((3, 2)), None)
    pendulum = sw.make_task("pendulum")
    with pytest.raises(ValueError, match="task: the lookup was built for name = 'double_pendulum'"):
        lookup.guess(pendulum, np.zeros((1, 2)), None)
    no_gains = NearestNeighbourLookup(task, result.xs[:, 0], None, result.xs, result.us)
    with pytest.raises(ValueError, match="feedback_gains"):
        no_gains.feedback_guess(task, result.xs[:2, 0], None)
    with pytest.raises(ValueError, match=r"policies\['nn_feedback'\]: the lookup's training set has no feedback"):
        evaluate_methods(task, {"nn_feedback": no_gains}, result.xs[:2, 0], None, seeds=(0,))
    with pytest.raises(TypeError, match=r"policies\['nn'\]: expected a NearestNeighbourLookup"):
        evaluate_methods(task, {"nn": result}, result.xs[:2, 0], None, seeds=(0,))
    with pytest.raises(ValueError, match=r"policies\['nn'\]: task: the lookup was built for name"):
        evaluate_methods(pendulum, {"nn": lookup}, np.zeros((1, 2)), None, seeds=(0,))


def test_lookup_from_a_saved_dataset_equals_the_one_from_the_solve(pendubot, tmp_path):
    task, result, lookup = pendubot
    data = sw.TrajectoryData.from_solve(task, result, sw.chained_derivatives(task, result, horizon=8))
    sw.save_dataset(sw.build_dataset(data, sw.ChunkSpec(horizon=8, history=1, action_steps=4)), tmp_path / "d.npz")
    loaded = NearestNeighbourLookup.load(tmp_path / "d.npz")
    assert len(loaded) == len(lookup) and loaded.has_feedback
    x_new, p_new = task.sample_instances(4, seed=5)
    for a, b in zip(loaded.feedback_guess(task, x_new, p_new), lookup.feedback_guess(task, x_new, p_new)):
        np.testing.assert_array_equal(a, b)


def test_the_exported_lookup_answers_in_cpp_as_in_python(pendubot, tmp_path):
    """NearestNeighbourLookup.export -> _core.Lookup (what the C++ warm-start path and sw_bench_warm_start read):
    the same nearest instances, guesses and fallback bounds, to the bit, on instances of another seed and on the
    training instances themselves (each its own nearest)."""
    task, result, lookup = pendubot
    path = lookup.export(tmp_path / "lookup.safetensors", task)
    native = sw._core.Lookup(str(path))
    assert native.size == len(lookup) and (native.task_name, native.task_variant) == ("double_pendulum", "default")
    x_new, p_new = task.sample_instances(64, seed=11)
    np.testing.assert_array_equal(native.nearest(task, x_new, p_new), lookup.nearest(x_new, p_new))
    np.testing.assert_array_equal(native.nearest(task, lookup.x0s, lookup.params), np.arange(len(lookup)))
    xs, us, bound = native.fallback(task, x_new, p_new, 7.5)
    want = sw.LookupFallback(lookup, 7.5).plan(task, x_new, p_new)
    for got, ref in zip((xs, us, bound), want[:3]):
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(xs[:, 0], x_new)  # the guess starts from the new instance


def test_an_exported_lookup_refuses_bad_files_and_queries(pendubot, tmp_path):
    task, result, lookup = pendubot
    with pytest.raises(ValueError, match="path: expected a .safetensors file name"):
        lookup.export(tmp_path / "lookup.npz", task)
    with pytest.raises(ValueError, match="task: the lookup was built for name = 'double_pendulum'"):
        lookup.export(tmp_path / "lookup.safetensors", sw.make_task("pendulum"))
    path = lookup.export(tmp_path / "lookup.safetensors", task)
    native = sw._core.Lookup(str(path))
    pendulum = sw.make_task("pendulum")
    with pytest.raises(ValueError, match="task: the lookup was built for name = 'double_pendulum', task "
                                         "pendulum/default has 'pendulum'"):
        native.nearest(pendulum, np.zeros((1, 2)), np.zeros((1, 0)))
    with pytest.raises(ValueError, match=r"x0s: expected shape \(N, 4\), got \(2, 3\)"):
        native.nearest(task, np.zeros((2, 3)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="cost_ratio: expected a finite number >= 1"):
        native.fallback(task, lookup.x0s[:2], lookup.params[:2], 0.5)
    with pytest.raises(ValueError, match="cannot open the file"):
        sw._core.Lookup(str(tmp_path / "missing.safetensors"))
    policy_like = tmp_path / "policy.safetensors"  # a safetensors file without the lookup's metadata
    sw.data.write_safetensors(policy_like, {"w": np.zeros(3, np.float32)}, {"sobolev_warmstart": "{}"})
    with pytest.raises(ValueError, match="without sobolev_warmstart lookup metadata"):
        sw._core.Lookup(str(policy_like))
    tensors, meta = _read_safetensors(path)
    for key, value, error in [("format", 2, "format 2, this build reads format 1"),
                              ("size", len(lookup) + 1, "tensor 'features' has shape")]:
        bad = tmp_path / f"bad_{key}.safetensors"
        sw.data.write_safetensors(bad, tensors, {"sobolev_warmstart_lookup": json.dumps({**meta, key: value})})
        with pytest.raises(ValueError, match=error):
            sw._core.Lookup(str(bad))
    costs = dict(tensors, solution_costs=tensors["solution_costs"].astype(np.float32))
    sw.data.write_safetensors(tmp_path / "f32.safetensors", costs, {"sobolev_warmstart_lookup": json.dumps(meta)})
    with pytest.raises(ValueError, match="tensor 'solution_costs' has dtype F32, expected F64"):
        sw._core.Lookup(str(tmp_path / "f32.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:-64])
    with pytest.raises(ValueError, match="do not hold .* float64 values"):
        sw._core.Lookup(str(tmp_path / "cut.safetensors"))


def _read_safetensors(path):
    """(tensors, lookup metadata) of a lookup file, read with numpy."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header.pop("__metadata__")["sobolev_warmstart_lookup"])
    dtypes = {"F32": "<f4", "F64": "<f8"}
    tensors = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                                dtype=dtypes[v["dtype"]]).reshape(v["shape"]) for k, v in header.items()}
    return tensors, meta


def test_free_flyer_difference_matches_pinocchio():
    """nn_feedback on the quadrotor needs x (-) x* on its free-flyer state: checked against pinocchio."""
    quad = sw.make_task("quadrotor", "columns_9")
    model = pin.Model()
    model.addJoint(0, pin.JointModelFreeFlyer(), pin.SE3.Identity(), "root")
    rng = np.random.default_rng(0)
    worst = 0.0
    for scale in (1e-7, 1e-2, 1.0, None):
        for _ in range(20):
            q0 = pin.randomConfiguration(model, -3 * np.ones(7), 3 * np.ones(7))
            q1 = (pin.randomConfiguration(model, -3 * np.ones(7), 3 * np.ones(7)) if scale is None
                  else pin.integrate(model, q0, scale * rng.standard_normal(6)))
            v0, v1 = rng.standard_normal(6), rng.standard_normal(6)
            want = np.concatenate([pin.difference(model, q0, q1), v1 - v0])
            got = state_difference(quad, np.concatenate([q1, v1])[None], np.concatenate([q0, v0])[None])[0]
            worst = max(worst, float(np.abs(got - want).max()))
    assert worst < 1e-9


def test_evaluate_methods_with_the_baselines(pendubot):
    task, result, lookup = pendubot
    x_test, p_test = task.sample_instances(4, seed=1234)
    ev = evaluate_methods(task, {"nn_feedback": lookup, "nn": lookup}, x_test, p_test, seeds=(0, 1),
                          options=sw.SolverOptions(num_threads=1))
    assert ev.methods == ["to", "nn", "nn_feedback"]
    for method in ("nn", "nn_feedback"):
        row = ev.row(method)
        assert row["label"] == METHOD_LABELS[method] and row["seeds"] == 2
        for m in METRICS:
            assert math.isfinite(row[m]), (method, m, row[m])
        assert row["rollout_time"] > 0 and row["total_time"] >= row["solve_time"]
        assert row["diverged"] == 0.0
        ws = ev.raw[(method, 0)]
        # policy_cost: the cost of the guess's own trajectory
        np.testing.assert_allclose(ws.policy_cost, sw._core.trajectory_costs(task, x_test, p_test, ws.rollout.xs,
                                                                             ws.rollout.us))
        # the lookups are deterministic: both seeds refine the same guesses
        np.testing.assert_array_equal(ws.warm.iterations, ev.raw[(method, 1)].warm.iterations)
    xs, _ = lookup.guess(task, x_test, p_test)
    np.testing.assert_array_equal(ev.raw[("nn", 0)].rollout.xs, xs)
    assert "NN+feedback" in ev.table()
