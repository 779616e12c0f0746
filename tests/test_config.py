"""Typed configs: presets, files, --set overrides and the error messages that name the key."""

from __future__ import annotations

import json

import pytest

from sobolev_warmstart import ChunkSpec, SolverOptions, TrainConfig, make_task
from sobolev_warmstart.config import (
    PRESETS,
    CollectConfig,
    ConfigError,
    LoopConfig,
    apply_overrides,
    diff_configs,
    from_dict,
    load_config_file,
    load_loop_config,
    parse_override,
    to_dict,
)
from sobolev_warmstart.solver import VARIANT_SOLVER_SETTINGS


def error(**kwargs) -> str:
    with pytest.raises(ConfigError) as exc:
        load_loop_config(**kwargs)
    return str(exc.value)


def test_default_preset_is_the_small_pendubot_loop():
    c = load_loop_config("default")
    assert isinstance(c.chunk, ChunkSpec) and isinstance(c.solver, SolverOptions) and isinstance(c.train, TrainConfig)
    assert (c.task, c.train.policy, c.train.sobolev_weight) == ("double_pendulum", "sob_diff", 0.01)
    assert c.chunk.action_steps == 2  # ablations round 24: the pendubot's rollouts diverge less than at A = 1
    assert c.train.unet.down_dims == (16, 32)
    assert c.consolidate_neighbours == 8  # docs/loop.md: measured over three loop seeds
    assert c.eval.seed not in range(c.seed, c.seed + c.iterations)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_round_trips(name):
    c = load_loop_config(name)
    d = to_dict(c)
    assert json.loads(json.dumps(d)) == d
    assert from_dict(LoopConfig, d, "loop") == c


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_solves_with_its_variants_measured_settings(name):
    # the pendubot's penalty, the UR5s' stall switch: what the scorecard solves the variant with
    # (SolverOptions.for_task)
    c = load_loop_config(name)
    task = make_task(c.task, c.variant)
    measured = SolverOptions.for_task(task, max_iters=c.solver.max_iters, num_threads=c.solver.num_threads)
    assert c.solver == measured
    if f"{task.name}/{task.variant}" in ("double_pendulum/default", "ur5/random_start_random_target"):
        assert VARIANT_SOLVER_SETTINGS[f"{task.name}/{task.variant}"]  # the case this test is for is not empty


def test_unknown_keys_are_named_with_the_expected_ones():
    msg = error(overrides=["trian.epochs=3"])
    assert msg.startswith("loop.trian: unknown key; expected one of action_steps, backend, chunk, collect_batch, "
                          "consolidate_neighbours, consolidate_rounds, divergence_bound, eval,")
    assert error(overrides=["train.epoch=3"]).startswith("loop.train.epoch: unknown key; expected one of batch_size,")
    msg = error(overrides=["train.unet.depth=3"])
    assert msg.startswith("loop.train.unet.depth: unknown key; expected one of down_dims,")


@pytest.mark.parametrize("override, message", [
    ("train.epochs=ten", "loop.train.epochs: expected an integer, got 'ten' (str)"),
    ("train.epochs=2.5", "loop.train.epochs: expected an integer, got 2.5 (float)"),
    ("iterations=true", "loop.iterations: expected an integer, got True (bool)"),
    ("solver.tol=fine", "loop.solver.tol: expected a number, got 'fine' (str)"),
    ("solver.refresh_gains=1", "loop.solver.refresh_gains: expected a boolean (true/false), got 1 (int)"),
    ("train.unet.down_dims=[16,\"x\"]", "loop.train.unet.down_dims[1]: expected an integer, got 'x' (str)"),
    ("chunk=8", "loop.chunk: expected a table of ChunkSpec keys, got 8 (int)"),
    ("train.grad_clip=big", "loop.train.grad_clip: expected a number, got 'big' (str)"),
    ("task=null", "loop.task: expected a string, got None (NoneType)"),
])
def test_wrong_types_are_named(override, message):
    assert error(overrides=[override]) == message


@pytest.mark.parametrize("override, message", [
    ("iterations=0", "loop.iterations: expected an integer >= 1, got 0"),
    ("train.epochs=0", "loop.train.epochs: expected a positive integer, got 0"),
    ("solver.tol=0", "loop.solver.tol: expected a tolerance > 0, got 0.0"),
    ("max_iters_growth=0.5", "loop.max_iters_growth: expected a factor >= 1 (1: a fixed budget), got 0.5"),
    ("export=onnx", "loop.export: expected one of native, torchscript, aoti, got 'onnx'"),
    ("task=pendlum", "loop.task: unknown task 'pendlum'; expected one of"),
    ("variant=sideways", "loop.variant: unknown variant 'sideways' of double_pendulum; expected one of default, reference"),
    ("train.policy=gan", "loop.train.policy: expected one of"),
    ("eval.seed=1", "loop.eval.seed: expected a seed outside the training seeds 0..1 (held-out instances), got 1"),
    ("action_steps=8", "loop.action_steps: expected 1..7 (chunk.horizon 8 minus chunk.history 1), got 8"),
    ("chunk.horizon=7", "loop.chunk.horizon: the U-Net with 2 levels needs a multiple of 2"),
    ("chunk.history=8", "loop.chunk.action_steps: expected history + action_steps <= horizon (8), got 8 + 2"),
    ("train.checkpoint_dir=here", "loop.train.checkpoint_dir: set by the loop"),
])
def test_out_of_range_values_are_named(override, message):
    assert error(overrides=[override]).startswith(message)


def test_a_direct_policy_executes_one_action_per_call():
    msg = error(overrides=["train.policy=sob_mlp", "action_steps=4"])
    assert msg.startswith("loop.action_steps: a direct (sob_mlp) policy executes one action per call")
    # the preset's lambda belongs to sob_diff: switching to plain diffusion must say so
    assert error(overrides=["train.policy=diff"]).startswith("loop.train.sobolev_weight: policy 'diff' trains without")
    assert load_loop_config(overrides=["train.policy=diff", "train.sobolev_weight=0"]).train.sobolev_weight == 0.0


def test_relative_chunks_are_for_diffusion_policies_only():
    msg = error(overrides=["train.policy=sob_mlp", "chunk.relative_actions=true"])
    assert msg.startswith("loop.chunk.relative_actions: a direct (sob_mlp) policy has no known action")
    assert load_loop_config(overrides=["chunk.relative_actions=true"]).chunk.relative_actions is True
    assert error(overrides=["chunk.relative_actions=1"]).startswith("loop.chunk.relative_actions: ")


def test_override_parsing():
    assert parse_override("train.epochs=50") == (["train", "epochs"], 50)
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 1e-3)
    assert parse_override("task=ur5") == (["task"], "ur5")
    assert parse_override("variant=") == (["variant"], "")
    assert parse_override("train.sobolev_weight=null") == (["train", "sobolev_weight"], None)
    assert parse_override("train.unet.down_dims=[16, 32]") == (["train", "unet", "down_dims"], [16, 32])
    assert parse_override('task="123"') == (["task"], "123")
    assert parse_override("run_dir=a=b") == (["run_dir"], "a=b")
    for bad in ("epochs", "=3", "train..epochs=3", ".x=1"):
        with pytest.raises(ConfigError, match="--set"):
            parse_override(bad)
    base = {"train": {"epochs": 3}, "iterations": 2}
    out = apply_overrides(base, ["train.lr=0.5", "eval.instances=4", "iterations=5"])
    assert out == {"train": {"epochs": 3, "lr": 0.5}, "eval": {"instances": 4}, "iterations": 5}
    assert base == {"train": {"epochs": 3}, "iterations": 2}  # not modified in place
    with pytest.raises(ConfigError, match=r"^loop.iterations: is 2 \(int\), not a table; cannot set iterations.x"):
        apply_overrides(base, ["iterations.x=1"], "loop")


def test_toml_and_json_files_give_the_same_config(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('task = "pendulum"\niterations = 2\n[train]\nepochs = 5\npolicy = "sob_mlp"\n'
                    "[train.mlp]\nhidden_dims = [32, 32]\n[eval]\ninstances = 4\n")
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"task": "pendulum", "iterations": 2, "train": {"epochs": 5, "policy": "sob_mlp",
                                                                            "mlp": {"hidden_dims": [32, 32]}},
                              "eval": {"instances": 4}}))
    a, b = load_loop_config(None, toml), load_loop_config(None, js)
    assert a == b
    assert (a.iterations, a.train.epochs, a.train.mlp.hidden_dims, a.train.sobolev_weight) == (2, 5, (32, 32), 1.0)
    # file over the preset (deep merge), --set over the file, keyword fields last
    c = load_loop_config("default", toml, ["train.epochs=7"], run_dir=str(tmp_path / "r"))
    assert (c.iterations, c.train.epochs, c.instances, c.train.lr, c.run_dir) == (2, 7, 96, 3e-3, str(tmp_path / "r"))


def test_file_errors_name_the_file(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("iterations = \n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 1"):
        load_config_file(bad_toml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"iterations": 2,}')
    with pytest.raises(ConfigError, match=r"bad.json: invalid JSON: .*line 1"):
        load_config_file(bad_json)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="list.json: expected a table of config keys at the top level, got list"):
        load_config_file(listed)
    with pytest.raises(ConfigError, match="run.yaml: expected a .toml or .json config file"):
        load_config_file(tmp_path / "run.yaml")
    with pytest.raises(ConfigError, match="missing.toml: cannot read the config file"):
        load_config_file(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match="^loop.trian: unknown key"):
        load_loop_config(None, typo)
    with pytest.raises(ConfigError, match="^preset: unknown preset 'huge'; expected one of default,"):
        load_loop_config("huge")


def test_collect_config_and_diff():
    c = from_dict(CollectConfig, {"task": "ur5", "variant": "fixed_start_random_target", "instances": 4,
                                  "solver": {"max_iters": 50}}, "collect")
    assert c.solver.max_iters == 50 and c.chunk == ChunkSpec()
    with pytest.raises(ConfigError, match=r"^collect.instances: expected an integer >= 1, got 0"):
        from_dict(CollectConfig, {"instances": 0}, "collect")
    a, b = to_dict(load_loop_config()), to_dict(load_loop_config(overrides=["train.epochs=3", "seed=4"]))
    assert diff_configs(a, b) == [("seed", 0, 4), ("train.epochs", 20, 3)]


def test_the_mlp_denoiser_takes_any_chunk_horizon_and_a_bad_denoiser_is_named():
    from sobolev_warmstart.config import ConfigError, load_loop_config
    cfg = load_loop_config("pendulum", overrides=["chunk.horizon=11"])
    assert cfg.train.denoiser == "mlp" and cfg.chunk.horizon == 11
    with pytest.raises(ConfigError, match="chunk.horizon: the U-Net"):
        load_loop_config("pendulum", overrides=["train.denoiser=unet", "chunk.horizon=11"])
    with pytest.raises(ConfigError, match=r"train.denoiser: expected one of \('unet', 'mlp'\)"):
        load_loop_config("pendulum", overrides=["train.denoiser=cnn"])
