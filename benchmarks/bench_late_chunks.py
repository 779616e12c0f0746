"""Is the UR5 policies' endpoint miss a matter of how little of the training signal the last steps are? (A policy
cost above TO's on the reach variants is almost all terminal cost: the rollouts end off the target and still
moving, and the policies' one-step error is largest on the last steps even on their training data.)

Repeats the chunks that start in the last ``T - from`` steps of every training trajectory ``--copies`` more times
(the trajectories appended again with ``label_start = from``, so only their late chunks are samples), trains the
method with the folder's recipe and budget, and evaluates it with the scorecard's evaluation:

    python3 benchmarks/bench_late_chunks.py runs/abl50/fsrt/base/policy_seed_0/ur5/fixed_start_random_target \\
        --start 40 --copies 4 --out runs/late/fsrt/seed_0
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from sobolev_warmstart.data import build_dataset, concatenate_trajectories
from sobolev_warmstart.scorecard import _train

from bench_relabel import evaluate, open_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a variant's scorecard folder (settings.json, collect/, diff/, sob_diff/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", default="sob_diff", choices=["sob_diff", "diff"])
    ap.add_argument("--start", type=int, required=True, help="first step of the repeated chunks")
    ap.add_argument("--copies", type=int, nargs="+", default=[4], help="extra copies of the late chunks (one row each)")
    ap.add_argument("--test-seed", type=int, default=None)
    args = ap.parse_args()
    src, out = Path(args.folder), Path(args.out)
    s, task, collected, exports = open_folder(src, args.test_seed, f"chunks from step {args.start} repeated")
    base = collected.data
    evaluate(task, s, out / "base", base, exports, "base", ["to", "nn", args.method])
    late = dataclasses.replace(base, label_start=np.full(base.num_instances, args.start))
    for k in args.copies:
        data = concatenate_trajectories([base] + [late] * k)
        samples = len(build_dataset(data, s.chunk(), normalisers=collected.normalisers))
        folder = out / f"copies_{k}"
        exports[args.method] = _train(data, args.method, s, folder / args.method, lambda m: None, collected.normalisers)
        evaluate(task, s, folder, base, exports, f"late chunks x {k + 1} ({samples} chunks)", [args.method])


if __name__ == "__main__":
    main()
