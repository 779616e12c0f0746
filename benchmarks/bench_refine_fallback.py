"""Would a refine that falls back to TO alone's guess after a bounded number of iterations cut the warm starts'
tails? (round 38)

Reads a scorecard's per-instance results (``per_instance.npz`` of every variant; no new solve). For each cap C in
``--caps``: a guess whose refine took more than C iterations instead costs C iterations and then TO alone's solve of
the same instance from its default guess, which is deterministic, so its iterations and convergence are TO alone's
as the scorecard measured them. A diverged guess (never refined) is solved from TO alone's guess in every row,
without the cap, so every row averages over every instance. Times are estimates from the scorecard's single pass:
the first C iterations at the refine's own mean time per iteration, plus TO alone's solve time. Cells: mean
iterations / estimated total ms / converged %:

    python3 benchmarks/bench_refine_fallback.py runs/scorecard-v23 --caps 100 50
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

METHODS = ("nn", "nn_feedback", "diff", "sob_diff")
LABELS = {"nn": "NN", "nn_feedback": "NN+feedback", "diff": "Diff", "sob_diff": "Sob+Diff"}


def with_fallback(d, method: str, cap: int | None) -> tuple[float, float, float]:
    """Mean iterations, mean total ms (estimated past the cap) and % converged of ``method`` with the fall-back."""
    it = d[f"{method}_iterations"].astype(float)
    solve = d[f"{method}_solve_time"].astype(float)
    conv = d[f"{method}_converged"].astype(bool)
    spent = np.zeros_like(it)  # iterations of the guess's own refine before TO alone's solve takes over
    restart = d[f"{method}_diverged"].astype(bool)
    if cap is not None:
        slow = ~restart & (it > cap)
        spent[slow] = cap
        restart = restart | slow
    per_iter = np.divide(solve, it, out=np.zeros_like(solve), where=it > 0)
    total = d[f"{method}_rollout_time"] + np.where(restart, spent * per_iter + d["to_solve_time"], solve)
    it = np.where(restart, spent + d["to_iterations"], it)
    conv = np.where(restart, d["to_converged"].astype(bool), conv)
    return it.mean(), 1e3 * total.mean(), 100 * conv.mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scorecard", help="a scorecard output folder (<task>/<variant>/per_instance.npz)")
    ap.add_argument("--caps", type=int, nargs="+", default=[100, 50], help="iterations before falling back")
    args = ap.parse_args()
    if any(c < 1 for c in args.caps):
        raise SystemExit(f"--caps: expected iteration counts >= 1, got {args.caps}")
    paths = sorted(Path(args.scorecard).glob("*/*/per_instance.npz"))
    if not paths:
        raise SystemExit(f"scorecard: no <task>/<variant>/per_instance.npz under {args.scorecard}")
    print("| variant | cap | TO alone | " + " | ".join(LABELS[m] for m in METHODS) + " |")
    print("|---|---|" + "---|" * (len(METHODS) + 1))
    for path in paths:
        d = np.load(path)
        key = f"{path.parent.parent.name}/{path.parent.name}"
        to = "%.1f / %.1f / %.0f" % (d["to_iterations"].mean(), 1e3 * d["to_solve_time"].mean(),
                                     100 * d["to_converged"].mean())
        for cap in (None, *args.caps):
            cells = ["%.1f / %.1f / %.0f" % with_fallback(d, m, cap) for m in METHODS]
            print(f"| {key} | {'none' if cap is None else cap} | {to} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
