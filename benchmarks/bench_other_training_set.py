"""The current scorecard recipe of a variant trained on another run's training set (round 24)

Does a result come from the recipe or from the training set it ran on? For each policy seed, the finished training
set of ``--collect`` (a scorecard variant folder's ``collect/``: the saved TO-alone batches, the consolidated
trajectories and their normalisers) is hard-linked into ``--out/policy_seed_<s>/<task>/<variant>/collect``, and
the variant's current settings (``scorecard.settings_for``, full scale, no sample-efficiency subsets) train and
evaluate Diff and Sob+Diff on it, as the scorecard would (``--set key=value`` changes a setting, JSON values).
``--normalisers-from`` takes the normalisers from another training set's ``trajectories.npz`` instead (the data are
normalised again with them), to tell the normalisers' effect from the solutions'; ``--widen F`` multiplies the
action, observation and state normalisers' scales by ``F`` about their centres (ranges F times as wide as the data's).
``--collect`` may also be a finished loop's run directory (``sobolev-warmstart loop --run-dir``): every iteration's
accepted trajectories, gathered into one training set under ``--out/loop_collect`` (normalisers fitted on them).
Rerunning resumes.

    python3 benchmarks/bench_other_training_set.py double_pendulum/default --set train_steps=2500 action_steps=1 \\
        --collect runs/scorecard-v13/double_pendulum/default/collect --policy-seeds 0 1 2 --out runs/abl46/dp13
    python3 benchmarks/bench_other_training_set.py double_pendulum/default --set train_steps=2500 action_steps=1 \\
        --collect runs/scorecard-v14/double_pendulum/default/collect --policy-seeds 0 1 2 --out runs/abl47/dp14n13 \\
        --normalisers-from runs/scorecard-v13/double_pendulum/default/collect/trajectories.npz
    python3 benchmarks/bench_other_training_set.py double_pendulum/reference --collect runs/loop53/dpref \\
        --policy-seeds 0 --out runs/abl53/dpl_base --set train_steps=5000 action_steps=2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from sobolev_warmstart.data import Normaliser, build_dataset, load_dataset, save_dataset
from sobolev_warmstart.loop import load_trajectories
from sobolev_warmstart.scorecard import run_variant, settings_for

from ablation import apply_changes, link_tree  # benchmarks/ablation.py, beside this script


def collect_from_loop(run_dir: Path, chunk, dst: Path) -> Path:
    """A scorecard ``collect/`` folder at ``dst`` holding every iteration's accepted trajectories of the loop run
    ``run_dir`` (chunked with ``chunk``, normalisers fitted on them); reused if it exists."""
    if (dst / "trajectories.npz").is_file():
        return dst
    iterations = json.loads((run_dir / "config.json").read_text())["iterations"]
    data = load_trajectories(run_dir, range(1, iterations + 1))
    if data is None:
        raise SystemExit(f"--collect: {run_dir} is neither a scorecard collect/ folder nor a loop run with accepted "
                         "trajectories (iter_*/trajectories.npz)")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "collect.json").write_text(json.dumps({"instances": int(data.num_instances), "seed": None,
                                                  "accepted": int(data.num_instances), "loop_run": str(run_dir),
                                                  "time_s": 0.0}))
    save_dataset(build_dataset(data, chunk), dst / "trajectories.npz")  # last: the folder is complete
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variant", help="task/variant, e.g. double_pendulum/default")
    ap.add_argument("--collect", required=True,
                    help="a finished scorecard variant folder's collect/ directory, or a loop's run directory")
    ap.add_argument("--policy-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings to change (JSON values)")
    ap.add_argument("--normalisers-from", default=None, metavar="NPZ",
                    help="a training set (trajectories.npz) whose normalisers replace --collect's")
    ap.add_argument("--widen", type=float, default=None, metavar="F",
                    help="scale the action, observation and state normalisers' ranges by F (> 0) about their centres")
    args = ap.parse_args()
    if args.widen is not None and not args.widen > 0:
        raise SystemExit(f"--widen: expected a positive factor, got {args.widen}")
    src = Path(args.collect)
    base = dataclasses.replace(settings_for(args.variant, "full"), subset_fractions=())
    base = apply_changes(base, args.set, "--set")
    if (src / "config.json").is_file() and not (src / "trajectories.npz").is_file():  # a loop's run directory
        src = collect_from_loop(src, base.chunk(), Path(args.out) / "loop_collect")
    if not (src / "trajectories.npz").is_file():
        raise SystemExit(f"--collect: {src} holds no finished training set (trajectories.npz)")
    print("| policy seed | method | policy/TO median | diverged [%] | iters mean | converged [%] |")
    print("|---|---|---|---|---|---|")
    for seed in args.policy_seeds:
        folder = Path(args.out) / f"policy_seed_{seed}"
        dst = folder / base.task / base.variant / "collect"
        if not dst.exists():
            link_tree(src, dst)
            if args.normalisers_from or args.widen is not None:
                # written anew: the hard link to --collect's file is replaced, not changed
                mine = load_dataset(dst / "trajectories.npz")
                norm = load_dataset(args.normalisers_from).normalisers if args.normalisers_from else mine.normalisers
                if args.widen is not None:
                    wide = {k: Normaliser(getattr(norm, k).offset, getattr(norm, k).scale * args.widen)
                            for k in ("action", "observation", "state")}
                    norm = dataclasses.replace(norm, **wide)
                save_dataset(build_dataset(mine.data, mine.spec, normalisers=norm), dst / "trajectories.npz")
        doc = run_variant(args.variant, folder, "full", threads=args.threads,
                          settings=dataclasses.replace(base, policy_seed=seed))
        for r in doc["rows"]:
            print(f"| {seed} | {r['label']} | {r['policy_cost_ratio_median']:.3g} | {100 * r['diverged']:.0f} | "
                  f"{r['iterations_mean']:.1f} | {100 * r['converged']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
