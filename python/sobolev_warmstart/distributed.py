"""Collection on a Ray cluster (``backend.name = "ray"``; optional: ``pip install "sobolev_warmstart[ray]"``).

A collection is a list of independent batches: instances, a rollout seed, the solver options and, after the
first iteration, the exported policy. With the Ray backend each batch is one Ray task: the task rebuilds the
problem family from its name, writes the policy's bytes (shipped once through the object store) to a local
file, loads it into the C++ runner and calls the same batch function as the local backend. The driver saves
every batch as soon as it arrives, so an interrupted collection resumes exactly as a local one does, and the
results equal the local backend's (tested): a batch depends only on its instances, seeds and the policy.

Every node needs this package (the same version) and the robot models; tasks reserve
``backend.cpus_per_task`` CPUs, which are also their solver threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .config import BackendConfig
from .solver import SolverOptions

__all__ = ["BatchJob", "connect", "run_batches_on_ray"]


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One batch of a collection: its index, the rows of the instances it solves, its rollout seed."""

    index: int
    rows: slice
    seed: int


def _ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise RuntimeError('backend.name: "ray" needs Ray on this machine and on the cluster\'s nodes: '
                           'pip install "sobolev_warmstart[ray]"') from None
    return ray


def connect(backend: BackendConfig) -> None:
    """Join the cluster at ``backend.address`` (None: ``RAY_ADDRESS``, else start a local instance) unless this
    process is already connected; raises ``RuntimeError`` naming ``backend.address`` when it cannot."""
    ray = _ray()
    if ray.is_initialized():
        return
    address = backend.address if backend.address is not None else os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"backend.address: cannot join the Ray cluster at {address!r}: {exc}") from None


_RUNNERS: dict[str, object] = {}  # per worker process: policy digest -> loaded runner


def _runner_from_bytes(blob: bytes, suffix: str):
    from .rollout import load_policy_runner
    key = hashlib.sha256(blob).hexdigest()
    if key not in _RUNNERS:
        folder = Path(tempfile.mkdtemp(prefix="sw_policy_"))
        path = folder / f"policy{suffix}"
        path.write_bytes(blob)
        _RUNNERS[key] = load_policy_runner(path)
    return _RUNNERS[key]


def _solve_batch_task(task_name: str, variant: str, x0s: np.ndarray, params: np.ndarray, options: SolverOptions,
                      policy: tuple[bytes, str] | None, seed: int, action_steps: int | None,
                      derivative_horizon: int | None, divergence_bound: float) -> dict[str, np.ndarray]:
    """The body of a Ray task: one batch, exactly as the local backend solves it."""
    from .loop import _collect_batch
    from .tasks import make_task
    task = make_task(task_name, variant)
    runner = None if policy is None else _runner_from_bytes(*policy)
    return _collect_batch(task, x0s, params, options, runner, seed, action_steps, derivative_horizon,
                          divergence_bound)


def run_batches_on_ray(backend: BackendConfig, task, x0s: np.ndarray, params: np.ndarray, jobs: list[BatchJob],
                       options: SolverOptions, policy_path: Path | None, action_steps: int | None,
                       derivative_horizon: int | None, divergence_bound: float
                       ) -> Iterator[tuple[BatchJob, dict[str, np.ndarray]]]:
    """Submit every job as a Ray task and yield ``(job, result)`` as they finish (in any order). Closing the
    generator early (an exception or interruption in the consumer) cancels the tasks still running."""
    ray = _ray()
    connect(backend)
    remote = ray.remote(num_cpus=backend.cpus_per_task, max_retries=2)(_solve_batch_task)
    options = dataclasses.replace(options, num_threads=backend.cpus_per_task)
    policy = None
    if policy_path is not None:
        policy = ray.put((Path(policy_path).read_bytes(), Path(policy_path).suffix))
    pending = {remote.remote(task.name, task.variant, x0s[job.rows], params[job.rows], options, policy, job.seed,
                             action_steps, derivative_horizon, divergence_bound): job for job in jobs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                yield job, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
