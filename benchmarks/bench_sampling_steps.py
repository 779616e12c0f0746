"""Sampling a trained diffusion policy in fewer denoising steps than it was trained with (rounds 25, 26)

A rollout's cost is its network calls: ``T / A`` replans of K denoising steps each. Round 5 trained the pendubot's
policies with fewer steps (K = 3, 2) and found them unreliable across training seeds. This asks the other question:
the policy trained with K steps, sampled deterministically (DDIM, eta = 0) on a subsequence of its steps
(``DiffusionPolicy.set_sampling_steps``, the product's sampler since round 26; before, this script carried its own
copy of the formula). The rollouts run the eager policy (the Python reference path, with the same seeded noise as
the C++ path) at the folder's A (or ``--action-steps``), and are refined by the solver like the scorecard's. Rows:
the DDPM sampler as trained (the C++ rollout up to float rounding, which can change a refine by a few iterations),
then each step subsequence, e.g. ``4,2,0`` (three network calls instead of five). A folder whose policies already
sample with DDIM (scorecard v18 on) is measured the same way: the first row is its DDPM sampler.

    python3 benchmarks/bench_sampling_steps.py runs/scorecard-v17/double_pendulum/default --steps 4,3,2,1,0 4,2,0 4,0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import refine_guesses

from bench_action_steps import held_out, seed_statistics  # benchmarks/bench_action_steps.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder (<out>/<task>/<variant>) with a trained sob_diff")
    ap.add_argument("--method", default="sob_diff", choices=("sob_diff", "diff"))
    ap.add_argument("--steps", nargs="+", default=["4,2,0"], help="step subsequences, e.g. 4,2,0")
    ap.add_argument("--seeds", type=int, default=3, help="rollout seeds")
    ap.add_argument("--test-seed", type=int, default=None, help="held-out instance seed (default: the folder's)")
    ap.add_argument("--action-steps", type=int, default=None, help="A (default: the folder's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.folder)
    s, task, x0s, params = held_out(folder, args.test_seed)
    options = s.options(1)
    a = s.action_steps if args.action_steps is None else args.action_steps
    policy = sw.load_policy(folder / args.method / "checkpoint" / "checkpoint.pt", task=s.task).eval()
    to = sw.solve(task, x0s, params, options=options)
    print(f"{s.task}/{s.variant}, {args.method}, A = {a}; TO alone {to.iterations.mean():.1f} iterations\n")
    print("| sampler | network calls per replan | policy/TO median | diverged [%] | iters mean | converged [%] |")
    print("|---|---|---|---|---|---|")
    for label in ["DDPM as trained", *args.steps]:
        try:
            policy.set_sampling_steps(None if label == "DDPM as trained" else label)
        except ValueError as e:
            raise SystemExit(f"--steps: {e}") from None
        calls = len(policy.sampler.steps)
        label = label if label == "DDPM as trained" else f"DDIM {label}"
        def refine(seed):
            with torch.no_grad():
                ro = sw.rollout(task, x0s, params, policy, action_steps=a, seed=seed)
            return refine_guesses(task, x0s, params, ro, options, s.divergence_bound)

        st = seed_statistics(refine, args.seeds, to)
        print(f"| {label} | {calls} | {st['ratio']:.3g} | {100 * st['diverged']:.0f} | {st['iterations']:.1f} | "
              f"{100 * st['converged']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
