"""The interplay loop (Algorithm 1 of the reference): collect solved instances, train, collect with the policy.

``run_loop(config)`` runs :class:`~sobolev_warmstart.config.LoopConfig` in ``config.run_dir``:

- iteration 1 solves ``instances`` new instances from the task's default guess ("TO alone"); the converged
  solves are accepted, the others rejected and counted;
- iteration ``k > 1`` trains a freshly initialised policy (seed ``train.seed + k``) on all trajectories accepted
  so far, exports it, and solves each of ``instances`` new instances twice, from the default guess and from the
  policy's rollout (what :func:`~sobolev_warmstart.warmstart.warm_start` does, with rollouts that diverge
  beyond ``divergence_bound`` left unrefined); per instance the lower-cost converged solve is kept
  (:func:`~sobolev_warmstart.warmstart.select_dual`), an instance where neither converged within the
  iteration's budget ``config.max_iters(k)`` is rejected;
- after the last iteration a final policy is trained on all accepted trajectories and evaluated on held-out
  instances (``eval.seed``): TO alone vs warm start, printed as a table, beside the nearest-neighbour baselines
  built from the same accepted trajectories (``nn``: the nearest one's trajectory; ``nn_feedback``: its feedback
  law closed around the dynamics; :mod:`~sobolev_warmstart.baselines`), each refined by the solver.

Run directory (every file written atomically)::

    config.json                  the resolved config (a different config on the same folder is refused)
    iter_001/batches/batch_000.npz ...  one file per collect batch: per-instance results + accepted trajectories
    iter_001/trajectories.npz    the iteration's accepted solutions with chained derivatives (load_dataset)
    iter_001/instances.npz       per-instance results of the iteration (all batches merged)
    iter_001/metrics.json        counts, sources, iterations, times, costs (written last: the iteration is done)
    iter_002/train/              training checkpoint (resumable) ...
    iter_002/policy.pt, iter_002/policy_export.safetensors   the policy used to collect iteration 2 (save_policy, export)
    final/train/, final/policy.pt, final/policy_export.safetensors, final/eval_batches/, final/eval.json
    summary.json, summary.csv    per-iteration metrics and the evaluation

Resume: calling ``run_loop`` again with the same config continues where the last call stopped: finished
iterations are skipped, saved batches are loaded instead of re-solved (an interruption loses at most one batch),
training resumes from its last checkpoint. Rollout noise is seeded per (iteration, batch), training per
iteration, and the solver does not depend on threads, so a resumed run gives the same data as an uninterrupted
one (with the same ``train.num_threads``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .config import ABSENT, BackendConfig, CollectConfig, ConfigError, LoopConfig, diff_configs, from_dict, to_dict
from .baselines import BASELINES, LookupFallback, NearestNeighbourLookup
from .data import (ChunkDataset, Normalisers, TaskInfo, TrajectoryData, atomic_write_bytes, build_dataset, load_dataset,
                   save_dataset)
from .distributed import BatchJob, run_batches_on_ray
from .export import export_policy
from .policy import save_policy
from .rollout import load_policy_runner
from .sensitivities import chained_derivatives
from .solver import SolveResult, SolverOptions, solve
from .tasks import Task, make_task
from .train import train
from .warmstart import (default_guesses, diverged_rollouts, guess_violations, refine_guesses, refine_rollouts,
                        select_dual)

__all__ = ["LoopResult", "run_loop", "final_training_set", "collect_dataset", "iteration_dir", "rollout_seed", "take_rows", "load_instances",
           "load_trajectories", "diverged_rollouts", "comparison_table", "collect_metrics", "evaluate_baselines",
           "RESUME_FREE_KEYS"]

#: Config keys that may differ between a run and its resumption (they change neither data nor results).
RESUME_FREE_KEYS = ("run_dir", "solver.num_threads", "train.num_threads", "train.progress", "backend.name",
                    "backend.address", "backend.cpus_per_task")
_EXPORT_STEM = "policy_export"

Callback = Callable[[str, dict], None]


@dataclass
class LoopResult:
    """What :func:`run_loop` produced: ``iterations`` (the per-iteration ``metrics.json`` dicts),
    ``evaluation`` (``final/eval.json`` or None), the final policy files and the printed comparison table."""

    run_dir: Path
    config: LoopConfig
    iterations: list[dict]
    evaluation: dict | None
    policy_path: Path | None
    export_path: Path | None
    table: str
    wall_time: float

    def training_set(self) -> TrajectoryData:
        """What the final policy trained on, and what the final lookups look up in: the accepted trajectories of
        every iteration, consolidated and followed by their symmetry copies where the config asks for them. Read
        from the files the loop saved in ``final/``; nothing is solved again."""
        return final_training_set(self.config)


def iteration_dir(run_dir: str | Path, iteration: int) -> Path:
    return Path(run_dir) / f"iter_{iteration:03d}"


def rollout_seed(config: LoopConfig, stage: int, batch: int) -> int:
    """Noise seed of the rollouts of one collect batch (``stage``: the iteration, 0 for the evaluation); fixed
    per batch so that a resumed run draws the same noise."""
    return (config.seed * 10_000 + stage) * 100_000 + batch


def take_rows(result: SolveResult, index) -> SolveResult:
    """The instances ``index`` (integer indices or a boolean mask) of a batch solve."""
    idx = np.asarray(index)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    kw = {}
    for f in dataclasses.fields(SolveResult):
        v = getattr(result, f.name)
        kw[f.name] = [v[i] for i in idx] if f.name == "errors" else np.asarray(v)[idx]
    return SolveResult(**kw)


def _write_json(path: Path, data: Any) -> None:
    text = (json.dumps(data, indent=2, default=_json_default) + "\n").encode()
    atomic_write_bytes(path, lambda f: f.write(text))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------------------ collection
def _collect_batch(task: Task, x0s: np.ndarray, params: np.ndarray, options: SolverOptions, runner,
                   seed: int, action_steps: int | None, derivative_horizon: int | None,
                   divergence_bound: float) -> dict[str, np.ndarray]:
    """Solve one batch (TO alone without ``runner``; the dual solve with it) and return its per-instance
    results; with ``derivative_horizon``, also the accepted trajectories (``traj_*``) and their chained
    derivatives."""
    start = time.perf_counter()
    out: dict[str, np.ndarray] = {"x0s": x0s, "params": params, "max_iters": np.asarray(options.max_iters)}
    if runner is None:
        chosen = default = solve(task, x0s, params, options=options)
        accepted = np.asarray(default.converged, bool)
        source = np.where(accepted, "default", "none")
        warm = None
    else:
        default = solve(task, x0s, params, options=options)
        refined, diverged = refine_rollouts(task, x0s, params, runner, action_steps, seed, options,
                                            divergence_bound)
        ro, policy_cost, warm = refined.rollout, refined.policy_cost, refined.warm
        dual = select_dual(default, warm)
        chosen, accepted, source = dual.result, np.asarray(dual.accepted, bool), np.asarray(dual.source)
        out.update(rollout_seed=np.asarray(seed), rollout_time=np.asarray(ro.time), policy_cost=policy_cost,
                   diverged=diverged,
                   policy_violation=guess_violations(task, x0s, params, ro.xs, ro.us, divergence_bound,
                                                     options.num_threads),
                   default_violation=guess_violations(task, x0s, params, *default_guesses(task, x0s, params),
                                                      divergence_bound, options.num_threads))
    for name, res in (("default", default), ("warm", warm)):
        if res is None:
            continue
        out.update({f"{name}_iterations": np.asarray(res.iterations), f"{name}_converged": np.asarray(res.converged),
                    f"{name}_cost": np.asarray(res.cost), f"{name}_solve_time": np.asarray(res.solve_time)})
    out.update(accepted=accepted, source=source.astype("U7"), selected_cost=np.asarray(chosen.cost),
               selected_iterations=np.asarray(chosen.iterations))
    if derivative_horizon is not None and accepted.any():
        sub = take_rows(chosen, accepted)
        der = chained_derivatives(task, sub, derivative_horizon, num_threads=options.num_threads)
        data = TrajectoryData.from_solve(task, sub, der)
        out.update({f"traj_{k}": v for k, v in data.arrays().items()})
    out["wall_time"] = np.asarray(time.perf_counter() - start)
    return out


def _solve_batches(backend: BackendConfig, task: Task, x0s: np.ndarray, params: np.ndarray, jobs: list[BatchJob],
                   options: SolverOptions, runner_path: Path | None, action_steps: int | None,
                   derivative_horizon: int | None, divergence_bound: float
                   ) -> Iterator[tuple[BatchJob, dict[str, np.ndarray]]]:
    """``(job, result)`` for every job: in turn in this process, or as they finish on Ray (``backend``); each
    result carries the ``instance`` indices of its rows."""
    if backend.name == "ray":
        solved = run_batches_on_ray(backend, task, x0s, params, jobs, options, runner_path, action_steps,
                                    derivative_horizon, divergence_bound)
    else:
        runner = load_policy_runner(runner_path) if (jobs and runner_path is not None) else None
        solved = ((job, _collect_batch(task, x0s[job.rows], params[job.rows], options, runner, job.seed,
                                       action_steps, derivative_horizon, divergence_bound)) for job in jobs)
    try:
        for job, res in solved:
            res["instance"] = np.arange(job.rows.start, job.rows.start + len(res["x0s"]))
            yield job, res
    finally:
        solved.close()  # cancels the Ray tasks still running when the consumer stops early


def _collect(task: Task, x0s: np.ndarray, params: np.ndarray, folder: Path, batch: int, options: SolverOptions,
             runner_path: Path | None, seed_of: Callable[[int], int], action_steps: int | None,
             derivative_horizon: int | None, desc: str, progress: bool, callback: Callback | None,
             info: dict, divergence_bound: float, backend: BackendConfig) -> list[dict[str, np.ndarray]]:
    """Solve instances in batches of ``batch``, saving each to ``folder/batch_XXX.npz`` as soon as it is solved;
    saved batches are loaded instead of solved again."""
    n = len(x0s)
    starts = list(range(0, n, batch))
    results: list[dict | None] = [None] * len(starts)
    todo = []
    for b, s in enumerate(starts):
        path = folder / f"batch_{b:03d}.npz"
        if path.exists():
            saved = _load_npz(path)
            if not (np.array_equal(saved["x0s"], x0s[s:s + batch]) and int(saved["max_iters"]) == options.max_iters):
                raise RuntimeError(f"{path}: holds other instances or another budget than this run's; "
                                   "the run directory was modified by hand")
            results[b] = saved
        else:
            todo.append(BatchJob(b, slice(s, s + batch), seed_of(b)))
    bar = tqdm(total=n, initial=n - sum(len(x0s[job.rows]) for job in todo), desc=desc, unit="inst",
               disable=not progress, leave=False)
    solved = _solve_batches(backend, task, x0s, params, todo, options, runner_path, action_steps,
                            derivative_horizon, divergence_bound)
    try:
        for job, res in solved:
            _save_npz(folder / f"batch_{job.index:03d}.npz", res)
            results[job.index] = res
            bar.update(len(res["x0s"]))
            bar.set_postfix(accepted=f"{sum(int(r['accepted'].sum()) for r in results if r is not None)}")
            if callback is not None:
                callback("batch", {**info, "batch": job.index, "batches": len(starts),
                                   "instances_done": sum(len(r["x0s"]) for r in results if r is not None)})
    finally:
        solved.close()
        bar.close()
    return results  # type: ignore[return-value]


_PER_INSTANCE = ("x0s", "params", "accepted", "source", "selected_cost", "selected_iterations", "default_iterations",
                 "default_converged", "default_cost", "default_solve_time", "warm_iterations", "warm_converged",
                 "warm_cost", "warm_solve_time", "rollout_time", "policy_cost", "diverged", "instance",
                 "policy_violation", "default_violation")


def _merge(batches: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per-instance arrays, accepted-trajectory arrays) of all batches, in instance order."""
    per = {k: np.concatenate([b[k] for b in batches]) for k in _PER_INSTANCE if k in batches[0]}
    per["batch_wall_time"] = np.asarray([float(b["wall_time"]) for b in batches])
    with_traj = [b for b in batches if any(k.startswith("traj_") for k in b)]
    traj = {}
    if with_traj:
        keys = [k for k in with_traj[0] if k.startswith("traj_")]
        traj = {k[5:]: np.concatenate([b[k] for b in with_traj]) for k in keys}
    return per, traj


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return float(x.mean()) if x.size else None


def _stats(per: dict[str, np.ndarray], name: str) -> dict | None:
    if f"{name}_converged" not in per:
        return None
    conv = per[f"{name}_converged"].astype(bool)
    it = per[f"{name}_iterations"]
    return {"converged": int(conv.sum()), "convergence_rate": float(conv.mean()),
            "iterations_mean": _mean(it), "iterations_median": float(np.median(it)),
            "iterations_mean_converged": _mean(it[conv]),
            "solve_time_mean": _mean(per[f"{name}_solve_time"]),
            "cost_mean_converged": _mean(per[f"{name}_cost"][conv])}


def collect_metrics(per: dict[str, np.ndarray]) -> dict:
    """Counts and means of one collection (or evaluation) from its per-instance arrays."""
    acc = per["accepted"].astype(bool)
    src = per["source"]
    out = {"instances": int(acc.size), "accepted": int(acc.sum()), "rejected": int((~acc).sum()),
           "sources": {s: int((src == s).sum()) for s in ("policy", "default", "none")},
           "default": _stats(per, "default"), "warm": _stats(per, "warm"),
           "selected": {"iterations_mean": _mean(per["selected_iterations"][acc]),
                        "cost_mean": _mean(per["selected_cost"][acc])},
           "batch_wall_time_total": float(per["batch_wall_time"].sum())}
    if out["warm"] is not None:
        both = per["default_converged"].astype(bool) & per["warm_converged"].astype(bool)
        refined = ~per["diverged"].astype(bool)
        out["warm"].update(diverged=int((~refined).sum()), iterations_mean_refined=_mean(per["warm_iterations"][refined]),
                           rollout_time_mean=_mean(per["rollout_time"]),
                           policy_cost_mean=_mean(per["policy_cost"]),
                           total_time_mean=_mean(per["rollout_time"] + per["warm_solve_time"]))
        out["paired"] = {
            "both_converged": int(both.sum()),
            "default_iterations_mean": _mean(per["default_iterations"][both]),
            "warm_iterations_mean": _mean(per["warm_iterations"][both]),
            "default_cost_mean": _mean(per["default_cost"][both]),
            "warm_cost_mean": _mean(per["warm_cost"][both]),
        }
    return out


def load_instances(run_dir: str | Path, iteration: int) -> dict[str, np.ndarray]:
    """Per-instance results of a finished iteration (``iter_XXX/instances.npz``)."""
    return _load_npz(iteration_dir(run_dir, iteration) / "instances.npz")


def load_trajectories(run_dir: str | Path, iterations) -> TrajectoryData | None:
    """All accepted trajectories of the given finished iterations, concatenated (None if there are none)."""
    parts = []
    for k in iterations:
        path = iteration_dir(run_dir, k) / "trajectories.npz"
        if path.exists():
            parts.append(load_dataset(path).data)
    if not parts:
        return None
    arrays = {k: np.concatenate([p.arrays()[k] for p in parts]) for k in parts[0].arrays()}
    return TrajectoryData(task=parts[0].task, **arrays)


def collect_dataset(config: CollectConfig, path: str | Path | None = None, progress: bool = True
                    ) -> tuple[ChunkDataset, dict]:
    """TO alone on ``config.instances`` seeded instances (in batches of ``config.batch``, with a progress bar):
    the converged solves with their chained derivatives (consolidated if ``config.consolidate_neighbours``, the
    report in ``metrics["consolidation"]``; with ``config.symmetry_copies`` rotated copies, the report and each
    trajectory's solved origin in ``metrics["symmetry"]``), as a chunk dataset saved (atomically) to ``path``.
    Returns ``(dataset, metrics)``; raises ``RuntimeError`` if no solve converged."""
    if not isinstance(config, CollectConfig):
        raise TypeError(f"config: expected a CollectConfig, got {type(config).__name__}")
    task = make_task(config.task, config.variant)
    x0s, params = task.sample_instances(config.instances, seed=config.seed)
    horizon = config.chunk.horizon - config.chunk.history
    jobs = [BatchJob(b, slice(s, s + config.batch), 0) for b, s in enumerate(range(0, len(x0s), config.batch))]
    batches: list[dict | None] = [None] * len(jobs)
    t0 = time.perf_counter()
    with tqdm(total=len(x0s), desc="TO alone", unit="inst", disable=not progress, leave=False) as bar:
        solved = _solve_batches(config.backend, task, x0s, params, jobs, config.solver, None, None, horizon, 1.0)
        try:
            for job, res in solved:
                batches[job.index] = res
                bar.update(len(res["x0s"]))
        finally:
            solved.close()
    per, traj = _merge(batches)  # type: ignore[arg-type]
    metrics = {"task": task.name, "variant": task.variant, "seed": config.seed, "max_iters": config.solver.max_iters,
               **collect_metrics(per), "collect_time_s": time.perf_counter() - t0}
    if not traj:
        raise RuntimeError(f"no solve converged among {len(x0s)} instances within max_iters = "
                           f"{config.solver.max_iters}: nothing to save")
    dataset = build_dataset(TrajectoryData(task=TaskInfo.from_task(task), **traj), config.chunk)
    if config.consolidate_neighbours > 0:
        from .consolidate import consolidate_dataset  # it uses this module's take_rows
        dataset, report = consolidate_dataset(task, dataset, neighbours=config.consolidate_neighbours,
                                              rounds=config.consolidate_rounds, options=config.solver)
        metrics["consolidation"] = report.to_dict()
    if config.symmetry_copies > 0:
        from .symmetry import augment_dataset
        dataset, report = augment_dataset(task, dataset, config.symmetry_copies, seed=config.seed,
                                          options=config.solver)
        metrics["symmetry"] = {**report.to_dict(), "origin": report.origin.tolist()}
    metrics["collect_time_s"] = time.perf_counter() - t0
    if path is not None:
        save_dataset(dataset, path)
    return dataset, metrics


# ---------------------------------------------------------------------------------------------- training
def _copies_seed(config: LoopConfig) -> int:
    """Seed of the final training set's symmetry copies (iteration k's: this + k)."""
    return config.seed * 1000


def final_training_set(config: LoopConfig) -> TrajectoryData:
    """The final training set of the finished run ``config.run_dir`` (:meth:`LoopResult.training_set`): the
    accepted trajectories of every iteration, consolidated and with their symmetry copies as the config says,
    loaded from ``final/`` where the loop saved them."""
    run_dir = Path(config.run_dir)
    final = run_dir / "final"
    missing = [name for name, wanted in (("policy.pt", True), ("consolidated.npz", config.consolidate_neighbours > 0),
                                         ("symmetric.npz", config.symmetry_copies > 0))
               if wanted and not (final / name).exists()]
    if missing:
        raise FileNotFoundError(f"config.run_dir: {run_dir} holds no finished loop's final training set "
                                f"(final/{', final/'.join(missing)} missing); run_loop it first")
    data = load_trajectories(run_dir, range(1, config.iterations + 1))
    task = make_task(config.task, config.variant)
    return _training_set(config, task, data, final, lambda _msg: None, _copies_seed(config))[0]


def _training_set(config: LoopConfig, task: Task, data: TrajectoryData, folder: Path, say: Callable[[str], None],
                  seed: int) -> tuple[TrajectoryData, Normalisers | None, dict]:
    """``(data, normalisers, reports)`` to train on: ``data`` itself (None, {}) without consolidation or symmetry
    copies; else its consolidation, saved once in ``folder/consolidated.npz`` (report in
    ``folder/consolidation.json``), then its rotated copies (``symmetry_copies``, drawn with ``seed``), saved once in
    ``folder/symmetric.npz`` (report in ``folder/symmetry.json``), each loaded when present, with the normalisers of
    ``data`` and the reports (``{"consolidation": ..., "symmetry": ...}``, the steps that ran)."""
    if config.consolidate_neighbours == 0 and config.symmetry_copies == 0:
        return data, None, {}
    dataset = build_dataset(data, config.chunk)
    reports: dict[str, dict] = {}
    if config.consolidate_neighbours > 0:
        from .consolidate import consolidate_dataset  # it uses this module's take_rows

        def consolidated():
            say(f"consolidating {dataset.data.num_instances} trajectories ({config.consolidate_neighbours} "
                f"neighbours, {config.consolidate_rounds} rounds)")
            return consolidate_dataset(task, dataset, neighbours=config.consolidate_neighbours,
                                       rounds=config.consolidate_rounds, options=config.solver)
        dataset, reports["consolidation"] = _saved_step(folder, "consolidated.npz", "consolidation.json",
                                                        consolidated)
    if config.symmetry_copies > 0:
        from .symmetry import augment_dataset

        def augmented():
            say(f"symmetry: {config.symmetry_copies} rotated copies of each of the {dataset.data.num_instances} "
                "trajectories, confirmed by the solver")
            return augment_dataset(task, dataset, config.symmetry_copies, seed=seed, options=config.solver)
        dataset, reports["symmetry"] = _saved_step(folder, "symmetric.npz", "symmetry.json", augmented)
    return dataset.data, dataset.normalisers, reports


def _saved_step(folder: Path, name: str, report_name: str, make: Callable[[], tuple[ChunkDataset, Any]]
                ) -> tuple[ChunkDataset, dict]:
    """A training-set step done once: ``folder/name`` and its report ``folder/report_name`` when both exist, else
    ``make()`` (a dataset and a report with ``to_dict``), saved (the dataset last: the step is then done)."""
    path, report_path = folder / name, folder / report_name
    if path.exists() and report_path.exists():
        return load_dataset(path), json.loads(report_path.read_text())
    dataset, report = make()
    _write_json(report_path, report.to_dict())
    save_dataset(dataset, path)
    return dataset, json.loads(report_path.read_text())


def _train_policy(config: LoopConfig, data: TrajectoryData, folder: Path, seed: int, progress: bool,
                  callback: Callback | None, info: dict, normalisers: Normalisers | None = None
                  ) -> tuple[Path, Path, dict]:
    """Train (or resume) a freshly initialised policy on ``data`` in ``folder/train``; save and export it.
    ``normalisers``: given (a consolidated set's), or None to fit them on ``data``."""
    dataset = build_dataset(data, config.chunk, normalisers=normalisers)
    tcfg = dataclasses.replace(config.train, seed=seed, checkpoint_dir=str(folder / "train"), progress=progress,
                               resume=True)
    policy_path = folder / "policy.pt"
    export_path = folder / (_EXPORT_STEM + config.export_suffix)
    start = time.perf_counter()
    epoch_cb = None
    if callback is not None:
        def epoch_cb(epoch: int, logs: dict) -> None:
            callback("epoch", {**info, **logs})
    policy = train(dataset, tcfg, callback=epoch_cb)
    train_time = time.perf_counter() - start
    save_policy(policy, policy_path)
    if not export_path.exists():
        export_policy(policy, export_path)
    hist = policy.train_history
    meta = {"trajectories": int(data.num_instances), "samples": len(dataset), "epochs": tcfg.epochs,
            "seed": seed, "final_loss": hist[-1]["loss"] if hist else None,
            "final_mse": hist[-1]["mse"] if hist else None, "final_sobolev": hist[-1]["sobolev"] if hist else None,
            "time_s": train_time, "policy": f"{folder.name}/{policy_path.name}",
            "export": f"{folder.name}/{export_path.name}"}
    if callback is not None:
        callback("trained", {**info, **meta})
    return policy_path, export_path, meta


# --------------------------------------------------------------------------------------------- run dir
def _prepare_run_dir(config: LoopConfig) -> Path:
    if config.run_dir is None:
        raise ConfigError("loop.run_dir: expected a folder for the run's files, got null")
    run_dir = Path(config.run_dir)
    path = run_dir / "config.json"
    now = to_dict(config)
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable saved config ({exc})") from None
        # a key the saved config lacks was added since: the run used what is now its default
        defaults = to_dict(LoopConfig())
        diffs = [(k, a, b) for k, a, b in diff_configs(saved, now)
                 if k not in RESUME_FREE_KEYS and not (a == ABSENT and b == _dotted(defaults, k))]
        if diffs:
            listed = "; ".join(f"{k} (saved {a!r}, now {b!r})" for k, a, b in diffs)
            raise ConfigError(f"run_dir {run_dir}: holds a run with another config, differing in {listed}. Use "
                              f"another run_dir, or resume with the saved config ({path})")
    else:
        _write_json(path, now)
    return run_dir


def _dotted(tree: dict, key: str) -> Any:
    """The value at dotted ``key`` of a config dict (``ABSENT`` if there is none)."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return ABSENT
        tree = tree[part]
    return tree


def _summary(config: LoopConfig, run_dir: Path, iterations: list[dict], evaluation: dict | None) -> None:
    _write_json(run_dir / "summary.json", {"config": to_dict(config), "iterations": iterations,
                                           "evaluation": evaluation})
    cols = ["stage", "max_iters", "instances", "accepted", "rejected", "from_policy", "from_default",
            "default_converged", "default_iterations_mean", "warm_converged", "warm_iterations_mean",
            "default_solve_time_mean", "warm_solve_time_mean", "rollout_time_mean", "selected_cost_mean",
            "train_trajectories", "train_final_loss", "collect_time_s"]
    rows = []
    for m in iterations + ([evaluation] if evaluation else []):
        d, w, t = m.get("default") or {}, m.get("warm") or {}, m.get("train") or {}
        rows.append({"stage": m.get("iteration", "eval"), "max_iters": m["max_iters"], "instances": m["instances"],
                     "accepted": m["accepted"], "rejected": m["rejected"], "from_policy": m["sources"]["policy"],
                     "from_default": m["sources"]["default"], "default_converged": d.get("converged"),
                     "default_iterations_mean": d.get("iterations_mean"), "warm_converged": w.get("converged"),
                     "warm_iterations_mean": w.get("iterations_mean"),
                     "default_solve_time_mean": d.get("solve_time_mean"),
                     "warm_solve_time_mean": w.get("solve_time_mean"), "rollout_time_mean": w.get("rollout_time_mean"),
                     "selected_cost_mean": m["selected"]["cost_mean"], "train_trajectories": t.get("trajectories"),
                     "train_final_loss": t.get("final_loss"), "collect_time_s": m.get("collect_time_s")})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    text = buf.getvalue().encode()
    atomic_write_bytes(run_dir / "summary.csv", lambda f: f.write(text))


def _fmt(v, spec: str, scale: float = 1.0) -> str:
    return "-" if v is None else format(v * scale, spec)


def _as_run(per: dict[str, np.ndarray], key: str, diverged: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(converged, iterations, solve_time, cost)`` of method ``key`` as :func:`~sobolev_warmstart.warm_start` runs
    it: an instance whose guess diverged (not refined) is solved from the default guess instead, so it counts TO
    alone's solve there."""
    fields = [per[f"{key}_converged"].astype(bool), per[f"{key}_iterations"], per[f"{key}_solve_time"],
              per[f"{key}_cost"]]
    if diverged is None or not diverged.any():
        return tuple(fields)
    fallback = [per["default_converged"].astype(bool), per["default_iterations"], per["default_solve_time"],
                per["default_cost"]]
    return tuple(np.where(diverged, b, a) for a, b in zip(fields, fallback))


def comparison_table(evaluation: dict) -> str:
    """The held-out comparison, TO alone vs warm start, as printed by :func:`run_loop`."""
    per = {k: np.asarray(v) for k, v in evaluation["per_instance"].items()}
    n = evaluation["instances"]
    dconv, wconv = per["default_converged"].astype(bool), per["warm_converged"].astype(bool)
    both = dconv & wconv
    head = ["method", "converged", "diverged", "infeasible", "iters", "median", "iters*", "solve ms", "rollout ms",
            "total ms", "cost*"]
    rows = []
    tol = evaluation.get("tol")
    methods = [("TO alone", "default", None, None, per.get("default_violation"))]
    methods += [(label, m, per[f"{m}_rollout_time"], per.get(f"{m}_diverged"), per.get(f"{m}_policy_violation"))
                for m, label in zip(BASELINES, ("NN", "NN+feedback")) if f"{m}_converged" in per]
    methods.append(("warm start", "warm", per["rollout_time"], per.get("diverged"), per.get("policy_violation")))
    if "fallback_converged" in per:  # evaluations written before the row existed do not have it
        methods.append(("warm start, NN fallback", "fallback", per["fallback_rollout_time"], None,
                        per.get("fallback_policy_violation")))
    for name, key, roll, div, violation in methods:
        div = None if div is None else div.astype(bool)
        conv, iters, solve_t, cost = _as_run(per, key, div)
        total = solve_t + (roll if roll is not None else 0.0)
        held = np.ones(n, bool) if div is None else ~div
        infeasible = "-" if violation is None or tol is None or not held.any() else \
            f"{100 * np.mean(np.asarray(violation)[held] > tol):.0f}%"
        rows.append([name, f"{conv.sum()}/{n} ({100 * conv.mean():.0f}%)", "-" if div is None else str(int(div.sum())),
                     infeasible, _fmt(_mean(iters), ".1f"),
                     _fmt(float(np.median(iters)) if len(iters) else None, ".1f"), _fmt(_mean(iters[both & conv]), ".1f"), _fmt(_mean(solve_t), ".1f", 1e3),
                     _fmt(None if roll is None else _mean(roll), ".2f", 1e3), _fmt(_mean(total), ".1f", 1e3),
                     _fmt(_mean(cost[both & conv]), ".4f")])
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    src = per["source"]
    lines = [line(head)] + [line(r) for r in rows]
    baselines = "" if "nn_converged" not in per else (
        " NN / NN+feedback: the nearest training trajectory (nearest in normalised (x0, z) among the "
        f"{evaluation.get('baselines', {}).get('training_instances', '?')} accepted training trajectories) / its "
        "feedback law from the new x0, refined by the solver; their iters* and cost* over the same instances "
        "(where TO alone and the warm start converged) when they converged too.")
    fb = evaluation.get("baselines", {}).get("fallback", {})
    ratio, calibration = fb.get("cost_ratio"), fb.get("calibration")
    if "fallback_converged" in per and ratio is not None:
        how = ("" if not calibration else f" ({calibration['factor']:g}x the policy's median ratio "
                                          f"{calibration['median_ratio']:.3g} on {calibration['instances']} fresh instances)")
        baselines += (f" warm start, NN fallback: the same rollouts, those that diverged or cost more than {ratio:.3g} "
                      f"times their nearest training solution{how} replaced by the NN guess (LookupFallback; the "
                      "lookup's time in its rollout ms).")
    lines.append(f"* over the {int(both.sum())} instances where both solves converged. Policy rollout alone: cost* "
                 f"{_fmt(_mean(per['policy_cost'][both]), '.4f')}.{baselines} Best of both: {int(per['accepted'].sum())}/{n} "
                 f"solved, {int((src == 'policy').sum())} from the policy's guess, {int((src == 'default').sum())} "
                 f"from the default. diverged: guesses that left the divergence bound; as sw.warm_start does, those "
                 f"instances are solved from the default guess, and their row counts that solve (and the guess's "
                 f"time). infeasible: the share of the guesses (TO alone's: its default guess) that did not diverge and break a "
                 f"path constraint by more than the solver's tolerance (e.g. fly through a column; the objective, "
                 f"cost, does not see it). iters: mean over all instances (a failed solve counts its whole budget), median: "
                 f"their median. Times: means per instance.")
    return "\n".join(lines)


def evaluate_baselines(task: Task, lookup: NearestNeighbourLookup, x0s: np.ndarray, params: np.ndarray,
                       options: SolverOptions, divergence_bound: float) -> tuple[dict, dict[str, np.ndarray]]:
    """The nearest-neighbour baselines (``nn``, ``nn_feedback``) on the held-out instances, each guess refined
    by the solver (rollouts beyond ``divergence_bound`` are not refined, as for the policy): ``(summary,
    per-instance arrays)`` with keys ``<method>_{iterations, converged, cost, solve_time, rollout_time,
    policy_cost, diverged}``."""
    summary: dict[str, Any] = {"training_instances": len(lookup)}
    per: dict[str, np.ndarray] = {}
    for method in BASELINES:
        t0 = time.perf_counter()
        ro = lookup.rollout(task, x0s, params, feedback=method == "nn_feedback")
        ws, diverged = refine_guesses(task, x0s, params, ro, options, divergence_bound)
        w = ws.warm
        per.update({f"{method}_iterations": np.asarray(w.iterations), f"{method}_converged": np.asarray(w.converged),
                    f"{method}_cost": np.asarray(w.cost), f"{method}_solve_time": np.asarray(w.solve_time),
                    f"{method}_rollout_time": np.asarray(ro.time), f"{method}_policy_cost": ws.policy_cost,
                    f"{method}_diverged": diverged,
                    f"{method}_policy_violation": guess_violations(task, x0s, params, ro.xs, ro.us, divergence_bound,
                                                                   options.num_threads)})
        conv = np.asarray(w.converged, bool)
        summary[method] = {"converged": int(conv.sum()), "convergence_rate": float(conv.mean()),
                           "iterations_mean": _mean(w.iterations), "iterations_median": float(np.median(w.iterations)),
                           "solve_time_mean": _mean(w.solve_time), "rollout_time_mean": _mean(ro.time),
                           "cost_mean_converged": _mean(w.cost[conv]), "policy_cost_mean": _mean(ws.policy_cost),
                           "diverged": int(diverged.sum()), "wall_time_s": time.perf_counter() - t0}
    return summary, per


def evaluate_fallback(task: Task, fallback: LookupFallback, export_path: Path, x0s: np.ndarray, params: np.ndarray,
                      batch: int, seed_of: Callable[[int], int], action_steps: int | None, options: SolverOptions,
                      divergence_bound: float) -> tuple[dict, dict[str, np.ndarray]]:
    """The warm start with the lookup fallback (:class:`~sobolev_warmstart.baselines.LookupFallback`) on the held-out
    instances: the final policy rolled out in the evaluation's batches with their noise seeds (the same rollouts as
    the warm start's row), the rollouts above their bound replaced by the lookup's guess, then refined. ``(summary,
    per-instance arrays)`` with keys ``fallback_{iterations, converged, cost, solve_time, rollout_time, replaced,
    policy_violation}``."""
    t0 = time.perf_counter()
    runner = load_policy_runner(export_path)
    fallback.lookup.solution_costs(task)  # once per training set, as the lookup's normalisation: not a query's time
    parts = []
    for b, start in enumerate(range(0, len(x0s), batch)):
        rows = slice(start, start + batch)
        ws, _ = refine_rollouts(task, x0s[rows], params[rows], runner, action_steps, seed_of(b), options,
                                divergence_bound, fallback)
        w = ws.warm
        parts.append({"fallback_iterations": np.asarray(w.iterations), "fallback_converged": np.asarray(w.converged),
                      "fallback_cost": np.asarray(w.cost), "fallback_solve_time": np.asarray(w.solve_time),
                      "fallback_rollout_time": np.asarray(ws.rollout.time), "fallback_replaced": ws.replaced,
                      "fallback_policy_violation": guess_violations(task, x0s[rows], params[rows], ws.rollout.xs,
                                                                    ws.rollout.us, divergence_bound,
                                                                    options.num_threads)})
    per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    conv = per["fallback_converged"].astype(bool)
    summary = {"cost_ratio": fallback.cost_ratio, "calibration": fallback.calibration,
               "replaced": int(per["fallback_replaced"].sum()),
               "converged": int(conv.sum()), "iterations_mean": _mean(per["fallback_iterations"]),
               "total_time_mean": _mean(per["fallback_rollout_time"] + per["fallback_solve_time"]),
               "wall_time_s": time.perf_counter() - t0}
    return summary, per


# ------------------------------------------------------------------------------------------------- loop
def run_loop(config: LoopConfig, progress: bool = True, callback: Callback | None = None) -> LoopResult:
    """Run (or resume) Algorithm 1 in ``config.run_dir``; see the module docstring for the files written.

    progress: tqdm bars and one summary line per iteration, the comparison table at the end.
    callback(event, info): called after each saved batch (``"batch"``), training epoch (``"epoch"``), trained
    policy (``"trained"``), finished iteration (``"iteration"``) and evaluation (``"evaluation"``); an exception
    it raises stops the run, which a later call resumes.
    """
    if not isinstance(config, LoopConfig):
        if isinstance(config, dict):
            config = from_dict(LoopConfig, config, "loop")
        else:
            raise TypeError(f"config: expected a LoopConfig, got {type(config).__name__}")
    t_start = time.perf_counter()
    run_dir = _prepare_run_dir(config)
    task = make_task(config.task, config.variant)
    horizon = config.chunk.horizon - config.chunk.history
    say = tqdm.write if progress else (lambda *_: None)
    iterations: list[dict] = []

    for k in range(1, config.iterations + 1):
        folder = iteration_dir(run_dir, k)
        metrics_path = folder / "metrics.json"
        if metrics_path.exists():
            iterations.append(json.loads(metrics_path.read_text()))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        info = {"iteration": k}
        train_meta = None
        export_path = None
        if k > 1:
            data = load_trajectories(run_dir, range(1, k))
            if data is None:
                raise RuntimeError(f"iteration {k}: no accepted trajectory in iterations 1..{k - 1} to train on "
                                   f"(all solves failed within max_iters); raise solver.max_iters or instances")
            data, normalisers, reports = _training_set(config, task, data, folder, say, _copies_seed(config) + k)
            _, export_path, train_meta = _train_policy(config, data, folder, config.train.seed + k, progress,
                                                       callback, info, normalisers)
            train_meta = {**train_meta, **reports}
        options = dataclasses.replace(config.solver, max_iters=config.max_iters(k))
        x0s, params = task.sample_instances(config.instances, seed=config.instance_seed(k))
        t0 = time.perf_counter()
        batches = _collect(task, x0s, params, folder / "batches", config.collect_batch, options, export_path,
                           lambda b, k=k: rollout_seed(config, k, b), config.action_steps, horizon,
                           f"iter {k} {'TO alone' if k == 1 else 'dual solve'}", progress, callback, info,
                           config.divergence_bound, config.backend)
        collect_time = time.perf_counter() - t0
        per, traj = _merge(batches)
        del batches  # merged copies: not kept through the next collection and the final consolidation
        _save_npz(folder / "instances.npz", per)
        if traj:
            data = TrajectoryData(task=TaskInfo.from_task(task), **traj)
            save_dataset(build_dataset(data, config.chunk), folder / "trajectories.npz")
            del data
        del traj
        metrics = {"iteration": k, "mode": "to_alone" if k == 1 else "dual", "max_iters": options.max_iters,
                   "instance_seed": config.instance_seed(k), **collect_metrics(per), "train": train_meta,
                   "collect_time_s": collect_time,
                   "total_accepted": sum(m["accepted"] for m in iterations) + int(per["accepted"].sum())}
        _write_json(metrics_path, metrics)
        iterations.append(metrics)
        _summary(config, run_dir, iterations, None)
        say(_iteration_line(metrics))
        if callback is not None:
            callback("iteration", metrics)

    # final policy on everything, then the held-out evaluation
    final = run_dir / "final"
    data = load_trajectories(run_dir, range(1, config.iterations + 1))
    if data is None:
        raise RuntimeError("no accepted trajectory in any iteration: nothing to train the final policy on")
    final.mkdir(parents=True, exist_ok=True)
    data, normalisers, reports = _training_set(config, task, data, final, say, _copies_seed(config))
    policy_path, export_path, train_meta = _train_policy(config, data, final, config.train.seed,
                                                         progress, callback, {"iteration": "final"}, normalisers)
    train_meta = {**train_meta, **reports}
    evaluation, table = None, ""
    eval_path = final / "eval.json"
    if config.eval.enabled:
        if eval_path.exists():
            evaluation = json.loads(eval_path.read_text())
        else:
            x0s, params = task.sample_instances(config.eval.instances, seed=config.eval.seed)
            t0 = time.perf_counter()
            batches = _collect(task, x0s, params, final / "eval_batches", config.collect_batch, config.solver,
                               export_path, lambda b: rollout_seed(config, 0, b), config.action_steps, None,
                               "evaluation", progress, callback, {"iteration": "eval"}, config.divergence_bound,
                               config.backend)
            per, _ = _merge(batches)
            collect_time = time.perf_counter() - t0
            lookup = NearestNeighbourLookup.from_data(data)
            baselines, per_nn = evaluate_baselines(task, lookup, x0s, params, config.solver, config.divergence_bound)
            # the bound follows the policy's own precision, measured on fresh unsolved instances (round 47)
            fallback = LookupFallback.calibrated(lookup, task, str(export_path), action_steps=config.action_steps,
                                                 divergence_bound=config.divergence_bound,
                                                 num_threads=config.solver.num_threads)
            baselines["fallback"], per_fb = evaluate_fallback(
                task, fallback, export_path, x0s, params, config.collect_batch,
                lambda b: rollout_seed(config, 0, b), config.action_steps, config.solver, config.divergence_bound)
            per_nn.update(per_fb)
            evaluation = {"stage": "eval", "max_iters": config.solver.max_iters, "tol": config.solver.tol,
                          "instance_seed": config.eval.seed,
                          **collect_metrics(per), "train": train_meta, "collect_time_s": collect_time,
                          "baselines": baselines,
                          "per_instance": {**{k: v for k, v in per.items() if k not in ("x0s", "params")}, **per_nn}}
            evaluation = json.loads(json.dumps(evaluation, default=_json_default))  # as read back from eval.json
            _write_json(eval_path, evaluation)
        table = (f"held-out evaluation: {task.name}/{task.variant}, {evaluation['instances']} instances "
                 f"(seed {config.eval.seed}), {config.train.policy} policy trained on {train_meta['trajectories']} "
                 f"trajectories, budget {config.solver.max_iters} iterations\n" + comparison_table(evaluation))
        if callback is not None:
            callback("evaluation", evaluation)
    summary_eval = None if evaluation is None else {k: v for k, v in evaluation.items() if k != "per_instance"}
    _summary(config, run_dir, iterations, summary_eval)
    if progress and table:
        print(table, flush=True)
    return LoopResult(run_dir=run_dir, config=config, iterations=iterations, evaluation=evaluation,
                      policy_path=policy_path, export_path=export_path, table=table,
                      wall_time=time.perf_counter() - t_start)


def _iteration_line(m: dict) -> str:
    d, w = m.get("default") or {}, m.get("warm") or {}
    s = m["sources"]
    line = (f"iteration {m['iteration']}: {m['accepted']}/{m['instances']} accepted ({m['rejected']} rejected, "
            f"budget {m['max_iters']}), default guess {_fmt(d.get('iterations_mean'), '.1f')} iters")
    if w:
        if w.get("diverged") and "iterations_mean_refined" in w:
            guess = (f"{_fmt(w['iterations_mean_refined'], '.1f')} iters over the {m['instances'] - w['diverged']} "
                     f"refined ({w['diverged']} diverged, not refined)")
        elif w.get("diverged"):  # a run from before the refined mean was recorded
            guess = f"{_fmt(w.get('iterations_mean'), '.1f')} iters ({w['diverged']} diverged, not refined, counted as 0)"
        else:
            guess = f"{_fmt(w.get('iterations_mean'), '.1f')} iters"
        line += f", policy guess {guess}; kept {s['policy']} from the policy, {s['default']} from the default"
    if m.get("train"):
        line += f"; trained on {m['train']['trajectories']} trajectories in {m['train']['time_s']:.0f} s"
    return line + f"; collected in {m['collect_time_s']:.1f} s"
