"""Is the random-start UR5 policies' excess variance across training runs? Average the chunks of the policies an
ablation row trained on the same data with different seeds (``--policy-seeds``), replan by replan, and roll the
average out on the row's held-out instances, beside each member alone.

Each member is the row's eager checkpoint (the scorecard evaluates its native export of the same weights); all of
them see the same rollout noise, and their physical chunks are averaged before the executed actions are applied
(the UR5's state actions are executed through their velocities, which average as vectors). Prints, per method:
each member's and the average's own cost over TO alone's (median, and the share within 1.5x), and the refine
iterations and convergence of its warm start:

    python3 benchmarks/bench_seed_ensemble.py runs/abl34/rsrt/base ur5/random_start_random_target
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.rollout import _rollout_eager  # the eager reference rollout, which takes any policy module
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.train import load_checkpoint
from sobolev_warmstart.warmstart import guess_costs


class ChunkAverage(torch.nn.Module):
    """The mean of several diffusion policies' physical chunks, with the rollout interface of one of them."""

    def __init__(self, policies):
        super().__init__()
        first = policies[0]
        for p in policies[1:]:
            for key in ("horizon", "history_steps", "num_steps"):
                if getattr(p, key) != getattr(first, key):
                    raise ValueError(f"policies: {key} differs ({getattr(p, key)} vs {getattr(first, key)})")
        self.members = torch.nn.ModuleList(policies)
        self.task, self.spec, self.kind = first.task, first.spec, first.kind
        self.horizon, self.history_steps, self.num_steps = first.horizon, first.history_steps, first.num_steps

    def forward(self, obs_history, params, history_actions, noise):
        return torch.stack([p(obs_history, params, history_actions, noise) for p in self.members]).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("row", help="an ablation row folder holding policy_seed_*/<task>/<variant>")
    ap.add_argument("variant", help="task/variant")
    ap.add_argument("--methods", nargs="+", default=["sob_diff", "diff"], choices=["diff", "sob_diff"])
    ap.add_argument("--seed", type=int, default=None, help="instance seed of the held-out set (default: the row's)")
    args = ap.parse_args()
    folders = sorted(Path(args.row).glob(f"policy_seed_*/{args.variant}"))
    if len(folders) < 2:
        raise SystemExit(f"row: expected at least two policy_seed_*/{args.variant} folders in {args.row}")
    s = load_settings(folders[0])
    task = sw.make_task(s.task, s.variant)
    seed = s.test_seed if args.seed is None else args.seed
    x0s, params = task.sample_instances(s.test_instances, seed)
    options = s.options(1)
    to = sw.solve(task, x0s, params, options=options)
    ok = to.converged
    print(f"{s.key}, {len(x0s)} instances of seed {seed}; TO alone: {to.iterations.mean():.1f} iterations, "
          f"{100 * ok.mean():.0f}% converged; members: {[f.parts[-3] for f in folders]}")
    print("| method | policy | policy/TO median | within 1.5x [%] | warm-start iters mean | converged [%] |")
    print("|---|---|---|---|---|---|")
    torch.set_num_threads(1)
    for method in args.methods:
        members = [load_checkpoint(f / method / "checkpoint")[0].eval() for f in folders]
        for name, policy in [*((f.parts[-3], m) for f, m in zip(folders, members)), ("average", ChunkAverage(members))]:
            with torch.no_grad():
                ro = _rollout_eager(task, policy, x0s, params, s.action_steps, 0, None)
            cost = guess_costs(task, x0s, params, ro.xs, ro.us, s.divergence_bound, 1)
            ratio = cost[ok] / to.cost[ok]
            warm = sw.solve(task, x0s, params, ro.xs, ro.us, options=options)
            print(f"| {method} | {name} | {np.median(ratio):.3g} | {100 * np.mean(ratio < 1.5):.0f} | "
                  f"{warm.iterations.mean():.1f} | {100 * warm.converged.mean():.0f} |", flush=True)


if __name__ == "__main__":
    main()
