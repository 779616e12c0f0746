"""How many ProxDDP iterations a primal warm start saves, as a function of how good the guess is, with no
policy involved: the ceiling any learned warm start can reach on a task.

Each guess (``sw.perturbed_solution_guess``) is a closed-loop rollout of the solver's own solution,
u_t = u*_t + K_t (x_t - x*_t) + sigma * w_t, with w_t ~ N(0, 1) scaled by the torque limit and the torques
clamped to their bounds, so it is dynamically feasible and, for small sigma, as close to the optimum as a
policy could get. The solver then starts from it
(with the same options as the default-guess solve, side by side in one run).

    PYTHONPATH=python python3 benchmarks/bench_guess_quality.py --task double_pendulum
    PYTHONPATH=python python3 benchmarks/bench_guess_quality.py --task pendulum

What it showed (docs/results/REPORT.md, "Where a warm start can help"): on the pendulum, whose optimal torques
sit on their bounds 28% of the time, even a guess within 1e-4 of the optimal cost needs as many iterations as
the default guess; on the double pendulum (pendubot, 0.3% saturated) a guess within 7.4% of the optimal cost
needs 12.5 iterations instead of 56.5 (medians, 32 instances).
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="double_pendulum", choices=["pendulum", "double_pendulum"])
    ap.add_argument("-n", type=int, default=32, help="instances")
    ap.add_argument("--seed", type=int, default=123, help="instance seed")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1e-3, 1e-2, 3e-2])
    args = ap.parse_args()
    task = sw.make_task(args.task)
    x0s, params = task.sample_instances(args.n, seed=args.seed)
    default = sw.solve(task, x0s, params)
    saturated = np.mean((default.us >= task.u_upper - 1e-3 * (task.u_upper - task.u_lower))
                        | (default.us <= task.u_lower + 1e-3 * (task.u_upper - task.u_lower)))
    print(f"task {task.name}, {args.n} instances (seed {args.seed}); optimal torques on their bounds: "
          f"{100 * saturated:.1f}% of steps")
    print(f"TO alone (default guess): median {np.median(default.iterations):.1f} iterations, "
          f"{default.converged.sum()}/{args.n} converged")
    print(f"{'sigma':>8s} {'cost gap, median':>17s} {'iterations, median':>19s} {'converged':>10s}")
    for sigma in args.sigmas:
        try:
            xs, us = sw.perturbed_solution_guess(task, x0s, default, sigma, seed=0)
        except ValueError as e:
            print(f"{sigma:8.0e}   ({e})")
            continue
        gap = sw._core.trajectory_costs(task, x0s, params, xs, us) / default.cost - 1.0
        warm = sw.solve(task, x0s, params, xs, us)
        print(f"{sigma:8.0e} {np.median(gap):17.1e} {np.median(warm.iterations):19.1f} "
              f"{warm.converged.sum():6d}/{args.n}")


if __name__ == "__main__":
    main()
