"""Prototype: are the solver's training solutions inconsistent local minima, and does re-solving each training
instance from its neighbours' solutions (keeping the cheapest converged one) make them cheaper and more alike?

Reads a scorecard variant folder's ``collect/trajectories.npz``; each round re-solves every instance warm-started
from the solutions of its k nearest other instances (normalised (x0, z), their first state replaced by its own)
and keeps the lowest-cost converged solution, its own included. Prints the costs per round and writes the
consolidated trajectories (with their chained derivatives) as a scorecard ``collect/trajectories.npz`` under
``--out`` so that ``benchmarks/ablation.py`` trains and evaluates on them.

    python3 benchmarks/bench_consolidated_data.py runs/abl25/dp/base/policy_seed_0/double_pendulum/default \
        --k 8 --rounds 2 --out runs/abl25/dp_consolidated/collect
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup
from sobolev_warmstart.data import TrajectoryData, build_dataset, load_dataset, save_dataset
from sobolev_warmstart.loop import take_rows
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.sensitivities import chained_derivatives


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder to write trajectories.npz into")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    data = load_dataset(folder / "collect" / "trajectories.npz").data
    n = data.num_instances
    x0s, params = data.xs[:, 0].copy(), data.params.copy()
    options = sw.SolverOptions(num_threads=args.threads, max_iters=s.max_iters)
    best = sw.solve(task, x0s, params, data.xs, data.us, options=options)  # the collected solutions, as results
    print(f"{s.key}: {n} trajectories; collected cost mean {data.cost.mean():.4g}, re-solved from themselves "
          f"{best.cost.mean():.4g} ({best.iterations.mean():.1f} iterations, {best.converged.mean():.0%} converged)")
    for r in range(args.rounds):
        lookup = NearestNeighbourLookup(task, x0s, params, best.xs, best.us)
        feats = lookup.features(x0s, params)
        d = ((feats[:, None] - feats[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        order = np.argsort(d, axis=1)[:, :args.k]
        improved = 0
        for j in range(args.k):
            src = order[:, j]
            xs = best.xs[src].copy()
            xs[:, 0] = x0s
            res = sw.solve(task, x0s, params, xs, best.us[src], options=options)
            take = res.converged & (res.cost < best.cost - 1e-9 * np.abs(best.cost))
            improved += int(take.sum())
            if take.any():
                best = _merge(best, res, take)
        print(f"round {r + 1}: {improved} replacements; cost mean {best.cost.mean():.4g}, median "
              f"{np.median(best.cost):.4g}; {best.converged.mean():.0%} converged")
    if args.out:
        ok = np.asarray(best.converged, bool)
        sub = take_rows(best, ok)
        der = chained_derivatives(task, sub, s.horizon - s.history, num_threads=args.threads)
        out = TrajectoryData.from_solve(task, sub, der)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        save_dataset(build_dataset(out, s.chunk()), Path(args.out) / "trajectories.npz")
        print(f"wrote {out.num_instances} trajectories to {args.out}/trajectories.npz")


def _merge(a, b, take):
    from sobolev_warmstart.warmstart import _rows
    return _rows(a, b, take)


if __name__ == "__main__":
    main()
