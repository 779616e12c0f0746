"""Does a quadrotor policy's rollout respect the columns, and what does a guess's violation cost the solver?

Rolls an exported policy out on held-out ``quadrotor/<variant>`` instances, measures how deep its path goes into
the columns' 0.4 m keep-out radius and the altitude band, and compares the refined solves' iterations of the
feasible and infeasible rollouts with TO alone's (policy cost alone does not say: it has no constraint term):

    python3 benchmarks/bench_column_clearance.py runs/scorecard-v3/quadrotor/columns_9/sob_diff/policy_export.pt

With ``--project``, every guess (TO alone's interpolated default guess, the policy's rollout and, with ``--lookup``,
the nearest-neighbour lookup of those training trajectories) is also solved with its states pushed radially out of
every column to the keep-out radius plus each margin (controls unchanged), so that the solver starts from a path
clear of the columns:

    python3 benchmarks/bench_column_clearance.py runs/scorecard-v6/quadrotor/columns_9/sob_diff/policy_export.safetensors \
        --lookup runs/scorecard-v6/quadrotor/columns_9/collect/trajectories.npz --project 0 0.05 --seed 2000000

With ``--plot FILE``, a top view of the first eight instances (TO alone's solution, the rollout, its refinement) is
saved to FILE (``plots.plot_trajectories``).
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import default_guesses


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


def project_out_of_columns(xs: np.ndarray, params: np.ndarray, radius: float, sweeps: int = 3) -> np.ndarray:
    """States (N, T+1, nx) with p_xy pushed radially onto the circle of ``radius`` around every column it lies
    inside (the first state, the instance's start, is kept); repeated ``sweeps`` times, as pushing out of one
    column can enter a neighbour (centres are >= 0.85 m apart, so one or two sweeps settle)."""
    xs = xs.copy()
    cols = params[:, 3:].reshape(len(params), -1, 2)
    for i in range(len(xs)):
        for _ in range(sweeps):
            for c in cols[i]:
                d = xs[i, 1:, :2] - c
                r = np.linalg.norm(d, axis=1)
                inside = r < radius
                xs[i, 1:][inside, :2] = c + d[inside] / np.maximum(r[inside, None], 1e-9) * radius
    return xs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="an exported policy file (.safetensors / .pt / .pt2) for the quadrotor")
    ap.add_argument("--variant", default="columns_9")
    ap.add_argument("-n", type=int, default=32, help="held-out instances")
    ap.add_argument("--seed", type=int, default=1_000_000, help="instance seed of the held-out set")
    ap.add_argument("--lookup", help="training trajectories (trajectories.npz) for the nearest-neighbour lookup")
    ap.add_argument("--project", type=float, nargs="*", default=[],
                    help="margins [m] beyond the 0.4 m keep-out radius to push every guess out to")
    ap.add_argument("--max-iters", type=int, default=500)
    ap.add_argument("--plot", help="save a top view of the first eight instances to this image file")
    args = ap.parse_args()
    task = sw.make_task("quadrotor", args.variant)
    x0s, params = task.sample_instances(args.n, args.seed)
    options = sw.SolverOptions(num_threads=1, max_iters=args.max_iters)
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
    if args.plot:
        from sobolev_warmstart.plots import plot_trajectories
        print("wrote", plot_trajectories(task, args.plot, params, to.xs, roll.xs, warm.xs, instances=min(8, args.n),
                                         title=f"quadrotor/{args.variant}, seed {args.seed}: TO alone / rollout / refined"))
    if not args.project:
        return
    # each guess with its solve as is, where this run already has it
    guesses = {"TO alone (interpolation)": (default_guesses(task, x0s, params), to),
               "policy rollout": ((roll.xs, roll.us), warm)}
    if args.lookup:
        from sobolev_warmstart.baselines import NearestNeighbourLookup
        guesses["NN lookup"] = (NearestNeighbourLookup.load(args.lookup).guess(task, x0s, params), None)
    print(f"\n{args.n} instances of quadrotor/{args.variant}, seed {args.seed}; refined cost over TO alone's where both "
          f"converged (median)")
    print("| guess | projected to | iters mean | converged [%] | refined/TO median |")
    print("|---|---|---|---|---|")
    for name, ((xs, us), as_is) in guesses.items():
        for margin in [None, *args.project]:
            if margin is None and as_is is not None:
                res = as_is
            else:
                gx = xs if margin is None else project_out_of_columns(xs, params, 0.4 + margin)
                res = sw.solve(task, x0s, params, gx, us, options=options)
            both = res.converged & to.converged
            ratio = np.median(res.cost[both] / to.cost[both]) if both.any() else float("nan")
            where = "as is" if margin is None else f"{0.4 + margin:.2f} m"
            print(f"| {name} | {where} | {res.iterations.mean():.1f} | {100 * res.converged.mean():.0f} | {ratio:.4f} |")


if __name__ == "__main__":
    main()
