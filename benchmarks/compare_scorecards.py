"""Two scorecard runs side by side: per variant and method, each figure as ``before -> after`` (round 26)

For a change that leaves the training alone (the sampler, the replanning length), two full scorecards with the same
seeds differ by that change only; this prints the cells of every variant both runs finished, from their
``result.json`` files: policy/TO median, diverged [%], mean refine iterations, converged [%], and the single-pass
rollout and total times [ms] (which swing from run to run: ``bench_warm_start_timing.py`` times methods reliably).

    python3 benchmarks/compare_scorecards.py runs/scorecard-v17 runs/scorecard-v18
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIELDS = (("policy_cost_ratio_median", 1, ".3g"), ("diverged", 100, ".0f"), ("iterations_mean", 1, ".1f"),
          ("converged", 100, ".0f"), ("rollout_time_mean", 1e3, ".2f"), ("total_time_mean", 1e3, ".1f"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", help="a scorecard output folder (holding <task>/<variant>/result.json)")
    ap.add_argument("after", help="another one")
    ap.add_argument("--methods", nargs="+", default=["to", "nn", "nn_feedback", "diff", "sob_diff"],
                    help="rows to print (method names)")
    args = ap.parse_args()
    before, after = Path(args.before), Path(args.after)
    for folder in (before, after):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder")
    print("| variant | method | policy/TO median | diverged [%] | iters mean | converged [%] | rollout [ms] "
          "| total [ms] |")
    print("|---|---|---|---|---|---|---|---|")
    for path_b in sorted(after.glob("*/*/result.json")):
        path_a = before / path_b.relative_to(after)
        if not path_a.exists():
            continue
        doc_a, doc_b = json.loads(path_a.read_text()), json.loads(path_b.read_text())
        rows_a = {r["method"]: r for r in doc_a["rows"]}
        for row in doc_b["rows"]:
            old = rows_a.get(row["method"])
            if old is None or row["method"] not in args.methods:
                continue
            cells = [f"{scale * old[k]:{spec}} -> {scale * row[k]:{spec}}" for k, scale, spec in FIELDS]
            print(f"| {doc_b['task']}/{doc_b['variant']} | {row['label']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
