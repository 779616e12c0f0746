"""Why does a refine fail? A few held-out instances' refines from an exported policy's rollouts, under several solver
settings: iterations, convergence, refined cost, and the primal and dual infeasibility where each solve stopped
(the stall switch engages only on a primal-feasible iterate whose dual infeasibility is within 10 tol; round 37).

The policy rolls out on all ``-n`` instances of the held-out seed in one batch (seed 0), as the scorecard's
evaluation does, so the chosen instances get the same guesses they got there (a loop evaluates in batches of
``collect_batch`` with their own seeds: past its first batch the guesses differ slightly); TO alone's refine from the
default guess is the last row. The base settings are the variant's (``SolverOptions.for_task``), one thread.

    python3 benchmarks/bench_refine_instances.py runs/loop39/ur5-switch/final/policy_export.safetensors \\
        --variant ur5/random_start_random_target -n 64 --instances 34 0 1 \\
        --set mu_init=0.01 mu_init=0.1 mu_init=1e-4 step_acceptance=linesearch stall_iters=0
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import guess_costs

from bench_solver_settings import _parse  # benchmarks/bench_solver_settings.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="an exported policy (.safetensors, .pt or .pt2)")
    ap.add_argument("--variant", required=True, help="task/variant, e.g. ur5/random_start_random_target")
    ap.add_argument("-n", type=int, required=True, help="held-out instances the evaluation rolled out in one batch")
    ap.add_argument("--test-seed", type=int, default=1_000_000)
    ap.add_argument("--instances", type=int, nargs="+", required=True, help="indices among the -n to refine")
    ap.add_argument("--action-steps", type=int, default=None, help="executed actions per replan (default: the "
                    "policy's own)")
    ap.add_argument("--set", nargs="*", default=[], dest="changes", help="SolverOptions key=value, one per row")
    args = ap.parse_args()
    name, sep, variant = args.variant.partition("/")
    if not sep:
        raise SystemExit(f"--variant: expected task/variant, got {args.variant!r}")
    if not args.instances or min(args.instances) < 0 or max(args.instances) >= args.n:
        raise SystemExit(f"--instances: expected indices in [0, {args.n}), got {args.instances}")
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(args.n, seed=args.test_seed)
    base = sw.SolverOptions.for_task(task, num_threads=1)
    ro = sw.rollout(task, x0s, params, sw.load_policy_runner(args.policy), action_steps=args.action_steps, seed=0,
                    num_threads=1)
    idx = np.asarray(args.instances)
    x0, prm, xs, us = x0s[idx], params[idx], ro.xs[idx], ro.us[idx]
    if any(ro.errors[i] for i in idx):
        raise SystemExit(f"instances {[int(i) for i in idx if ro.errors[i]]}: the rollout diverged, no guess to refine")
    costs = guess_costs(task, x0, prm, xs, us, bound=1e3, num_threads=1)
    print(f"{task.name}/{task.variant}: instances {[int(i) for i in idx]} of {args.n} (seed {args.test_seed}); "
          f"rollout costs "
          f"{np.array2string(costs, precision=2)}; base mu_init {base.mu_init:g}, tol {base.tol:g}, max_iters "
          f"{base.max_iters}, step_acceptance {base.step_acceptance}, stall_iters {base.stall_iters}\n")
    print("| setting | iterations | converged | refined cost | primal infeasibility | dual infeasibility |")
    print("|---|---|---|---|---|---|")

    def row(label: str, res) -> None:
        fmt = lambda a, f: " ".join(f % v for v in a)  # noqa: E731
        print(f"| {label} | {fmt(res.iterations, '%d')} | {fmt(res.converged, '%d')} | {fmt(res.cost, '%.4f')} | "
              f"{fmt(res.primal_infeasibility, '%.1e')} | {fmt(res.dual_infeasibility, '%.1e')} |", flush=True)

    for change in ["base", *args.changes]:
        options = base if change == "base" else dataclasses.replace(base, **dict([_parse(change)]))
        row(change, sw.solve(task, x0, prm, xs, us, options))
    row("TO alone (default guess)", sw.solve(task, x0, prm, options=base))


if __name__ == "__main__":
    main()
