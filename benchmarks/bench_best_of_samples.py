"""Would rolling a diffusion policy out N times and keeping the cheapest rollout make a better warm start? (round 23)

A diffusion policy is stochastic: each rollout seed draws other noise. Per held-out instance of a scorecard variant
folder (its exported policy, its held-out instances and solver settings), the policy is rolled out with seeds
0 .. S-1 and each rollout refined by the solver. "Best of N" keeps, per instance, the rollout of least objective
among N of them (a diverged one never), as a user could without solving; the seeds are split into S / N disjoint
groups and the table gives the median over groups [min, max]. The rollout time counts all N rollouts (run one after
the other here; a lockstep batch would share the network calls). "Oracle" keeps the rollout whose refinement took
the fewest iterations, which no user can know beforehand: what the best selection could reach.

    python3 benchmarks/bench_best_of_samples.py runs/scorecard-v13/double_pendulum/default --seeds 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import refine_rollouts

from bench_action_steps import held_out  # benchmarks/bench_action_steps.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (<out>/<task>/<variant>, with settings.json)")
    ap.add_argument("--seeds", type=int, default=8, help="rollout seeds S (a power of two)")
    ap.add_argument("--method", default="sob_diff", choices=("sob_diff", "diff"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's)")
    ap.add_argument("--instances", type=int, default=None, help="held-out instances (default: the folder's count)")
    args = ap.parse_args()
    folder = Path(args.folder)
    s, task, x0s, params = held_out(folder, args.test_seed, args.instances)
    options = s.options(args.threads)
    runner = sw.load_policy_runner(str(folder / args.method / "policy_export.safetensors"))
    cost, iters, conv, roll, solve = [], [], [], [], []
    for seed in range(args.seeds):
        ws, diverged = refine_rollouts(task, x0s, params, runner, None, seed, options, s.divergence_bound)
        cost.append(np.where(diverged, np.inf, ws.policy_cost))
        iters.append(np.asarray(ws.warm.iterations, dtype=float))
        conv.append(np.asarray(ws.warm.converged, bool) & ~diverged)
        roll.append(np.asarray(ws.rollout.time))
        solve.append(np.asarray(ws.warm.solve_time))
    cost, iters, conv, roll, solve = map(np.asarray, (cost, iters, conv, roll, solve))
    to = sw.solve(task, x0s, params, options=options)
    ok = np.asarray(to.converged, bool)
    idx = np.arange(len(x0s))
    print(f"{s.task}/{s.variant}, {args.method}, {len(x0s)} held-out instances (seed {s.test_seed}), rollout seeds "
          f"0..{args.seeds - 1}; TO alone: {to.iterations.mean():.1f} iters, {100 * ok.mean():.0f}% converged, "
          f"{1e3 * to.solve_time.mean():.1f} ms\n")
    print("| selection | policy/TO median | iters mean | converged [%] | rollout ms (all N) | total ms |")
    print("|---|---|---|---|---|---|")

    def cell(values: list[float], spec: str) -> str:
        v = np.asarray(values)
        return f"{np.median(v):{spec}}" + (f" [{v.min():{spec}}, {v.max():{spec}}]" if len(v) > 1 else "")

    n = 1
    while n <= args.seeds:
        rows = []
        for g in range(args.seeds // n):
            part = slice(g * n, (g + 1) * n)
            k = np.argmin(cost[part], axis=0)
            ratio = np.median(cost[part][k, idx][ok] / to.cost[ok])
            rollout_ms = 1e3 * roll[part].sum(0)
            rows.append((ratio, iters[part][k, idx].mean(), 100 * conv[part][k, idx].mean(), rollout_ms.mean(),
                         (rollout_ms + 1e3 * solve[part][k, idx]).mean()))
        cols = list(zip(*rows))
        print(f"| best of {n} | {cell(cols[0], '.3g')} | {cell(cols[1], '.1f')} | {cell(cols[2], '.0f')} | "
              f"{cell(cols[3], '.1f')} | {cell(cols[4], '.1f')} |")
        n *= 2
    k = np.argmin(np.where(conv, iters, np.inf), axis=0)
    print(f"| oracle of {args.seeds} (fewest iterations) | | {iters[k, idx].mean():.1f} | "
          f"{100 * conv.any(0).mean():.0f} | | |")
    same = np.mean([np.ptp(iters[:, i]) == 0 for i in idx])
    print(f"\n{100 * same:.0f}% of the instances take the same iterations from every seed's rollout.")


if __name__ == "__main__":
    main()
