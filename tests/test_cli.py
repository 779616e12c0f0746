"""Command line: the main job's summary table, the collect/train/export/evaluate/bench/loop commands and their
errors."""

import json
import re
import subprocess
import sys

import pytest

from sobolev_warmstart.cli import main


def test_solve_prints_a_summary(capsys):
    assert main(["solve", "--task", "pendulum", "-n", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "converged" in out and "iterations" in out and "pendulum/default" in out


def test_solve_takes_the_stall_switch(capsys):
    assert main(["solve", "--task", "pendulum", "-n", "2", "--threads", "1", "--stall-iters", "0"]) == 0
    assert "converged" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["solve", "--task", "pendulum", "-n", "2", "--stall-iters", "-1"])
    assert "--stall-iters" in capsys.readouterr().err


def test_solve_takes_the_variants_measured_settings_unless_given(capsys):
    # SolverOptions.for_task: the pendubot's penalty 0.1, the UR5s' stall switch; the flags override them
    assert main(["solve", "--task", "double_pendulum", "-n", "1", "--threads", "1", "--max-iters", "5"]) == 0
    assert "mu_init 0.1, stall_iters 0," in capsys.readouterr().out
    assert main(["solve", "--task", "double_pendulum", "-n", "1", "--threads", "1", "--max-iters", "5",
                 "--mu-init", "0.001"]) == 0
    assert "mu_init 0.001, stall_iters 0," in capsys.readouterr().out
    assert main(["solve", "--task", "ur5", "--variant", "fixed_start_random_target", "-n", "1", "--threads", "1"]) == 0
    assert "mu_init 0.001, stall_iters 10," in capsys.readouterr().out
    assert main(["solve", "--task", "ur5", "--variant", "fixed_start_random_target", "-n", "1", "--threads", "1",
                 "--stall-iters", "0"]) == 0
    assert "mu_init 0.001, stall_iters 0," in capsys.readouterr().out


def test_collect_takes_the_variants_measured_settings_unless_configured(tmp_path, capsys):
    # as solve does: the pendubot's penalty 0.1, the UR5s' stall switch; a flag or a --set overrides them
    out = tmp_path / "d.npz"
    assert main(["collect", "-o", str(out), "--task", "double_pendulum", "-n", "8", "--threads", "1", "-q"]) == 0
    assert "mu_init 0.1, stall_iters 0," in capsys.readouterr().out
    assert main(["collect", "-o", str(out), "--task", "double_pendulum", "-n", "8", "--threads", "1", "-q",
                 "--mu-init", "0.001"]) == 0
    assert "mu_init 0.001, stall_iters 0," in capsys.readouterr().out
    assert main(["collect", "-o", str(out), "--task", "double_pendulum", "-n", "8", "--threads", "1", "-q",
                 "--set", "solver.mu_init=0.01"]) == 0
    assert "mu_init 0.01, stall_iters 0," in capsys.readouterr().out
    assert main(["collect", "-o", str(out), "--task", "ur5", "--variant", "fixed_start_random_target", "-n", "1",
                 "--threads", "1", "-q"]) == 0
    assert "mu_init 0.001, stall_iters 10," in capsys.readouterr().out
    assert main(["collect", "-o", str(out), "--task", "ur5", "--variant", "fixed_start_random_target", "-n", "1",
                 "--threads", "1", "-q", "--stall-iters", "0"]) == 0
    assert "mu_init 0.001, stall_iters 0," in capsys.readouterr().out


def test_unknown_variant_is_a_clear_error(capsys):
    assert main(["solve", "--task", "ur5", "--variant", "sideways", "-n", "1"]) == 2
    assert "variant: unknown variant 'sideways'" in capsys.readouterr().err


def test_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "sobolev_warmstart.cli", "tasks"], capture_output=True, text=True, check=True)
    assert "quadrotor: columns_0" in out.stdout


# ------------------------------------------------------------------ collect, train, export, evaluate, bench, loop
def test_collect_train_export_evaluate_bench(tmp_path, capfd):
    data, policy, exported = tmp_path / "d.npz", tmp_path / "policy.pt", tmp_path / "export.safetensors"
    assert main(["collect", "-o", str(data), "-n", "6", "--seed", "3", "-q", "--set", "solver.max_iters=300"]) == 0
    out = capfd.readouterr().out
    assert "pendulum/default" in out and "budget 300" in out
    import sobolev_warmstart as sw
    ds = sw.load_dataset(data)
    task = sw.make_task("pendulum")
    ref = sw.solve(task, *task.sample_instances(6, seed=3), options=sw.SolverOptions(max_iters=300))
    assert ds.data.num_instances == int(ref.converged.sum()) and len(ds) == 100 * ds.data.num_instances
    assert f"{int(ref.converged.sum())}/6 ({6 - int(ref.converged.sum())} rejected, budget 300)" in out

    assert main(["train", str(data), "-o", str(policy), "--policy", "sob_mlp", "--epochs", "2", "--sobolev-weight",
                 "0.01", "--threads", "1", "-q", "--set", "mlp.hidden_dims=[16,16]"]) == 0
    loaded = sw.load_policy(policy)
    assert loaded.kind == "mlp" and loaded.mlp_config.hidden_dims == (16, 16)
    assert main(["export", str(policy), str(exported)]) == 0
    assert "exported mlp policy for pendulum to " in capfd.readouterr().out
    assert main(["export", str(policy), str(tmp_path / "export.pt")]) == 0
    assert "(TorchScript," in capfd.readouterr().out

    assert main(["evaluate", "--policy", f"sob_mlp={exported}", "-n", "3", "--seeds", "0", "--threads", "1",
                 "--json", str(tmp_path / "ev.json")]) == 0
    out = capfd.readouterr().out
    assert "TO alone" in out and "Sob+MLP" in out and (tmp_path / "ev.json").is_file()

    # the C++ benchmark executable, run as a child process (capfd sees its output)
    assert main(["bench", str(exported), "-n", "2", "--threads", "1"]) == 0
    out = capfd.readouterr().out
    assert "TO alone" in out and "warm start" in out and "rollouts/s" in out
    # with the training set's lookup: its guess (NN) and the warm start with the NN fallback, in C++
    assert main(["bench", str(exported), "-n", "3", "--threads", "1", "--lookup", str(data)]) == 0
    out = capfd.readouterr().out
    assert "NN fallback" in out and "training instances of pendulum/default" in out and "of 3 rollouts replaced" in out
    assert main(["bench", str(exported), "-n", "2", "--lookup", str(tmp_path / "none.npz")]) == 2
    assert "--lookup: no such file" in capfd.readouterr().err
    lk = sw.NearestNeighbourLookup.load(data).export(tmp_path / "lookup.safetensors", task)
    assert main(["bench", str(exported), "-n", "2", "--threads", "1", "--lookup", str(lk),
                 "--fallback-cost-ratio", "30"]) == 0
    assert "fallback above 30 x the nearest solution's objective" in capfd.readouterr().out
    assert main(["bench", str(exported), "-n", "2", "--threads", "1", "--lookup", str(lk)]) == 0
    assert "x the policy's median ratio" in capfd.readouterr().out  # calibrated by the executable


def test_export_samples_in_fewer_steps(tmp_path, capsys):
    """export --sampling-steps: the exported file samples with DDIM on those steps (the saved policy is unchanged);
    'ddpm' goes back to the trained posterior; an MLP policy or bad steps are one-line errors."""
    from sobolev_warmstart.data import ChunkSpec, build_dataset
    from sobolev_warmstart.export import load_native
    from sobolev_warmstart.models import MLPConfig
    from sobolev_warmstart.policy import DiffusionPolicy, MLPPolicy, load_policy, save_policy
    from sobolev_warmstart.synthetic import lqr_double_integrator
    ds = build_dataset(lqr_double_integrator(4, horizon=20, chunk_offsets=16), ChunkSpec(8, 1, 2))
    saved, out = tmp_path / "p.pt", tmp_path / "p.safetensors"
    save_policy(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="mlp", mlp=MLPConfig((8,))), saved)
    assert main(["export", str(saved), str(out), "--sampling-steps", "4,0"]) == 0
    assert "DDIM on steps [4, 0]" in capsys.readouterr().out
    assert load_native(out)[1]["sampling_steps"] == [4, 0]
    assert load_policy(saved).diffusion_config.sampling_steps is None
    assert main(["export", str(saved), str(out), "--sampling-steps", "ddpm"]) == 0
    assert "DDPM on steps [4, 3, 2, 1, 0]" in capsys.readouterr().out
    assert main(["export", str(saved), str(out), "--sampling-steps", "3,0"]) == 2
    assert capsys.readouterr().err.startswith("error: sampling_steps: expected a strictly descending sequence")
    # the DDPM posterior's noise scaled: carried by the file; DDIM takes none, in either order of the flags' effects
    assert main(["export", str(saved), str(out), "--sampling-temperature", "0.5"]) == 0
    assert "DDPM on steps [4, 3, 2, 1, 0], temperature 0.5" in capsys.readouterr().out
    assert load_native(out)[1]["sampling_temperature"] == 0.5
    save_policy(load_policy(saved).set_sampling_temperature(0.5), saved)
    assert main(["export", str(saved), str(out), "--sampling-steps", "4,0", "--sampling-temperature", "1"]) == 0
    assert load_native(out)[1]["sampling_steps"] == [4, 0]
    capsys.readouterr()
    assert main(["export", str(saved), str(out), "--sampling-steps", "4,0"]) == 2
    assert capsys.readouterr().err.startswith("error: sampling_temperature: DDIM")
    assert main(["export", str(saved), str(out), "--sampling-temperature", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: sampling_temperature: expected a finite number >= 0")
    save_policy(MLPPolicy(ds.task, ds.spec, ds.normalisers, MLPConfig((8,))), saved)
    assert main(["export", str(saved), str(out), "--sampling-steps", "4,0"]) == 2
    assert "error: --sampling-steps: " in capsys.readouterr().err
    assert main(["export", str(saved), str(out), "--sampling-temperature", "0.5"]) == 2
    assert "error: --sampling-temperature: " in capsys.readouterr().err


def test_collect_consolidates_and_keeps_to_alones_normalisers(tmp_path, capfd):
    """collect --consolidate K: the same instances, each solution at most as costly as TO alone's (cheaper on some),
    and the normalisers of TO alone's dataset, so a policy trained on it scales states as the plain one."""
    import numpy as np

    import sobolev_warmstart as sw
    plain, better = tmp_path / "plain.npz", tmp_path / "better.npz"
    common = ["--task", "double_pendulum", "-n", "10", "--seed", "7", "--threads", "1", "-q",
              "--set", "solver.max_iters=300"]
    assert main(["collect", "-o", str(plain), *common]) == 0
    assert "consolidated" not in capfd.readouterr().out
    assert main(["collect", "-o", str(better), *common, "--consolidate", "3"]) == 0
    assert re.search(r"consolidated\s+cost mean [0-9.]+ -> [0-9.]+, [1-9][0-9]* trajectories", capfd.readouterr().out)
    a, b = sw.load_dataset(plain), sw.load_dataset(better)
    np.testing.assert_array_equal(a.data.xs[:, 0], b.data.xs[:, 0])
    assert np.all(b.data.cost <= a.data.cost * (1 + 1e-9)) and np.any(b.data.cost < 0.99 * a.data.cost)
    assert b.normalisers.to_dict() == a.normalisers.to_dict()
    assert main(["collect", "-o", str(better), *common, "--set", "consolidate_rounds=0"]) == 2


def test_command_errors_are_one_line_with_status_2(tmp_path, capsys):
    cases = [
        (["loop", "--set", "trian.epochs=3"], "error: loop.trian: unknown key; expected one of action_steps,"),
        (["loop", "--set", "train.epochs=ten"], "error: loop.train.epochs: expected an integer, got 'ten' (str)"),
        (["collect", "-o", str(tmp_path / "d.npz"), "--set", "solver.max_iter=3"],
         "error: collect.solver.max_iter: unknown key; expected one of dual_init, max_iters,"),
        (["train", str(tmp_path / "d.npz"), "-o", str(tmp_path / "p.pt"), "--policy", "diff", "--sobolev-weight", "1"],
         "error: train.sobolev_weight: policy 'diff' trains without the Sobolev term"),
        (["export", str(tmp_path / "p.pt"), str(tmp_path / "p.onnx")],
         "error: output: expected a .safetensors (native), .pt (TorchScript) or .pt2 (AOTInductor) file name"),
        (["evaluate", "--policy", str(tmp_path / "p.pt")], "error: --policy"),
        (["evaluate", "--policy", f"sob_diff_nn={tmp_path / 'exists.pt'}", "--fallback", str(tmp_path / "none.npz")],
         "error: path: no dataset file at"),
        (["experiment", "everything"], "error: name: unknown experiment 'everything'"),
    ]
    (tmp_path / "exists.pt").write_bytes(b"")
    bad = tmp_path / "bad.toml"
    bad.write_text("iterations = [\n")
    cases.append((["loop", "--config", str(bad)], f"error: {bad}: invalid TOML"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(message), (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_loop_command_runs_and_resumes_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('task = "pendulum"\niterations = 2\ninstances = 4\ncollect_batch = 4\n'
                   '[train]\npolicy = "sob_mlp"\nsobolev_weight = 0.01\nepochs = 2\nnum_threads = 1\n'
                   "[train.mlp]\nhidden_dims = [16, 16]\n[eval]\ninstances = 4\n")
    run = tmp_path / "run"
    argv = ["loop", "--config", str(cfg), "--run-dir", str(run), "--set", "seed=5", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out evaluation: pendulum/default, 4 instances" in out and "warm start" in out
    summary = json.loads((run / "summary.json").read_text())
    assert [m["instance_seed"] for m in summary["iterations"]] == [5, 6] and summary["evaluation"]["instances"] == 4
    assert json.loads((run / "config.json").read_text())["seed"] == 5
    assert main(argv) == 0  # finished: resumes to the same table
    assert "held-out evaluation" in capsys.readouterr().out
    assert main([*argv[:-1], "--set", "train.epochs=3"]) == 2
    assert "differing in train.epochs (saved 2, now 3)" in capsys.readouterr().err
