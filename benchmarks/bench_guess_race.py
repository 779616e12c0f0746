"""Would a short race between the fallback's guess and the lookup's pick the faster refine? (round 48)

On the pendubot the scorecard's fallback ("Sob+Diff, NN fallback", its bound calibrated since round 47) and the lookup each refine faster on
about half of the held-out instances. Per instance of a scorecard variant folder, both guesses are refined in full,
and again for only ``k`` iterations (``--iterations``); the race keeps the guess whose ``k``-iteration iterate is
better by one criterion (its objective ``cost``, its dual infeasibility ``dual``, its primal infeasibility ``primal``)
and counts that guess's full refine. A user would pay the race too: ``2k`` iterations more where both races restart
from their guesses (the table's "+2k" column), ``k`` where the winner's solve goes on from its iterate. "Oracle"
keeps the guess whose refine took fewer iterations, which no user can know beforehand: the most any selection
could save.

    python3 benchmarks/bench_guess_race.py runs/scorecard-v29/double_pendulum/default --test-seed 11000001
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import refine_guesses

from bench_action_steps import folder_lookup, held_out  # benchmarks/bench_action_steps.py, beside this script

CRITERIA = {"cost": "cost", "dual": "dual_infeasibility", "primal": "primal_infeasibility"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's)")
    ap.add_argument("--instances", type=int, default=None, help="held-out instances (default: the folder's count)")
    ap.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 3, 5], help="the race's length k")
    args = ap.parse_args()
    if min(args.iterations) < 1:
        raise SystemExit(f"--iterations: expected positive integers, got {args.iterations}")
    folder = Path(args.folder)
    s, task, x0s, params = held_out(folder, args.test_seed, args.instances)
    options = s.options(1)
    lookup = folder_lookup(folder)
    export = str(folder / "sob_diff" / "policy_export.safetensors")
    fallback = s.fallback(lookup, task, export)  # the folder's own: calibrated, or its fixed bound
    ro = sw.rollout(task, x0s, params, sw.load_policy_runner(export), action_steps=s.action_steps, seed=0,
                    num_threads=1)
    guesses = {"fallback": fallback.apply(task, x0s, params, ro, s.divergence_bound, 1)[0],
               "nn": lookup.rollout(task, x0s, params)}
    full, short = {}, {}
    for name, guess in guesses.items():
        ws, diverged = refine_guesses(task, x0s, params, guess, options, s.divergence_bound)
        iters = np.asarray(ws.warm.iterations, float)
        iters[diverged] = options.max_iters  # a diverged guess is not refined: it costs the whole budget
        full[name] = iters
        for k in args.iterations:
            part, _ = refine_guesses(task, x0s, params, guess, dataclasses.replace(options, max_iters=k),
                                     s.divergence_bound)
            short[name, k] = {c: np.asarray(getattr(part.warm, field), float) for c, field in CRITERIA.items()}
    a, b = full["fallback"], full["nn"]
    print(f"{s.task}/{s.variant}, {len(x0s)} held-out instances (seed {s.test_seed}); mean refine iterations: "
          f"fallback {a.mean():.1f}, NN {b.mean():.1f}, oracle {np.minimum(a, b).mean():.1f} (fallback faster on "
          f"{100 * (a < b).mean():.0f}%, slower on {100 * (a > b).mean():.0f}%)\n")
    print("| k | criterion | picks the fallback [%] | iterations of the picked | + k | + 2k |")
    print("|---|---|---|---|---|---|")
    for k in args.iterations:
        for c in CRITERIA:
            pick = short["fallback", k][c] <= short["nn", k][c]
            chosen = np.where(pick, a, b).mean()
            print(f"| {k} | {c} | {100 * pick.mean():.0f} | {chosen:.1f} | {chosen + k:.1f} | {chosen + 2 * k:.1f} |")


if __name__ == "__main__":
    main()
