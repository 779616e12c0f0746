"""Closed-loop data (DAgger-style): does relabelling the states a policy's own rollouts reach teach it to stay on
course? Measured outside the scorecard before building it in.

Takes a scorecard (or ablation) folder with its collected trajectories and trained policies. Each round rolls the
current policy out from the training instances, stops it at ``--times``, solves the tail problems from the reached
states (``sw.relabel_rollouts``), adds them to the training set (all rounds' relabels are kept), trains the method
again from scratch with the folder's recipe and budget, and evaluates it on the folder's held-out instances with the
scorecard's own evaluation (every method's row is printed; the other learned method is the folder's):

    python3 benchmarks/bench_relabel.py runs/abl50/fsrt/base/policy_seed_0/ur5/fixed_start_random_target \\
        --rounds 2 --times 5 10 20 30 --out runs/relabel/fsrt/seed_0

``--perturb-xy SIGMA`` (the quadrotor; round 46) relabels the training solutions' own states instead of the policy's:
at each of ``--times`` the solution's horizontal position is displaced by a Gaussian of SIGMA metres (``--copies`` draws
per state) and the tail is solved from there, so that the data show what the columns do near the solutions rather
than deep inside them, where the policy's rollouts go.

``--fresh N`` is the data control: instead of relabels, N more instances of the task's own distribution (seed
``train_seed + 11``), solved and added as they are, trained and evaluated the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.data import build_dataset, concatenate_trajectories, load_dataset
from sobolev_warmstart.relabel import RelabelReport, _solve_tails, relabel_rollouts
from sobolev_warmstart.scorecard import _EXPORT, _evaluate, _train, load_settings, variant_rows


def row_line(label: str, row: dict) -> str:
    return (f"| {label} | {row['label']} | {row['policy_cost_ratio_median']:.3g} | {100 * row['diverged']:.0f} | "
            f"{100 * row['infeasible']:.0f} | {row['iterations_mean']:.1f} | {1e3 * row['total_time_mean']:.1f} | "
            f"{100 * row['converged']:.0f} |")


def evaluate(task, s, folder: Path, data, exports, label: str, methods: list[str]) -> None:
    per = _evaluate(task, s, folder, data, exports, 1, lambda m: None)
    for row in variant_rows(per):
        if row["method"] in methods:
            print(row_line(label, row), flush=True)


def open_folder(folder: Path, test_seed: int | None, what: str):
    """(settings, task, collected dataset, {method: export}) of a scorecard folder, the held-out seed replaced if
    given; prints the table's header."""
    s = load_settings(folder)
    if test_seed is not None:
        s = dataclasses.replace(s, test_seed=test_seed)
    collected = load_dataset(folder / "collect" / "trajectories.npz")
    print(f"{s.key}: {collected.data.num_instances} training trajectories, {s.train_steps} steps, policy seed "
          f"{s.policy_seed}, held-out seed {s.test_seed}; {what}")
    print("| training data | method | policy/TO median | diverged [%] | infeasible [%] | iters mean | total [ms] | "
          "converged [%] |")
    print("|---|---|---|---|---|---|---|---|")
    return s, sw.make_task(s.task, s.variant), collected, {m: folder / m / _EXPORT for m in ("diff", "sob_diff")}


def perturbed_tails(task, data, times, sigma: float, copies: int, seed: int, options):
    """The tails solved from the training solutions' states at ``times``, their horizontal position displaced by
    N(0, sigma^2) per axis, ``copies`` draws per state (see the module docstring), and a RelabelReport."""
    if task.name != "quadrotor":
        raise SystemExit(f"--perturb-xy: the quadrotor's free-flyer position only, got {task.name}")
    source = data.solved_part("to perturb")
    T, offsets = data.task.horizon, data.action_jacobians.shape[2]
    steps = tuple(sorted(set(times)))
    options = dataclasses.replace(options, refresh_gains=True)
    rng = np.random.default_rng(seed)
    parts, attempted, kept, iterations, from_data = [], [0] * len(steps), [0] * len(steps), [], 0
    t0 = time.perf_counter()
    for _ in range(copies):
        xs = source.xs.copy()
        xs[:, list(steps), :2] += sigma * rng.standard_normal((len(xs), len(steps), 2))
        got = _solve_tails(task, source, xs, source.us, np.ones(len(xs), bool), steps, options, offsets)
        parts += got[0]
        attempted = [a + b for a, b in zip(attempted, got[1])]
        kept = [a + b for a, b in zip(kept, got[2])]
        iterations.append(got[3])
        from_data += got[4]
    report = RelabelReport(times=steps, rolled_out=source.num_instances * copies, attempted=attempted, kept=kept,
                           iterations=[float(np.nanmean(col)) for col in zip(*iterations)], from_data=from_data,
                           rollout_time_s=0.0, solve_time_s=time.perf_counter() - t0)
    return concatenate_trajectories(parts), report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a variant's scorecard folder (settings.json, collect/, diff/, sob_diff/)")
    ap.add_argument("--out", required=True, help="folder for the rounds' data, policies and evaluations")
    ap.add_argument("--method", default="sob_diff", choices=["sob_diff", "diff"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--times", type=int, nargs="+", default=[5, 10, 20, 30], help="steps whose states are relabelled")
    ap.add_argument("--fresh", type=int, default=0, help="data control: this many fresh instances instead")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out seed (default: the folder's)")
    ap.add_argument("--seed", type=int, default=0, help="rollout seed of the relabelled rollouts")
    ap.add_argument("--perturb-xy", type=float, default=None, metavar="SIGMA",
                    help="relabel the training solutions' states, displaced horizontally by N(0, SIGMA^2) [m], "
                         "instead of the policy's (the quadrotor)")
    ap.add_argument("--copies", type=int, default=1, help="with --perturb-xy: draws per state")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="gradient steps of the retrained policies (default: the folder's)")
    args = ap.parse_args()
    if args.perturb_xy is not None and not args.perturb_xy > 0:
        raise SystemExit(f"--perturb-xy: expected a positive standard deviation [m], got {args.perturb_xy}")
    if args.copies < 1:
        raise SystemExit(f"--copies: expected at least 1, got {args.copies}")
    src, out = Path(args.folder), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    what = (f"solutions perturbed by {args.perturb_xy} m at {args.times}, {args.copies} draws"
            if args.perturb_xy is not None else f"relabelled at {args.times}")
    s, task, collected, exports = open_folder(src, args.test_seed, what)
    if args.train_steps is not None:
        s = dataclasses.replace(s, train_steps=args.train_steps)
        print(f"retrained with {s.train_steps} steps")
    base, normalisers = collected.data, collected.normalisers
    evaluate(task, s, out / "round_0", base, exports, "base", ["to", "nn", args.method])
    if args.fresh:
        x, p = task.sample_instances(args.fresh, s.train_seed + 11)
        res = sw.solve(task, x, p, options=s.options(0))
        der = sw.chained_derivatives(task, res, base.action_jacobians.shape[2])
        fresh = sw.TrajectoryData.from_solve(task, res, der).select(res.converged)
        data = concatenate_trajectories([base, fresh])
        exports[args.method] = _train(data, args.method, s, out / "fresh" / args.method, lambda m: None, normalisers)
        evaluate(task, s, out / "fresh", base, exports, f"+ {fresh.num_instances} fresh instances", [args.method])
        return
    relabels = []
    for r in range(1, args.rounds + 1):
        rdir = out / f"round_{r}"
        rdir.mkdir(exist_ok=True)
        path = rdir / "relabelled.npz"
        if path.exists():
            with np.load(path) as z:
                part = sw.TrajectoryData(task=base.task, **{k: z[k] for k in z.files})
        else:
            t0 = time.perf_counter()
            if args.perturb_xy is not None:
                part, report = perturbed_tails(task, base, args.times, args.perturb_xy, args.copies,
                                               args.seed + r - 1, s.options(0))
            else:
                part, report = relabel_rollouts(task, base, str(exports[args.method]), args.times,
                                                seed=args.seed + r - 1, action_steps=s.action_steps,
                                                divergence_bound=s.divergence_bound, options=s.options(0))
            np.savez(path, **part.arrays())
            (rdir / "relabel.json").write_text(json.dumps({**report.to_dict(), "time_s": time.perf_counter() - t0}))
        relabels.append(part)
        data = concatenate_trajectories([base, *relabels])
        samples = len(build_dataset(data, s.chunk(), normalisers=normalisers))
        exports[args.method] = _train(data, args.method, s, rdir / args.method, lambda m: None, normalisers)
        evaluate(task, s, rdir, base, exports,
                 f"round {r}: + {sum(p.num_instances for p in relabels)} relabelled ({samples} chunks)", [args.method])


if __name__ == "__main__":
    main()
