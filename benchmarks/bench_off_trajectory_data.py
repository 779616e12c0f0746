"""Does data from states off the solved trajectories teach a policy to recover? (DART-style augmentation, tested
outside the scorecard before building it in.)

Takes a scorecard folder's settings and training instances, perturbs the solved trajectories' states at a few
times (joint angles and velocities, Gaussian), solves each perturbed state as a new instance with the same task
parameters (full horizon: the policies do not read the time), trains Diff and Sob+Diff on the originals plus the
perturbed solves with the scorecard's recipe, and compares them on the held-out instances with the same recipe on
as many fresh instances from the task's own distribution (all with the same gradient steps):

    python3 benchmarks/bench_off_trajectory_data.py runs/abl21/rsrt/base/policy_seed_0/ur5/random_start_random_target \\
        --times 5 15 30 --sigma-q 0.1 --sigma-v 0.5 --steps 4000
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.data import build_dataset
from sobolev_warmstart.scorecard import ScorecardSettings, load_settings
from sobolev_warmstart.warmstart import guess_costs


def trajectories(task, x0s, params, s: ScorecardSettings):
    res = sw.solve(task, x0s, params, options=s.options(1))
    der = sw.chained_derivatives(task, res, horizon=s.horizon - s.history, num_threads=1)
    return sw.TrajectoryData.from_solve(task, res, der).select(res.converged)


def evaluate(task, data, s: ScorecardSettings, label: str, to, x0s, params) -> None:
    ds = build_dataset(data, s.chunk())
    for method in ("diff", "sob_diff"):
        cfg = dataclasses.replace(s.train_config(method, len(ds), Path("unused")), resume=False, checkpoint_dir=None)
        policy = sw.train(ds, cfg).eval()
        ro = sw.rollout(task, x0s, params, policy, seed=0)
        cost = guess_costs(task, x0s, params, ro.xs, ro.us, s.divergence_bound, 1)
        warm = sw.solve(task, x0s, params, ro.xs, ro.us, options=s.options(1))
        ok = to.converged
        print(f"| {label} ({data.num_instances} trajectories) | {method} | {np.median(cost[ok] / to.cost[ok]):.3g} | "
              f"{warm.iterations.mean():.1f} | {100 * warm.converged.mean():.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a UR5 variant's scorecard folder (settings.json)")
    ap.add_argument("--times", type=int, nargs="+", default=[5, 15, 30], help="steps whose states are perturbed")
    ap.add_argument("--sigma-q", type=float, default=0.1, help="joint-angle perturbation [rad]")
    ap.add_argument("--sigma-v", type=float, default=0.5, help="joint-velocity perturbation [rad/s]")
    ap.add_argument("--steps", type=int, default=None, help="gradient steps (default: the folder's)")
    ap.add_argument("--policy-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="perturbation seed")
    args = ap.parse_args()
    s = load_settings(args.folder)
    s = dataclasses.replace(s, policy_seed=args.policy_seed, train_steps=args.steps or s.train_steps)
    task = sw.make_task(s.task, s.variant)
    x_tr, p_tr = task.sample_instances(s.train_instances, s.train_seed)
    base = trajectories(task, x_tr, p_tr, s)
    rng = np.random.default_rng(args.seed)
    starts, targets = [], []
    for t in args.times:
        x = base.xs[:, t].copy()
        x[:, : task.nq] += rng.normal(0.0, args.sigma_q, (len(x), task.nq))
        x[:, task.nq:] += rng.normal(0.0, args.sigma_v, (len(x), task.nv))
        starts.append(x)
        targets.append(base.params)
    x_aug, p_aug = np.concatenate([base.xs[:, 0], *starts]), np.concatenate([base.params, *targets])
    augmented = trajectories(task, x_aug, p_aug, s)
    n = augmented.num_instances
    x_fr, p_fr = task.sample_instances(n + 10, s.train_seed + 7)  # as many fresh instances, a few spare for failures
    fresh = trajectories(task, x_fr, p_fr, s)
    fresh = fresh.select(np.arange(fresh.num_instances) < n)
    x_te, p_te = task.sample_instances(s.test_instances, s.test_seed)
    to = sw.solve(task, x_te, p_te, options=s.options(1))
    print(f"{s.key}: held-out seed {s.test_seed}, {s.train_steps} steps, policy seed {args.policy_seed}; TO alone "
          f"{to.iterations.mean():.1f} iterations")
    print("| training data | method | policy/TO median | refine iters | converged [%] |")
    print("|---|---|---|---|---|")
    evaluate(task, base, s, "scorecard instances", to, x_te, p_te)
    evaluate(task, fresh, s, "fresh instances", to, x_te, p_te)
    evaluate(task, augmented, s, f"+ perturbed at t = {args.times}", to, x_te, p_te)


if __name__ == "__main__":
    main()
