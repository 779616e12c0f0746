"""Does a quadrotor policy look at its columns? Its rollouts on held-out instances of ``quadrotor/columns_K``, with
the instance's own columns, with another instance's columns (the goal kept) and with its own columns in another
order (the same problem), side by side: how far the flown path moves (largest horizontal distance between the two
paths, median over the instances), and the share of each set of rollouts that breaks the keep-out constraint of
the columns it was given (``guess_violations`` above the solver's tolerance).

A policy that avoids its columns moves its path by about a detour (tenths of a metre) when they are replaced, and not
at all when they are reordered; a policy blind to them moves it by its sampling noise either way. Round 43
(docs/results/ablations.md):

    python3 benchmarks/bench_column_blindness.py runs/scorecard-v27/quadrotor/columns_9 --instances 256
    python3 benchmarks/bench_column_blindness.py runs/scorecard-v27/quadrotor/columns_9 --training-instances
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.rollout import load_policy_runner, rollout
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import guess_violations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a scorecard variant folder (<out>/quadrotor/columns_K)")
    ap.add_argument("--methods", nargs="+", default=["sob_diff", "diff"])
    ap.add_argument("--instances", type=int, default=256)
    ap.add_argument("--test-seed", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0, help="rollout noise seed and the shuffles' seed")
    ap.add_argument("--training-instances", action="store_true",
                    help="roll out from the training instances (collect/trajectories.npz) instead of held-out ones")
    args = ap.parse_args()
    s = load_settings(args.folder)
    task = sw.make_task(s.task, s.variant)
    if task.name != "quadrotor" or task.nz <= 3:
        raise SystemExit(f"folder: expected a quadrotor variant among columns, got {s.task}/{s.variant}")
    if args.training_instances:
        data = np.load(args.folder / "collect" / "trajectories.npz")
        x0s, params = data["xs"][:, 0], data["params"]
    else:
        x0s, params = task.sample_instances(args.instances, seed=args.test_seed)
    k = (task.nz - 3) // 2
    rng = np.random.default_rng(args.seed)
    other = params.copy()
    other[:, 3:] = params[np.roll(np.arange(len(params)), 1), 3:]
    reordered = params.copy()
    reordered[:, 3:] = params[:, 3:].reshape(len(params), k, 2)[:, rng.permutation(k)].reshape(len(params), 2 * k)
    tol = s.options().tol
    where = (f"its {len(x0s)} training instances" if args.training_instances
             else f"{args.instances} held-out instances (seed {args.test_seed})")
    print(f"{s.task}/{s.variant}, {where}, rollout seed {args.seed}")
    print("| method | path moves, other columns [m] | path moves, reordered [m] | infeasible, own / other columns [%] |")
    print("|---|---|---|---|")
    for method in ["to", *args.methods]:
        paths = {}
        runner = None if method == "to" else load_policy_runner(args.folder / method / "policy_export.safetensors")
        for name, z in (("own", params), ("other", other), ("reordered", reordered)):
            if method == "to":  # the solver's own paths (its converged solves), for scale
                res = sw.solve(task, x0s, z, options=s.options())
                xs, us, ok = res.xs, res.us, res.converged
            else:
                ro = rollout(task, x0s, z, runner, action_steps=s.action_steps, seed=args.seed)
                xs, us, ok = ro.xs, ro.us, np.ones(len(x0s), bool)
            paths[name] = (xs, guess_violations(task, x0s, z, xs, us, s.divergence_bound), ok)

        def moved(name):
            both = paths[name][2] & paths["own"][2]
            return float(np.median(np.abs(paths[name][0][both, :, :2] - paths["own"][0][both, :, :2]).max(axis=(1, 2))))

        def infeasible(name):
            return 100 * np.mean(paths[name][1][paths[name][2]] > tol)

        label = "TO alone (converged solves)" if method == "to" else method
        print(f"| {label} | {moved('other'):.3f} | {moved('reordered'):.3f} | "
              f"{infeasible('own'):.0f} / {infeasible('other'):.0f} |")


if __name__ == "__main__":
    main()
