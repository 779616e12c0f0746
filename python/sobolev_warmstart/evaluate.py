"""Evaluation of warm-start methods: the reference's metrics per method and seed, with 95% confidence intervals.

``evaluate_methods(task, policies, x0s, params, seeds)`` runs, on the same instances ``(x0s (N, nx), params (N, nz))``:

- ``"to"``: the solver alone from the task's default guess (always included),
- the nearest-neighbour baselines present in ``policies`` (``"nn"``, ``"nn_feedback"``, each given a
  :class:`~sobolev_warmstart.baselines.NearestNeighbourLookup` of the training set, or a saved dataset file): the
  nearest training instance's trajectory (its first state replaced by the new ``x0``), or its feedback law closed
  around the dynamics, refined by the solver; what a practitioner would try first with the same solved
  trajectories,
- each learned method present in ``policies`` (``"mlp"``, ``"sob_mlp"``, ``"diff"``, ``"sob_diff"``): the policy's
  rollout (seeded by ``seed``) refined by the solver (:func:`~sobolev_warmstart.warmstart.warm_start`).

Metrics per (method, seed), each a mean over the ``N`` instances:

==================  ==========================================================================================
``policy_cost``     task objective along the policy's rollout (the lookup's guess), before refinement (NaN for
                    ``"to"``)
``cost``            objective after refinement, over the converged instances only (NaN if none converged)
``iterations``      solver iterations, refined instances (a failed solve counts its whole budget)
``converged``       convergence rate of the refinement, over all instances (a diverged rollout counts as failed)
``diverged``        fraction of rollouts that diverged (0 for ``"to"``), see below
``infeasible``      fraction of the guesses that did not diverge (for ``"to"``: the task's default guess) whose
                    largest path- or terminal-constraint violation exceeds the solver's tolerance
                    (:func:`~sobolev_warmstart.warmstart.guess_violations`): the objective (``policy_cost``) has no
                    constraint term, so among the quadrotor's columns a guess that flies through one looks cheap
``rollout_time``    policy rollout per instance [s] (0 for ``"to"``; the lookups: lookup + feedback rollout)
``solve_time``      solver time per refined instance [s]
``total_time``      rollout + solve per refined instance [s]
==================  ==========================================================================================

A rollout *diverged* when a state coordinate is non-finite or exceeds ``divergence_bound`` in magnitude (1e3 by
default: far outside every task's workspace). Such an instance is not refined (its guess is worthless, and the
solver has been seen to abort the process from quadrotor guesses with coordinates around 1e7); it counts as not
converged, and is left out of the iteration and time means. The evaluation composes :func:`~.rollout.rollout`,
the task's trajectory cost and :func:`~.solver.solve` (what :func:`~.warmstart.warm_start` does, with the same
results) so that it can check the rollouts before the solves.

Aggregation over seeds: the mean and the half-width of a two-sided 95% confidence interval from Student's t
distribution, ``t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation over seeds (NaN for one
seed). The seed is the rollout noise seed; the solver and the lookups are deterministic, so TO alone and the
lookups differ across seeds only in their timings. For training-seed studies pass one policy per training seed and evaluate them separately.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .baselines import BASELINES, NearestNeighbourLookup
from .data import atomic_write_bytes
from .policy import DiffusionPolicy, MLPPolicy
from .rollout import PolicyRunner, _check_action_steps, _instances, load_policy_runner, rollout
from .solver import SolveResult, SolverOptions, solve
from .tasks import Task
from .warmstart import WarmStartResult, default_guesses, guess_violations, refine_guesses, refine_rollouts

__all__ = ["METHODS", "METHOD_LABELS", "METRICS", "EvaluationResult", "evaluate_methods", "mean_ci", "t_quantile_975",
           "read_rows_csv"]

#: Methods in report order; "to" is the solver alone, "nn"/"nn_feedback" the nearest-neighbour baselines.
METHODS = ("to", "nn", "nn_feedback", "mlp", "sob_mlp", "diff", "sob_diff", "sob_diff_nn")
#: Names used in tables and plots (after the reference).
METHOD_LABELS = {"to": "TO alone", "nn": "NN", "nn_feedback": "NN+feedback", "mlp": "MLP", "sob_mlp": "Sob+MLP",
                 "diff": "Diff", "sob_diff": "Sob+Diff", "sob_diff_nn": "Sob+Diff, NN fallback"}
#: Metrics per (method, seed); see the module docstring.
METRICS = ("policy_cost", "cost", "iterations", "converged", "diverged", "infeasible", "rollout_time", "solve_time",
           "total_time")
_DIFFUSION = ("diff", "sob_diff", "sob_diff_nn")
#: Methods that take the lookup fallback (evaluate_methods' ``fallback``) beside their policy.
_WITH_FALLBACK = ("sob_diff_nn",)
_FORMAT = "sobolev_warmstart.evaluation"
_FORMAT_VERSION = 1

# Two-sided 95% quantiles t_{0.975, df} of Student's t distribution for df = 1..30.
_T975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252, 2.306004135,
         2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546, 2.119905299,
         2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
         2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``: the table for ``df <= 30``, beyond it the Cornish-Fisher expansion around the normal
    quantile (error below 3e-6)."""
    if not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df: expected a positive integer, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, half-width of the 95% t interval, n)`` over the finite entries of ``values``.
    The half-width is NaN for fewer than two finite values; the mean is NaN for none."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(v.mean())
    if n == 1:
        return mean, float("nan"), 1
    with np.errstate(over="ignore", invalid="ignore"):
        return mean, float(t_quantile_975(n - 1) * v.std(ddof=1) / math.sqrt(n)), n


# --------------------------------------------------------------------------------------------------- result
@dataclass
class EvaluationResult:
    """Metrics of :func:`evaluate_methods`.

    per_seed: one dict per (method, seed): ``method``, ``seed``, ``instances``, ``action_steps`` (0 for TO and
    direct policies: one action per step), and the :data:`METRICS`. rows: one dict per method: ``method``,
    ``label``, ``seeds`` (count), ``instances``, ``action_steps``, and per metric ``<metric>`` (mean over seeds)
    and ``<metric>_ci95`` (half-width). raw: ``{(method, seed): WarmStartResult or SolveResult}``, the full
    per-instance results (not saved). violations: ``{(method, seed): (N,)}``, each guess's largest constraint
    violation (:func:`~sobolev_warmstart.warmstart.guess_violations`; TO alone's: its default guess), kept with
    ``raw``. meta: task, variant, seeds, solver options.
    """

    per_seed: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[tuple[str, int], WarmStartResult | SolveResult] = field(default_factory=dict, repr=False)
    violations: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        return [r["method"] for r in self.rows]

    def row(self, method: str) -> dict[str, Any]:
        for r in self.rows:
            if r["method"] == method:
                return r
        raise KeyError(f"method: {method!r} was not evaluated (have {self.methods})")

    def table(self, fmt: str = "markdown") -> str:
        """The aggregated rows as an aligned table: ``"markdown"`` (pipes, header rule) or ``"text"``.
        Cells read ``mean ± ci95``; times in milliseconds, the convergence rate in percent."""
        if fmt not in ("markdown", "text"):
            raise ValueError(f"fmt: expected 'markdown' or 'text', got {fmt!r}")
        header = ["method", "policy cost", "refined cost", "iterations", "converged [%]", "diverged [%]",
                  "infeasible [%]", "rollout [ms]", "solve [ms]", "total [ms]"]
        scale = {"converged": 100.0, "diverged": 100.0, "infeasible": 100.0, "rollout_time": 1e3, "solve_time": 1e3,
                 "total_time": 1e3}
        body = []
        for r in self.rows:
            cells = [r["label"] if not r.get("action_steps") else f"{r['label']} (A={r['action_steps']})"]
            for m in METRICS:  # files written before a metric existed: NaN
                cells.append(_format_ci(r.get(m, math.nan), r.get(f"{m}_ci95", math.nan), scale.get(m, 1.0)))
            body.append(cells)
        return _aligned(header, body, fmt)

    def to_csv(self, path: str | os.PathLike, per_seed: bool = False) -> None:
        """Write the aggregated rows (or the per-seed ones) as CSV (NaN written as ``nan``); atomic."""
        rows = self.per_seed if per_seed else self.rows
        write_rows_csv(rows, path)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write meta, rows and per-seed rows as JSON (NaN as null); atomic. :meth:`from_json` reads it back."""
        doc = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "meta": self.meta, "rows": self.rows,
               "per_seed": self.per_seed}
        text = json.dumps(_nan_to_none(doc), indent=2).encode()
        atomic_write_bytes(path, lambda f: f.write(text))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "EvaluationResult":
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{path}: not an evaluation file (format {doc.get('format')!r})")
        if doc.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: evaluation format version {doc.get('format_version')} is not supported "
                             f"(this code reads version {_FORMAT_VERSION})")
        return cls(per_seed=_none_to_nan(doc["per_seed"]), rows=_none_to_nan(doc["rows"]), meta=doc["meta"])


def _format_ci(mean: float, ci: float, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "—"
    mean, ci = mean * scale, ci * scale
    if abs(mean) >= 1e5:
        return f"{mean:.3g}" if not math.isfinite(ci) else f"{mean:.3g} ± {ci:.2g}"
    significant_ci = math.isfinite(ci) and ci > 1e-3 * abs(mean)
    digits = _digits(ci if significant_ci else mean)
    s = f"{mean:.{digits}f}"
    return s if not math.isfinite(ci) else f"{s} ± {ci:.{digits}f}"


def _digits(x: float) -> int:
    """Decimals showing about three significant digits of ``x`` (at most 4)."""
    if x == 0 or not math.isfinite(x):
        return 2
    return int(min(4, max(0, 2 - math.floor(math.log10(abs(x))))))


def _aligned(header: list[str], body: list[list[str]], fmt: str) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body)]

    def line(cells):
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |" if fmt == "markdown" else "  ".join(padded)

    rule = ("|" + "|".join([":" + "-" * (widths[0] + 1)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
            if fmt == "markdown" else "  ".join("-" * w for w in widths))
    return "\n".join([line(header), rule] + [line(c) for c in body])


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


def _none_to_nan(rows: list[dict]) -> list[dict]:
    return [{k: float("nan") if v is None else v for k, v in r.items()} for r in rows]


def write_rows_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Rows of plain values as CSV with a header (the union of keys, in first-seen order); atomic."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k, "")) for k in keys})
    data = buf.getvalue().encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def _csv_value(v):
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    return v


def read_rows_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a CSV written by :meth:`EvaluationResult.to_csv`: numbers as int/float (``nan`` as NaN)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _parse(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


# ---------------------------------------------------------------------------------------------- evaluation
def _check_lookup(task: Task, method: str, lookup) -> NearestNeighbourLookup:
    if isinstance(lookup, (str, os.PathLike)):
        if not Path(lookup).is_file():
            raise FileNotFoundError(f"policies[{method!r}]: no dataset file at {lookup}")
        lookup = NearestNeighbourLookup.load(lookup)
    if not isinstance(lookup, NearestNeighbourLookup):
        raise TypeError(f"policies[{method!r}]: expected a NearestNeighbourLookup (sobolev_warmstart.baselines) or "
                        f"a saved dataset file of the training set, got {type(lookup).__name__}")
    try:
        lookup.check_task(task)
    except ValueError as exc:
        raise ValueError(f"policies[{method!r}]: {exc}") from None
    if method == "nn_feedback" and not lookup.has_feedback:
        raise ValueError(f"policies[{method!r}]: the lookup's training set has no feedback gains")
    return lookup


def _check_policies(task: Task, policies) -> dict[str, Any]:
    """Validate the methods and the policies (kind and task) before anything runs; load files once."""
    if not isinstance(policies, Mapping):
        raise TypeError(f"policies: expected a dict {{method: policy path or policy}}, got {type(policies).__name__}")
    if not policies:
        raise ValueError(f"policies: expected at least one learned method or baseline among {METHODS[1:]} "
                         "(TO alone is always evaluated beside them), got an empty dict")
    out = {}
    for method, policy in policies.items():
        if method == "to":
            raise ValueError("policies: 'to' (TO alone) is always evaluated and takes no policy; remove it")
        if method not in METHODS:
            raise ValueError(f"policies: unknown method {method!r}, expected one of {METHODS[1:]}")
        if method in BASELINES:
            out[method] = _check_lookup(task, method, policy)
            continue
        if isinstance(policy, (str, os.PathLike)):
            if not Path(policy).is_file():
                raise FileNotFoundError(f"policies[{method!r}]: no exported policy file at {policy}")
            policy = load_policy_runner(policy)
        if isinstance(policy, PolicyRunner):
            policy.check_task(task)
            kind, name = policy.kind, policy.path
        elif isinstance(policy, (DiffusionPolicy, MLPPolicy)):
            info = policy.task
            for key in ("name", "nx", "nu", "na", "no", "nz", "horizon"):
                if getattr(info, key) != getattr(task, key):
                    raise ValueError(f"policies[{method!r}]: trained for {key} = {getattr(info, key)!r}, "
                                     f"task {task.name}/{task.variant} has {getattr(task, key)!r}")
            kind, name = policy.kind, type(policy).__name__
        else:
            raise TypeError(f"policies[{method!r}]: expected a path to an exported .safetensors/.pt/.pt2 file, a PolicyRunner "
                            f"or a DiffusionPolicy/MLPPolicy, got {type(policy).__name__}")
        want = "diffusion" if method in _DIFFUSION else "mlp"
        if kind != want:
            raise ValueError(f"policies[{method!r}]: method {method!r} needs a {want} policy, got a {kind} policy "
                             f"({name})")
        out[method] = policy
    return {m: out[m] for m in METHODS if m in out}


def _check_seeds(seeds) -> tuple[int, ...]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = (seeds,)
    try:
        seeds = tuple(seeds)
    except TypeError:
        raise TypeError(f"seeds: expected a sequence of non-negative integers, got {type(seeds).__name__}") from None
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    for s in seeds:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"seeds: expected non-negative integers, got {s!r}")
    return tuple(int(s) for s in seeds)


def metrics_from_solve(result: SolveResult, refined: np.ndarray | None = None) -> dict[str, float]:
    """The metrics of TO alone from one batch solve (``refined``: the instances actually solved, default all)."""
    conv = np.asarray(result.converged, bool)
    ok = np.ones(len(result), bool) if refined is None else np.asarray(refined, bool)
    return {"policy_cost": float("nan"),
            "cost": float(np.mean(result.cost[conv])) if conv.any() else float("nan"),
            "iterations": float(np.mean(result.iterations[ok])) if ok.any() else float("nan"),
            "converged": float(conv.mean()),
            "diverged": float(np.mean(~ok)),
            "infeasible": float("nan"),  # from the guesses: evaluate_methods fills it in
            "rollout_time": 0.0,
            "solve_time": float(np.mean(result.solve_time[ok])) if ok.any() else float("nan"),
            "total_time": float(np.mean(result.solve_time[ok])) if ok.any() else float("nan")}


def metrics_from_warm_start(result: WarmStartResult, diverged: np.ndarray | None = None) -> dict[str, float]:
    """The metrics of a learned method from one warm-started batch (``diverged``: instances not refined)."""
    ok = np.ones(len(result), bool) if diverged is None else ~np.asarray(diverged, bool)
    out = metrics_from_solve(result.warm, ok)
    rollout_time = np.asarray(result.rollout.time, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out["policy_cost"] = float(np.mean(result.policy_cost))
    out["rollout_time"] = float(np.mean(rollout_time))
    out["total_time"] = float(np.mean((rollout_time + result.warm.solve_time)[ok])) if ok.any() else float("nan")
    return out


def aggregate(per_seed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method (in :data:`METHODS` order) from per-seed rows: means and 95% half-widths."""
    rows = []
    for method in METHODS:
        mine = [r for r in per_seed if r["method"] == method]
        if not mine:
            continue
        row: dict[str, Any] = {"method": method, "label": METHOD_LABELS[method], "seeds": len(mine),
                               "instances": mine[0]["instances"], "action_steps": mine[0]["action_steps"]}
        for m in METRICS:
            row[m], row[f"{m}_ci95"], _ = mean_ci([r.get(m, math.nan) for r in mine])
        rows.append(row)
    return rows


def evaluate_methods(task: Task, policies: Mapping[str, Any], x0s, params, seeds: Sequence[int] = (0, 1, 2),
                     action_steps: int | None = None, options: SolverOptions | None = None,
                     warmup: bool = True, keep_raw: bool = True,
                     divergence_bound: float = 1e3, fallback=None) -> EvaluationResult:
    """Evaluate TO alone and the learned methods in ``policies`` on instances ``(x0s (N, nx), params (N, nz))``.

    policies: ``{method: policy}`` with methods among ``"nn"``, ``"nn_feedback"``, ``"mlp"``, ``"sob_mlp"``,
    ``"diff"``, ``"sob_diff"``; a learned method's policy given as an exported ``.safetensors``/``.pt``/``.pt2`` path (loaded once,
    whole path in C++), a ``PolicyRunner`` or an eager policy; a baseline's as a
    :class:`~sobolev_warmstart.baselines.NearestNeighbourLookup` of the training set (or a dataset file). seeds: rollout noise seeds; TO alone is solved once per seed too (its timings vary).
    action_steps: A for the diffusion methods (None: each policy's own); direct policies act every step.
    options: solver settings for every solve. warmup: roll each policy out once, untimed, before the measured
    runs (TorchScript optimises on its first calls), and have the fallback's lookup score its training solutions. keep_raw: keep the per-instance results in ``.raw``.
    divergence_bound: rollouts with a state coordinate beyond it (or non-finite) are not refined (module docstring).
    fallback: a :class:`~sobolev_warmstart.baselines.LookupFallback`, required by the method ``"sob_diff_nn"``
    (Sob+Diff's policy, whose rollouts that diverged or cost more than the fallback's bound are replaced by the
    lookup's guess before the refine).
    """
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a sobolev_warmstart Task (make_task), got {type(task).__name__}")
    options = SolverOptions() if options is None else options
    if not isinstance(options, SolverOptions):
        raise TypeError(f"options: expected a SolverOptions, got {type(options).__name__}")
    steps = _check_action_steps(action_steps)
    seeds = _check_seeds(seeds)
    if not (isinstance(divergence_bound, (int, float)) and divergence_bound > 0):
        raise ValueError(f"divergence_bound: expected a positive number, got {divergence_bound!r}")
    x0s, params = _instances(task, x0s, params)
    if x0s.shape[0] < 1:
        raise ValueError(f"x0s: expected at least one instance, got shape {x0s.shape}")
    runners = _check_policies(task, policies)
    if any(m in runners for m in _WITH_FALLBACK):
        if not callable(getattr(fallback, "apply", None)):
            raise ValueError(f"fallback: the methods {[m for m in _WITH_FALLBACK if m in runners]} need a "
                             f"LookupFallback, got {type(fallback).__name__}")
        fallback.lookup.check_task(task)
    n = int(x0s.shape[0])
    if warmup:
        if fallback is not None and any(m in runners for m in _WITH_FALLBACK):
            fallback.lookup.solution_costs(task)  # computed once per training set, not part of a query's time
        for method, policy in runners.items():
            if method in BASELINES:
                continue
            rollout(task, x0s, params, policy, action_steps=(steps or None) if method in _DIFFUSION else None,
                    seed=seeds[0], num_threads=options.num_threads)

    def infeasible(violation: np.ndarray, ok: np.ndarray) -> float:
        return float(np.mean(violation[ok] > options.tol)) if ok.any() else float("nan")

    per_seed: list[dict[str, Any]] = []
    raw: dict[tuple[str, int], Any] = {}
    violations: dict[tuple[str, int], np.ndarray] = {}
    to_violation = guess_violations(task, x0s, params, *default_guesses(task, x0s, params), divergence_bound,
                                    options.num_threads)
    for seed in seeds:
        result = solve(task, x0s, params, options=options)
        per_seed.append({"method": "to", "seed": seed, "instances": n, "action_steps": 0, **metrics_from_solve(result),
                         "infeasible": infeasible(to_violation, np.ones(n, bool))})
        if keep_raw:
            raw[("to", seed)], violations[("to", seed)] = result, to_violation
        for method, policy in runners.items():
            a = steps if method in _DIFFUSION else None
            if method in BASELINES:
                ro = policy.rollout(task, x0s, params, feedback=method == "nn_feedback")
                ws, diverged = refine_guesses(task, x0s, params, ro, options, divergence_bound)
            else:
                ws, diverged = refine_rollouts(task, x0s, params, policy, a or None, seed, options,
                                               divergence_bound, fallback if method in _WITH_FALLBACK else None)
            used = int(ws.rollout.action_steps) if method in _DIFFUSION else 0
            violation = guess_violations(task, x0s, params, ws.rollout.xs, ws.rollout.us, divergence_bound,
                                         options.num_threads)
            per_seed.append({"method": method, "seed": seed, "instances": n, "action_steps": used,
                             **metrics_from_warm_start(ws, diverged),
                             "infeasible": infeasible(violation, ~np.asarray(diverged, bool))})
            if keep_raw:
                raw[(method, seed)], violations[(method, seed)] = ws, violation
    meta = {"task": task.name, "variant": task.variant, "instances": n, "seeds": list(seeds),
            "action_steps": steps or None, "divergence_bound": float(divergence_bound), "methods": ["to", *runners],
            "options": {k: getattr(options, k) for k in ("tol", "mu_init", "max_iters", "num_threads",
                                                          "refresh_gains", "dual_init", "step_acceptance",
                                                          "stall_iters")}}
    return EvaluationResult(per_seed=per_seed, rows=aggregate(per_seed), meta=meta, raw=raw,
                            violations=violations)
