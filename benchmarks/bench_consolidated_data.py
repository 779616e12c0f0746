"""Are a scorecard folder's training solutions poor, inconsistent local minima? Consolidates its TO-alone trajectories
(`sobolev_warmstart.consolidate`: each instance re-solved from its k nearest instances' solutions, the cheapest
converged kept) and prints the cost per round; on the pendubot also the swing-up strategies (reversals of the first
joint's velocity: instances) before and after. With ``--out DIR``, writes the consolidated trajectories as a scorecard
``collect/trajectories.npz`` whose normalisers are fitted on the consolidated data themselves (``--own-normalisers``,
the setting round 18 shows to fail) or on TO alone's solutions (the scorecard's), for ``benchmarks/ablation.py``:

    python3 benchmarks/bench_consolidated_data.py runs/scorecard-v9/double_pendulum/default --k 8 --rounds 2
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.data import build_dataset, load_dataset, save_dataset
from sobolev_warmstart.scorecard import load_settings


def strategies(xs: np.ndarray) -> dict[int, int]:
    """Reversals of the first joint's velocity per trajectory: {reversals: instances}."""
    signs = np.sign(xs[:, 1:, xs.shape[2] // 2])
    return dict(sorted(Counter(int(n) for n in (signs[:, 1:] != signs[:, :-1]).sum(axis=1)).items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (holding settings.json and collect/trajectories.npz)")
    ap.add_argument("--k", type=int, default=8, help="neighbours")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder to write trajectories.npz into")
    ap.add_argument("--own-normalisers", action="store_true", help="fit the written dataset's normalisers on the "
                    "consolidated data (default: on TO alone's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    collected = load_dataset(folder / "collect" / "trajectories.npz")
    options = sw.SolverOptions(num_threads=args.threads, max_iters=s.max_iters)
    consolidated, report = sw.consolidate_dataset(task, collected, neighbours=args.k, rounds=args.rounds,
                                                  options=options)
    data = consolidated.data
    doc = report.to_dict()
    print(f"{s.key}: {doc['instances']} trajectories, cost mean {doc['cost_mean_before']:.4g} -> "
          f"{doc['cost_mean_after']:.4g}, {doc['improved']} at least 1% cheaper; {doc['solves']} batch solves in "
          f"{doc['time_s']:.1f} s")
    for r in doc["rounds"]:
        print(f"  round {r['round']}: {r['replaced']} replaced, {r['improved']} at least 1% cheaper, cost mean "
              f"{r['cost_mean']:.4g}")
    if s.task == "double_pendulum":
        print(f"  strategies (reversals: instances): {strategies(collected.data.xs)} -> {strategies(data.xs)}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        save_dataset(build_dataset(data, s.chunk()) if args.own_normalisers else consolidated,
                     Path(args.out) / "trajectories.npz")
        print(f"wrote {data.num_instances} trajectories to {args.out}/trajectories.npz")


if __name__ == "__main__":
    main()
