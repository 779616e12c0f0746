"""Would averaging the k nearest training solutions make a better lookup than the nearest one? (round 48)

A user with a set of solved trajectories might blend several neighbours rather than take one. Per held-out instance
of a scorecard variant folder, the guess is the weighted mean of the ``k`` nearest training solutions (states and
controls, in the lookup's normalised ``(x0, z)``; weights uniform, or inversely proportional to the squared
distance), its controls clipped to their bounds and its first state replaced by the new one, then refined by the
folder's solver settings. ``k = 1`` is the lookup (``nn``). Plain vector states only: a task whose state holds a
quaternion (the quadrotor) is refused, since a mean of quaternions is no rotation.

    python3 benchmarks/bench_lookup_average.py runs/scorecard-v29/double_pendulum/default runs/scorecard-v29/ur5/random_start_random_target
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup

from bench_action_steps import folder_lookup, held_out  # benchmarks/bench_action_steps.py, beside this script


def averaged_guesses(lookup: NearestNeighbourLookup, task, x0s: np.ndarray, params: np.ndarray, k: int,
                     weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """``(xs, us)``: the weighted mean of each query's ``k`` nearest training solutions, controls clipped to the
    task's bounds, ``xs[:, 0] = x0s``."""
    q = lookup.features(x0s, params)
    train = lookup.features(lookup.x0s, lookup.params)
    d2 = ((q[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    w = 1.0 / np.maximum(np.take_along_axis(d2, idx, 1), 1e-12) if weighting == "inverse" else np.ones(idx.shape)
    w /= w.sum(axis=1, keepdims=True)
    xs = np.einsum("nk,nktx->ntx", w, lookup.xs[idx])
    us = np.clip(np.einsum("nk,nktu->ntu", w, lookup.us[idx]), task.u_lower, task.u_upper)
    xs[:, 0] = x0s
    return xs, us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="scorecard variant folders (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8], help="neighbours averaged")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's)")
    ap.add_argument("--instances", type=int, default=None, help="held-out instances (default: the folder's count)")
    args = ap.parse_args()
    if min(args.k) < 1:
        raise SystemExit(f"--k: expected positive integers, got {args.k}")
    print("| variant | k | weights | iters mean | median | converged [%] | refined cost |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, args.folders):
        s, task, x0s, params = held_out(folder, args.test_seed, args.instances)
        if task.nx != task.ndx:
            raise SystemExit(f"{folder}: {s.task}'s state is not a plain vector (nx {task.nx} != ndx {task.ndx})")
        lookup = folder_lookup(folder)
        options = s.options(1)
        for k in args.k:
            for weighting in ("uniform", "inverse") if k > 1 else ("uniform",):
                xs, us = averaged_guesses(lookup, task, x0s, params, k, weighting)
                r = sw.solve(task, x0s, params, xs, us, options=options)
                cost = r.cost[r.converged].mean() if r.converged.any() else float("nan")
                label = "(the lookup)" if k == 1 else weighting
                print(f"| {s.task}/{s.variant} | {k} | {label} | {r.iterations.mean():.1f} | "
                      f"{np.median(r.iterations):.1f} | {100 * r.converged.mean():.1f} | {cost:.4f} |", flush=True)


if __name__ == "__main__":
    main()
