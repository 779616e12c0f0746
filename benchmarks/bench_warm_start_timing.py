"""Warm-start total time (guess + solve) per method, timed in interleaved rounds so that the ratios hold (round 25)

The scorecard times each method once, one method's batch after another: a method whose batch ran while the machine
was busier looks slower. On `ur5/random_start_fixed_target` the same lookup's solves took a median 1.13 ms per
iteration in scorecard v16 and 1.28-1.84 ms in two runs beside other jobs minutes later, more than the differences
between methods that the scorecard's time column is read for. Here, in each of ``--rounds`` rounds, every method's
guess is made and refined, the methods in a rotated order (the policies rolled out once, untimed, before). Per
method: the mean refine iterations (they do not depend on the timing), and per round the mean total time per
instance (guess + solve), both over the refined instances as in the scorecard (a diverged guess is not refined); the
table gives the median over rounds and each method's median ratio to ``--reference`` (NN by default) over rounds,
with its range. Run it on an otherwise idle machine; it solves and rolls out on one thread.

    python3 benchmarks/bench_warm_start_timing.py runs/scorecard-v17/double_pendulum/default --rounds 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import default_guesses, refine_guesses

from bench_action_steps import folder_lookup, held_out  # benchmarks/bench_action_steps.py, beside this script

METHODS = ("to", "nn", "nn_feedback", "diff", "sob_diff", "sob_diff_nn")
POLICY_METHODS = ("diff", "sob_diff", "sob_diff_nn")
LABELS = {"to": "TO alone", "nn": "NN", "nn_feedback": "NN+feedback", "diff": "Diff", "sob_diff": "Sob+Diff",
          "sob_diff_nn": "Sob+Diff, NN fallback"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="scorecard variant folders (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (each makes and refines every guess once)")
    ap.add_argument("--reference", default="nn", choices=METHODS, help="the method the ratios are taken to")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's)")
    ap.add_argument("--instances", type=int, default=None,
                    help="held-out instances (default: the folder's 32 or so; refine iterations are heavy-tailed, and "
                    "more instances settle differences of 10-20%% in the mean, round 35)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                    help="the methods to time (default: all; sob_diff_nn is Sob+Diff with the lookup fallback, "
                         "sw.LookupFallback with the folder's bound: calibrated, or a fixed fallback_cost_ratio)")
    ap.add_argument("--action-steps", type=int, nargs="+", default=None,
                    help="the policies' executed actions per replan (A) to time, each a row per policy method "
                         "(default: the folder's own A; a larger A calls the network A times less often, round 46)")
    args = ap.parse_args()
    picked = tuple(m for m in METHODS if m in args.methods)
    if args.reference not in picked:
        raise SystemExit(f"--reference: {args.reference} is not among --methods {list(picked)}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds: expected at least 1, got {args.rounds}")
    if args.action_steps is not None and min(args.action_steps) < 1:
        raise SystemExit(f"--action-steps: expected positive integers, got {args.action_steps}")
    print(f"| variant | method | iters mean | total [ms], median of {args.rounds} rounds [min, max] | guess [ms] | "
          f"total / {LABELS[args.reference]} [min, max] | converged [%] |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, args.folders):
        s, task, x0s, params = held_out(folder, args.test_seed, args.instances)
        steps = args.action_steps or [s.action_steps]
        # a method with its A: (name, A), A = 0 for TO alone and the lookups
        methods = tuple((m, a) for m in picked for a in (steps if m in POLICY_METHODS else [0]))
        reference = next(k for k in methods if k[0] == args.reference)
        name = f"{s.task}/{s.variant}"
        options = s.options(1)
        lookup = folder_lookup(folder)
        runners = {m: sw.load_policy_runner(str(folder / m / "policy_export.safetensors"))
                   for m in ("diff", "sob_diff")}

        def guess(method: str, action_steps: int):
            """TO alone's default guesses ``(xs, us, seconds per instance)``, or a lookup's or a policy's
            RolloutResult (its ``time`` per instance; the policy executes ``action_steps`` actions per replan)."""
            if method == "to":
                t0 = time.perf_counter()
                xs, us = default_guesses(task, x0s, params)
                return xs, us, (time.perf_counter() - t0) / len(x0s)
            if method in ("nn", "nn_feedback"):
                return lookup.rollout(task, x0s, params, feedback=method == "nn_feedback")
            policy = runners["sob_diff" if method == "sob_diff_nn" else method]
            ro = sw.rollout(task, x0s, params, policy, action_steps=action_steps, seed=0, num_threads=1)
            if method == "sob_diff_nn":  # the same rollouts, those above their bound replaced by the lookup's guess
                ro = fallback.apply(task, x0s, params, ro, s.divergence_bound, 1)[0]
            return ro

        fallback = s.fallback(lookup, task, str(folder / "sob_diff" / "policy_export.safetensors"))
        for m, a in methods:
            if m in POLICY_METHODS:
                guess(m, a)  # warm-up, untimed (the fallback's lookup also scores its training solutions once)
        totals = {m: [] for m in methods}
        guesses = {m: [] for m in methods}
        results = {}
        for r in range(args.rounds):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for key in order:
                m = key[0]
                made = guess(*key)
                if m == "to":
                    xs, us, g = made
                    res = sw.solve(task, x0s, params, xs, us, options=options)
                    refined = np.ones(len(x0s), bool)
                    iters, solve_time, conv = res.iterations, res.solve_time, res.converged
                    per_guess = np.full(len(x0s), g)
                else:
                    ws, diverged = refine_guesses(task, x0s, params, made, options, s.divergence_bound)
                    refined = ~diverged
                    iters, solve_time, conv = ws.warm.iterations, ws.warm.solve_time, ws.warm.converged
                    per_guess = np.asarray(ws.rollout.time, float)
                totals[key].append(float(np.mean((per_guess + np.asarray(solve_time, float))[refined])))
                guesses[key].append(float(np.mean(per_guess[refined])))
                results[key] = (np.asarray(iters, float)[refined].mean(), (np.asarray(conv, bool) & refined).mean())
        ref = np.asarray(totals[reference])
        for m in methods:
            t = np.asarray(totals[m])
            ratio = t / ref
            label = LABELS[m[0]] + (f" (A={m[1]})" if m[1] and len(steps) > 1 else "")
            print(f"| {name} | {label} | {results[m][0]:.1f} | {1e3 * np.median(t):.1f} [{1e3 * t.min():.1f}, "
                  f"{1e3 * t.max():.1f}] | {1e3 * np.median(guesses[m]):.2f} | {np.median(ratio):.2f} "
                  f"[{ratio.min():.2f}, {ratio.max():.2f}] | {100 * results[m][1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
