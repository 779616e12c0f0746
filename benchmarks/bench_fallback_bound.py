"""Which cost bound should the lookup fallback use? Offline, from a finished scorecard's per-instance results (round 46).

``sw.LookupFallback`` replaces a rollout whose objective exceeds ``cost_ratio`` times its nearest training solution's
by that solution. The refine from either guess is deterministic and both are in the scorecard's per-instance results
(Sob+Diff's and NN's refine iterations), so any bound's mean refine iterations follow without a new solve: per held-out
instance, NN's iterations where the rollout's cost is above the bound, Sob+Diff's elsewhere. The neighbour's solution
cost is recomputed from the folder's training set. Per folder: the scorecard's own fallback row and NN's, then each
bound's mean iterations and the share of rollouts it replaces, and last another selection: the cheaper of two
dynamically feasible guesses, Sob+Diff's rollout and the neighbour's feedback law closed from the new start
(NN+feedback), by their own objective (the share where NN+feedback's is taken in brackets).

    python3 benchmarks/bench_fallback_bound.py runs/scorecard-v28/double_pendulum/default --ratios 1.1 1.5 3 30

``--factors F ...`` adds bounds that follow the policy's precision (round 47): ``sw.LookupFallback.calibrated`` with
``factor=F``, F times the policy's median rollout/neighbour cost ratio on 64 fresh instances (the bound and that
median in each cell).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw

from bench_action_steps import folder_lookup, held_out  # benchmarks/bench_action_steps.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="finished scorecard variant folders (with per_instance.npz)")
    ap.add_argument("--ratios", type=float, nargs="+", default=[1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 30.0],
                    help="cost bounds, in multiples of the nearest training solution's cost")
    ap.add_argument("--factors", type=float, nargs="*", default=[],
                    help="calibrated bounds (LookupFallback.calibrated), in multiples of the policy's median ratio")
    args = ap.parse_args()
    if args.factors and min(args.factors) < 1:
        raise SystemExit(f"--factors: expected numbers >= 1, got {args.factors}")
    if min(args.ratios) <= 0:
        raise SystemExit(f"--ratios: expected positive numbers, got {args.ratios}")
    print("| folder | NN | the scorecard's fallback | " + " | ".join(f"x{r:g}: iters (replaced)" for r in args.ratios)
          + "".join(f" | {f:g}x the median: bound (median), iters (replaced)" for f in args.factors)
          + " | the cheaper of Sob+Diff and NN+feedback |")
    print("|---|---|---|" + "---|" * (len(args.ratios) + len(args.factors) + 1))
    for folder in map(Path, args.folders):
        z = np.load(folder / "per_instance.npz")
        s, task, x0s, params = held_out(folder, None, len(z["nn_iterations"]))
        lookup = folder_lookup(folder)
        neighbour_cost = lookup.solution_costs(task)[lookup.nearest(*lookup._query(task, x0s, params))]
        cost, policy_iters, nn_iters = z["sob_diff_policy_cost"], z["sob_diff_iterations"], z["nn_iterations"]
        cells = []
        for r in args.ratios:
            replaced = ~(cost <= r * neighbour_cost)
            cells.append(f"{np.where(replaced, nn_iters, policy_iters).mean():.1f} ({100 * replaced.mean():.0f}%)")
        for f in args.factors:
            fb = sw.LookupFallback.calibrated(lookup, task, str(folder / "sob_diff" / "policy_export.safetensors"),
                                              factor=f, action_steps=s.action_steps,
                                              divergence_bound=s.divergence_bound, num_threads=1)
            replaced = ~(cost <= fb.cost_ratio * neighbour_cost)
            cells.append(f"x{fb.cost_ratio:.3g} ({fb.calibration['median_ratio']:.3g}): "
                         f"{np.where(replaced, nn_iters, policy_iters).mean():.1f} ({100 * replaced.mean():.0f}%)")
        feedback_cheaper = z["nn_feedback_policy_cost"] < cost
        cells.append(f"{np.where(feedback_cheaper, z['nn_feedback_iterations'], policy_iters).mean():.1f} "
                     f"({100 * feedback_cheaper.mean():.0f}%)")
        print(f"| {folder} | {nn_iters.mean():.1f} | {z['sob_diff_nn_iterations'].mean():.1f} | " + " | ".join(cells)
              + " |", flush=True)


if __name__ == "__main__":
    main()
