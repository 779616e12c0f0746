"""Does each warm start want other solver settings? The same guesses refined under several ProxDDP settings (round 23)

Every method's guesses on a scorecard variant's held-out instances are made once: TO alone's default guess, the
lookups' (``nn``, ``nn_feedback``, from the variant's training set) and the learned policies' rollouts (seed 0,
its exported Diff and Sob+Diff). Each is then refined under each ``--set key=value`` of ``SolverOptions``
(``base``: the scorecard's settings), so a row differs from the base only in that setting. A lookup's ``nn``
guess is not dynamically feasible (the neighbour's states from the new start), the rollouts are: a setting such
as the initial penalty ``mu_init`` may treat them differently. Iterations: mean over the refined instances (a failed
solve counts its whole budget); ms: the guess's time plus the solve, per instance.

    python3 benchmarks/bench_solver_settings.py runs/scorecard-v13/ur5/fixed_start_random_target \\
        --set mu_init=0.1 mu_init=0.01 mu_init=1e-4 mu_init=1e-5

``-n`` and ``--test-seed`` choose other held-out instances than the folder's. Given a variant key instead of a
folder, only TO alone is solved, on ``-n`` instances (default 32) of the held-out seed (``--test-seed``, default the
scorecard's) with the variant's full-scale scorecard settings as the base:

    python3 benchmarks/bench_solver_settings.py double_pendulum/default -n 64 --test-seed 2000000 --set mu_init=0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import load_settings, settings_for
from sobolev_warmstart.warmstart import default_guesses, diverged_rollouts

from bench_action_steps import folder_lookup  # benchmarks/bench_action_steps.py, beside this script

METHODS = ("to", "nn", "nn_feedback", "diff", "sob_diff")


def _parse(change: str) -> tuple[str, object]:
    key, sep, value = change.partition("=")
    if not sep:
        raise SystemExit(f"--set: expected key=value, got {change!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (<out>/<task>/<variant>, with settings.json), or a "
                                   "variant key (task/variant: TO alone only)")
    ap.add_argument("-n", type=int, default=None, help="held-out instances (default: the folder's count; 32 for a "
                    "variant key)")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's, or "
                    "the scorecard's for a variant key)")
    ap.add_argument("--set", nargs="*", default=[], dest="changes", help="SolverOptions key=value, one per row")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="solve each row this many times; the fastest timing")
    args = ap.parse_args()
    folder = Path(args.folder)
    to_only = not folder.is_dir()
    s = settings_for(args.folder, "full") if to_only else load_settings(folder)
    n = args.n if args.n is not None else (32 if to_only else s.test_instances)
    s = dataclasses.replace(s, test_instances=n, test_seed=s.test_seed if args.test_seed is None else args.test_seed)
    task = sw.make_task(s.task, s.variant)
    x0s, params = task.sample_instances(s.test_instances, seed=s.test_seed)
    base = s.options(args.threads)
    methods = ("to",) if to_only else METHODS

    guesses: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}  # xs, us, time, ok
    xs, us = default_guesses(task, x0s, params)
    guesses["to"] = (xs, us, np.zeros(len(x0s)), np.ones(len(x0s), bool))
    if not to_only:
        lookup = folder_lookup(folder)
    for method in methods[1:]:
        if method in ("nn", "nn_feedback"):
            ro = lookup.rollout(task, x0s, params, feedback=method == "nn_feedback")
        else:
            runner = sw.load_policy_runner(str(folder / method / "policy_export.safetensors"))
            sw.rollout(task, x0s, params, runner, seed=0, num_threads=args.threads)  # warm-up, untimed
            ro = sw.rollout(task, x0s, params, runner, seed=0, num_threads=args.threads)
        ok = ~diverged_rollouts(ro.xs, s.divergence_bound)
        guesses[method] = (ro.xs, ro.us, np.asarray(ro.time, dtype=float), ok)

    print(f"{s.task}/{s.variant}: {len(x0s)} held-out instances (seed {s.test_seed}); base settings "
          f"mu_init {base.mu_init:g}, tol {base.tol:g}, max_iters {base.max_iters}, dual_init {base.dual_init}, "
          f"step_acceptance {base.step_acceptance}, stall_iters {base.stall_iters}\n")
    print("| setting | " + " | ".join(f"{m}: iters / ms / conv %" for m in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for change in ["base", *args.changes]:
        options = base if change == "base" else dataclasses.replace(base, **dict([_parse(change)]))
        cells = []
        for method in methods:
            xs, us, t, ok = guesses[method]
            best = None
            for _ in range(args.repeats):
                res = sw.solve(task, x0s[ok], params[ok], xs[ok], us[ok], options)
                best = res if best is None or res.solve_time.sum() < best.solve_time.sum() else best
            ms = 1e3 * (t[ok] + best.solve_time).mean()
            conv = 100 * np.asarray(best.converged, bool).sum() / len(x0s)
            cells.append(f"{best.iterations.mean():.1f} / {ms:.1f} / {conv:.0f}")
        print(f"| {change} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
