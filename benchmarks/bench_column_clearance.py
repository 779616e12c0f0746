"""Does a quadrotor policy's rollout respect the columns? Policy cost alone does not say (it has no constraint term).

Rolls an exported policy out on held-out ``quadrotor/<variant>`` instances, measures how deep its path goes into
the columns' 0.4 m keep-out radius and the altitude band, and compares the refined solves' iterations of the
feasible and infeasible rollouts with TO alone's:

    python3 benchmarks/bench_column_clearance.py runs/scorecard-v3/quadrotor/columns_9/sob_diff/policy_export.pt
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw


def violations(xs: np.ndarray, params: np.ndarray, radius: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Per instance: deepest penetration of a column's keep-out radius [m]; worst altitude-band violation [m]."""
    p = xs[..., :3]
    cols = params[:, 3:].reshape(len(params), -1, 2)
    if cols.shape[1] == 0:
        pen = np.zeros(len(xs))
    else:
        d = np.linalg.norm(p[:, :, None, :2] - cols[:, None], axis=-1)
        pen = np.clip(radius - d, 0, None).max(axis=(1, 2))
    alt = np.maximum(np.clip(0.2 - p[..., 2], 0, None), np.clip(p[..., 2] - 2.0, 0, None)).max(axis=1)
    return pen, alt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="an exported policy file (.pt / .pt2) for the quadrotor")
    ap.add_argument("--variant", default="columns_9")
    ap.add_argument("-n", type=int, default=32, help="held-out instances (seed 1,000,000)")
    args = ap.parse_args()
    task = sw.make_task("quadrotor", args.variant)
    x0s, params = task.sample_instances(args.n, 1_000_000)
    options = sw.SolverOptions(num_threads=1)
    roll = sw.rollout(task, x0s, params, args.policy, seed=0)
    to = sw.solve(task, x0s, params, options=options)
    warm = sw.solve(task, x0s, params, roll.xs, roll.us, options=options)
    for name, xs in (("policy rollout", roll.xs), ("TO alone's solution", to.xs)):
        pen, alt = violations(xs, params)
        print(f"{name:20s} column penetration max {pen.max():.3f} m, mean {pen.mean():.3f} m; "
              f"{int((pen > 1e-3).sum())}/{args.n} instances inside a column; altitude violation max {alt.max():.3f} m")
    pen, _ = violations(roll.xs, params)
    bad = pen > 1e-3
    for label, mask in (("rollout inside a column", bad), ("rollout clear", ~bad)):
        its = f"{warm.iterations[mask].mean():.1f}" if mask.any() else "-"
        print(f"refined from a {label}: {int(mask.sum())} instances, iterations mean {its}")
    print(f"TO alone: iterations mean {to.iterations.mean():.1f}")


if __name__ == "__main__":
    main()
