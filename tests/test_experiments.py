"""Plots, experiment presets at smoke scale (end to end on a few instances), and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart import plots
from sobolev_warmstart.evaluate import EvaluationResult, read_rows_csv
from sobolev_warmstart.experiments import PRESETS, main, run_experiment, settings_for, write_report
from sobolev_warmstart.solver import VARIANT_SOLVER_SETTINGS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5_000):
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, (path, len(data))


def curve_rows():
    rows = []
    for method, base in (("to", 10.0), ("mlp", 40.0), ("sob_diff", 20.0)):
        for n in (8, 16, 32):
            rows.append({"method": method, "num_trajectories": n, "epochs": n, "policy_cost": base * 8 / n,
                         "policy_cost_ci95": 1.0, "iterations": base, "iterations_ci95": float("nan")})
    return rows


# --------------------------------------------------------------------------------------------------- plots
def test_curve_plots_are_written(tmp_path):
    rows = curve_rows()
    assert_png(plots.plot_cost_vs_dataset_size(rows, tmp_path / "a.png", "policy_cost"))
    assert_png(plots.plot_cost_vs_epochs(rows, tmp_path / "b.png", "iterations"))
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_metric_curves([], "epochs", "cost", tmp_path / "c.png")
    with pytest.raises(KeyError, match="num_trajectories"):
        plots.plot_cost_vs_dataset_size([{"method": "mlp", "policy_cost": 1.0}], tmp_path / "d.png")
    with pytest.raises(ValueError, match="unknown methods"):
        plots.plot_cost_vs_epochs([{"method": "ppo", "epochs": 1, "policy_cost": 1.0}], tmp_path / "e.png")
    assert not (tmp_path / "d.png").exists()


def test_action_length_table_and_plot(tmp_path):
    metrics = {"policy_cost": 5.0, "cost": 2.0, "iterations": 10.0, "converged": 0.75, "rollout_time": 0.002,
               "total_time": 0.01}
    rows = [{"method": "to", "action_steps": 0, **metrics, "policy_cost": float("nan"), "rollout_time": 0.0}]
    rows += [{"method": "sob_diff", "action_steps": a, "replans": math.ceil(100 / a), **metrics,
              "iterations_ci95": 1.5} for a in (8, 1, 2)]
    table = plots.action_length_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| method | A | replans")
    assert lines[2].startswith("| TO alone | — | — | — | 2 | 10 | 75 | 0 | 10 |")
    assert [line.split(" | ")[1] for line in lines[3:]] == ["1", "2", "8"]  # sorted by A
    assert "| 100 |" in lines[3] and "10 ± 1.5" in lines[3] and "75" in lines[3]
    assert_png(plots.plot_action_length(rows, tmp_path / "a.png"))
    with pytest.raises(ValueError, match="no learned-method rows"):
        plots.plot_action_length(rows[:1], tmp_path / "b.png")


@pytest.mark.parametrize("name,variant", [("double_pendulum", ""), ("ur5", "random_start_random_target"),
                                          ("quadrotor", "columns_3")])
def test_trajectory_pictures(tmp_path, name, variant):
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(2, seed=0)
    options = sw.SolverOptions(max_iters=20)
    to = sw.solve(task, x0s, params, options=options)
    guess = np.stack([task.default_initial_guess(x, p)[0] for x, p in zip(x0s, params)])
    assert_png(plots.plot_trajectories(task, tmp_path / "t.png", params, to.xs, guess, to.xs, instances=2))
    assert_png(plots.plot_trajectories(task, tmp_path / "u.png", params, to.xs, instances=[1]))
    with pytest.raises(ValueError, match="rollout_xs"):
        plots.plot_trajectories(task, tmp_path / "v.png", params, to.xs, guess[:1])
    with pytest.raises(ValueError, match="instances"):
        plots.plot_trajectories(task, tmp_path / "v.png", params, to.xs, instances=[2])
    with pytest.raises(ValueError, match="to_xs"):
        plots.plot_trajectories(task, tmp_path / "v.png", params, to.xs[:, :-1])


def test_quadrotor_columns_follow_the_parameter_layout():
    task = sw.make_task("quadrotor", "columns_3")
    _, params = task.sample_instances(1, seed=4)
    centres, keep_out = plots.quadrotor_columns(task, params[0])
    np.testing.assert_array_equal(centres, params[0, 3:].reshape(3, 2))
    assert keep_out == pytest.approx(0.4)  # column radius 0.15 + clearance 0.25 (describe())
    with pytest.raises(ValueError, match="quadrotor"):
        plots.quadrotor_columns(sw.make_task("pendulum"), np.zeros(0))


# ------------------------------------------------------------------------------------------------- presets
@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("experiments")


@pytest.fixture(scope="module")
def sample_efficiency(out_dir):
    return run_experiment("sample_efficiency", out_dir, "smoke")


@pytest.fixture(scope="module")
def action_length(out_dir):
    return run_experiment("action_length", out_dir, "smoke")


@pytest.fixture(scope="module")
def ur5_loop(out_dir):
    return run_experiment("ur5_loop", out_dir, "smoke")


@pytest.fixture(scope="module")
def quadrotor(out_dir):
    assert main(["quadrotor_columns", "--out", str(out_dir), "--scale", "smoke", "--machine", "test box"]) == 0
    return json.loads((out_dir / "quadrotor_columns" / "summary.json").read_text())


def check_summary(summary, out_dir, name):
    folder = out_dir / name
    assert summary["name"] == name and summary["scale"] == "smoke" and summary["run_time_s"] > 0
    assert summary["command"].endswith(f"{name} --out {out_dir} --scale smoke")
    assert json.loads((folder / "summary.json").read_text())["run_time_s"] == summary["run_time_s"]
    for rel in summary["plots"].values():
        assert_png(folder / rel)
    assert summary["tables"] and all(t.startswith("| ") for t in summary["tables"].values())


def test_sample_efficiency_smoke(sample_efficiency, out_dir):
    s = settings_for("sample_efficiency", "smoke")
    check_summary(sample_efficiency, out_dir, "sample_efficiency")
    rows = read_rows_csv(out_dir / "sample_efficiency" / "cost_vs_dataset_size.csv")
    assert [(r["num_trajectories"], r["method"]) for r in rows] == [
        (n, m) for n in s.train_sizes for m in ("to", "nn", "nn_feedback", *s.methods)]  # lookups in the same data
    # the CSV holds exactly the evaluation of each dataset size
    for n in s.train_sizes:
        ev = EvaluationResult.from_json(out_dir / "sample_efficiency" / f"n{n}" / "evaluation.json")
        mine = [r for r in rows if r["num_trajectories"] == n]
        for a, b in zip(mine, ev.rows):
            assert a["method"] == b["method"] and a["iterations"] == b["iterations"]
        assert all(r["converged_trajectories"] <= n for r in mine)
    epochs = read_rows_csv(out_dir / "sample_efficiency" / "cost_vs_epochs.csv")
    assert len({r["epochs"] for r in epochs}) == len(s.epoch_points)
    assert set(sample_efficiency["headline"]) == {"nn", "nn_feedback", *s.methods}


def test_action_length_smoke(action_length, out_dir):
    s = settings_for("action_length", "smoke")
    check_summary(action_length, out_dir, "action_length")
    rows = read_rows_csv(out_dir / "action_length" / "action_length.csv")
    assert [r["action_steps"] for r in rows] == [0, *s.action_steps_sweep]
    assert [r["replans"] for r in rows[1:]] == [math.ceil(100 / a) for a in s.action_steps_sweep]
    # one trained policy: the same file evaluated with each A
    for a in s.action_steps_sweep:
        ev = EvaluationResult.from_json(out_dir / "action_length" / f"evaluation_A{a}.json")
        assert ev.meta["action_steps"] == a and ev.row("sob_diff")["action_steps"] == a
    assert (out_dir / "action_length" / "action_length.md").read_text().strip() == \
        action_length["tables"]["action length"]


def test_ur5_loop_smoke(ur5_loop, out_dir):
    s = settings_for("ur5_loop", "smoke")
    check_summary(ur5_loop, out_dir, "ur5_loop")
    collection = read_rows_csv(out_dir / "ur5_loop" / "collection.csv")
    assert [r["iteration"] for r in collection] == list(range(1, s.loop_iterations + 1))
    assert all(0 <= r["policy_kept"] <= r["accepted"] <= s.loop_instances for r in collection)
    assert collection[0]["policy_kept"] == 0 and collection[0]["collected_with"] == "TO alone"
    # each policy is trained on all data accepted before its iteration (the loop's own record)
    accepted = np.cumsum([0] + [r["accepted"] for r in collection])
    assert [r["trained_on"] for r in collection[1:]] == list(accepted[1:-1])
    loop_summary = json.loads((out_dir / "ur5_loop" / "loop" / "summary.json").read_text())
    assert loop_summary is not None
    ev = EvaluationResult.from_json(out_dir / "ur5_loop" / "evaluation.json")
    assert ev.methods == ["to", "nn", "nn_feedback", "sob_diff"] and ev.meta["variant"] == "random_start_random_target"
    # the loop collects and the evaluation refines with the variant's solver settings (the stall switch)
    measured = VARIANT_SOLVER_SETTINGS["ur5/random_start_random_target"]
    loop_config = json.loads((out_dir / "ur5_loop" / "loop" / "config.json").read_text())
    for key, value in measured.items():
        assert ev.meta["options"][key] == value and loop_config["solver"][key] == value
    # running it again in the same folder starts afresh (run_loop would resume the finished run in no time)
    again = run_experiment("ur5_loop", out_dir, "smoke")
    assert read_rows_csv(out_dir / "ur5_loop" / "collection.csv") == collection  # seeded: the same data
    assert again["run_time_s"] > 0.5 * ur5_loop["run_time_s"]


def test_quadrotor_smoke_and_command_line(quadrotor, out_dir):
    check_summary(quadrotor, out_dir, "quadrotor_columns")
    ev = EvaluationResult.from_json(out_dir / "quadrotor_columns" / "evaluation.json")
    assert ev.methods == ["to", "nn", "nn_feedback", "diff", "sob_diff"] and ev.meta["variant"] == "columns_9"
    assert "Machine: test box" in (out_dir / "REPORT.md").read_text()


def test_report_gathers_every_preset(sample_efficiency, action_length, ur5_loop, quadrotor, out_dir):
    path = write_report(out_dir, "2-core test machine")
    text = path.read_text()
    assert "Machine: 2-core test machine" in text
    summaries = [json.loads((out_dir / name / "summary.json").read_text()) for name in PRESETS]
    for summary in summaries:
        assert f"## {summary['name']} (smoke)" in text
        assert summary["command"] in text and f"{summary['run_time_s']:.1f}" in text
        for rel in summary["plots"].values():
            assert f"({summary['name']}/{rel})" in text
    total = sum(s["run_time_s"] for s in summaries)
    assert f"| total | | {total:.1f} |" in text


def test_a_study_runs_with_changed_settings_and_refuses_another_studys(tmp_path):
    """run_experiment(settings=...): the study runs with them (its evaluation, its exported policies) and records
    them in its summary; settings of another task are refused before anything runs."""
    import dataclasses

    from sobolev_warmstart.export import load_native
    s = dataclasses.replace(settings_for("quadrotor_columns", "smoke"), test_instances=2, sampling_temperature=0.5)
    summary = run_experiment("quadrotor_columns", tmp_path, "smoke", settings=s)
    assert summary["settings"]["test_instances"] == 2 and summary["settings"]["sampling_temperature"] == 0.5
    folder = tmp_path / "quadrotor_columns"
    assert EvaluationResult.from_json(folder / "evaluation.json").meta["instances"] == 2
    for method in ("diff", "sob_diff"):
        assert load_native(folder / method / "policy.safetensors")[1]["sampling_temperature"] == 0.5
    with pytest.raises(ValueError, match="settings: quadrotor_columns runs on quadrotor/columns_9, got settings for ur5"):
        run_experiment("quadrotor_columns", tmp_path / "other", "smoke", settings=settings_for("ur5_loop", "smoke"))
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_every_study_solves_with_its_variants_solver_settings(name, scale):
    from sobolev_warmstart.experiments import _options
    s = settings_for(name, scale)
    key = f"{s.task}/{s.variant or sw.make_task(s.task).variant}"
    options = _options(s)
    for field, value in VARIANT_SOLVER_SETTINGS.get(key, {}).items():
        assert getattr(options, field) == value, (name, scale, field)


def test_bad_experiment_input(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'cartpole'"):
        run_experiment("cartpole", tmp_path, "smoke")
    with pytest.raises(ValueError, match="scale"):
        run_experiment("ur5_loop", tmp_path, "huge")
    with pytest.raises(FileNotFoundError, match="no experiment results"):
        write_report(tmp_path)
    with pytest.raises(SystemExit):
        main(["cartpole", "--out", str(tmp_path)])
    assert set(PRESETS) == {"sample_efficiency", "action_length", "ur5_loop", "quadrotor_columns"}
