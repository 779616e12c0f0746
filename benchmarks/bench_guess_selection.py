"""Would choosing, per instance, the cheaper of the policy's guess and the lookup's beat the lookup? (round 19)

Reads a scorecard's per-instance results (``per_instance.npz`` of every variant; no new solve): per held-out
instance, the Sob+Diff rollout is kept when its objective is at most ``--ratio`` times the lookup's guess's (a
diverged rollout never is), else the lookup's guess is refined. Both guesses are paid for (rollout + lookup); the
refinement is the chosen one's, as the scorecard measured it. ``--ratio 1`` (the default) keeps the cheaper guess;
a larger ratio only guards against the rollouts that wander (round 36: ``--ratio 2`` on the pendubot):

    python3 benchmarks/bench_guess_selection.py runs/scorecard-v10
    python3 benchmarks/bench_guess_selection.py runs/scorecard-v21 --ratio 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def summary(d, method: str) -> tuple[float, float, float]:
    total = (d[f"{method}_rollout_time"] + d[f"{method}_solve_time"]) * 1e3
    return d[f"{method}_iterations"].mean(), total.mean(), 100 * d[f"{method}_converged"].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scorecard", help="a scorecard output folder (<task>/<variant>/per_instance.npz)")
    ap.add_argument("--ratio", type=float, default=1.0,
                    help="keep the rollout where its objective is at most this times the lookup guess's (default 1)")
    args = ap.parse_args()
    if not args.ratio > 0:
        raise SystemExit(f"--ratio: expected a positive number, got {args.ratio}")
    chosen = "the cheaper guess" if args.ratio == 1 else f"Sob+Diff unless over {args.ratio:g}x the lookup's cost"
    print(f"| variant | lookup | lookup: iters / total ms / converged % | Sob+Diff | {chosen} | Sob+Diff's chosen |")
    print("|---|---|---|---|---|---|")
    for path in sorted(Path(args.scorecard).glob("*/*/per_instance.npz")):
        d = np.load(path)
        key = f"{path.parent.parent.name}/{path.parent.name}"
        sob = "%.1f / %.1f / %.0f" % summary(d, "sob_diff")
        for alt in ("nn", "nn_feedback"):
            own = np.where(d["sob_diff_diverged"], np.inf, d["sob_diff_policy_cost"])
            pick = own <= args.ratio * d[f"{alt}_policy_cost"]
            iters = np.where(pick, d["sob_diff_iterations"], d[f"{alt}_iterations"])
            total = (d["sob_diff_rollout_time"] + d[f"{alt}_rollout_time"]
                     + np.where(pick, d["sob_diff_solve_time"], d[f"{alt}_solve_time"])) * 1e3
            conv = np.where(pick, d["sob_diff_converged"], d[f"{alt}_converged"])
            a_it, a_ms, a_conv = summary(d, alt)
            print(f"| {key} | {alt} | {a_it:.1f} / {a_ms:.1f} / {a_conv:.0f} | {sob} | {iters.mean():.1f} / "
                  f"{total.mean():.1f} / {100 * conv.mean():.0f} | {100 * pick.mean():.0f}% |")


if __name__ == "__main__":
    main()
