"""Tasks: families of optimal control problems built in C++ over example-robot-data models."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np

from . import _core

Task = _core.Task


@lru_cache(maxsize=1)
def robots_dir() -> Path:
    """example-robot-data's ``robots`` folder, installed by the ``example-robot-data`` wheel."""
    try:
        path = Path(distribution("example-robot-data").locate_file("cmeel.prefix/share/example-robot-data/robots"))
    except PackageNotFoundError as exc:  # pragma: no cover - a broken installation
        raise RuntimeError("the example-robot-data package is not installed: pip install example-robot-data") from exc
    if not path.is_dir():  # pragma: no cover - a broken installation
        raise RuntimeError(f"example-robot-data's robots folder is missing: {path}")
    return path


def available_tasks() -> dict[str, list[str]]:
    """Task names and their variants; the first variant is the default."""
    return dict(_core.available_tasks())


def make_task(name: str, variant: str = "", models_dir: str | Path | None = None, *,
              horizon: int | None = None) -> Task:
    """Build a task by name (``pendulum``, ``double_pendulum``, ``ur5``, ``quadrotor``).

    ``variant`` picks a member of the family (``available_tasks()``); empty means the default one.
    ``models_dir`` overrides the folder of robot models (example-robot-data's layout).
    ``horizon``: a number of steps replacing the variant's ``T`` (same stages, costs and constraints). The stages do
    not depend on the time, so a task of horizon ``T - t`` solves the tail of the variant's problem from a state
    reached at step ``t`` (:mod:`sobolev_warmstart.relabel`). None keeps the variant's.
    ``task.describe()`` prints its weights, horizon, time step, constraints and instance distribution.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a task name (str), got {type(name).__name__}")
    if not isinstance(variant, str):
        raise TypeError(f"variant: expected a variant name (str), got {type(variant).__name__}")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer))
                                or horizon < 1):
        raise ValueError(f"horizon: expected a number of steps >= 1 (int) or None, got {horizon!r}")
    folder = Path(models_dir) if models_dir is not None else robots_dir()
    return _core.make_task(name, variant, str(folder), int(horizon or 0))
