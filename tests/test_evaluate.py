"""Evaluation metrics from real (tiny) runs: policies briefly trained on solved pendulum swing-ups."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import LookupFallback, NearestNeighbourLookup
from sobolev_warmstart.evaluate import (METHODS, METRICS, EvaluationResult, evaluate_methods, mean_ci,
                                        read_rows_csv, t_quantile_975)
from sobolev_warmstart.models import MLPConfig, UNetConfig
from sobolev_warmstart.warmstart import guess_costs

TINY_UNET = UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8)
TINY_MLP = MLPConfig((16, 16))


@pytest.fixture(scope="module")
def pendulum_policies(tmp_path_factory):
    """Exported mlp and diff policies trained for a few steps on 6 solved pendulum instances, the eager diff policy,
    and 4 held-out instances."""
    out = tmp_path_factory.mktemp("policies")
    task = sw.make_task("pendulum")
    x0s, params = task.sample_instances(6, seed=0)
    result = sw.solve(task, x0s, params)
    data = sw.TrajectoryData.from_solve(task, result, sw.chained_derivatives(task, result, horizon=8))
    dataset = sw.build_dataset(data, sw.ChunkSpec(horizon=8, history=1, action_steps=4))
    paths, eager = {}, {}
    for kind in ("mlp", "diff"):
        cfg = sw.TrainConfig(policy=kind, epochs=1, batch_size=256, lr=3e-3, unet=TINY_UNET, mlp=TINY_MLP,
                             progress=False, num_threads=1)
        eager[kind] = sw.train(dataset, cfg)
        paths[kind] = out / f"{kind}.pt"
        sw.export_torchscript(eager[kind], paths[kind])
    x_test, p_test = task.sample_instances(4, seed=1)
    return task, paths, eager, x_test, p_test


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 17, 30, 31, 45, 200, 10_000):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=3e-6)
    with pytest.raises(ValueError, match="df"):
        t_quantile_975(0)


def test_mean_ci_by_hand():
    mean, ci, n = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert ci == pytest.approx(4.302652730 * 1.0 / math.sqrt(3))  # s = 1 for (1, 2, 3)
    assert mean_ci([5.0, 5.0, 5.0])[1] == 0.0
    assert math.isnan(mean_ci([5.0])[1])
    assert math.isnan(mean_ci([])[0])


def test_metrics_equal_the_solve_results(pendulum_policies):
    task, paths, _, x0s, params = pendulum_policies
    ev = evaluate_methods(task, {"diff": paths["diff"], "mlp": paths["mlp"]}, x0s, params, seeds=(0, 3))
    assert ev.methods == ["to", "mlp", "diff"]  # report order, TO alone always first
    assert len(ev.per_seed) == 6
    for row in ev.per_seed:
        raw = ev.raw[(row["method"], row["seed"])]
        solved = raw if row["method"] == "to" else raw.warm
        conv = np.asarray(solved.converged, bool)
        assert row["instances"] == 4
        assert row["iterations"] == pytest.approx(np.mean(solved.iterations))
        assert row["converged"] == pytest.approx(conv.mean())
        assert row["cost"] == pytest.approx(np.mean(solved.cost[conv]))
        assert row["solve_time"] == pytest.approx(np.mean(solved.solve_time))
        if row["method"] == "to":
            assert math.isnan(row["policy_cost"]) and row["rollout_time"] == 0.0
            assert row["total_time"] == row["solve_time"]
        else:
            assert row["policy_cost"] == pytest.approx(np.mean(raw.policy_cost))
            assert row["rollout_time"] == pytest.approx(np.mean(raw.rollout.time))
            assert row["total_time"] == pytest.approx(row["rollout_time"] + row["solve_time"])
            assert row["action_steps"] == (4 if row["method"] == "diff" else 0)
    # TO alone is what a plain solve of the same instances gives
    plain = sw.solve(task, x0s, params)
    to = ev.row("to")
    assert to["iterations"] == pytest.approx(np.mean(plain.iterations))
    assert to["converged"] == pytest.approx(np.mean(plain.converged))
    assert to["iterations_ci95"] == 0.0  # the solver is deterministic
    # the aggregate is the mean over seeds
    diff = [r for r in ev.per_seed if r["method"] == "diff"]
    assert ev.row("diff")["policy_cost"] == pytest.approx(np.mean([r["policy_cost"] for r in diff]))
    assert ev.row("diff")["seeds"] == 2
    # different noise seeds give different diffusion rollouts, hence a positive interval
    assert diff[0]["policy_cost"] != diff[1]["policy_cost"]
    assert ev.row("diff")["policy_cost_ci95"] > 0


def test_identical_seeds_give_zero_intervals(pendulum_policies):
    task, paths, eager, x0s, params = pendulum_policies
    ev = evaluate_methods(task, {"diff": eager["diff"]}, x0s, params, seeds=(2, 2), keep_raw=False)
    assert ev.raw == {}
    for method in ("to", "diff"):
        row = ev.row(method)
        for m in ("cost", "iterations", "converged"):
            assert row[f"{m}_ci95"] == 0.0, (method, m)
    assert ev.row("diff")["policy_cost_ci95"] == 0.0
    one = evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(2,), warmup=False)
    assert math.isnan(one.row("diff")["policy_cost_ci95"])
    # eager (Python) and exported (C++) rollouts draw the same noise: same rollouts up to float32 round-off
    assert one.row("diff")["policy_cost"] == pytest.approx(ev.row("diff")["policy_cost"], rel=1e-3)


def test_action_steps_apply_to_diffusion_only(pendulum_policies):
    task, paths, _, x0s, params = pendulum_policies
    ev = evaluate_methods(task, {"mlp": paths["mlp"], "diff": paths["diff"]}, x0s[:2], params[:2], seeds=(0,),
                          action_steps=7, warmup=False)
    assert ev.row("diff")["action_steps"] == 7 and ev.row("mlp")["action_steps"] == 0
    assert ev.raw[("diff", 0)].rollout.num_replans == math.ceil(task.horizon / 7)
    with pytest.raises(ValueError, match="action_steps"):
        evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(0,), action_steps=8)  # > H - h


def test_table_csv_json_round_trip(pendulum_policies, tmp_path):
    task, paths, _, x0s, params = pendulum_policies
    ev = evaluate_methods(task, {"mlp": paths["mlp"]}, x0s, params, seeds=(0, 1))
    table = ev.table()
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| method") and lines[1].startswith("|:")
    assert "TO alone" in lines[2] and "—" in lines[2] and "MLP" in lines[3]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert "|" not in ev.table("text")

    ev.to_csv(tmp_path / "rows.csv")
    ev.to_csv(tmp_path / "seeds.csv", per_seed=True)
    for path, rows in ((tmp_path / "rows.csv", ev.rows), (tmp_path / "seeds.csv", ev.per_seed)):
        back = read_rows_csv(path)
        assert len(back) == len(rows)
        for a, b in zip(rows, back):
            assert set(a) == set(b)
            for k, v in a.items():
                if isinstance(v, float) and math.isnan(v):
                    assert math.isnan(b[k])
                else:
                    assert b[k] == v, k

    ev.to_json(tmp_path / "eval.json")
    doc = json.loads((tmp_path / "eval.json").read_text())  # strict JSON: NaN written as null
    assert doc["meta"]["task"] == "pendulum" and doc["rows"][0]["policy_cost"] is None
    back = EvaluationResult.from_json(tmp_path / "eval.json")
    assert back.meta == ev.meta and back.table() == table and len(back.per_seed) == 4
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not an evaluation file"):
        EvaluationResult.from_json(tmp_path / "other.json")


def test_bad_input_is_rejected_before_running(pendulum_policies, tmp_path):
    task, paths, eager, x0s, params = pendulum_policies
    with pytest.raises(ValueError, match="unknown method 'sob_unet'"):
        evaluate_methods(task, {"sob_unet": paths["diff"]}, x0s, params)
    with pytest.raises(ValueError, match="at least one learned method"):
        evaluate_methods(task, {}, x0s, params)
    with pytest.raises(ValueError, match="'to'"):
        evaluate_methods(task, {"to": None}, x0s, params)
    with pytest.raises(TypeError, match="policies"):
        evaluate_methods(task, [paths["diff"]], x0s, params)
    with pytest.raises(ValueError, match="needs a diffusion policy, got a mlp policy"):
        evaluate_methods(task, {"sob_diff": paths["mlp"]}, x0s, params)
    with pytest.raises(ValueError, match="needs a mlp policy"):
        evaluate_methods(task, {"mlp": eager["diff"]}, x0s, params)
    with pytest.raises(FileNotFoundError, match="no exported policy file"):
        evaluate_methods(task, {"diff": tmp_path / "missing.pt"}, x0s, params)
    with pytest.raises(ValueError, match="seeds"):
        evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=())
    with pytest.raises(ValueError, match="seeds"):
        evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(0, -1))
    with pytest.raises(ValueError, match="x0s"):
        evaluate_methods(task, {"diff": paths["diff"]}, x0s[:, :1], params)
    other = sw.make_task("double_pendulum")
    xo, po = other.sample_instances(2, seed=0)
    with pytest.raises(ValueError, match="pendulum"):
        evaluate_methods(other, {"diff": paths["diff"]}, xo, po)
    with pytest.raises(ValueError, match="trained for name = 'pendulum'"):
        evaluate_methods(other, {"diff": eager["diff"]}, xo, po)
    with pytest.raises(TypeError, match="task"):
        evaluate_methods("pendulum", {"diff": paths["diff"]}, x0s, params)
    assert METHODS[0] == "to" and "total_time" in METRICS


def test_composed_path_equals_warm_start(pendulum_policies):
    """evaluate_methods composes rollout + cost + solve; per instance it matches the C++ warm_start."""
    task, paths, _, x0s, params = pendulum_policies
    ev = evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(5,), warmup=False)
    mine = ev.raw[("diff", 5)]
    ref = sw.warm_start(task, x0s, params, paths["diff"], seed=5, compare_default=False)
    np.testing.assert_array_equal(mine.rollout.xs, ref.rollout.xs)
    np.testing.assert_allclose(mine.policy_cost, ref.policy_cost, rtol=1e-12)
    np.testing.assert_array_equal(mine.warm.iterations, ref.warm.iterations)
    np.testing.assert_array_equal(mine.warm.converged, ref.warm.converged)
    np.testing.assert_allclose(mine.warm.cost, ref.warm.cost, rtol=1e-12)
    assert ev.row("diff")["diverged"] == 0.0


def test_diverged_rollouts_are_not_refined(pendulum_policies):
    task, paths, _, x0s, params = pendulum_policies
    ro = sw.rollout(task, x0s, params, paths["diff"], seed=0)
    peak = np.sort(np.abs(ro.xs).max(axis=(1, 2)))
    bound = 0.5 * (peak[1] + peak[2])  # two instances stay within it, two leave it
    ev = evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(0,), divergence_bound=bound,
                          warmup=False)
    row, ws = ev.per_seed[1], ev.raw[("diff", 0)]
    out = np.abs(ws.rollout.xs).max(axis=(1, 2)) > bound
    assert out.sum() == 2 and row["diverged"] == 0.5
    assert not ws.warm.converged[out].any() and (ws.warm.iterations[out] == 0).all()
    assert all(ws.warm.errors[i].startswith("not refined") for i in np.flatnonzero(out))
    np.testing.assert_array_equal(ws.warm.xs[out], ws.rollout.xs[out])  # the guess, unrefined
    # the others are refined exactly as a solve of those instances from their rollouts
    alone = sw.solve(task, x0s[~out], params[~out], ro.xs[~out], ro.us[~out])
    np.testing.assert_array_equal(ws.warm.iterations[~out], alone.iterations)
    assert row["iterations"] == pytest.approx(np.mean(alone.iterations))
    assert row["converged"] == pytest.approx(np.sum(alone.converged) / 4)
    assert row["solve_time"] == pytest.approx(np.mean(ws.warm.solve_time[~out]))
    # nothing within the bound: nothing refined, no time or iteration means
    none = evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, seeds=(0,), divergence_bound=1e-3,
                            warmup=False)
    r = none.row("diff")
    assert r["diverged"] == 1.0 and r["converged"] == 0.0
    assert math.isnan(r["iterations"]) and math.isnan(r["total_time"]) and math.isfinite(r["policy_cost"])
    with pytest.raises(ValueError, match="divergence_bound"):
        evaluate_methods(task, {"diff": paths["diff"]}, x0s, params, divergence_bound=0)


def test_infeasible_is_the_share_of_guesses_that_break_a_constraint(solved, tmp_path):
    """Among the quadrotor's columns TO alone's straight line and other instances' solutions (the lookup) fly through
    columns, which their objective does not show: each row's ``infeasible`` is the share of its guesses whose
    ``guess_violations`` exceed the solver's tolerance; files written before the metric still print."""
    from sobolev_warmstart.baselines import NearestNeighbourLookup
    from sobolev_warmstart.solver import SolverOptions
    from sobolev_warmstart.warmstart import default_guesses, guess_violations

    task, x0s, params, res = solved("quadrotor", "columns_3")
    ok = res.converged
    lookup = NearestNeighbourLookup(task, x0s[ok], params[ok], res.xs[ok], res.us[ok], res.feedback_gains[ok])
    x_te, p_te = task.sample_instances(6, seed=77)
    ev = evaluate_methods(task, {"nn": lookup}, x_te, p_te, seeds=(0,), warmup=False)
    tol = SolverOptions().tol
    straight = guess_violations(task, x_te, p_te, *default_guesses(task, x_te, p_te), 1e3)
    assert ev.row("to")["infeasible"] == np.mean(straight > tol) > 0
    nn = ev.raw[("nn", 0)]
    nn_violation = guess_violations(task, x_te, p_te, nn.rollout.xs, nn.rollout.us, 1e3)
    assert ev.row("nn")["infeasible"] == np.mean(nn_violation > tol)
    np.testing.assert_array_equal(ev.violations[("to", 0)], straight)  # per instance, kept with raw
    np.testing.assert_array_equal(ev.violations[("nn", 0)], nn_violation)
    assert evaluate_methods(task, {"nn": lookup}, x_te, p_te, seeds=(0,), warmup=False, keep_raw=False).violations == {}
    assert "infeasible [%]" in ev.table()
    path = tmp_path / "old.json"
    ev.to_json(path)
    doc = json.loads(path.read_text())
    for r in doc["rows"] + doc["per_seed"]:
        r.pop("infeasible", None), r.pop("infeasible_ci95", None)
    path.write_text(json.dumps(doc))
    assert "infeasible [%]" in EvaluationResult.from_json(path).table()


def test_a_calibrated_fallback_bounds_the_rollouts_at_a_multiple_of_the_policys_median_ratio(pendulum_policies,
                                                                                           tmp_path):
    """LookupFallback.calibrated: cost_ratio = max(1, factor x the median, over fresh instances of the calibration
    seed, of the policy's rollout objective over its nearest training solution's), recomputed here from a rollout
    of those instances; a worse policy gets a proportionally looser bound; bad arguments name themselves."""
    task, paths, eager, x0s, params = pendulum_policies
    train_x, train_p = task.sample_instances(6, seed=0)
    lookup = NearestNeighbourLookup.from_solve(task, sw.solve(task, train_x, train_p))
    fb = LookupFallback.calibrated(lookup, task, paths["diff"], factor=2.0, max_ratio=1e9, instances=12, seed=31)
    cx, cp = task.sample_instances(12, seed=31)
    ro = sw.rollout(task, cx, cp, paths["diff"], seed=0)
    ratio = guess_costs(task, cx, cp, ro.xs, ro.us, 1e3) / lookup.solution_costs(task)[lookup.nearest(cx, cp)]
    assert fb.calibration == {"factor": 2.0, "max_ratio": 1e9,
                              "median_ratio": pytest.approx(float(np.median(ratio)), rel=1e-12),
                              "instances": 12, "seed": 31}
    assert fb.cost_ratio == pytest.approx(2.0 * float(np.median(ratio)), rel=1e-12) and 1 < fb.cost_ratio < 1e9
    assert "calibrated: 2 x the policy's median" in repr(fb) and fb.lookup is lookup
    # the C++ calibration (what sw_bench_warm_start --cost-ratio=auto runs) gives the same bits
    native = sw._core.Lookup(str(lookup.export(tmp_path / "lookup.safetensors", task)))
    runner = sw.load_policy_runner(paths["diff"])
    assert native.calibrate(task, runner, factor=2.0, max_ratio=1e9, instances=12, seed=31) == (
        fb.cost_ratio, fb.calibration["median_ratio"])
    with pytest.raises(ValueError, match="factor: expected a finite number >= 1"):
        native.calibrate(task, runner, factor=0.5)
    assert LookupFallback.calibrated(lookup, task, paths["diff"], factor=4.0, max_ratio=1e9, instances=12,
                                     seed=31).cost_ratio == pytest.approx(2 * fb.cost_ratio, rel=1e-12)
    # a policy whose typical rollout is itself far off keeps its rollouts only up to max_ratio
    capped = LookupFallback.calibrated(lookup, task, paths["diff"], factor=2.0, max_ratio=1.5, instances=12, seed=31)
    assert capped.cost_ratio == 1.5 and capped.calibration["median_ratio"] == fb.calibration["median_ratio"]
    assert LookupFallback(lookup).calibration is None
    for bad in (0.5, float("nan"), True):
        with pytest.raises(ValueError, match="factor: expected a finite number >= 1"):
            LookupFallback.calibrated(lookup, task, paths["diff"], factor=bad)
    with pytest.raises(ValueError, match="max_ratio: expected a finite number >= 1"):
        LookupFallback.calibrated(lookup, task, paths["diff"], max_ratio=0.5)
    with pytest.raises(ValueError, match="instances: expected a positive integer"):
        LookupFallback.calibrated(lookup, task, paths["diff"], instances=0)
    with pytest.raises(ValueError, match="task: the lookup was built for name = 'pendulum'"):
        LookupFallback.calibrated(lookup, sw.make_task("double_pendulum"), paths["diff"])


def test_the_lookup_fallback_replaces_the_rollouts_above_their_bound_alike_on_every_path(pendulum_policies):
    """Sob+Diff's NN fallback (``sob_diff_nn``): a rollout costing more than ``cost_ratio`` times its nearest training
    solution is replaced by that solution (first state the new x0) before the refine, the others are refined as
    they are; evaluate_methods, warm_start's C++ path and its eager path agree instance by instance."""
    task, paths, eager, x0s, params = pendulum_policies
    train_x, train_p = task.sample_instances(6, seed=0)
    solved = sw.solve(task, train_x, train_p)
    lookup = NearestNeighbourLookup.from_solve(task, solved)
    np.testing.assert_allclose(lookup.solution_costs(task), solved.cost[solved.converged], rtol=1e-9)
    plain = sw.warm_start(task, x0s, params, paths["diff"], seed=0, compare_default=False)
    ratio = plain.policy_cost / lookup.solution_costs(task)[lookup.nearest(x0s, params)]
    cost_ratio = max(1.0, float(np.median(ratio)))  # the policy trained for one epoch: about half its rollouts above
    want = ratio > cost_ratio
    assert want.any()
    fallback = LookupFallback(lookup, cost_ratio)
    w = sw.warm_start(task, x0s, params, paths["diff"], seed=0, compare_default=False, fallback=fallback)
    np.testing.assert_array_equal(w.replaced, want)
    np.testing.assert_allclose(w.policy_cost, plain.policy_cost, rtol=1e-12)  # the policy's own rollouts' cost
    np.testing.assert_array_equal(w.warm.iterations[~want], plain.warm.iterations[~want])
    xs_nn, us_nn = lookup.guess(task, x0s, params)
    np.testing.assert_array_equal(w.rollout.xs[want], xs_nn[want])
    np.testing.assert_array_equal(w.rollout.xs[~want], plain.rollout.xs[~want])
    from_lookup = sw.solve(task, x0s[want], params[want], xs_nn[want], us_nn[want])
    np.testing.assert_array_equal(w.warm.iterations[want], from_lookup.iterations)
    assert all(e == "" for e in np.asarray(w.rollout.errors, dtype=object)[want])
    e = sw.warm_start(task, x0s, params, eager["diff"], seed=0, compare_default=False, fallback=fallback)
    np.testing.assert_array_equal(e.replaced, want)  # the ratios (here 196-249) are far from the median split
    # the replaced instances start from the same lookup guesses; the kept ones from rollouts equal to float rounding
    np.testing.assert_array_equal(e.warm.iterations[want], w.warm.iterations[want])
    np.testing.assert_allclose(e.rollout.xs, w.rollout.xs, atol=1e-5)
    ev = evaluate_methods(task, {"sob_diff_nn": paths["diff"]}, x0s, params, seeds=(0,), warmup=False,
                          fallback=fallback)
    mine = ev.raw[("sob_diff_nn", 0)]
    np.testing.assert_array_equal(mine.replaced, want)
    np.testing.assert_array_equal(mine.warm.iterations, w.warm.iterations)
    assert ev.row("sob_diff_nn")["label"] == "Sob+Diff, NN fallback"
    # bad input
    with pytest.raises(ValueError, match="fallback: the methods \\['sob_diff_nn'\\] need a LookupFallback"):
        evaluate_methods(task, {"sob_diff_nn": paths["diff"]}, x0s, params)
    with pytest.raises(TypeError, match="fallback"):
        sw.warm_start(task, x0s, params, paths["diff"], fallback=lookup)
    for bad in (0.5, float("inf"), True):
        with pytest.raises(ValueError, match="cost_ratio"):
            LookupFallback(lookup, bad)
    with pytest.raises(TypeError, match="lookup"):
        LookupFallback(solved)
    runner = sw.load_policy_runner(paths["diff"])
    with pytest.raises(ValueError, match="give all three"):
        sw._core.warm_start(task, runner, x0s, params, fallback_xs=xs_nn)
    with pytest.raises(ValueError, match="fallback_us"):
        sw._core.warm_start(task, runner, x0s, params, fallback_xs=xs_nn, fallback_us=us_nn[:, :-1],
                            fallback_cost_bound=np.ones(len(x0s)))
    with pytest.raises(ValueError, match="fallback_xs: expected finite"):
        sw._core.warm_start(task, runner, x0s, params, fallback_xs=np.where(np.arange(xs_nn.size).reshape(
            xs_nn.shape) == 3, np.nan, xs_nn), fallback_us=us_nn, fallback_cost_bound=np.ones(len(x0s)))
