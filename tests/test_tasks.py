"""Tasks: catalogue, instance sampling, dimensions, documentation and input validation."""

import re

import numpy as np
import pytest

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import guess_costs

from conftest import TASK_CASES


def test_catalogue_lists_every_task_and_variant():
    tasks = sw.available_tasks()
    assert set(tasks) == {"pendulum", "double_pendulum", "ur5", "quadrotor"}
    assert len(tasks["ur5"]) == 5 and tasks["ur5"][-1] == "reference_random_start_random_target"
    assert tasks["quadrotor"] == [f"columns_{k}" for k in range(10)] + [f"reference_columns_{k}" for k in range(10)]
    assert tasks["double_pendulum"] == ["default", "reference"]


@pytest.mark.parametrize("name,variant", TASK_CASES)
def test_dimensions_and_sampling(name, variant):
    task = sw.make_task(name, variant)
    assert task.nx == task.nq + task.nv and task.ndx == 2 * task.nv
    x0s, params = task.sample_instances(5, seed=3)
    assert x0s.shape == (5, task.nx) and params.shape == (5, task.nz)
    again = task.sample_instances(5, seed=3)
    np.testing.assert_array_equal(again[0], x0s)  # seeded: reproducible
    np.testing.assert_array_equal(again[1], params)
    if task.variant != "fixed_start_fixed_target":
        other = task.sample_instances(5, seed=4)
        assert not (np.array_equal(other[0], x0s) and np.array_equal(other[1], params))
    task.check_instances(x0s, params)  # sampled instances are valid
    text = task.describe()
    assert "horizon" in text and "default guess" in text and str(task.horizon) in text


def test_quadrotor_instances_keep_columns_apart_and_clear_of_start_and_goal():
    task = sw.make_task("quadrotor", "columns_9")
    x0s, params = task.sample_instances(20, seed=1)
    assert task.nz == 3 + 18
    for x0, z in zip(x0s, params):
        centres = z[3:].reshape(9, 2)
        dists = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(9) * 10
        assert dists.min() >= 0.85 - 1e-12
        assert np.linalg.norm(centres - x0[:2], axis=1).min() > 0.4
        assert np.linalg.norm(centres - z[:2], axis=1).min() > 0.4
        assert x0[2] == z[2]  # same height


def test_default_guess_shapes_and_endpoints():
    task = sw.make_task("double_pendulum")
    x0s, params = task.sample_instances(1, seed=0)
    xs, us = task.default_initial_guess(x0s[0], params[0])
    assert xs.shape == (task.horizon + 1, task.nx) and us.shape == (task.horizon, task.nu)
    np.testing.assert_allclose(xs[0], x0s[0])
    np.testing.assert_allclose(xs[-1], np.zeros(task.nx), atol=1e-12)  # interpolates to upright


def test_unknown_task_and_variant_raise_clear_errors():
    with pytest.raises(ValueError, match="name: unknown task 'acrobat'.*'pendulum'"):
        sw.make_task("acrobat")
    with pytest.raises(ValueError, match="variant: unknown variant 'columns_12' of task 'quadrotor'"):
        sw.make_task("quadrotor", "columns_12")
    with pytest.raises(TypeError, match="name: expected a task name"):
        sw.make_task(3)


def test_missing_model_files_raise(tmp_path):
    with pytest.raises(RuntimeError, match="robots_dir: model file not found"):
        sw.make_task("ur5", models_dir=tmp_path)


def test_invalid_instances_are_named():
    ur5 = sw.make_task("ur5", "fixed_start_random_target")
    x0s, params = ur5.sample_instances(2, seed=0)
    params[1] = [3.0, 0.0, 0.5]
    with pytest.raises(ValueError, match=r"params: target .* out of the UR5's reach.*\(instance 1\)"):
        ur5.check_instances(x0s, params)
    quad = sw.make_task("quadrotor", "columns_1")
    x0s, params = quad.sample_instances(1, seed=0)
    bad = x0s.copy()
    bad[0, 3:7] = [0.0, 0.0, 0.0, 2.0]
    with pytest.raises(ValueError, match="x0s: configuration .* is not normalised"):
        quad.check_instances(bad, params)
    covered = params.copy()
    covered[0, 3:5] = x0s[0, :2]
    with pytest.raises(ValueError, match="params: column 0 .* covers the start or the goal"):
        quad.check_instances(x0s, covered)
    with pytest.raises(ValueError, match=r"x0s: expected shape \(N, 13\), got \(1, 12\)"):
        quad.check_instances(x0s[:, :12], params)
    with pytest.raises(ValueError, match=r"n: expected a number of instances >= 0"):
        quad.sample_instances(-1, seed=0)


def test_type_stub_lists_every_binding():
    """_core.pyi stays in step with the extension: same functions, same Task, PolicyRunner and Lookup members."""
    import ast
    from pathlib import Path

    stub = ast.parse((Path(sw.__file__).parent / "_core.pyi").read_text())
    functions = {n.name for n in stub.body if isinstance(n, ast.FunctionDef)}
    task_stub = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Task")
    members = {n.name for n in task_stub.body if isinstance(n, ast.FunctionDef)}
    public = {k for k in dir(sw._core) if not k.startswith("_")}
    assert functions == public - {"Task", "PolicyRunner", "Lookup"}
    assert members == {k for k in dir(sw._core.Task) if not k.startswith("_")}
    runner_stub = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "PolicyRunner")
    runner_members = {n.name for n in runner_stub.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
    assert runner_members == {k for k in dir(sw._core.PolicyRunner) if not k.startswith("_")}
    lookup_stub = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Lookup")
    lookup_members = {n.name for n in lookup_stub.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
    assert lookup_members == {k for k in dir(sw._core.Lookup) if not k.startswith("_")}


@pytest.mark.parametrize("name,variant", [("pendulum", "default"), ("ur5", "fixed_start_random_target"),
                                          ("quadrotor", "columns_0")])
def test_described_control_weight_is_the_objectives(name, variant):
    """describe()'s running cost, dt/2 * (... + w |u|^2): the objective's second difference in one control is dt * w
    (Aligator's quadratic costs are 1/2 r^T W r; exact, the cost is quadratic in u)."""
    task = sw.make_task(name, variant)
    found = re.search(r"running cost dt/2 \* \(.*\+ ([0-9.e+-]+) \|u\|\^2\)", task.describe())
    assert found is not None
    x0s, params = task.sample_instances(1, seed=0)
    xs, us = task.default_initial_guess(x0s[0], params[0])
    xs, us = xs[None], us[None]

    def cost(delta):
        moved = us.copy()
        moved[0, 3, 0] += delta
        return guess_costs(task, x0s, params, xs, moved, 1e3, 1)[0]

    second = cost(0.5) + cost(-0.5) - 2 * cost(0.0)
    np.testing.assert_allclose(second, task.dt * float(found.group(1)) * 0.5 ** 2, rtol=1e-6)
