"""How much of a finished loop's result is its final training run? Retrain the final policy with other seeds (round 23)

For each finished loop run directory, a hard-linked copy per (training seed, held-out seed) pair gets its final policy
retrained with ``train.seed`` = that seed on the same final training set (the saved consolidation and copies are
reused; the iterations are not run again) and evaluated on ``eval.seed`` = that held-out seed. The copies are written
through new files only (the loop writes atomically), so the source runs are left as they were. Then one table row per
copy: the warm start's and TO alone's converged count and mean iterations, the lookups', and the policy's own cost.

    python3 benchmarks/bench_loop_training_seeds.py runs/loop44/quadrotor-new runs/loop44/quadrotor-new-s1 \\
        --train-seeds 0 1 2 3 4 --eval-seeds 1000000 2000000 --out runs/quadseeds
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ablation import link_tree  # benchmarks/ablation.py, beside this script


def _copy(src: Path, dst: Path, train_seed: int, eval_seed: int) -> None:
    link_tree(src, dst)
    final = dst / "final"
    for name in ("eval.json",):
        (final / name).unlink(missing_ok=True)
    shutil.rmtree(final / "eval_batches", ignore_errors=True)
    for f in dst.glob("summary.*"):
        f.unlink()
    config = json.loads((dst / "config.json").read_text())
    if config["train"]["seed"] != train_seed:  # another training run: drop the final policy and its checkpoints
        for name in ("policy.pt", "policy_export.safetensors"):
            (final / name).unlink(missing_ok=True)
        shutil.rmtree(final / "train", ignore_errors=True)
    config["train"]["seed"], config["eval"]["seed"], config["run_dir"] = train_seed, eval_seed, str(dst)
    (dst / "config.json").unlink()
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _row(run: Path) -> str:
    e = json.loads((run / "final" / "eval.json").read_text())
    p = {k: np.asarray(v) for k, v in e["per_instance"].items() if k != "source"}
    n = len(p["default_converged"])
    to_ok = p["default_converged"].astype(bool)
    ratio = np.median(p["policy_cost"][to_ok] / p["default_cost"][to_ok])

    def cell(key: str) -> str:
        return f"{int(p[f'{key}_converged'].sum())}/{n}, {p[f'{key}_iterations'].mean():.1f}"
    return (f"| {run.name} | {cell('default')} | {cell('warm')} ({int(p['diverged'].sum())} diverged) | "
            f"{cell('nn')} | {cell('nn_feedback')} | {ratio:.3g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished loop run directories")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--eval-seeds", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--out", required=True, help="folder for the copies (one per run, training and held-out seed)")
    ap.add_argument("--threads", type=int, default=1, help="solver threads")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for src in map(Path, args.runs):
        if not (src / "final" / "policy.pt").exists():
            raise SystemExit(f"runs: {src} is not a finished loop (no final/policy.pt)")
        for ts in args.train_seeds:
            for es in args.eval_seeds:
                dst = out / f"{src.name}-t{ts}-e{es}"
                copies.append(dst)
                if (dst / "final" / "eval.json").exists():
                    continue
                shutil.rmtree(dst, ignore_errors=True)
                _copy(src, dst, ts, es)
                with open(f"{dst}.log", "w") as log:
                    subprocess.run([sys.executable, "-m", "sobolev_warmstart.cli", "loop", "--config",
                                    str(dst / "config.json"), "--run-dir", str(dst), "--set",
                                    f"solver.num_threads={args.threads}"], stdout=log, stderr=subprocess.STDOUT,
                                   check=True)
    print("| copy (run-t<train seed>-e<held-out seed>) | TO alone: converged, iters | warm start | NN | NN+feedback | "
          "policy/TO median |")
    print("|---|---|---|---|---|---|")
    for dst in copies:
        print(_row(dst))


if __name__ == "__main__":
    main()
