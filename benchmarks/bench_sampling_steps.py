"""Sampling a trained diffusion policy in fewer denoising steps than it was trained with (round 25)

A rollout's cost is its network calls: ``T / A`` replans of K denoising steps each. Round 5 trained the pendubot's
policies with fewer steps (K = 3, 2) and found them unreliable across training seeds. This asks the other question:
the policy trained with K steps, sampled deterministically (DDIM, eta = 0) on a subsequence of its steps. The
denoiser predicts the clean chunk ``x0`` at step k; the next sample, at step k' < k, is
``sqrt(abar_k') x0 + sqrt(1 - abar_k') eps`` with ``eps = (x_k - sqrt(abar_k) x0) / sqrt(1 - abar_k)``; at the last
step of the subsequence (0, or any step: ``4`` alone is one call from pure noise) the clipped ``x0`` is the chunk.
The rollouts run the eager policy (the Python reference path, with the same seeded noise as the C++ path; DDIM uses
only the first draw, the starting sample) at the folder's A (or ``--action-steps``), and are refined by the solver
like the scorecard's. Rows: the DDPM sampler as trained (the C++ rollout up to float rounding, which can change a
refine by a few iterations), then each step subsequence, e.g. ``4,2,0`` (three network calls instead of five).

    python3 benchmarks/bench_sampling_steps.py runs/scorecard-v17/double_pendulum/default --steps 4,3,2,1,0 4,2,0 4,0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.warmstart import refine_guesses

from bench_action_steps import held_out  # benchmarks/bench_action_steps.py, beside this script


def ddim_forward(sampler, steps: list[int]):
    """A replacement for ``DDPMSampler.forward`` that denoises on ``steps`` (descending, ending at 0),
    deterministically."""
    abar = sampler.schedule.alphas_cumprod

    def forward(cond, history, noise):
        x = noise[0]
        batch = x.shape[0]
        for i, k in enumerate(steps):
            x = sampler.inpaint(x, history)
            x0 = sampler.denoiser(x, torch.full([batch], k, dtype=torch.long), cond)
            if sampler.clip_sample:
                x0 = x0.clamp(-sampler.clip_sample_range, sampler.clip_sample_range)
            if i + 1 == len(steps):
                x = x0
                break
            nxt = steps[i + 1]
            eps = (x - abar[k].sqrt() * x0) / (1.0 - abar[k]).sqrt()
            x = abar[nxt].sqrt() * x0 + (1.0 - abar[nxt]).sqrt() * eps
        return sampler.inpaint(x, history)

    return forward


def parse_steps(text: str, num_steps: int) -> list[int]:
    try:
        steps = [int(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--steps: expected comma-separated integers such as 4,2,0, got {text!r}") from None
    if not steps or steps[0] > num_steps - 1 or steps[-1] < 0 or any(a <= b for a, b in zip(steps, steps[1:])):
        raise SystemExit(f"--steps: expected a descending subsequence of {num_steps - 1}..0, got {text!r}")
    return steps


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
    sampler = policy.sampler
    plain = sampler.forward
    to = sw.solve(task, x0s, params, options=options)
    ok = np.asarray(to.converged, bool)
    print(f"{s.task}/{s.variant}, {args.method}, A = {a}; TO alone {to.iterations.mean():.1f} iterations\n")
    print("| sampler | network calls per replan | policy/TO median | diverged [%] | iters mean | converged [%] |")
    print("|---|---|---|---|---|---|")
    for label in ["DDPM as trained", *args.steps]:
        if label == "DDPM as trained":
            sampler.forward, calls = plain, sampler.num_steps
        else:
            steps = parse_steps(label, sampler.num_steps)
            sampler.forward, calls = ddim_forward(sampler, steps), len(steps)
            label = f"DDIM {label}"
        ratios, div, iters, conv = [], [], [], []
        for seed in range(args.seeds):
            with torch.no_grad():
                ro = sw.rollout(task, x0s, params, policy, action_steps=a, seed=seed)
            ws, diverged = refine_guesses(task, x0s, params, ro, options, s.divergence_bound)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                ratios.append(np.asarray(ws.policy_cost)[ok] / np.asarray(to.cost)[ok])
            div.append(diverged.mean())
            iters.append(np.asarray(ws.warm.iterations, float)[~diverged].mean())
            conv.append((np.asarray(ws.warm.converged, bool) & ~diverged).mean())
        print(f"| {label} | {calls} | {np.median(np.concatenate(ratios)):.3g} | {100 * np.mean(div):.0f} | "
              f"{np.mean(iters):.1f} | {100 * np.mean(conv):.0f} |", flush=True)


if __name__ == "__main__":
    main()
