"""Command line: ``sobolev-warmstart {tasks,solve,bench-solve}``.

tasks        list the tasks and their variants (``--describe`` prints weights and settings)
solve        solve a seeded batch of instances of a task and print a summary table (the main job
             until the collect/train loop lands)
bench-solve  run the C++ batch-solve benchmark (throughput vs threads, setup share)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import _core
from .solver import SolverOptions, solve
from .tasks import available_tasks, make_task, robots_dir


def _summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_tasks(args: argparse.Namespace) -> int:
    for name, variants in available_tasks().items():
        print(f"{name}: {', '.join(variants)}")
        if args.describe:
            print(make_task(name).describe())
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    task = make_task(args.task, args.variant)
    x0s, params = task.sample_instances(args.n, seed=args.seed)
    options = SolverOptions(tol=args.tol, max_iters=args.max_iters, num_threads=args.threads,
                            step_acceptance=args.step_acceptance, dual_init=args.dual_init)
    print(task.describe())
    start = time.perf_counter()
    result = solve(task, x0s, params, options=options)
    wall = time.perf_counter() - start
    conv = result.converged
    it = result.iterations
    rows = [
        ("task", f"{task.name}/{task.variant}"),
        ("instances", f"{len(result)} (seed {args.seed})"),
        ("converged", f"{conv.sum()}/{len(result)} ({100.0 * conv.mean():.0f}%)"),
        ("iterations", f"median {np.median(it):.0f}, mean {it.mean():.1f}, max {it.max()}"),
        ("cost (converged)", f"median {np.median(result.cost[conv]):.4f}" if conv.any() else "-"),
        ("solve time / instance", f"median {1e3 * np.median(result.solve_time):.1f} ms, mean {1e3 * result.solve_time.mean():.1f} ms"),
        ("wall time", f"{wall:.2f} s with {options.num_threads or 'all'} threads ({len(result) / wall:.1f} problems/s)"),
    ]
    errors = [e for e in result.errors if e]
    if errors:
        rows.append(("errors", f"{len(errors)}: {errors[0]}"))
    print(_summary_table(rows))
    return 0


def cmd_bench_solve(args: argparse.Namespace) -> int:
    exe = Path(_core.__file__).parent / "bin" / "sw_bench_batch_solve"
    if not exe.exists():
        print(f"benchmark executable not found: {exe} (build with SW_BUILD_BENCHMARKS=ON)", file=sys.stderr)
        return 2
    cmd = [str(exe), str(robots_dir()), args.task, args.variant, str(args.n), str(args.max_threads)]
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sobolev-warmstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tasks", help="list tasks and variants")
    p.add_argument("--describe", action="store_true", help="print each task's settings")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("solve", help="solve a seeded batch of instances and print a summary")
    p.add_argument("--task", default="double_pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="", help="variant of the task (default: its first)")
    p.add_argument("-n", type=_positive_int, default=32, help="number of instances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_non_negative_int, default=0, help="0: all cores")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--max-iters", type=_positive_int, default=500)
    p.add_argument("--step-acceptance", choices=["filter", "linesearch"], default="filter")
    p.add_argument("--dual-init", choices=["adjoint", "zero"], default="adjoint")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("bench-solve", help="C++ benchmark: problems/s vs threads, setup share")
    p.add_argument("--task", default="pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="")
    p.add_argument("-n", type=_positive_int, default=64)
    p.add_argument("--max-threads", type=_positive_int, default=2)
    p.set_defaults(func=cmd_bench_solve)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
