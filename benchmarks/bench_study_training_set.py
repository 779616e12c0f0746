"""Does a study's result hold on another training set? Run one of the reference's studies with other training instances
and solver penalties (round 23)

Runs ``sobolev_warmstart.experiments`` preset ``--study`` at full scale once per (penalty, training seed) pair, with
``mu_init`` and ``train_seed`` (the seed of the training instances) replaced, into ``--out/mu<penalty>-seed<seed>/``,
and prints each run's headline per method or action length: converged, diverged, mean iterations, against TO alone.

    python3 benchmarks/bench_study_training_set.py --study action_length --mu-init 1e-3 0.1 --train-seeds 1 \\
        --out runs/al-check
"""

from __future__ import annotations

import argparse
import dataclasses

from sobolev_warmstart import experiments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="action_length", choices=sorted(experiments.PRESETS))
    ap.add_argument("--mu-init", type=float, nargs="+", default=[1e-3, 0.1])
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    base = experiments.settings_for(args.study, "full")
    for mu in args.mu_init:
        for seed in args.train_seeds:
            experiments._SETTINGS[args.study]["full"] = dataclasses.replace(base, mu_init=mu, train_seed=seed)
            try:
                summary = experiments.run_experiment(args.study, f"{args.out}/mu{mu:g}-seed{seed}", "full")
            finally:
                experiments._SETTINGS[args.study]["full"] = base
            rows = summary.get("headline") or {}
            first = next(iter(rows.values()), {})
            print(f"mu_init {mu:g}, training seed {seed}: TO alone {first.get('to_iterations', float('nan')):.1f} "
                  f"iterations, {100 * first.get('to_converged', float('nan')):.0f}% converged")
            for key, h in rows.items():
                print(f"  {key}: {100 * h['converged']:.0f}% converged, {100 * h.get('diverged', 0):.0f}% diverged, "
                      f"{h['iterations']:.1f} iterations")


if __name__ == "__main__":
    main()
