"""How a policy's rollouts diverge: where they leave the training solutions' range, and how fast they then blow up (round 23)

For a scorecard variant folder, the exported Sob+Diff policy (or ``--method diff``) is rolled out (seed 0) on the
held-out instances. Per rollout that leaves the scorecard's divergence bound, it prints the step at which a state
coordinate first exceeds twice the largest magnitude it takes in the training solutions, the step at which the
bound is crossed, the largest |x| every five steps and the torques applied on the way. For the others, the share
that stays within the training range.

    python3 benchmarks/bench_divergence.py runs/scorecard-v14/double_pendulum/default
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.data import load_dataset
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import diverged_rollouts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--method", default="sob_diff", choices=("sob_diff", "diff"))
    ap.add_argument("--seed", type=int, default=0, help="rollout seed")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    x0s, params = task.sample_instances(s.test_instances, seed=s.test_seed)
    train = load_dataset(folder / "collect" / "trajectories.npz").data
    limit = np.abs(train.xs).max(axis=(0, 1))  # per state coordinate, over every training state
    runner = sw.load_policy_runner(str(folder / args.method / "policy_export.safetensors"))
    ro = sw.rollout(task, x0s, params, runner, seed=args.seed, num_threads=1)
    diverged = diverged_rollouts(ro.xs, s.divergence_bound)
    outside = (np.abs(ro.xs) > 2 * limit).any(axis=2)  # (N, T+1)
    peak = np.abs(np.nan_to_num(ro.xs, nan=np.inf)).max(axis=2)
    np.set_printoptions(precision=3, suppress=True, linewidth=160)
    print(f"{s.task}/{s.variant}, {args.method}: {int(diverged.sum())} of {len(x0s)} rollouts diverged (|x| > "
          f"{s.divergence_bound:g}); training solutions' largest |x| per coordinate: {limit}")
    for i in np.flatnonzero(diverged):
        left = int(np.argmax(outside[i]))
        crossed = int(np.argmax(peak[i] > s.divergence_bound))
        print(f"\ninstance {i}: beyond twice the training range at t = {left}, beyond the bound at t = {crossed}")
        print(f"  largest |x| every 5 steps: {peak[i, ::5]}")
        print(f"  controls every 5 steps:    {ro.us[i, ::5].ravel()}")
    ok = ~diverged
    print(f"\nrollouts that did not diverge: {100 * (~outside[ok]).all(axis=1).mean():.0f}% stay within twice the "
          f"training range; their largest |x| (median, max): {np.median(peak[ok].max(1)):.3g}, {peak[ok].max():.3g}")


if __name__ == "__main__":
    main()
