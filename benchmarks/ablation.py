"""Controlled ablations on the scorecard: one change at a time to one variant's scorecard settings, same
training instances, held-out instances, seeds and network, and a table of what each change does.

Each row is the scorecard of ``--variant`` (its ``--scale`` settings, ``sobolev_warmstart.scorecard.settings_for``)
with one ``--change key=value`` applied (``base`` = no change), run (or resumed) under ``--out/<change>/``; the
sample-efficiency subsets are skipped. Columns: Diff's and Sob+Diff's median policy cost / TO alone's cost
(per instance), their divergence rates, the share of Sob+Diff's rollouts that break a path constraint (fly through a
column), Sob+Diff's mean iterations and total time against TO alone's and the nearest-neighbour lookup's.

    python3 benchmarks/ablation.py --variant double_pendulum/default --change train_steps=4000 sobolev_weight=0.1
    python3 benchmarks/ablation.py --variant double_pendulum/default --change train_steps=4000 --policy-seeds 0 1 2

With ``--policy-seeds`` every row is trained once per seed on the same trajectories (``policy_seed``) and the
cells read ``median over seeds [min, max]``.

Every row evaluates the scorecard's held-out instances: 256 at full scale since round 36, 32 before.
``--test-instances 32`` reproduces the rows of rounds 1-35. ``--trained-from DONE --test-seed S`` evaluates the
policies of a finished ablation ``DONE`` (the same rows and policy seeds; hard links, nothing trained again) on
another held-out set, to check a row on instances it was not chosen on:

    python3 benchmarks/ablation.py --variant quadrotor/columns_9 --change sobolev_schedule=cosine \
        --policy-seeds 0 1 2 --out runs/abl/quad9                        # trains and evaluates on 1e6
    python3 benchmarks/ablation.py --variant quadrotor/columns_9 --change sobolev_schedule=cosine \
        --policy-seeds 0 1 2 --trained-from runs/abl/quad9 --test-seed 11000001 --out runs/abl/quad9-11e6

A row that changes none of the settings TO alone's collection depends on (``train_instances``, ``train_seed``,
``max_iters``, ``mu_init``, ``stall_iters``, ``collect_batch``, and the chunk's ``horizon`` and ``history``, whose
derivative offsets the batches hold) starts from the base row's saved TO-alone batches (hard links), so only the
consolidation, training and evaluation run again: the same trajectories, 1-2 minutes less per row. A row that changes
only settings of the training or the evaluation (``TRAINING_ONLY_KEYS``: budget, network, lambda, held-out
instances...) starts from the base row's whole finished training set, consolidation included (3 minutes less per
row on 256 UR5 trajectories). Within a row,
the policy seeds after the first reuse its finished training set (batches, consolidation and chunk dataset, which
do not depend on the policy seed): a 1024-instance row consolidates once, not once per seed.

Values are JSON literals (``train_steps=4000``, ``unet_dims=[32,64]``) or strings. A row may change several
settings at once, joined by ``+`` (``denoiser=mlp+sobolev_weight=0.001``), to probe a combination.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from sobolev_warmstart.data import link_file, link_tree
from sobolev_warmstart.scorecard import EVALUATION_KEYS, run_variant, settings_for


def apply_changes(settings, items, option: str = "--change"):
    """``settings`` with each ``key=value`` of ``items`` applied (JSON values, else strings; lists become tuples); a
    malformed item or an unknown setting is a ``SystemExit`` naming ``option``."""
    fields = {f.name for f in dataclasses.fields(settings)}
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option}: expected key=value, got {item!r}")
        if key not in fields:
            raise SystemExit(f"{option}: unknown setting {key!r}; expected one of {', '.join(sorted(fields))}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    # all at once: settings that are only valid together (a standard action normaliser, sampled unclipped) are
    # checked together
    return dataclasses.replace(settings, **changes)


#: Settings TO alone's training collection depends on: rows that change none of them reuse the base row's batches.
#: The chunk's horizon and history count: the saved batches hold the chained derivatives over H - h offsets.
COLLECTION_KEYS = frozenset({"train_instances", "train_seed", "max_iters", "mu_init", "stall_iters", "collect_batch",
                             "horizon", "history"})
#: Settings the finished training set (``collect/``: batches, consolidation, chunk dataset) does not depend on: rows
#: that change only these reuse the base row's. Everything else (the chunk, the consolidation, the collection)
#: rebuilds it.
TRAINING_ONLY_KEYS = frozenset({
    "train_steps", "batch_size", "lr", "weight_decay", "sobolev_weight", "sobolev_fraction", "sobolev_cap_quantile",
    "sobolev_cap_entries", "sobolev_schedule", "final_steps", "final_steps_weight",
    "denoiser", "mlp_dims", "unet_dims", "n_groups", "step_embed_dim", "past_actions", "diffusion_steps", "sampling_steps",
    "sampling_temperature",
    "ema_power", "shuffle_exchangeable_params", "clip_sample", "policy_seed", "subset_fractions",
    "divergence_bound"}) | EVALUATION_KEYS


def reuse_collection(base_folder: Path, folder: Path, variant: str) -> None:
    """Hard-link (or copy) the base row's saved TO-alone batches of ``variant`` into a row's folder that has none;
    the loop's collection checks each batch's instances and budget before using it."""
    src = base_folder / variant / "collect" / "batches"
    dst = folder / variant / "collect" / "batches"
    if not src.is_dir() or dst.exists():
        return
    dst.mkdir(parents=True)
    for f in sorted(src.glob("batch_*.npz")):
        link_file(f, dst / f.name)


def reuse_training_set(first_folder: Path, folder: Path, variant: str) -> None:
    """Hard-link (or copy) a finished training set (``collect/``: batches, ``collect.json``, ``trajectories.npz``)
    into a folder that has none: a row's first policy seed's into its other seeds', or the base row's into a row
    that changes only ``TRAINING_ONLY_KEYS``."""
    src = first_folder / variant / "collect"
    dst = folder / variant / "collect"
    if not (src / "trajectories.npz").exists() or dst.exists():
        return
    link_tree(src, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="double_pendulum/default")
    ap.add_argument("--scale", default="full", choices=["smoke", "full"])
    ap.add_argument("--change", nargs="*", default=[], help="key=value changes, one row each (besides 'base')")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--policy-seeds", type=int, nargs="+", default=None,
                    help="training seeds of the policies (default: the scorecard's, one run per row)")
    ap.add_argument("--test-instances", type=int, default=None,
                    help="held-out instances of every row (default: the scorecard's, 256 at full scale since round 36; "
                    "the commands of rounds 1-35 ran with 32)")
    ap.add_argument("--test-seed", type=int, default=None,
                    help="seed of every row's held-out instances (default: the scorecard's, 1000000)")
    ap.add_argument("--trained-from", default=None,
                    help="a finished ablation's --out: every row evaluates that ablation's policies of the same change "
                    "and policy seed (only held-out settings may differ), nothing is trained again")
    args = ap.parse_args()
    base = dataclasses.replace(settings_for(args.variant, args.scale), subset_fractions=())
    if args.test_instances is not None:
        base = dataclasses.replace(base, test_instances=args.test_instances)  # the settings check the count
    if args.test_seed is not None:
        base = dataclasses.replace(base, test_seed=args.test_seed)  # the settings refuse the training seed
    seeds = args.policy_seeds or [None]
    rows = []
    for change in ["base", *args.change]:
        settings = base if change == "base" else apply_changes(base, change.split("+"))
        changed = {part.partition("=")[0] for part in change.split("+")} if change != "base" else set()
        docs = []
        for seed in seeds:
            folder = Path(args.out) / change.replace("/", "_")
            base_folder = Path(args.out) / "base"
            if seed is not None:
                folder = folder / f"policy_seed_{seed}"
                base_folder = base_folder / f"policy_seed_{seed}"
            source = None
            if args.trained_from is not None:  # the finished row's folder: run_variant checks its settings
                source = Path(args.trained_from) / change.replace("/", "_")
                source = source if seed is None else source / f"policy_seed_{seed}"
            elif seed is not None and seed != seeds[0]:
                reuse_training_set(Path(args.out) / change.replace("/", "_") / f"policy_seed_{seeds[0]}", folder,
                                   args.variant)
            if source is None and change != "base" and changed <= TRAINING_ONLY_KEYS:
                reuse_training_set(base_folder, folder, args.variant)
            elif source is None and change != "base" and not (changed & COLLECTION_KEYS):
                reuse_collection(base_folder, folder, args.variant)
            doc = run_variant(args.variant, folder, args.scale, threads=args.threads,
                              settings=dataclasses.replace(settings, policy_seed=seed), progress=print,
                              trained_from=source)
            docs.append({r["method"]: r for r in doc["rows"]})
        rows.append((change, docs))

    def cell(docs, method, metric, scale=1.0, fmt=".3g"):
        v = np.array([d[method].get(metric, np.nan) for d in docs], dtype=float) * scale  # older rows: no infeasible
        if v.size == 1:
            return f"{v[0]:{fmt}}"
        return f"{np.median(v):{fmt}} [{v.min():{fmt}}, {v.max():{fmt}}]"

    seeds_text = "" if seeds == [None] else f", policy seeds {seeds} (median [min, max])"
    print(f"\n{args.variant}, scale {args.scale} (one change per row; same data, seeds and budget otherwise{seeds_text})\n")
    print("| change | Diff policy/TO median | Diff diverged [%] | Sob+Diff policy/TO median | Sob+Diff diverged [%] | "
          "Sob+Diff infeasible [%] | Sob+Diff iters mean | Sob+Diff total ms | TO alone iters / ms | NN iters / ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for change, docs in rows:
        print(f"| {change} | {cell(docs, 'diff', 'policy_cost_ratio_median')} | "
              f"{cell(docs, 'diff', 'diverged', 100, '.0f')} | {cell(docs, 'sob_diff', 'policy_cost_ratio_median')} | "
              f"{cell(docs, 'sob_diff', 'diverged', 100, '.0f')} | {cell(docs, 'sob_diff', 'infeasible', 100, '.0f')} | "
              f"{cell(docs, 'sob_diff', 'iterations_mean', 1, '.1f')} | "
              f"{cell(docs, 'sob_diff', 'total_time_mean', 1e3, '.1f')} | "
              f"{cell(docs, 'to', 'iterations_mean', 1, '.1f')} / {cell(docs, 'to', 'total_time_mean', 1e3, '.1f')} | "
              f"{cell(docs, 'nn', 'iterations_mean', 1, '.1f')} / {cell(docs, 'nn', 'total_time_mean', 1e3, '.1f')} |")


if __name__ == "__main__":
    main()
