"""Collection on Ray (backend.name = "ray"), against a local Ray instance: the same batches as the local backend,
saved as they arrive, resumable after an interruption."""

from __future__ import annotations

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.config import BackendConfig, CollectConfig, ConfigError, from_dict, load_loop_config
from sobolev_warmstart.loop import collect_dataset, run_loop

ray = pytest.importorskip("ray")  # in the [test] extra, so CI runs these

TIMING = ("wall_time", "solve_time", "rollout_time")
TINY = ["task=pendulum", "iterations=2", "instances=8", "collect_batch=4", "train.policy=sob_mlp",
        "train.sobolev_weight=0.01", "train.mlp.hidden_dims=[32,32]", "train.epochs=3", "train.batch_size=128",
        "train.num_threads=1", "eval.instances=4"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def loop_config(run_dir, backend: str, *overrides):
    return load_loop_config("default", overrides=[*TINY, f"backend.name={backend}", *overrides], run_dir=str(run_dir))


def batch_files(run_dir):
    return sorted(p.relative_to(run_dir) for p in run_dir.rglob("batch_*.npz"))


def assert_same_batches(a_dir, b_dir):
    files = batch_files(a_dir)
    assert files and files == batch_files(b_dir)
    for rel in files:
        with np.load(a_dir / rel) as a, np.load(b_dir / rel) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                if not any(t in key for t in TIMING):
                    np.testing.assert_array_equal(a[key], b[key], err_msg=f"{rel}: {key}")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("local") / "run"
    return run, run_loop(loop_config(run, "local"), progress=False)


def test_the_loop_on_ray_collects_the_same_batches_as_locally(tmp_path, local_run):
    local_dir, local = local_run
    run = tmp_path / "run"
    res = run_loop(loop_config(run, "ray"), progress=False)
    assert_same_batches(local_dir, run)  # TO alone, the dual solves with the policy, the held-out evaluation
    assert [m["accepted"] for m in res.iterations] == [m["accepted"] for m in local.iterations]
    assert res.iterations[1]["warm"]["converged"] == local.iterations[1]["warm"]["converged"]


def test_an_interrupted_ray_collection_resumes_without_losing_batches(tmp_path, local_run):
    local_dir, _ = local_run
    run = tmp_path / "run"
    seen = []

    def stop_after_first_batch(event, info):
        if event == "batch":
            seen.append(info["batch"])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_loop(loop_config(run, "ray"), progress=False, callback=stop_after_first_batch)
    saved = batch_files(run)
    assert len(saved) >= 1 and len(seen) == 1  # the batch reported is on disk before the interruption
    # resumed locally: the backend may change between a run and its resumption
    run_loop(loop_config(run, "local"), progress=False)
    assert_same_batches(local_dir, run)


def test_collect_dataset_on_ray_equals_the_local_one():
    base = {"task": "pendulum", "instances": 6, "batch": 2}
    local, _ = collect_dataset(from_dict(CollectConfig, base, "collect"), progress=False)
    remote, m = collect_dataset(from_dict(CollectConfig, {**base, "backend": {"name": "ray"}}, "collect"),
                                progress=False)
    assert m["instances"] == 6
    for key, value in local.data.arrays().items():
        np.testing.assert_array_equal(value, remote.data.arrays()[key], err_msg=key)


def test_backend_settings_are_validated():
    with pytest.raises(ConfigError, match="^loop.backend.name: expected one of local, ray, got 'spark'"):
        load_loop_config("default", overrides=["backend.name=spark"])
    with pytest.raises(ConfigError, match="^loop.backend.cpus_per_task: expected an integer >= 1, got 0"):
        load_loop_config("default", overrides=["backend.cpus_per_task=0"])
    assert BackendConfig().name == "local"
