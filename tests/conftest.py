"""Shared fixtures: tasks and solved batches, computed once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

import sobolev_warmstart as sw

TASK_CASES = [
    ("pendulum", "default"),
    ("double_pendulum", "default"),
    ("ur5", "fixed_start_fixed_target"),
    ("ur5", "fixed_start_random_target"),
    ("ur5", "random_start_fixed_target"),
    ("ur5", "random_start_random_target"),
    ("quadrotor", "columns_0"),
    ("quadrotor", "columns_3"),
    ("quadrotor", "columns_9"),
]
N_INSTANCES = 8


@pytest.fixture(scope="session")
def solved():
    """(task, x0s, params, result) per (name, variant), solved on demand and cached."""
    cache: dict = {}

    def get(name: str, variant: str = "default", n: int = N_INSTANCES, seed: int = 0):
        key = (name, variant, n, seed)
        if key not in cache:
            task = sw.make_task(name, variant)
            x0s, params = task.sample_instances(n, seed=seed)
            cache[key] = (task, x0s, params, sw.solve(task, x0s, params))
        return cache[key]

    return get


def pinocchio_model(task: sw.Task) -> pin.Model:
    """The task's robot built independently with pinocchio's Python bindings."""
    robots = Path(sw.robots_dir())
    if task.name in ("pendulum", "double_pendulum"):
        model = pin.buildModelFromUrdf(str(robots / "double_pendulum_description/urdf/double_pendulum.urdf"))
        if task.name == "pendulum":
            model = pin.buildReducedModel(model, [model.getJointId("joint2")], np.zeros(model.nq))
        return model
    if task.name == "ur5":
        return pin.buildModelFromUrdf(str(robots / "ur_description/urdf/ur5_robot.urdf"))
    return pin.buildModelFromUrdf(str(robots / "hector_description/robots/quadrotor_base.urdf"), pin.JointModelFreeFlyer())


def tangent_perturb(model: pin.Model, x: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """x (+) dx on the state manifold (configuration through pinocchio.integrate)."""
    nq, nv = model.nq, model.nv
    return np.concatenate([pin.integrate(model, x[:nq], dx[:nv]), x[nq:] + dx[nv:]])


def tangent_difference(model: pin.Model, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """x1 (-) x0 in tangent coordinates."""
    nq = model.nq
    return np.concatenate([pin.difference(model, x0[:nq], x1[:nq]), x1[nq:] - x0[nq:]])


def check_missing_setting_reads_as_default(folder, plain, changed, key: str) -> None:
    """A scorecard folder written before ``key`` existed (``plain``'s settings without it) resumes as ``plain``,
    whose value is the default, and is refused, naming ``key``, for ``changed`` settings."""
    import json

    import pytest

    from sobolev_warmstart.scorecard import _check_settings

    old = plain.to_dict()
    del old[key]
    (folder / "settings.json").write_text(json.dumps(old))
    _check_settings(folder, plain)
    with pytest.raises(ValueError, match=key):
        _check_settings(folder, changed)
