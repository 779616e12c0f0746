"""Does the learned policy beat the lookup when few trajectories are solved? (ablations round 19)

The scorecard trains Sob+Diff on nested subsets of its training trajectories (the first k, ``subsets/n<k>/``).
This benchmark evaluates each of those policies against the lookups (``nn``, ``nn_feedback``) of the *same* k
trajectories, and the full-data policy against the full lookup, on the folder's held-out instances:

    python3 benchmarks/bench_lookup_subsets.py runs/scorecard-v10/double_pendulum/default
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import load_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard folder with subsets/ (settings.json, collect/trajectories.npz)")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    data = sw.load_dataset(folder / "collect" / "trajectories.npz").data
    x0s, params = task.sample_instances(s.test_instances, seed=s.test_seed)
    runs = sorted(folder.glob("subsets/n*/policy_export.safetensors"), key=lambda p: int(p.parent.name[1:]))
    runs = [(int(p.parent.name[1:]), p) for p in runs] + [(data.num_instances,
                                                           folder / "sob_diff" / "policy_export.safetensors")]
    for k, policy in runs:
        lookup = sw.NearestNeighbourLookup.from_data(data.select(np.arange(k)))
        ev = sw.evaluate_methods(task, {"nn": lookup, "nn_feedback": lookup, "sob_diff": str(policy)}, x0s, params,
                                 seeds=(0,), options=s.options(1), divergence_bound=s.divergence_bound)
        print(f"\n{s.key}: the first {k} training trajectories (of {data.num_instances}); {len(x0s)} held-out "
              f"instances (seed {s.test_seed})\n")
        print(ev.table(), flush=True)


if __name__ == "__main__":
    main()
