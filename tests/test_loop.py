"""The collect/train loop (Algorithm 1) on the pendulum with the real solver, training and C++ rollouts."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.config import ConfigError, load_loop_config
from sobolev_warmstart.loop import _iteration_line, iteration_dir, load_instances, run_loop

# a direct policy trains in a fraction of a second: the tests of the loop's bookkeeping use it, on the pendulum, without
# the default preset's consolidation (tested on its own below, and by the end-to-end test through the preset)
FAST = ["consolidate_neighbours=0", "task=pendulum", "iterations=2", "instances=8", "collect_batch=4", "train.policy=sob_mlp", "train.sobolev_weight=0.01",
        "train.mlp.hidden_dims=[32,32]", "train.epochs=3", "train.batch_size=128", "train.num_threads=1",
        "eval.enabled=false"]


def config(run_dir, *overrides):
    return load_loop_config("default", overrides=[*FAST, *overrides], run_dir=str(run_dir))


def npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_tiny_end_to_end_loop_writes_its_files_and_metrics(tmp_path):
    run = tmp_path / "run"
    cfg = load_loop_config("default", overrides=["iterations=2", "instances=8", "collect_batch=4", "train.epochs=1",
                                                 "train.batch_size=128", "eval.instances=6"], run_dir=str(run))
    res = run_loop(cfg, progress=False)
    for rel in ("config.json", "summary.json", "summary.csv", "iter_001/batches/batch_000.npz",
                "iter_001/batches/batch_001.npz", "iter_001/trajectories.npz", "iter_001/instances.npz",
                "iter_001/metrics.json", "iter_002/train/checkpoint.pt", "iter_002/policy.pt",
                "iter_002/policy_export.safetensors", "iter_002/trajectories.npz", "iter_002/metrics.json",
                "final/policy.pt", "final/policy_export.safetensors", "final/eval.json", "final/eval_batches/batch_001.npz",
                "iter_002/consolidated.npz", "final/consolidated.npz"):  # the preset consolidates before each training
        assert (run / rel).is_file(), rel
    assert not (run / "iter_001/policy.pt").exists()  # iteration 1 is TO alone
    assert json.loads((run / "config.json").read_text())["train"]["policy"] == "sob_diff"

    m1, m2 = res.iterations
    assert (m1["mode"], m2["mode"], m1["warm"], m1["train"]) == ("to_alone", "dual", None, None)
    task = sw.make_task(cfg.task)  # the default preset's: the pendubot
    for k, m in ((1, m1), (2, m2)):
        assert m["instances"] == 8 and m["accepted"] + m["rejected"] == 8
        assert sum(m["sources"].values()) == 8 and m["sources"]["none"] == m["rejected"]
        per = load_instances(run, k)
        x0s, _ = task.sample_instances(8, seed=k - 1)
        np.testing.assert_array_equal(per["x0s"], x0s)
        data = sw.load_dataset(iteration_dir(run, k) / "trajectories.npz").data
        assert data.num_instances == m["accepted"] and data.converged.all()
        np.testing.assert_array_equal(data.xs[:, 0], x0s[per["accepted"]])
    assert m1["sources"]["policy"] == 0
    assert m2["train"]["trajectories"] == m1["accepted"] and m2["total_accepted"] == m1["accepted"] + m2["accepted"]
    assert m2["warm"]["converged"] == int(load_instances(run, 2)["warm_converged"].sum())

    ev = res.evaluation
    assert ev["instances"] == 6 and ev["train"]["trajectories"] == m2["total_accepted"]
    x_eval, _ = task.sample_instances(6, seed=cfg.eval.seed)
    assert not np.isin(x_eval, np.concatenate([task.sample_instances(8, seed=s)[0] for s in (0, 1)])).any()
    assert "TO alone" in res.table and "warm start" in res.table and "iters*" in res.table
    # the nearest-neighbour baselines, looked up in the loop's own accepted trajectories, have their rows
    lines = res.table.splitlines()
    assert lines[1].startswith("method")
    assert [line.split("  ")[0].strip() for line in lines[2:7]] == ["TO alone", "NN", "NN+feedback", "warm start",
                                                                     "warm start, NN fallback"]
    assert ev["baselines"]["training_instances"] == m2["total_accepted"]
    for method in ("nn", "nn_feedback"):
        assert len(ev["per_instance"][f"{method}_iterations"]) == 6
        assert ev["baselines"][method]["converged"] == int(np.sum(ev["per_instance"][f"{method}_converged"]))
        assert ev["baselines"][method]["rollout_time_mean"] > 0
    # every guess's constraint violation is kept; the pendubot's only constraint is its torque box, which the
    # rollouts and the lookups clamp and the default guess (zero torque) keeps: the infeasible column reads 0%
    assert ev["tol"] == cfg.solver.tol
    for key in ("policy_violation", "default_violation", "nn_policy_violation", "nn_feedback_policy_violation"):
        assert len(ev["per_instance"][key]) == 6 and max(ev["per_instance"][key]) <= cfg.solver.tol, key
    head = re.split(r"\s{2,}", lines[1])
    assert head[3] == "infeasible" and [re.split(r"\s{2,}", line)[3] for line in lines[2:7]] == ["0%"] * 5
    # the fallback row: the same rollouts as the warm start's, those above their bound (3x the policy's median ratio
    # to its neighbour's cost on fresh instances, at most 100: this one-epoch policy's rollouts are far off) replaced
    fb = ev["baselines"]["fallback"]
    assert fb["calibration"]["factor"] == 3.0 and fb["calibration"]["instances"] == 64
    assert fb["cost_ratio"] == min(100.0, max(1.0, 3.0 * fb["calibration"]["median_ratio"]))
    per = {k: np.asarray(v) for k, v in ev["per_instance"].items()}
    kept = ~per["fallback_replaced"].astype(bool) & ~per["diverged"].astype(bool)
    assert len(per["fallback_replaced"]) == 6
    np.testing.assert_array_equal(per["fallback_iterations"][kept], per["warm_iterations"][kept])
    assert sw.load_policy(run / "iter_002/policy.pt").kind == "diffusion"
    csv_lines = (run / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines] == ["stage", "1", "2", "eval"]

    # a finished run is not redone: same metrics, batch files untouched
    stamp = (run / "iter_002/batches/batch_000.npz").stat().st_mtime_ns
    again = run_loop(cfg, progress=False)
    assert again.iterations == res.iterations and again.evaluation == ev
    assert (run / "iter_002/batches/batch_000.npz").stat().st_mtime_ns == stamp


def test_rejections_and_dual_selection_match_the_solves(tmp_path):
    run = tmp_path / "run"
    # a budget of 20 (then 30) Newton iterations: several pendulum swing-ups cannot converge
    cfg = config(run, "solver.max_iters=20", "max_iters_growth=1.5")
    m1, m2 = run_loop(cfg, progress=False).iterations
    task = sw.make_task("pendulum")

    x0s, params = task.sample_instances(8, seed=0)
    ref = sw.solve(task, x0s, params, options=dataclasses.replace(cfg.solver, max_iters=20))  # the preset's penalty
    assert m1["max_iters"] == 20 and 0 < m1["rejected"] < 8
    assert (m1["accepted"], m1["rejected"]) == (int(ref.converged.sum()), int((~ref.converged).sum()))
    per1 = load_instances(run, 1)
    np.testing.assert_array_equal(per1["accepted"], ref.converged)
    np.testing.assert_array_equal(per1["default_iterations"], ref.iterations)
    data1 = sw.load_dataset(run / "iter_001/trajectories.npz").data
    np.testing.assert_array_equal(data1.xs, ref.xs[ref.converged])
    np.testing.assert_array_equal(data1.feedback_gains, ref.feedback_gains[ref.converged])

    # iteration 2: re-solve each batch from the saved policy with the saved noise seed and the grown budget
    assert m2["max_iters"] == 30 and m2["rejected"] > 0
    opts = dataclasses.replace(cfg.solver, max_iters=30)
    chosen_xs, accepted_all = [], []
    for b in range(2):
        batch = npz(run / f"iter_002/batches/batch_{b:03d}.npz")
        ws = sw.warm_start(task, batch["x0s"], batch["params"], str(run / "iter_002/policy_export.safetensors"),
                           seed=int(batch["rollout_seed"]), options=opts)
        d, w = ws.default, ws.warm
        np.testing.assert_array_equal(batch["default_converged"], d.converged)
        np.testing.assert_array_equal(batch["warm_converged"], w.converged)
        np.testing.assert_array_equal(batch["warm_iterations"], w.iterations)
        # the rule, written out: keep the lower-cost converged solve, reject when neither converged
        accepted = d.converged | w.converged
        from_policy = w.converged & (~d.converged | (w.cost <= d.cost))
        np.testing.assert_array_equal(batch["accepted"], accepted)
        expected = np.where(~accepted, "none", np.where(from_policy, "policy", "default"))
        np.testing.assert_array_equal(batch["source"], expected)
        chosen_xs.append(np.where(from_policy[:, None, None], w.xs, d.xs)[accepted])
        accepted_all.append(accepted)
    accepted_all = np.concatenate(accepted_all)
    assert (m2["accepted"], m2["rejected"]) == (int(accepted_all.sum()), int((~accepted_all).sum()))
    assert m2["sources"]["policy"] + m2["sources"]["default"] == m2["accepted"]
    data2 = sw.load_dataset(run / "iter_002/trajectories.npz").data
    np.testing.assert_array_equal(data2.xs, np.concatenate(chosen_xs))
    assert m2["train"]["trajectories"] == m1["accepted"]


class Stop(Exception):
    pass


def stop_at(event: str, **match):
    def callback(ev, info):
        if ev == event and all(info.get(k) == v for k, v in match.items()):
            raise Stop(f"{ev} {info}")
    return callback


def test_interrupted_run_resumes_without_losing_or_changing_data(tmp_path):
    run, ref = tmp_path / "run", tmp_path / "ref"
    cfg = config(run)
    with pytest.raises(Stop):  # killed during the training of iteration 2, after its first epoch
        run_loop(cfg, progress=False, callback=stop_at("epoch", iteration=2, epoch=1))
    assert (run / "iter_001/metrics.json").exists() and (run / "iter_002/train/checkpoint.pt").exists()
    assert not (run / "iter_002/policy.pt").exists()
    with pytest.raises(Stop):  # killed after the first collect batch of iteration 2
        run_loop(cfg, progress=False, callback=stop_at("batch", iteration=2, batch=0))
    assert (run / "iter_002/batches/batch_000.npz").exists()
    assert not (run / "iter_002/batches/batch_001.npz").exists() and not (run / "iter_002/metrics.json").exists()

    events = []

    def record(ev, info):
        events.append((ev, info.get("iteration"), info.get("batch", info.get("epoch"))))

    resumed = run_loop(cfg, progress=False, callback=record)
    assert ("batch", 2, 0) not in events and ("batch", 2, 1) in events  # the saved batch was loaded
    assert not any(ev == "epoch" and it == 2 for ev, it, _ in events)   # training had finished: not redone
    assert [e for e in events if e[0] == "batch" and e[1] == 1] == []    # iteration 1 was finished

    whole = run_loop(config(ref), progress=False)
    assert [m["accepted"] for m in resumed.iterations] == [m["accepted"] for m in whole.iterations]
    for k in (1, 2):
        a, b = npz(iteration_dir(run, k) / "trajectories.npz"), npz(iteration_dir(ref, k) / "trajectories.npz")
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"iteration {k}: {key}")
        pa, pb = load_instances(run, k), load_instances(ref, k)
        for key in pa:
            if "time" not in key:
                np.testing.assert_array_equal(pa[key], pb[key], err_msg=f"iteration {k}: {key}")
    wa, wb = sw.load_policy(run / "final/policy.pt"), sw.load_policy(ref / "final/policy.pt")
    for (name, ta), tb in zip(wa.state_dict().items(), wb.state_dict().values()):
        assert torch.equal(ta, tb), name


def test_training_resumes_mid_run_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    cfg = config(run, "train.epochs=4")
    with pytest.raises(Stop):
        run_loop(cfg, progress=False, callback=stop_at("epoch", iteration=2, epoch=2))
    events = []
    run_loop(cfg, progress=False,
             callback=lambda ev, info: events.append((ev, info.get("iteration"), info.get("epoch"))))
    assert [e for e in events if e[0] == "epoch" and e[1] == 2] == [("epoch", 2, 3), ("epoch", 2, 4)]


def test_another_config_on_the_same_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    run_loop(config(run, "iterations=1"), progress=False)
    with pytest.raises(ConfigError, match=r"holds a run with another config, differing in seed \(saved 0, now 3\); "
                                          r"train.epochs \(saved 3, now 5\)"):
        run_loop(config(run, "iterations=1", "train.epochs=5", "seed=3"), progress=False)
    # thread counts change no result: a run may resume with others
    res = run_loop(config(run, "iterations=1", "solver.num_threads=1", "train.num_threads=2"), progress=False)
    assert len(res.iterations) == 1
    # a run saved before a key existed (here: without consolidate_rounds) resumes where the key is at its default
    saved = json.loads((run / "config.json").read_text())
    del saved["consolidate_rounds"]
    (run / "config.json").write_text(json.dumps(saved))
    assert len(run_loop(config(run, "iterations=1"), progress=False).iterations) == 1
    with pytest.raises(ConfigError, match=r"differing in consolidate_rounds \(saved '<absent>', now 3\)"):
        run_loop(config(run, "iterations=1", "consolidate_rounds=3"), progress=False)


def test_diverged_rollouts_are_not_refined_but_the_default_solve_still_counts(tmp_path):
    run = tmp_path / "run"
    # pendulum states start near q = pi: a bound of 3.2 marks a part of the rollouts as diverged
    cfg = config(run, "iterations=2", "divergence_bound=3.2")
    run_loop(cfg, progress=False)
    task = sw.make_task("pendulum")
    batches = [npz(run / f"iter_002/batches/batch_{b:03d}.npz") for b in range(2)]
    flags = np.concatenate([b["diverged"] for b in batches])
    assert 0 < flags.sum() < len(flags)
    for batch in batches:
        ro = sw.rollout(task, batch["x0s"], batch["params"], str(run / "iter_002/policy_export.safetensors"),
                        seed=int(batch["rollout_seed"]))
        div = batch["diverged"]
        np.testing.assert_array_equal(div, np.abs(ro.xs).max(axis=(1, 2)) > 3.2)
        assert not batch["warm_converged"][div].any() and (batch["warm_iterations"][div] == 0).all()
        assert not (batch["source"][div] == "policy").any()
        np.testing.assert_array_equal(batch["accepted"][div], batch["default_converged"][div])
        # the others were refined from their rollouts
        ok = ~div
        ref = sw.solve(task, batch["x0s"][ok], batch["params"][ok], ro.xs[ok], ro.us[ok], cfg.solver)
        np.testing.assert_array_equal(batch["warm_iterations"][ok], ref.iterations)
        np.testing.assert_array_equal(batch["warm_cost"][ok], ref.cost)
    m2 = json.loads((run / "iter_002/metrics.json").read_text())
    assert m2["warm"]["diverged"] == int(flags.sum())
    refined = np.concatenate([b["warm_iterations"][~b["diverged"]] for b in batches])
    assert m2["warm"]["iterations_mean_refined"] == pytest.approx(refined.mean())  # the diverged ones left out
    assert f"over the {len(refined)} refined ({int(flags.sum())} diverged, not refined)" in _iteration_line(m2)


def test_consolidated_loop_trains_on_cheaper_solutions_with_the_raw_normalisers(tmp_path):
    """consolidate_neighbours: before each training the accepted trajectories so far are consolidated once (saved,
    reused on resumption); the policy trains on them with the normalisers of the unconsolidated set."""
    from sobolev_warmstart.data import build_dataset, load_dataset
    from sobolev_warmstart.loop import final_training_set, load_trajectories

    run = tmp_path / "run"
    cfg = config(run, "task=double_pendulum", "solver.max_iters=300", "consolidate_neighbours=3",
                 "consolidate_rounds=1")
    with pytest.raises(FileNotFoundError, match="run_dir.*final/policy.pt, final/consolidated.npz missing"):
        final_training_set(cfg)  # not run yet
    result = run_loop(cfg, progress=False)
    raw = load_trajectories(run, [1, 2])
    saved = load_dataset(run / "final/consolidated.npz")
    assert (run / "iter_002/consolidated.npz").exists()
    np.testing.assert_array_equal(saved.data.xs[:, 0], raw.xs[:, 0])
    assert np.all(saved.data.cost <= raw.cost * (1 + 1e-9)) and np.any(saved.data.cost < 0.99 * raw.cost)
    assert saved.normalisers.to_dict() == build_dataset(raw, cfg.chunk).normalisers.to_dict()
    assert sw.load_policy(run / "final/policy.pt").normalisers.to_dict() == saved.normalisers.to_dict()
    np.testing.assert_array_equal(result.training_set().xs, saved.data.xs)  # what the final policy trained on
    report = json.loads((run / "final/consolidation.json").read_text())
    assert report["instances"] == raw.num_instances and report["cost_mean_after"] < report["cost_mean_before"]
    assert json.loads((run / "iter_002/metrics.json").read_text())["train"]["consolidation"]["solves"] == 3
    stamp = (run / "final/consolidated.npz").stat().st_mtime_ns
    run_loop(cfg, progress=False)  # finished: nothing is consolidated again
    assert (run / "final/consolidated.npz").stat().st_mtime_ns == stamp


def test_comparison_table_counts_a_diverged_guess_as_the_default_solve_that_replaces_it():
    """A guess beyond the divergence bound is not refined; the table's row counts what sw.warm_start does with it
    (the default guess's solve), not an unsolved instance with 0 iterations, and says how many diverged."""
    from sobolev_warmstart.loop import comparison_table

    def arr(*v):
        return list(v)
    per = {"default_converged": arr(1, 1, 0), "default_iterations": arr(40, 60, 500), "default_solve_time": arr(.04, .06, .5),
           "default_cost": arr(2.0, 3.0, 9.0), "warm_converged": arr(1, 0, 1), "warm_iterations": arr(10, 0, 20),
           "warm_solve_time": arr(.01, 0.0, .02), "warm_cost": arr(2.0, float("nan"), 4.0), "rollout_time": arr(.001, .001, .001),
           "diverged": arr(0, 1, 0), "policy_cost": arr(2.1, 1e9, 5.0), "accepted": arr(1, 1, 1),
           "source": arr("policy", "default", "policy")}
    table = comparison_table({"instances": 3, "per_instance": per})
    warm = next(line for line in table.splitlines() if line.startswith("warm start")).split()
    # converged 3/3 (the diverged instance's default solve converged), 1 diverged, infeasible unknown (an evaluation
    # written before the violations were kept), mean iterations (10 + 60 + 20) / 3
    assert warm[2:7] == ["3/3", "(100%)", "1", "-", "30.0"]
    assert "solved from the default guess" in table
    to = next(line for line in table.splitlines() if line.startswith("TO alone")).split()
    assert to[2:7] == ["2/3", "(67%)", "-", "-", "200.0"]
    # with the violations: the share of the guesses that did not diverge and break a constraint beyond the tolerance
    per = {**per, "policy_violation": arr(0.0, 5.0, 2e-4), "default_violation": arr(0.3, 0.0, 5e-5)}
    table = comparison_table({"instances": 3, "tol": 1e-4, "per_instance": per})
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:4]}
    assert rows["warm"][5] == "50%" and rows["TO"][5] == "33%"  # two-word names: "warm start", "TO alone"
