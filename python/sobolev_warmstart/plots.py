"""Figures of the experiments (matplotlib, Agg backend, PNG files).

- :func:`plot_metric_curves`: a metric against a swept quantity (dataset size, training epochs, loop iteration),
  one line per method with its 95% confidence band; :func:`plot_cost_vs_dataset_size` and
  :func:`plot_cost_vs_epochs` are its two standard uses.
- :func:`action_length_table` (Markdown) and :func:`plot_action_length`: metrics against the number ``A`` of
  executed actions per replan.
- :func:`plot_time_breakdown`: rollout + solve time per method (stacked bars).
- :func:`plot_trajectories`: a few instances, TO alone vs the policy's rollout vs its refinement: joint angles vs
  time (pendulum, double pendulum, UR5), top view ``x-y`` with the columns (quadrotor).

Rows are plain dicts as written by :mod:`sobolev_warmstart.evaluate` (``method``, ``<metric>``,
``<metric>_ci95``) plus the swept key.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .evaluate import METHOD_LABELS, METHODS  # noqa: E402

__all__ = ["plot_metric_curves", "plot_cost_vs_dataset_size", "plot_cost_vs_epochs", "action_length_table",
           "plot_action_length", "plot_time_breakdown", "plot_trajectories", "quadrotor_columns", "METRIC_NAMES"]

#: Axis labels of the metrics.
METRIC_NAMES = {"policy_cost": "policy rollout cost", "cost": "refined cost (converged)",
                "iterations": "solver iterations", "converged": "convergence rate",
                "rollout_time": "rollout time per instance [s]", "solve_time": "solve time per instance [s]",
                "total_time": "total time per instance [s]"}
_COLORS = {"to": "0.35", "nn": "tab:green", "nn_feedback": "tab:olive", "mlp": "tab:blue", "sob_mlp": "tab:cyan",
           "diff": "tab:orange", "sob_diff": "tab:red", "sob_diff_nn": "tab:purple"}
_STYLES = {"to": "--", "nn": ":", "nn_feedback": ":", "mlp": "-", "sob_mlp": "-", "diff": "-", "sob_diff": "-",
           "sob_diff_nn": "-."}


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _methods_in(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {r["method"] for r in rows}
    unknown = present - set(METHODS)
    if unknown:
        raise ValueError(f"rows: unknown methods {sorted(unknown)}, expected among {METHODS}")
    return [m for m in METHODS if m in present]


def plot_metric_curves(rows: Sequence[Mapping[str, Any]], x_key: str, metric: str, path: str | os.PathLike, *,
                       xlabel: str | None = None, title: str = "", logx: bool = False, logy: bool = False) -> Path:
    """One line per method of ``metric`` (mean) against ``x_key``, with the 95% band (``<metric>_ci95``) shaded.

    rows: dicts with ``method``, ``x_key``, ``metric`` and optionally ``<metric>_ci95``; NaN points are skipped.
    """
    if not rows:
        raise ValueError("rows: nothing to plot (no rows)")
    for r in rows:
        for key in ("method", x_key, metric):
            if key not in r:
                raise KeyError(f"rows: a row has no {key!r} (keys: {sorted(r)})")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method in _methods_in(rows):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r[x_key])
        x = np.array([r[x_key] for r in mine], dtype=float)
        y = np.array([r[metric] for r in mine], dtype=float)
        ci = np.array([r.get(f"{metric}_ci95", float("nan")) for r in mine], dtype=float)
        ok = np.isfinite(y)
        if not ok.any():
            continue
        ax.plot(x[ok], y[ok], _STYLES[method], marker="o", ms=4, color=_COLORS[method], label=METHOD_LABELS[method])
        band = ok & np.isfinite(ci)
        if band.any():
            ax.fill_between(x[band], (y - ci)[band], (y + ci)[band], color=_COLORS[method], alpha=0.18, lw=0)
    ax.set_xlabel(xlabel or x_key)
    ax.set_ylabel(METRIC_NAMES.get(metric, metric))
    if logx:
        ax.set_xscale("log", base=2)
        ticks = sorted({r[x_key] for r in rows})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cost_vs_dataset_size(rows, path, metric: str = "policy_cost", title: str = "") -> Path:
    """``metric`` against the number of training trajectories (row key ``num_trajectories``), log2 axis."""
    return plot_metric_curves(rows, "num_trajectories", metric, path, xlabel="training trajectories", logx=True,
                              logy=metric == "policy_cost", title=title)


def plot_cost_vs_epochs(rows, path, metric: str = "policy_cost", title: str = "") -> Path:
    """``metric`` against training epochs (row key ``epochs``)."""
    return plot_metric_curves(rows, "epochs", metric, path, xlabel="training epochs", logy=metric == "policy_cost",
                              title=title)


def _fmt(mean: float, ci: float, scale: float = 1.0, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "—"
    s = f"{mean * scale:.{digits}g}"
    return s if not math.isfinite(ci) else f"{s} ± {ci * scale:.2g}"


def action_length_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the action-length study: one line per row (key ``action_steps``; 0 for TO alone)."""
    if not rows:
        raise ValueError("rows: no rows for the action-length table")
    header = ["method", "A", "replans", "policy cost", "refined cost", "iterations", "converged [%]",
              "rollout [ms]", "total [ms]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in sorted(rows, key=lambda r: (r["method"] != "to", r.get("action_steps", 0))):
        a = int(r.get("action_steps", 0))
        cells = [METHOD_LABELS.get(r["method"], r["method"]), str(a) if a else "—",
                 "—" if r["method"] == "to" else str(r.get("replans", "—")),
                 _fmt(r["policy_cost"], r.get("policy_cost_ci95", float("nan"))),
                 _fmt(r["cost"], r.get("cost_ci95", float("nan")), digits=5),
                 _fmt(r["iterations"], r.get("iterations_ci95", float("nan"))),
                 _fmt(r["converged"], r.get("converged_ci95", float("nan")), 100.0),
                 _fmt(r["rollout_time"], r.get("rollout_time_ci95", float("nan")), 1e3),
                 _fmt(r["total_time"], r.get("total_time_ci95", float("nan")), 1e3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_action_length(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Policy cost, solver iterations and total time against ``A`` (TO alone as a horizontal line)."""
    learned = sorted((r for r in rows if r["method"] != "to"), key=lambda r: r["action_steps"])
    if not learned:
        raise ValueError("rows: no learned-method rows for the action-length plot")
    to = [r for r in rows if r["method"] == "to"]
    a = np.array([r["action_steps"] for r in learned], dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, metric, scale in zip(axes, ("policy_cost", "iterations", "total_time"), (1.0, 1.0, 1e3)):
        y = np.array([r[metric] for r in learned], dtype=float) * scale
        ci = np.array([r.get(f"{metric}_ci95", np.nan) for r in learned], dtype=float) * scale
        m = learned[0]["method"]
        ax.errorbar(a, y, yerr=np.where(np.isfinite(ci), ci, 0.0), marker="o", capsize=3, color=_COLORS.get(m, "k"),
                    label=METHOD_LABELS.get(m, m))
        if to and math.isfinite(to[0][metric]):
            ax.axhline(to[0][metric] * scale, ls="--", color=_COLORS["to"], label="TO alone")
        ax.set_xscale("log", base=2)
        ax.set_xticks(a, [str(int(v)) for v in a])
        ax.minorticks_off()
        ax.set_xlabel("executed actions per replan A")
        ax.set_ylabel(METRIC_NAMES[metric].replace("[s]", "[ms]") if scale != 1.0 else METRIC_NAMES[metric])
        if metric == "policy_cost":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_time_breakdown(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Stacked bars per method: rollout and solve time per instance [ms], with the total's 95% interval."""
    methods = _methods_in(rows)
    by = {r["method"]: r for r in rows}
    x = np.arange(len(methods))
    roll = np.array([by[m]["rollout_time"] for m in methods]) * 1e3
    sol = np.array([by[m]["solve_time"] for m in methods]) * 1e3
    ci = np.array([by[m].get("total_time_ci95", np.nan) for m in methods]) * 1e3
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.bar(x, sol, color=[_COLORS[m] for m in methods], label="solve")
    ax.bar(x, roll, bottom=sol, color="none", edgecolor="k", hatch="//", label="policy rollout")
    ax.errorbar(x, roll + sol, yerr=np.where(np.isfinite(ci), ci, 0.0), fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(x, [METHOD_LABELS[m] for m in methods])
    ax.set_ylabel("time per instance [ms]")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------- trajectories
def quadrotor_columns(task, params: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centres (C, 2), keep-out radius [m])`` of one quadrotor instance: ``params = (goal x, y, z, column 1 x,
    y, ...)``; the keep-out radius is read from ``task.describe()``."""
    params = np.asarray(params, dtype=float).reshape(-1)
    if task.name != "quadrotor":
        raise ValueError(f"task: expected the quadrotor, got {task.name}")
    if params.shape != (task.nz,):
        raise ValueError(f"params: expected shape ({task.nz},), got {params.shape}")
    m = re.search(r"column centre >= ([0-9.]+) m", task.describe())
    keep_out = float(m.group(1)) if m else float("nan")
    return params[3:].reshape(-1, 2), keep_out


def plot_trajectories(task, path: str | os.PathLike, params, to_xs, rollout_xs=None, refined_xs=None,
                      instances: Sequence[int] | int = 3, title: str = "") -> Path:
    """Pictures of a few instances: TO alone (solid grey), the policy's rollout (dotted), its refinement (dashed).

    to_xs, rollout_xs, refined_xs: ``(N, T+1, nx)`` state trajectories (the last two optional); params: ``(N, nz)``.
    Pendulum, double pendulum, UR5: joint angles against time, one panel per joint, the vertical axis fitted to TO
    alone with a margin. Quadrotor: top view ``x-y`` of the workspace with each instance's columns (keep-out
    circles), start (o) and goal (x); one panel per instance. Diverged rollouts leave the axes.
    """
    to_xs = np.asarray(to_xs, dtype=float)
    if to_xs.ndim != 3 or to_xs.shape[1:] != (task.horizon + 1, task.nx):
        raise ValueError(f"to_xs: expected shape (N, {task.horizon + 1}, {task.nx}), got {to_xs.shape}")
    n = to_xs.shape[0]
    curves = [("TO alone", to_xs, dict(color="0.4", ls="-", lw=1.6))]
    for name, xs, style in (("policy rollout", rollout_xs, dict(color="tab:red", ls=":", lw=1.6)),
                            ("refined", refined_xs, dict(color="tab:blue", ls="--", lw=1.3))):
        if xs is not None:
            xs = np.asarray(xs, dtype=float)
            if xs.shape != to_xs.shape:
                key = name.replace(" ", "_")
                raise ValueError(f"{key}_xs: expected shape {to_xs.shape} like to_xs, got {xs.shape}")
            curves.append((name, xs, style))
    idx = list(range(min(instances, n))) if isinstance(instances, (int, np.integer)) else list(instances)
    if not idx or any(not 0 <= i < n for i in idx):
        raise ValueError(f"instances: expected indices in [0, {n}), got {instances!r}")
    params = np.asarray(params, dtype=float).reshape(n, -1)

    if task.name == "quadrotor":
        fig, axes = plt.subplots(1, len(idx), figsize=(3.6 * len(idx), 3.4), squeeze=False)
        for ax, i in zip(axes[0], idx):
            centres, keep_out = quadrotor_columns(task, params[i])
            for c in centres:
                ax.add_patch(plt.Circle(c, 0.15, color="0.6"))
                if math.isfinite(keep_out):
                    ax.add_patch(plt.Circle(c, keep_out, fill=False, ls=":", color="0.6"))
            for name, xs, style in curves:
                ax.plot(xs[i, :, 0], xs[i, :, 1], label=name, **style)
            ax.plot(*to_xs[i, 0, :2], "ko", ms=5)
            ax.plot(*params[i, :2], "kx", ms=7)
            ax.set_aspect("equal")
            ax.set_xlim(-2.8, 2.8)
            ax.set_ylim(-2.3, 2.3)
            ax.set_title(f"instance {i}", fontsize=9)
            ax.set_xlabel("x [m]")
        axes[0][0].set_ylabel("y [m]")
        axes[0][0].legend(fontsize=7, loc="lower left")
    else:
        nq = task.nq
        t = np.arange(task.horizon + 1) * task.dt
        cols = min(nq, 3)
        rows = math.ceil(nq / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.6 * rows), squeeze=False)
        for j in range(nq):
            ax = axes[j // cols][j % cols]
            for k, i in enumerate(idx):
                for name, xs, style in curves:
                    ax.plot(t, xs[i, :, j], label=name if k == 0 else None, **style)
            # fit the axes to TO alone (with a margin): a diverged rollout leaves the plot instead of flattening it
            ref = np.concatenate([to_xs[i, :, j] for i in idx])
            ref = ref[np.isfinite(ref)]
            if ref.size:
                lo, hi = ref.min(), ref.max()
                pad = max(1.0, 0.5 * (hi - lo))
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_title(f"joint {j + 1}", fontsize=9)
            ax.set_xlabel("time [s]")
            ax.set_ylabel("angle [rad]")
            ax.grid(alpha=0.3)
        for j in range(nq, rows * cols):
            axes[j // cols][j % cols].axis("off")
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title or f"{task.name}/{task.variant}: instances {idx}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
