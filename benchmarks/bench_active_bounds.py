"""Why warm starts save no ProxDDP iteration on torque-bounded tasks: the active control bounds.

From TO alone's own solutions perturbed by ``sigma`` (a fraction of the torque range, re-integrated so the guess
is dynamically feasible, clipped to the box), the solve needs as many iterations as from the default guess. With
zero bound multipliers, ProxDDP's first iteration treats a control lying exactly on its bound as inactive
(Aligator's ``BoxConstraint::computeActiveSet`` is strict) and jumps to the unconstrained minimiser, the same from
any guess; the augmented-Lagrangian loop then pulls it back over tens of iterations. Nudging the saturated
controls of the guess ``delta`` outside the box marks them active and recovers the warm start's advantage for
small perturbations. Prints iterations per setting, side by side on the same instances:

    python3 benchmarks/bench_active_bounds.py --task pendulum -n 16
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw


def nudge(task, us: np.ndarray, delta: float) -> np.ndarray:
    """Controls within 1e-3 of the box width of a bound moved ``delta`` beyond it."""
    lo, hi = task.u_lower, task.u_upper
    w = 1e-3 * (hi - lo)
    out = np.where(us >= hi - w, hi + delta, us)
    return np.where(us <= lo + w, lo - delta, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="pendulum")
    ap.add_argument("--variant", default="")
    ap.add_argument("-n", type=int, default=16, help="instances (test seed 1,000,000)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    ap.add_argument("--deltas", type=float, nargs="+", default=[0.0, 1e-6, 1e-2])
    ap.add_argument("--max-iters", type=int, default=1000)
    args = ap.parse_args()
    task = sw.make_task(args.task, args.variant)
    x0s, params = task.sample_instances(args.n, 1_000_000)
    options = sw.SolverOptions(max_iters=args.max_iters, num_threads=1)
    base = sw.solve(task, x0s, params, options=options)
    saturated = np.mean(np.any(nudge(task, base.us, 1.0) != base.us, axis=-1))
    print(f"{task.name}/{task.variant}: {args.n} instances, {100 * saturated:.0f}% of the optimal controls on a bound")
    print(f"TO alone: iterations mean {base.iterations.mean():.1f}, median {np.median(base.iterations):.1f}, "
          f"converged {base.converged.sum()}/{args.n}")
    print("| sigma | delta | iterations mean | median | converged | cost / TO alone (median) |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for sigma in args.sigmas:
        us = np.clip(base.us + sigma * (task.u_upper - task.u_lower) * rng.standard_normal(base.us.shape),
                     task.u_lower, task.u_upper)
        xs = [x0s]
        for t in range(task.horizon):
            xs.append(task.step(xs[-1], us[:, t]))
        xs = np.stack(xs, 1)
        for delta in args.deltas:
            r = sw.solve(task, x0s, params, xs, nudge(task, us, delta), options=options)
            both = r.converged & base.converged
            ratio = np.median(r.cost[both] / base.cost[both]) if both.any() else float("nan")
            print(f"| {sigma:g} | {delta:g} | {r.iterations.mean():.1f} | {np.median(r.iterations):.1f} | "
                  f"{r.converged.sum()}/{args.n} | {ratio:.4f} |")


if __name__ == "__main__":
    main()
