"""How many of each chunk's actions should a rollout execute before replanning (A), on every scorecard variant? (round 24)

The scorecard's policies are trained with A = 1 (replan at every step) and rolled out with it. A policy's A is a
rollout setting: the same exported policy executes the first A actions of each denoised chunk, so a larger A costs
A times fewer network calls (and noise draws) per rollout. Per scorecard variant folder (its exported policies,
held-out instances and solver settings), each A is rolled out with seeds 0 .. S-1 and refined by the solver; the
rollouts and solves of a row run one after the other on one thread, beside TO alone and the nearest-neighbour
lookup in the same run, so the times compare. Cells: mean over seeds (policy/TO: median over the pooled
(seed, instance) pairs where TO alone converged; iterations and times over the refined instances, as the
scorecard).

    python3 benchmarks/bench_action_steps.py runs/scorecard-v14/ur5/fixed_start_random_target --steps 1 2 4
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup
from sobolev_warmstart.data import load_dataset
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import refine_rollouts


def folder_lookup(folder: Path) -> NearestNeighbourLookup:
    """The lookup of a scorecard variant folder's training set (``collect/trajectories.npz``), as its evaluation
    builds it."""
    return NearestNeighbourLookup.from_data(load_dataset(folder / "collect" / "trajectories.npz").data)


def held_out(folder: Path, test_seed: int | None, instances: int | None = None):
    """``(settings, task, x0s, params)``: a scorecard variant folder's settings, task and held-out instances (of
    ``test_seed``, default the folder's own; never its training seed; ``instances`` of them, default the folder's
    count)."""
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    if test_seed is not None:
        try:  # the settings refuse a held-out seed equal to the training seed
            s = dataclasses.replace(s, test_seed=test_seed)
        except ValueError as exc:
            raise SystemExit(f"--test-seed: {exc} ({folder})") from None
    if instances is not None:
        try:  # the settings refuse a count below 1
            s = dataclasses.replace(s, test_instances=instances)
        except ValueError as exc:
            raise SystemExit(f"--instances: {exc} ({folder})") from None
    x0s, params = task.sample_instances(s.test_instances, seed=s.test_seed)
    return s, task, x0s, params


def seed_statistics(refine, seeds: int, to) -> dict[str, float]:
    """A guess's figures over rollout seeds ``0..seeds-1``: ``refine(seed) -> (WarmStartResult, diverged)``; ``to``:
    TO alone's solve of the same instances. The median policy/TO ratio over the (seed, instance) pairs where TO alone
    converged; the diverged share; over the refined guesses the mean iterations, rollout and total time [s]; and the
    converged share (a diverged guess is not refined and counts as not converged)."""
    ok = np.asarray(to.converged, bool)
    ratios, div, iters, roll, total, conv = [], [], [], [], [], []
    for seed in range(seeds):
        ws, diverged = refine(seed)
        refined = ~diverged
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratios.append(np.asarray(ws.policy_cost)[ok] / np.asarray(to.cost)[ok])
        div.append(diverged.mean())
        iters.append(np.asarray(ws.warm.iterations, float)[refined].mean())
        roll.append(np.asarray(ws.rollout.time)[refined].mean())
        total.append((np.asarray(ws.rollout.time) + np.asarray(ws.warm.solve_time))[refined].mean())
        conv.append((np.asarray(ws.warm.converged, bool) & refined).mean())
    return {"ratio": float(np.median(np.concatenate(ratios))), "diverged": float(np.mean(div)),
            "iterations": float(np.mean(iters)), "rollout": float(np.mean(roll)), "total": float(np.mean(total)),
            "converged": float(np.mean(conv))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="scorecard variant folders (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="values of A")
    ap.add_argument("--seeds", type=int, default=3, help="rollout seeds S")
    ap.add_argument("--methods", nargs="+", default=["sob_diff"], choices=("sob_diff", "diff"))
    ap.add_argument("--test-seed", type=int, default=None,
                    help="held-out instance seed (default: the folder's; another one checks a choice of A)")
    args = ap.parse_args()
    print("| variant | method | A | policy/TO median | diverged [%] | iters mean | rollout [ms] | total [ms] | "
          "converged [%] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in map(Path, args.folders):
        s, task, x0s, params = held_out(folder, args.test_seed)
        key = f"{s.task}/{s.variant}"
        options = s.options(1)
        to = sw.solve(task, x0s, params, options=options)
        ok = np.asarray(to.converged, bool)
        print(f"| {key} | TO alone | | | 0 | {to.iterations.mean():.1f} | 0 | {1e3 * to.solve_time.mean():.1f} | "
              f"{100 * ok.mean():.0f} |")
        lookup = folder_lookup(folder)
        t0 = time.perf_counter()
        guess = lookup.rollout(task, x0s, params, feedback=False)
        lookup_time = (time.perf_counter() - t0) / len(x0s)
        nn = sw.solve(task, x0s, params, guess.xs, guess.us, options=options)
        print(f"| {key} | NN | | | 0 | {nn.iterations.mean():.1f} | {1e3 * lookup_time:.2f} | "
              f"{1e3 * (lookup_time + nn.solve_time.mean()):.1f} | {100 * nn.converged.mean():.0f} |")
        for method in args.methods:
            runner = sw.load_policy_runner(str(folder / method / "policy_export.safetensors"))
            sw.rollout(task, x0s, params, runner, seed=0, num_threads=1)  # warm-up, untimed
            limit = runner.horizon - runner.history
            for a in args.steps:
                if not 1 <= a <= limit:
                    print(f"| {key} | {method} | {a} | (A must be 1..{limit} for this policy) | | | | | |")
                    continue
                st = seed_statistics(lambda seed: refine_rollouts(task, x0s, params, runner, a, seed, options,
                                                                  s.divergence_bound), args.seeds, to)
                print(f"| {key} | {method} | {a} | {st['ratio']:.3g} | {100 * st['diverged']:.0f} | "
                      f"{st['iterations']:.1f} | {1e3 * st['rollout']:.2f} | {1e3 * st['total']:.1f} | "
                      f"{100 * st['converged']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
