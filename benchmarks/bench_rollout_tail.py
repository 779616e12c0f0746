"""How many of a policy's rollouts wander? Per scorecard or ablation folder (its ``per_instance.npz``; no new solve):
the method's median policy cost / TO alone's over the instances TO alone solved, the share of those rollouts past
``--bound`` times TO's cost, the share that diverged, its mean refine iterations against the lookup's and TO alone's,
and its convergence (round 36: a few wandering pendubot rollouts decide its warm start against the lookup).

    python3 benchmarks/bench_rollout_tail.py runs/abs39/dp/*/policy_seed_*/double_pendulum/default
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="variant folders holding per_instance.npz")
    ap.add_argument("--method", default="sob_diff", help="the method whose rollouts are counted (default sob_diff)")
    ap.add_argument("--bound", type=float, default=10.0, help="a rollout past this times TO's cost wanders (default 10)")
    args = ap.parse_args()
    if not args.bound > 0:
        raise SystemExit(f"--bound: expected a ratio > 0, got {args.bound}")
    m = args.method
    print(f"| folder | {m} policy/TO median | past {args.bound:g}x [%] | diverged [%] | iterations {m} / NN / TO alone "
          f"| converged {m} / NN [%] |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        path = Path(folder) / "per_instance.npz"
        if not path.is_file():
            raise SystemExit(f"{folder}: no per_instance.npz (a finished scorecard or ablation variant folder)")
        d = np.load(path)
        if f"{m}_policy_cost" not in d:
            raise SystemExit(f"--method: {folder} holds no {m!r} results")
        ok = d["to_converged"].astype(bool)
        ratio = d[f"{m}_policy_cost"][ok] / d["to_cost"][ok]
        its = " / ".join(f"{d[k + '_iterations'].mean():.1f}" for k in (m, "nn", "to"))
        print(f"| {folder} | {np.median(ratio):.4f} | {100 * np.mean(ratio > args.bound):.1f} | "
              f"{100 * d[f'{m}_diverged'].mean():.1f} | {its} | {100 * d[f'{m}_converged'].mean():.1f} / "
              f"{100 * d['nn_converged'].mean():.1f} |")


if __name__ == "__main__":
    main()
