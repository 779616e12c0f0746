"""What one call costs around its solver iterations: a task's first call, which builds each thread's Aligator problem
and solver workspace, against later calls, which take them from the task's pool (``ReusablePool``, round 46).

Per task variant: the wall time of ``sw.solve`` on one instance (one thread) and the time inside ProxDDP's ``run``
(``solve_time``), for a fresh task's first call (after an untimed call on another task object, which takes the
process's own first-use costs) and the median of ``--repeats`` later calls on other instances, and the same
for scoring one trajectory (``guess_costs``, what the lookup fallback and the policy-cost column call). Before the pool
every call paid the first call's building.

    python3 benchmarks/bench_call_overhead.py --repeats 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import guess_costs

VARIANTS = [("double_pendulum", "default"), ("ur5", "random_start_random_target"), ("quadrotor", "columns_9"),
            ("double_pendulum", "reference")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="later calls timed per variant")
    ap.add_argument("--max-iters", type=int, default=500, help="the solver's budget per call")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"--repeats: expected at least 1, got {args.repeats}")
    print("| variant | solve, first call: wall / in ProxDDP [ms] | solve, later calls (median): wall / in ProxDDP [ms] "
          "| scoring one trajectory, first / later [ms] |")
    print("|---|---|---|---|")
    for name, variant in VARIANTS:
        options = sw.SolverOptions(num_threads=1, max_iters=args.max_iters)
        # the process's own first-use costs (libraries, threads, pages) go to another task object, untimed
        warm = sw.make_task(name, variant)
        wx, wp = warm.sample_instances(1, seed=6)
        guess_costs(warm, wx, wp, *(lambda r: (r.xs, r.us))(sw.solve(warm, wx, wp, options=options)), 1e3, 1)
        task = sw.make_task(name, variant)  # a fresh task: its first call builds what the pool then keeps
        x0s, params = task.sample_instances(args.repeats + 1, seed=7)
        walls, insides, scores = [], [], []
        for i in range(args.repeats + 1):
            t0 = time.perf_counter()
            res = sw.solve(task, x0s[i:i + 1], params[i:i + 1], options=options)
            walls.append(time.perf_counter() - t0)
            insides.append(float(res.solve_time[0]))
            t0 = time.perf_counter()
            guess_costs(task, x0s[i:i + 1], params[i:i + 1], res.xs, res.us, 1e3, 1)
            scores.append(time.perf_counter() - t0)
        ms = lambda v: 1e3 * v  # noqa: E731
        print(f"| {name}/{variant} | {ms(walls[0]):.1f} / {ms(insides[0]):.1f} | {ms(np.median(walls[1:])):.1f} / "
              f"{ms(np.median(insides[1:])):.1f} | {ms(scores[0]):.2f} / {ms(np.median(scores[1:])):.2f} |", flush=True)


if __name__ == "__main__":
    main()
