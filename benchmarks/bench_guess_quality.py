"""How hard a task is for ProxDDP from its default guess, and how many iterations a near-optimal guess saves:
the ceiling any learned warm start can reach on a task, with no policy involved.

For each task variant, on ``-n`` seeded instances with the solver budget ``--max-iters``:

- TO alone from the task's default (interpolation) guess: convergence, mean / median iterations and solve time,
  and the spread of the converged costs (p10, p50, p90, p90/p10: solutions of very different cost on instances
  drawn from one distribution mean poor local minima);
- for each ``--sigmas`` value, the solver re-started from a near-optimal guess of the instances TO alone solved
  (``sw.perturbed_solution_guess``: a closed-loop rollout of the solver's own solution,
  u_t = u*_t + K_t (x_t (-) x*_t) + sigma * w_t, w_t ~ N(0, 1) scaled by the control range, clamped to the
  bounds; dynamically feasible and, for small sigma, as close to the optimum as a policy could get), with the
  same options, side by side in one run.

    PYTHONPATH=python python3 benchmarks/bench_guess_quality.py --task double_pendulum
    PYTHONPATH=python python3 benchmarks/bench_guess_quality.py --task double_pendulum --variant reference \
        -n 64 --max-iters 1000 --sigmas 1e-3

What it showed (docs/results/REPORT.md, "Where a warm start can help", and README "Reference-difficulty
variants"): on the pendulum, whose optimal torques sit on their bounds 28% of the time, even a guess within 1e-4
of the optimal cost needs as many iterations as the default guess; on the pendubot a guess within 7.4% of the
optimal cost needs 12.5 iterations instead of 56.5 (medians, 32 instances).
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.loop import take_rows


def difficulty(task: sw.Task, n: int, seed: int, max_iters: int, sigmas=(1e-3,), num_threads: int = 0,
               multistart: int = 0) -> dict:
    """TO alone and near-optimal re-solves on ``n`` instances (seed ``seed``): a dict of plain numbers.
    multistart: also re-solve every instance from the feedback laws of ``multistart`` other solved instances
    (closed around the dynamics from its own x0, as ``nn_feedback`` does) and compare TO alone's cost with the
    best cost found (how far the default guess's local minima are from the best known)."""
    x0s, params = task.sample_instances(n, seed=seed)
    options = sw.SolverOptions(max_iters=max_iters, num_threads=num_threads)
    default = sw.solve(task, x0s, params, options=options)
    conv = default.converged
    width = task.u_upper - task.u_lower
    saturated = np.mean((default.us >= task.u_upper - 1e-3 * width) | (default.us <= task.u_lower + 1e-3 * width))
    out = {"task": task.name, "variant": task.variant, "instances": n, "seed": seed, "max_iters": max_iters,
           "saturated": float(saturated), "converged": float(conv.mean()),
           "iterations_mean": float(default.iterations.mean()), "iterations_median": float(np.median(default.iterations)),
           "solve_time_mean": float(default.solve_time.mean()), "near_optimal": []}
    costs = default.cost[conv]
    if costs.size:
        p10, p50, p90 = np.percentile(costs, [10, 50, 90])
        out.update(cost_p10=float(p10), cost_p50=float(p50), cost_p90=float(p90),
                   cost_spread=float(p90 / p10) if p10 > 0 else float("nan"))
    if not conv.any():
        return out
    idx = np.flatnonzero(conv)
    solved = sw.solve(task, x0s[idx], params[idx], default.xs[idx], default.us[idx], options=options)
    if multistart > 0 and idx.size > 1:
        best = np.where(conv, default.cost, np.inf)
        rng = np.random.default_rng(seed)
        for _ in range(multistart):
            donors = rng.choice(idx, size=n)  # another solved instance's feedback law per instance
            donors = np.where(donors == np.arange(n), idx[(np.searchsorted(idx, donors) + 1) % idx.size], donors)
            try:
                xs, us = sw.perturbed_solution_guess(task, x0s, take_rows(default, donors), 0.0, seed=0)
            except ValueError:  # a feedback law that diverges from another start: no guess this round
                continue
            r = sw.solve(task, x0s, params, xs, us, options=options)
            best = np.where(r.converged & (r.cost < best), r.cost, best)
        both = conv & np.isfinite(best)
        ratio = default.cost[both] / best[both]
        out["multistart"] = {"starts": multistart, "instances": int(both.sum()),
                             "found": float(np.isfinite(best).mean()),
                             "to_over_best_median": float(np.median(ratio)),
                             "to_over_best_mean": float(np.mean(ratio)),
                             "to_worse_5pct": float(np.mean(ratio > 1.05))}
    for sigma in sigmas:
        try:
            xs, us = sw.perturbed_solution_guess(task, x0s[idx], solved, sigma, seed=0)
        except ValueError as e:
            out["near_optimal"].append({"sigma": sigma, "error": str(e)})
            continue
        gap = sw._core.trajectory_costs(task, x0s[idx], params[idx], xs, us) / solved.cost - 1.0
        warm = sw.solve(task, x0s[idx], params[idx], xs, us, options=options)
        out["near_optimal"].append({
            "sigma": sigma, "instances": int(idx.size), "cost_gap_median": float(np.median(gap)),
            "converged": float(warm.converged.mean()), "iterations_mean": float(warm.iterations.mean()),
            "iterations_median": float(np.median(warm.iterations)),
            # TO alone on the same instances, for the ratio
            "to_iterations_mean": float(default.iterations[idx].mean())})
    return out


def print_report(r: dict) -> None:
    n = r["instances"]
    print(f"{r['task']}/{r['variant']}: {n} instances (seed {r['seed']}), budget {r['max_iters']}; "
          f"optimal controls on their bounds {100 * r['saturated']:.1f}% of steps")
    line = (f"  TO alone: converged {round(r['converged'] * n)}/{n} ({100 * r['converged']:.0f}%), iterations mean "
            f"{r['iterations_mean']:.1f} / median {r['iterations_median']:.1f}, solve {1e3 * r['solve_time_mean']:.1f} ms")
    if "cost_p10" in r:
        line += (f"; converged cost p10 {r['cost_p10']:.4g} / p50 {r['cost_p50']:.4g} / p90 {r['cost_p90']:.4g} "
                 f"(p90/p10 {r['cost_spread']:.2f})")
    print(line)
    if "multistart" in r:
        m = r["multistart"]
        print(f"  multistart ({m['starts']} other instances' feedback laws each): a converged solution for "
              f"{100 * m['found']:.0f}% of the instances; where TO alone converged, its cost / the best found: median "
              f"{m['to_over_best_median']:.3f}, mean {m['to_over_best_mean']:.3f}, more than 5% worse on "
              f"{100 * m['to_worse_5pct']:.0f}%")
    for s in r["near_optimal"]:
        if "error" in s:
            print(f"  sigma {s['sigma']:.0e}: ({s['error']})")
            continue
        print(f"  near-optimal guess, sigma {s['sigma']:.0e} ({s['instances']} solved instances): cost gap median "
              f"{s['cost_gap_median']:.1e}, iterations mean {s['iterations_mean']:.1f} / median "
              f"{s['iterations_median']:.1f}, converged {100 * s['converged']:.0f}%; TO alone on the same "
              f"instances {s['to_iterations_mean']:.1f} mean ({s['to_iterations_mean'] / max(s['iterations_mean'], 1):.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="double_pendulum", choices=list(sw.available_tasks()))
    ap.add_argument("--variant", nargs="+", default=[""], help="variants (default: the task's first)")
    ap.add_argument("-n", type=int, default=32, help="instances")
    ap.add_argument("--seed", type=int, default=123, help="instance seed")
    ap.add_argument("--max-iters", type=int, default=500, help="solver budget (the reference's: 1000)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1e-3, 1e-2, 3e-2])
    ap.add_argument("--threads", type=int, default=0, help="solver threads across instances (0: all cores)")
    ap.add_argument("--multistart", type=int, default=0,
                    help="re-solve each instance from K other solved instances' feedback laws (local minima)")
    args = ap.parse_args()
    for variant in args.variant:
        task = sw.make_task(args.task, variant)
        print_report(difficulty(task, args.n, args.seed, args.max_iters, args.sigmas, args.threads, args.multistart))


if __name__ == "__main__":
    main()
