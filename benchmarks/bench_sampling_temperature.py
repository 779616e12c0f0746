"""Does the diffusion policies' sampling noise hurt their closed-loop rollouts? The same exported policy of a
scorecard folder rolled out with its seeded draws scaled by a temperature ``tau`` (1: the trained DDPM sampler,
0: deterministic, every denoising step from a zero start and without posterior noise), on the folder's held-out
instances. Prints, per method and tau: the policy's own cost over TO alone's (median, and the share within 1.5x),
the share beyond 10x, and the refine iterations, convergence and total time of its warm start (refined with the
variant's solver settings), and the refined cost over TO alone's (mean, and the share above 1.01, over the instances
both converge on):

    python3 benchmarks/bench_sampling_temperature.py runs/abl25/dp/base/policy_seed_0/double_pendulum/default \
        --tau 1 0.5 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.rollout import num_replans, rollout_noise
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import guess_costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (holding settings.json, diff/, sob_diff/)")
    ap.add_argument("--methods", nargs="+", default=["sob_diff", "diff"], choices=["diff", "sob_diff"])
    ap.add_argument("--tau", type=float, nargs="+", default=[1.0, 0.5, 0.0])
    ap.add_argument("--seed", type=int, default=None, help="instance seed of the held-out set (default: the folder's)")
    ap.add_argument("--noise-seed", type=int, default=0)
    ap.add_argument("--posterior-only", action="store_true",
                    help="scale only the posterior noise (the draws after the initial one), as a sampler's "
                         "sampling_temperature does (round 42); default: every draw")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    seed = s.test_seed if args.seed is None else args.seed
    x0s, params = task.sample_instances(s.test_instances, seed)
    options = s.options(1)  # the variant's solver (budget, penalty, stall switch), on one thread
    to = sw.solve(task, x0s, params, options=options)
    ok = to.converged
    print(f"{s.task}/{s.variant}, {len(x0s)} instances of seed {seed}; TO alone: {to.iterations.mean():.1f} "
          f"iterations, {100 * ok.mean():.0f}% converged")
    print("| method | tau | policy/TO median | within 1.5x [%] | over 10x [%] | warm-start iters mean | converged [%] | "
          "total [ms] | refined/TO mean | refined/TO > 1.01 [%] |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        runner = sw.load_policy_runner(str(folder / method / "policy_export.safetensors"))
        R = num_replans(task.horizon, s.action_steps)
        base = rollout_noise(args.noise_seed, len(x0s), R, runner.num_steps, runner.horizon, task.na)
        for tau in args.tau:
            noise = np.float32(tau) * base
            if args.posterior_only:
                noise[:, :, 0] = base[:, :, 0]
            ro = sw.rollout(task, x0s, params, runner, noise=noise, num_threads=1)
            cost = guess_costs(task, x0s, params, ro.xs, ro.us, s.divergence_bound, num_threads=1)
            ratio = cost[ok] / to.cost[ok]
            warm = sw.solve(task, x0s, params, ro.xs, ro.us, options=options)
            total = 1e3 * (np.mean(ro.time) + np.mean(warm.solve_time))
            both = ok & warm.converged  # the local minimum the refine ends in, against TO alone's
            refined = warm.cost[both] / to.cost[both]
            print(f"| {method} | {tau:g} | {np.median(ratio):.4g} | {100 * np.mean(ratio < 1.5):.0f} | "
                  f"{100 * np.mean(ratio > 10):.1f} | "
                  f"{warm.iterations.mean():.1f} | {100 * warm.converged.mean():.0f} | {total:.1f} | "
                  f"{refined.mean():.4f} | {100 * np.mean(refined > 1.01):.0f} |", flush=True)


if __name__ == "__main__":
    main()
