"""Can a policy reproduce the trajectories it was trained on? Rollouts from the training starts themselves.

Held-out rollouts mix two failures: fitting the data and generalising from it. From the training instances' own
starts only the first remains. For each ``--method``, the scorecard's recipe of ``variant`` (``--set`` changes it,
as in ``ablation.py``) trains on the training set ``--collect`` (a scorecard variant's ``collect/`` folder; a
finished ``--out/<method>`` is reused, an unfinished one resumed), and the C++ rollout runs from every
``--every``-th training start at the recipe's A. Prints the final denoising error and the rollout's objective over the training solution's (median, quartiles,
share within 1.1x). Round 31 (docs/results/ablations.md):

    python3 benchmarks/bench_training_starts.py double_pendulum/reference --collect runs/abl53/dpref_loopdata/collect \\
        --methods diff --out runs/abl53/fit_diff_20k --set train_steps=20000 action_steps=2
    python3 benchmarks/bench_training_starts.py double_pendulum/default --every 4 \\
        --collect runs/scorecard-v19/double_pendulum/default/collect --out runs/scorecard-v19/double_pendulum/default
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart import _core
from sobolev_warmstart.data import load_dataset
from sobolev_warmstart.scorecard import _train, settings_for

from ablation import apply_changes  # benchmarks/ablation.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variant", help="task/variant, e.g. double_pendulum/reference")
    ap.add_argument("--collect", required=True, help="a finished scorecard collect/ folder (trajectories.npz)")
    ap.add_argument("--methods", nargs="+", default=["diff", "sob_diff"], choices=["diff", "sob_diff"])
    ap.add_argument("--out", required=True, help="folder for the trained policies (one subfolder per method)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings to change (JSON values)")
    ap.add_argument("--every", type=int, default=10, help="roll out from every k-th training start")
    ap.add_argument("--seed", type=int, default=0, help="rollout noise seed")
    args = ap.parse_args()
    if args.every < 1:
        raise SystemExit(f"--every: expected a positive integer, got {args.every}")
    path = Path(args.collect) / "trajectories.npz"
    if not path.is_file():
        raise SystemExit(f"--collect: {args.collect} holds no finished training set (trajectories.npz)")
    s = dataclasses.replace(settings_for(args.variant, "full"), subset_fractions=())
    s = apply_changes(s, args.set, "--set")
    collected = load_dataset(path)
    data = collected.data
    # as the scorecard trains: on consolidated data, with the collection's normalisers (TO alone's solutions')
    normalisers = collected.normalisers if s.consolidate_neighbours > 0 else None
    try:
        data.refuse_relabelled("roll out from the solved starts of a training set without relabelled tails")
    except ValueError as e:
        raise SystemExit(f"--collect: {e}") from None
    task = sw.make_task(s.task, s.variant)
    sel = np.arange(0, data.num_instances, args.every)
    x0s, params = data.xs[sel, 0], data.params[sel]
    ref = _core.trajectory_costs(task, x0s, params, data.xs[sel], data.us[sel])
    print(f"{s.key}: {data.num_instances} training trajectories, rollouts from {len(sel)} of their starts, "
          f"A = {s.action_steps}; changes: {' '.join(args.set) or 'none'}")
    print("| method | steps | denoising MSE | rollout / solution: median [p25, p75] | within 1.1x |")
    print("|---|---|---|---|---|")
    for method in args.methods:
        folder = Path(args.out) / method
        export = _train(data, method, s, folder, print, normalisers)
        meta = json.loads((folder / "train.json").read_text())
        ro = sw.rollout(task, x0s, params, str(export), action_steps=s.action_steps, seed=args.seed)
        r = _core.trajectory_costs(task, x0s, params, ro.xs, ro.us) / ref
        print(f"| {method} | {meta['steps']} | {meta['final_mse']:.4f} | {np.median(r):.3g} "
              f"[{np.percentile(r, 25):.3g}, {np.percentile(r, 75):.3g}] | {np.mean(r < 1.1):.0%} |", flush=True)


if __name__ == "__main__":
    main()
