"""How heavy-tailed are a dataset's Sobolev targets, and where in the horizon is the tail? (ablations, round 9)

Per training sample, the scale ``s_i = ||D_i||_F^2 / ndx`` per predicted entry of its normalised derivative target
(:func:`sobolev_warmstart.losses.sobolev_target_scales`, the quantity ``sobolev_cap_quantile`` caps), its
percentiles, and its mean over each eighth of the horizon by the chunk's start:

    python3 benchmarks/bench_sobolev_targets.py runs/scorecard-v5/ur5/fixed_start_random_target/collect/trajectories.npz
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.losses import sobolev_target_scales


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", help="dataset files (a scorecard's collect/trajectories.npz, a loop's)")
    args = ap.parse_args()
    for path in args.datasets:
        ds = sw.load_dataset(path)
        s = sobolev_target_scales(ds.chunk_jac[:, ds.spec.history:]).numpy()
        start = ds.start.numpy()
        q50, q90, q99 = np.percentile(s, [50, 90, 99])
        print(f"{path}: {len(s)} samples; median {q50:.3g}, p90 {q90:.3g}, p99 {q99:.3g} ({q99 / q50:.0f}x the "
              f"median), max {s.max():.3g}")
        edges = np.linspace(0, start.max() + 1, 9).round().astype(int)
        means = [f"[{lo}, {hi}): {s[(start >= lo) & (start < hi)].mean():.3g}" for lo, hi in zip(edges, edges[1:])
                 if np.any((start >= lo) & (start < hi))]
        print("  mean by chunk start:", "; ".join(means))


if __name__ == "__main__":
    main()
