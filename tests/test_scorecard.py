"""The scorecard (sobolev_warmstart.scorecard): smoke scale end to end, resume, metrics, argument errors."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from sobolev_warmstart.cli import main as cli_main
from sobolev_warmstart.evaluate import METHOD_LABELS, read_rows_csv
from sobolev_warmstart.scorecard import (SCORECARD_METHODS, SMOKE_VARIANTS, load_settings, parse_variants, run_variant,
                                         write_scorecard,
                                         scorecard, settings_for, variant_rows)

from conftest import check_missing_setting_reads_as_default

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALWAYS_FINITE = ("policy_cost_ratio_median", "policy_cost_ratio_mean", "diverged", "iterations_mean",
                 "iterations_median", "total_time_mean", "solve_time_mean", "rollout_time_mean", "converged",
                 "infeasible", "violation_median")


def _stage_files(out: Path) -> dict[str, int]:
    """mtime (ns) of every file a variant's stages wrote (not the report, rebuilt on every call)."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and not p.name.startswith("scorecard.")}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("scorecard")
    t0 = time.perf_counter()
    files = scorecard(out, "smoke", threads=1, progress=False, machine="test machine")
    return out, files, time.perf_counter() - t0


def test_smoke_scale_writes_markdown_csv_and_figure_for_every_variant_and_method(smoke):
    out, files, _ = smoke
    assert files["failed"] == {}
    assert files["markdown"] == out / "scorecard.md" and files["csv"] == out / "scorecard.csv"
    rows = read_rows_csv(files["csv"])
    keys = [(r["task"], r["variant"], r["method"]) for r in rows]
    assert keys == [(*k.split("/"), m) for k in SMOKE_VARIANTS for m in SCORECARD_METHODS]
    for r in rows:
        where = f"{r['task']}/{r['variant']} {r['method']}"
        for key in ALWAYS_FINITE:
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (where, key, r[key])
        assert 0 <= r["diverged"] <= 1 and 0 <= r["converged"] <= 1 and 0 <= r["infeasible"] <= 1, where
        assert r["violation_median"] >= 0, where
        assert r["policy_cost_ratio_median"] > 0, where
        if r["converged"] > 0:
            assert math.isfinite(r["refined_cost_mean"]) and math.isfinite(r["refined_cost_ratio_median"]), where
        if r["method"] == "to":
            assert r["rollout_time_mean"] == 0 and r["diverged"] == 0 and r["refined_cost_ratio_median"] == 1.0
        else:
            assert r["rollout_time_mean"] > 0, where
        assert r["training_trajectories"] >= 1 and r["epochs"] >= 1
        needed = r["trajectories_to_reach_diff"]
        if r["method"] == "sob_diff":  # a number of trajectories, or 'not reached'
            assert needed in ("not reached", "undefined") or 1 <= int(needed) <= r["training_trajectories"], needed
    md = files["markdown"].read_text()
    assert "`sobolev-warmstart scorecard --scale smoke" in md and "Machine: test machine" in md
    for key in SMOKE_VARIANTS:
        lines = [line for line in md.splitlines() if line.startswith(f"| {key} ")]
        labels = [line.split("|")[2].strip() for line in lines]
        assert labels[:len(SCORECARD_METHODS)] == [METHOD_LABELS[m] for m in SCORECARD_METHODS], key
        assert len(lines) == len(SCORECARD_METHODS) + 2  # + sample-efficiency and time rows
    data = files["figure"].read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_rerun_skips_finished_variants_and_resumes_a_stage(smoke):
    out, _, _ = smoke
    before = _stage_files(out)
    files = scorecard(out, "smoke", threads=1, progress=False, machine="test machine")
    assert _stage_files(out) == before  # nothing solved, trained or evaluated again
    assert len(read_rows_csv(files["csv"])) == len(SMOKE_VARIANTS) * len(SCORECARD_METHODS)

    # an interrupted variant (evaluation and result lost): only those stages run again
    folder = out / "pendulum" / "default"
    for name in ("result.json", "per_instance.npz", "evaluation.json"):
        (folder / name).unlink()
    scorecard(out, "smoke", threads=1, progress=False, machine="test machine")
    after = _stage_files(out)
    redone = {k for k in after if after[k] != before.get(k)}
    assert redone == {f"pendulum/default/{n}" for n in ("result.json", "per_instance.npz", "evaluation.json")}

    # a folder trained before the native export (no .safetensors beside the checkpoint): exported from the
    # checkpoint, not trained again
    export = folder / "sob_diff" / "policy_export.safetensors"
    export.unlink()
    for name in ("result.json", "per_instance.npz", "evaluation.json"):
        (folder / name).unlink()
    before = _stage_files(out)
    scorecard(out, "smoke", threads=1, progress=False, machine="test machine")
    after = _stage_files(out)
    assert export.is_file()
    assert all(after[k] == v for k, v in before.items() if "/checkpoint/" in k or k.endswith("train.json"))


def test_variant_rows_ratio_divergence_and_iteration_conventions():
    n = 4
    base = {"seed": np.zeros(n), "rollout_time": np.zeros(n), "solve_time": np.full(n, 0.01)}
    per = {}
    for m in SCORECARD_METHODS:
        for k, v in base.items():
            per[f"{m}_{k}"] = v.copy()
        per[f"{m}_policy_cost"] = np.array([4.0, 6.0, 8.0, 1e9])
        per[f"{m}_cost"] = np.array([2.0, 2.0, np.nan, 2.0])
        per[f"{m}_converged"] = np.array([True, True, False, True])
        per[f"{m}_iterations"] = np.array([10.0, 20.0, 500.0, 0.0])
        per[f"{m}_diverged"] = np.array([False, False, False, True])
        per[f"{m}_converged"][3] = m == "to"  # a diverged guess is not refined
    per["to_diverged"][:] = False
    per["to_iterations"][3] = 30.0
    rows = {r["method"]: r for r in variant_rows(per)}
    sob = rows["sob_diff"]
    # ratios over the instances where TO alone converged (0, 1, 3): 2, 3, 5e8
    assert sob["policy_cost_ratio_median"] == 3.0 and sob["policy_cost_ratio_mean"] == pytest.approx((5 + 5e8) / 3)
    assert sob["diverged"] == 0.25 and sob["converged"] == 0.5 and rows["to"]["converged"] == 0.75
    assert sob["iterations_mean"] == pytest.approx(530 / 3) and sob["iterations_median"] == 20.0  # diverged left out
    assert rows["to"]["iterations_mean"] == pytest.approx(560 / 4) and rows["to"]["diverged"] == 0.0
    assert sob["refined_cost_mean"] == 2.0 and sob["refined_cost_ratio_median"] == 1.0
    # folders evaluated before the constraint violation was recorded: unknown, not feasible
    assert math.isnan(sob["infeasible"]) and math.isnan(sob["violation_median"])
    # a guess is infeasible above the tolerance; the diverged one (index 3) is left out
    for m in SCORECARD_METHODS:
        per[f"{m}_violation"] = np.array([0.0, 2e-4, 5e-5, 1e3])
    rows = {r["method"]: r for r in variant_rows(per, tol=1e-4)}
    assert rows["sob_diff"]["infeasible"] == pytest.approx(1 / 3) and rows["sob_diff"]["violation_median"] == 5e-5
    assert rows["to"]["infeasible"] == 0.5  # TO alone's guess never diverges: all four count
    assert variant_rows(per, tol=1e-3)[SCORECARD_METHODS.index("sob_diff")]["infeasible"] == 0.0


def test_bad_arguments_name_the_argument(tmp_path, capsys):
    with pytest.raises(ValueError, match="scale: expected one of smoke, full, got 'huge'"):
        scorecard(tmp_path, "huge")
    with pytest.raises(ValueError, match="tasks: unknown task 'rocket' in 'rocket/default'"):
        scorecard(tmp_path, "smoke", ["pendulum", "rocket/default"])
    with pytest.raises(ValueError, match="tasks: unknown variant 'columns_99' of task 'quadrotor'"):
        parse_variants(["quadrotor/columns_99"])
    with pytest.raises(ValueError, match="threads: expected an integer >= 0"):
        scorecard(tmp_path, "smoke", threads=-1)
    assert not any(tmp_path.iterdir())  # refused before anything ran
    assert parse_variants(["ur5", "ur5/fixed_start_fixed_target"]) == [("ur5", "fixed_start_fixed_target")]
    assert settings_for("ur5/reference_random_start_random_target", "full").train_instances < \
        settings_for("ur5/random_start_random_target", "full").train_instances

    # a folder holding another scale's results is refused, naming out_dir and the difference
    folder = tmp_path / "pendulum" / "default"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(settings_for("pendulum", "smoke").to_dict()))
    with pytest.raises(ValueError, match=r"out_dir: .* differing in .*scale \(saved 'smoke', now 'full'\)"):
        scorecard(tmp_path, "full", ["pendulum"], progress=False)

    assert cli_main(["scorecard", "--scale", "smoke", "--tasks", "ur5/nope", "--out", str(tmp_path / "x")]) == 2
    assert "error: tasks: unknown variant 'nope' of task 'ur5'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["scorecard", "--scale", "huge"])
    assert exc.value.code == 2 and "--scale" in capsys.readouterr().err


def test_test_seed_draws_other_held_out_instances_from_the_same_training_set(smoke, tmp_path, capsys):
    """``test_seed`` (``--test-seed``) replaces every variant's held-out seed: the same training trajectories and
    policies, other held-out instances; it is written into the command and the table, and a seed equal to the
    training seed, a negative one, or a folder of the default seed are refused by name."""
    out, _, _ = smoke
    files = scorecard(tmp_path, "smoke", ["pendulum"], threads=1, progress=False, machine="m", test_seed=4242)
    folder, base = tmp_path / "pendulum" / "default", out / "pendulum" / "default"
    assert load_settings(folder).test_seed == 4242 and load_settings(base).test_seed == 1_000_000
    from sobolev_warmstart.data import load_dataset
    trained = [load_dataset(f / "collect" / "trajectories.npz").data.xs for f in (folder, base)]
    assert np.array_equal(*trained)  # the same training set
    new, old = np.load(folder / "per_instance.npz"), np.load(base / "per_instance.npz")
    assert new["to_cost"].shape == old["to_cost"].shape and not np.allclose(new["to_cost"], old["to_cost"])
    md = files["markdown"].read_text()
    assert "--test-seed 4242" in md and "held-out instances (seed 4242," in md
    with pytest.raises(ValueError, match=r"test_seed: expected a seed other than the training instances' "
                                         r"\(train_seed = 0\), got 0"):
        scorecard(tmp_path / "a", "smoke", ["pendulum"], test_seed=0)
    with pytest.raises(ValueError, match="test_seed: expected an integer >= 0, got -1"):
        scorecard(tmp_path / "a", "smoke", ["pendulum"], test_seed=-1)
    with pytest.raises(ValueError, match=r"out_dir: .* differing in test_seed \(saved 1000000, now 7\)"):
        scorecard(out, "smoke", ["pendulum"], test_seed=7)
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as exc:
        cli_main(["scorecard", "--scale", "smoke", "--test-seed", "-3"])
    assert exc.value.code == 2 and "--test-seed" in capsys.readouterr().err


def test_trained_from_reuses_the_training_set_and_policies_and_evaluates_other_held_out_instances(smoke, tmp_path,
                                                                                                   capsys):
    """``trained_from`` (``--trained-from``) with ``test_instances``/``test_seed``: the other scorecard's training set,
    policies and subset policies are reused byte for byte (nothing trained, the source untouched), the evaluation
    runs on the requested held-out instances, and the command and table say so; a source that is missing,
    unfinished, of other settings, or the output folder itself is refused by name before anything runs."""
    out, _, _ = smoke
    base = out / "pendulum" / "default"
    source_files = _stage_files(out)
    new = tmp_path / "more"
    files = scorecard(new, "smoke", ["pendulum"], threads=1, progress=False, machine="m", test_seed=4243,
                      test_instances=5, trained_from=out)
    assert _stage_files(out) == source_files  # the source is read, never written
    folder = new / "pendulum" / "default"
    s = load_settings(folder)
    assert (s.test_seed, s.test_instances) == (4243, 5) and load_settings(base).test_instances == 3
    reused = ["collect/trajectories.npz", "collect/collect.json", "diff/policy_export.safetensors", "diff/train.json",
              "sob_diff/policy_export.safetensors", "sob_diff/train.json"]
    reused += [str(p.relative_to(base)) for p in base.glob("subsets/n*/*") if p.name != "result.json" and p.is_file()]
    for rel in reused:
        assert (folder / rel).read_bytes() == (base / rel).read_bytes(), rel
    evaluated = ["per_instance.npz", "result.json", *(str(p.relative_to(folder)) for p in
                                                       folder.glob("subsets/n*/result.json"))]
    for rel in evaluated:  # evaluated here, never linked to the source's (its instances are others)
        assert not ((base / rel).exists() and (folder / rel).samefile(base / rel)), rel
    per = np.load(folder / "per_instance.npz")
    assert per["to_cost"].shape == (5 * len(s.seeds),)
    doc = json.loads((folder / "result.json").read_text())
    assert {r["instances"] for r in doc["rows"]} == {5 * len(s.seeds)}
    assert doc["trained_from"] == str(base)
    md = files["markdown"].read_text()
    assert "--test-instances 5" in md and f"--trained-from {out}" in md and "held-out instances (seed 4243," in md
    assert "reused from" in md and f"{s.train_instances} / 5" in md
    assert "Training sets and policies reused from" in md and "only the held-out evaluation ran here" in md
    # a report mixing a reused variant with one trained there names the reused one
    trained_here = json.loads((out / "ur5" / "fixed_start_fixed_target" / "result.json").read_text())
    mixed = write_scorecard(tmp_path / "mixed", [doc, trained_here], "cmd", machine="m")["markdown"].read_text()
    assert "Training sets and policies of pendulum/default reused from" in mixed
    assert "only their held-out evaluation ran here" in mixed

    # refusals, each before anything is written
    bad = tmp_path / "bad"
    with pytest.raises(ValueError, match="trained_from: expected a finished scorecard's folder, got .*not a folder"):
        scorecard(bad, "smoke", ["pendulum"], trained_from=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="trained_from: expected another scorecard's folder than out_dir"):
        scorecard(out, "smoke", ["pendulum"], trained_from=out)
    with pytest.raises(ValueError, match="trained_from: .* holds no scorecard of ur5/fixed_start_random_target"):
        scorecard(bad, "smoke", ["ur5/fixed_start_random_target"], trained_from=out)
    with pytest.raises(ValueError, match=r"trained_from: .* was trained with other settings, differing in .*scale "
                                         r"\(saved 'smoke', now 'full'\)"):
        scorecard(bad, "full", ["pendulum"], trained_from=out)
    partial = tmp_path / "partial" / "pendulum" / "default"
    partial.mkdir(parents=True)
    (partial / "settings.json").write_bytes((base / "settings.json").read_bytes())
    with pytest.raises(ValueError, match="trained_from: .* has not finished"):
        scorecard(bad, "smoke", ["pendulum"], trained_from=tmp_path / "partial")
    with pytest.raises(ValueError, match=r"out_dir: .* differing in test_instances \(saved 3, now 5\).*only held-out "
                                         r"settings differ, so another out_dir with trained_from"):
        scorecard(out, "smoke", ["pendulum"], test_instances=5)
    with pytest.raises(ValueError, match="test_instances: expected an integer >= 1, got 0"):
        scorecard(bad, "smoke", ["pendulum"], test_instances=0)
    assert not bad.exists()
    with pytest.raises(SystemExit) as exc:
        cli_main(["scorecard", "--scale", "smoke", "--test-instances", "0"])
    assert exc.value.code == 2 and "--test-instances" in capsys.readouterr().err


def test_consolidated_collection_trains_on_the_cheaper_solutions(tmp_path):
    """With consolidate_neighbours, the saved training set is the consolidated one (never costlier per instance than
    TO alone's), collect.json says what consolidation did, and bad values are refused by name."""
    import dataclasses

    from sobolev_warmstart.data import build_dataset, load_dataset
    from sobolev_warmstart.train import load_checkpoint

    s = dataclasses.replace(settings_for("double_pendulum/default", "smoke"), train_instances=8, max_iters=300,
                            consolidate_neighbours=3, consolidate_rounds=1)
    run_variant("double_pendulum/default", tmp_path, "smoke", threads=1, settings=s)
    folder = tmp_path / "double_pendulum" / "default"
    report = json.loads((folder / "collect" / "collect.json").read_text())["consolidation"]
    assert report["solves"] >= 1 and report["rounds"][0]["round"] == 1
    assert report["cost_mean_after"] <= report["cost_mean_before"]
    saved = load_dataset(folder / "collect" / "trajectories.npz")
    data = saved.data
    assert report["cost_mean_after"] == pytest.approx(float(np.mean(data.cost)))
    # the normalisers are TO alone's (wider than the consolidated data's), and the policies train with them
    assert saved.normalisers.to_dict() != build_dataset(data, s.chunk()).normalisers.to_dict()
    for method in ("diff", "sob_diff"):
        policy, _, _ = load_checkpoint(folder / method / "checkpoint")
        assert policy.normalisers.to_dict() == saved.normalisers.to_dict(), method
    assert load_settings(folder).consolidate_neighbours == 3
    for key, bad in (("consolidate_neighbours", -1), ("consolidate_rounds", 0), ("consolidate_neighbours", 2.0)):
        with pytest.raises(ValueError, match=f"{key}: expected an integer"):
            dataclasses.replace(s, **{key: bad})


def test_policy_seed_sets_the_training_seed_and_older_folders_still_resume(tmp_path):
    """policy_seed (None: train_seed) seeds the policies' training only; a folder written before the setting
    existed is read as having its default, so it resumes instead of being refused."""
    import dataclasses

    from sobolev_warmstart.scorecard import _check_settings

    s = settings_for("pendulum/default", "smoke")
    assert s.policy_seed is None and s.train_config("diff", 100, tmp_path).seed == s.train_seed
    seeded = dataclasses.replace(s, policy_seed=7)
    assert seeded.train_config("sob_diff", 100, tmp_path).seed == 7 and seeded.train_seed == s.train_seed
    old = s.to_dict()
    del old["policy_seed"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    _check_settings(tmp_path, s)  # accepted: the missing key is its default
    with pytest.raises(ValueError, match="policy_seed"):
        _check_settings(tmp_path, seeded)


def test_folders_written_before_the_denoiser_settings_count_as_a_unet_with_past_actions(tmp_path):
    """A settings.json without denoiser / past_actions / mlp_dims was a U-Net conditioned on past actions: it
    resumes under those settings and is refused under today's defaults (the MLP denoiser, no past actions)."""
    import dataclasses

    from sobolev_warmstart.scorecard import _check_settings

    s = settings_for("pendulum/default", "smoke")
    assert (s.denoiser, s.past_actions) == ("mlp", False)
    assert settings_for("double_pendulum/default", "smoke").denoiser == "unet"
    config = s.train_config("sob_diff", 100, tmp_path)
    assert config.denoiser == "mlp" and config.mlp.hidden_dims == tuple(s.mlp_dims)
    assert not config.diffusion.past_actions
    old_style = dataclasses.replace(s, denoiser="unet", past_actions=True)
    old = old_style.to_dict()
    for key in ("denoiser", "past_actions", "mlp_dims"):
        del old[key]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    _check_settings(tmp_path, old_style)  # resumes: what the code did then
    with pytest.raises(ValueError, match="denoiser .*past_actions"):
        _check_settings(tmp_path, s)


def test_load_settings_reads_a_folder_back_and_completes_older_ones(smoke, tmp_path):
    """The settings a variant's folder was run with, as a ScorecardSettings; an older settings.json reads as what the
    code did then; a folder without one is a clear error."""
    import dataclasses

    out, _, _ = smoke
    for key in SMOKE_VARIANTS:
        task, variant = key.split("/")
        assert load_settings(out / task / variant) == settings_for(key, "smoke")
    old_style = dataclasses.replace(settings_for("pendulum/default", "smoke"), denoiser="unet", past_actions=True)
    old = old_style.to_dict()
    for key in ("denoiser", "past_actions", "sobolev_cap_quantile", "mu_init"):
        del old[key]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    assert load_settings(tmp_path) == old_style
    with pytest.raises(FileNotFoundError, match="folder: no scorecard settings.json"):
        load_settings(tmp_path / "missing")


def test_diffusion_steps_and_time_to_go_reach_the_policies_and_older_folders_read_as_their_defaults(tmp_path):
    """diffusion_steps sets K of both diffusion policies' training and sampling, time_to_go their chunk spec; a
    folder written before either setting existed resumes as K = 5 without the time to go."""
    import dataclasses

    from sobolev_warmstart.scorecard import _check_settings

    s = settings_for("pendulum/default", "smoke")
    assert (s.diffusion_steps, s.time_to_go) == (5, False)
    changed = dataclasses.replace(s, diffusion_steps=2, time_to_go=True)
    for method in ("diff", "sob_diff"):
        assert changed.train_config(method, 100, tmp_path).diffusion.num_steps == 2
    assert changed.chunk().time_to_go and not s.chunk().time_to_go
    old = s.to_dict()
    del old["diffusion_steps"], old["time_to_go"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    _check_settings(tmp_path, s)
    with pytest.raises(ValueError, match="diffusion_steps .*time_to_go"):
        _check_settings(tmp_path, changed)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer"):
        dataclasses.replace(s, diffusion_steps=0).train_config("diff", 100, tmp_path)


def test_sampling_steps_reach_both_diffusion_policies_and_old_folders_load_as_ddpm(tmp_path):
    """Full scale samples with DDIM on steps 4, 0 but where it measured worse (ablations round 26); the setting
    reaches Diff and Sob+Diff alike; a folder written before it existed was sampled with DDPM and loads so."""
    import dataclasses

    from sobolev_warmstart.scorecard import load_settings

    assert settings_for("double_pendulum/default", "full").sampling_steps == (4, 0)
    assert settings_for("ur5/random_start_fixed_target", "full").sampling_steps is None
    assert settings_for("pendulum/default", "smoke").sampling_steps is None
    s = dataclasses.replace(settings_for("pendulum/default", "smoke"), sampling_steps=[4, 2, 0])
    assert s.sampling_steps == (4, 2, 0)
    for method in ("diff", "sob_diff"):
        assert s.train_config(method, 100, tmp_path).diffusion.sampling_steps == (4, 2, 0)
    with pytest.raises(ValueError, match="sampling_steps: expected a strictly descending sequence"):
        dataclasses.replace(s, sampling_steps=(5, 0))
    old = settings_for("pendulum/default", "full").to_dict()
    del old["sampling_steps"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    assert load_settings(tmp_path).sampling_steps is None


def test_sampling_temperature_reaches_both_diffusion_policies_and_old_folders_load_at_one(tmp_path):
    """The DDPM posterior's noise scale reaches Diff and Sob+Diff alike; DDIM or a negative scale are refused by
    name; a folder written before it existed sampled as trained and loads so."""
    import dataclasses

    from sobolev_warmstart.scorecard import load_settings

    s = dataclasses.replace(settings_for("pendulum/default", "smoke"), sampling_temperature=0.5)
    for method in ("diff", "sob_diff"):
        assert s.train_config(method, 100, tmp_path).diffusion.sampling_temperature == 0.5
    with pytest.raises(ValueError, match="sampling_temperature: DDIM"):
        dataclasses.replace(s, sampling_steps=(4, 0))
    with pytest.raises(ValueError, match="sampling_temperature: expected a finite number >= 0"):
        dataclasses.replace(s, sampling_temperature=-1.0)
    old = settings_for("pendulum/default", "full").to_dict()
    del old["sampling_temperature"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    assert load_settings(tmp_path).sampling_temperature == 1.0


def test_action_normaliser_and_clip_sample_reach_the_dataset_and_the_diffusion_policies(tmp_path):
    """``action_normaliser`` picks the action normaliser the collection fits, ``clip_sample`` the diffusion
    policies' sampler (Diff and Sob+Diff alike); a bad normaliser names the setting; older folders load with the
    defaults (min-max, clipped)."""
    import dataclasses

    from sobolev_warmstart.scorecard import load_settings

    s = dataclasses.replace(settings_for("pendulum/default", "smoke"), action_normaliser="standard", clip_sample=False)
    for method in ("diff", "sob_diff"):
        assert s.train_config(method, 100, tmp_path).diffusion.clip_sample is False
    with pytest.raises(ValueError, match="action_normaliser: expected 'minmax' or 'standard', got 'max'"):
        dataclasses.replace(s, action_normaliser="max")
    with pytest.raises(ValueError, match="clip_sample: expected False with action_normaliser='standard'"):
        dataclasses.replace(s, clip_sample=True)
    with pytest.raises(ValueError, match="observation_normaliser: expected 'minmax' or 'standard', got 'max'"):
        dataclasses.replace(s, observation_normaliser="max")
    old = settings_for("pendulum/default", "full").to_dict()
    del old["action_normaliser"], old["clip_sample"], old["observation_normaliser"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    loaded = load_settings(tmp_path)
    assert (loaded.action_normaliser, loaded.clip_sample, loaded.observation_normaliser) == ("minmax", True, "minmax")


def test_sobolev_cap_quantile_reaches_sob_diff_only_and_old_folders_resume_without_it(tmp_path):
    """The cap is a Sob+Diff setting (Diff's training config, and with it its checkpoint, do not change); the
    variants measured to gain from it (ablations round 9) have it at full scale, the pendubot does not; a folder
    written before the setting existed resumes as no cap."""
    import dataclasses

    assert settings_for("ur5/fixed_start_random_target", "full").sobolev_cap_quantile == 0.9
    assert settings_for("quadrotor/columns_9", "full").sobolev_cap_quantile == 0.9
    for key in ("double_pendulum/default", "double_pendulum/reference", "ur5/random_start_random_target"):
        assert settings_for(key, "full").sobolev_cap_quantile is None
    assert settings_for("ur5/fixed_start_random_target", "smoke").sobolev_cap_quantile is None
    s = dataclasses.replace(settings_for("pendulum/default", "smoke"), sobolev_cap_quantile=0.9)
    assert s.train_config("sob_diff", 100, tmp_path).sobolev_cap_quantile == 0.9
    assert s.train_config("diff", 100, tmp_path).sobolev_cap_quantile is None
    check_missing_setting_reads_as_default(tmp_path, settings_for("pendulum/default", "smoke"), s,
                                           "sobolev_cap_quantile")


def test_ablation_rows_reuse_a_training_set_only_across_settings_it_does_not_depend_on():
    """benchmarks/ablation.py hands the base row's finished training set to rows that change only
    ``TRAINING_ONLY_KEYS``: none of them may be a setting the collection, the consolidation or the chunk dataset
    reads, and every scorecard setting is one or the other (a new setting must be classified before ablations
    reuse anything across it)."""
    import dataclasses
    import importlib.util

    from sobolev_warmstart.scorecard import ScorecardSettings

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation.py"
    spec = importlib.util.spec_from_file_location("ablation_bench", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    fields = {f.name for f in dataclasses.fields(ScorecardSettings)}
    read_by_collect = {"task", "variant", "scale", "consolidate_neighbours", "consolidate_rounds", "horizon",
                       "history", "action_steps", "time_to_go", "relative_actions", "action_normaliser",
                       "observation_normaliser", "symmetry_copies", "parameter_sobolev"} | ablation.COLLECTION_KEYS  # the last two: normalisers
    assert not ablation.TRAINING_ONLY_KEYS & read_by_collect
    assert ablation.TRAINING_ONLY_KEYS | read_by_collect == fields


def test_the_solver_settings_of_a_variant_reach_every_solve_at_every_scale():
    """mu_init: the pendubot's solves start from penalty 0.1 (TO alone's best, ablations round 23), the other variants'
    from the solver's default; the scorecard's options carry it to the collection, consolidation and refinement."""
    from sobolev_warmstart.config import load_loop_config
    from sobolev_warmstart.experiments import settings_for as study_settings
    from sobolev_warmstart.scorecard import ScorecardSettings
    from sobolev_warmstart.solver import SolverOptions

    # the pendubot's loop presets and studies read the same table
    assert load_loop_config("default").solver.mu_init == load_loop_config("double_pendulum").solver.mu_init == 0.1
    assert study_settings("action_length", "full").mu_init == study_settings("sample_efficiency", "smoke").mu_init == 0.1
    assert load_loop_config("ur5").solver.mu_init == study_settings("ur5_loop", "full").mu_init == 1e-3
    for scale in ("smoke", "full"):
        assert settings_for("double_pendulum/default", scale).options(1).mu_init == 0.1
        for key in ("pendulum/default", "double_pendulum/reference", "quadrotor/columns_9"):
            assert settings_for(key, scale).options(1).mu_init == SolverOptions().mu_init == 1e-3
    with pytest.raises(ValueError, match="mu_init: expected a penalty > 0"):
        ScorecardSettings(task="pendulum", variant="default", scale="smoke", train_instances=2, test_instances=2,
                          mu_init=0.0)


def _link_trained(src: Path, dst: Path) -> None:
    """A finished smoke variant's training set and trained policies (subsets included) hard-linked from ``src`` into
    ``dst``, without any evaluation, so that ``run_variant`` evaluates them again without retraining."""
    import os
    import shutil

    for part in ("collect", "diff", "sob_diff", "subsets"):
        shutil.copytree(src / part, dst / part, ignore=shutil.ignore_patterns("result.json"), copy_function=os.link)


def test_the_settings_action_steps_reach_every_rollout_of_policies_trained_with_another(smoke, tmp_path):
    """action_steps (A) is a rollout setting (training does not depend on it): the evaluation and the sample-efficiency
    subsets roll the policies out with the settings' A, also where the exported policies were trained with another
    (a variant re-evaluated with the trained policies of a finished run, as scorecard v15 was, ablations round 24)."""
    import dataclasses

    from sobolev_warmstart.rollout import load_policy_runner, rollout
    from sobolev_warmstart.scorecard import _load_npz, _median, _ratios
    from sobolev_warmstart.tasks import make_task
    from sobolev_warmstart.warmstart import guess_costs

    out, _, _ = smoke
    src = out / "pendulum" / "default"
    s = load_settings(src)
    assert s.action_steps == 1
    changed = dataclasses.replace(s, action_steps=2)
    dst = tmp_path / "pendulum" / "default"
    _link_trained(src, dst)
    doc = run_variant("pendulum/default", tmp_path, "smoke", threads=1, settings=changed)
    assert json.loads((dst / "sob_diff" / "train.json").read_text()) == \
        json.loads((src / "sob_diff" / "train.json").read_text())  # not retrained
    used = {r["method"]: r["action_steps"] for r in json.loads((dst / "evaluation.json").read_text())["per_seed"]}
    assert used["diff"] == used["sob_diff"] == 2 and used["to"] == 0
    assert doc["settings"]["action_steps"] == 2 and load_settings(dst).action_steps == 2
    # each subset's policy cost is its rollout's at the settings' A, recomputed here
    task = make_task("pendulum", "default")
    x_te, p_te = task.sample_instances(s.test_instances, seed=s.test_seed)
    per = _load_npz(dst / "per_instance.npz")
    subsets = sorted((dst / "subsets").glob("n*/result.json"))
    assert subsets, "the smoke scale trains at least one subset"
    for path in subsets:
        runner = load_policy_runner(str(path.parent / "policy_export.safetensors"))
        ratios = []
        for seed in s.seeds:
            ro = rollout(task, x_te, p_te, runner, action_steps=2, seed=int(seed), num_threads=1)
            assert ro.action_steps == 2
            mine = per["to_seed"] == seed
            ratios.append(_ratios(guess_costs(task, x_te, p_te, ro.xs, ro.us, s.divergence_bound, 1),
                                  per["to_cost"][mine], per["to_converged"][mine]))
        assert json.loads(path.read_text())["ratio_median"] == pytest.approx(_median(np.concatenate(ratios)),
                                                                            rel=1e-12), path


def test_the_timed_evaluation_runs_on_one_thread_whatever_the_threads_of_the_other_stages(smoke, tmp_path, monkeypatch):
    """``threads`` parallelises the untimed stages; the evaluation, whose per-instance times the scorecard reports,
    solves and rolls out on one thread, and its iterations and costs are those of a one-thread run."""
    import importlib

    from sobolev_warmstart.scorecard import _load_npz

    sc = importlib.import_module("sobolev_warmstart.scorecard")  # the module (the package exports its function too)

    out, _, _ = smoke
    src = out / "pendulum" / "default"
    dst = tmp_path / "pendulum" / "default"
    _link_trained(src, dst)
    used = []
    real = sc.evaluate_methods

    def spy(*args, **kwargs):
        used.append(kwargs["options"].num_threads)
        return real(*args, **kwargs)

    monkeypatch.setattr(sc, "evaluate_methods", spy)
    run_variant("pendulum/default", tmp_path, "smoke", threads=2, settings=load_settings(src))
    assert used == [1]
    mine, theirs = _load_npz(dst / "per_instance.npz"), _load_npz(src / "per_instance.npz")
    for key in ("sob_diff_iterations", "nn_iterations", "to_cost", "sob_diff_policy_cost"):
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)


def test_weight_decay_reaches_every_policy_and_old_folders_read_the_old_default(tmp_path):
    """weight_decay is AdamW's for Diff and Sob+Diff alike; a folder written before the setting existed trained with
    TrainConfig's default and resumes as such."""
    import dataclasses

    from sobolev_warmstart.train import TrainConfig

    s = settings_for("ur5/random_start_random_target", "smoke")
    assert s.train_config("sob_diff", 100, tmp_path).weight_decay == 1e-6 == TrainConfig().weight_decay
    decayed = dataclasses.replace(s, weight_decay=0.1)
    for method in ("diff", "sob_diff"):
        assert decayed.train_config(method, 100, tmp_path).weight_decay == 0.1
    with pytest.raises(ValueError, match="weight_decay"):
        dataclasses.replace(s, weight_decay=-1.0)
    check_missing_setting_reads_as_default(tmp_path, s, decayed, "weight_decay")


def test_the_variants_measured_to_gain_from_standardised_actions_have_them_at_full_scale_only():
    """Round 33: the random-target UR5s scale their actions by the standard deviation, sample unclipped and lower
    lambda with it (the derivative targets grow with the smaller scale); the other variants and every smoke scale keep
    Diffusion Policy's min-max range, clipped."""
    from sobolev_warmstart.scorecard import DEFAULT_VARIANTS

    standard = {"ur5/fixed_start_random_target", "ur5/random_start_random_target"}
    for key in DEFAULT_VARIANTS:
        full = settings_for(key, "full")
        if key in standard:
            assert (full.action_normaliser, full.clip_sample) == ("standard", False)
            assert full.sobolev_weight <= 1e-3
        else:
            assert (full.action_normaliser, full.clip_sample) == ("minmax", True), key
    for key in SMOKE_VARIANTS:
        assert (settings_for(key, "smoke").action_normaliser, settings_for(key, "smoke").clip_sample) == ("minmax", True)


def test_the_ur5_variants_solve_with_the_stall_switch_and_old_folders_load_without_it(tmp_path):
    """``VARIANT_SOLVER_SETTINGS`` turns the stall switch on for every UR5 variant (round 37) and for no other; it
    reaches every solve of the variant through ``options``; a folder written before the setting existed solved with
    the filter alone, so it loads so and is not reused for a UR5 variant that now switches."""
    import dataclasses

    from sobolev_warmstart.scorecard import DEFAULT_VARIANTS, _check_trained_from, load_settings

    for key in DEFAULT_VARIANTS:
        for scale in ("smoke", "full"):
            s = settings_for(key, scale)
            assert s.options(1).stall_iters == s.stall_iters == (10 if key.startswith("ur5/") else 0), key
    assert settings_for("double_pendulum/default", "full").options().mu_init == 0.1  # the other entry is untouched
    with pytest.raises(ValueError, match="stall_iters: expected an integer >= 0"):
        dataclasses.replace(settings_for("pendulum/default", "smoke"), stall_iters=-1)
    old = settings_for("ur5/fixed_start_fixed_target", "smoke").to_dict()
    del old["stall_iters"]
    source = tmp_path / "ur5" / "fixed_start_fixed_target"
    source.mkdir(parents=True)
    (source / "settings.json").write_text(json.dumps(old))
    (source / "result.json").write_text("{}")
    assert load_settings(source).stall_iters == 0
    with pytest.raises(ValueError, match=r"trained with other settings, differing in stall_iters \(saved 0, now 10\)"):
        _check_trained_from(source, settings_for("ur5/fixed_start_fixed_target", "smoke"))
