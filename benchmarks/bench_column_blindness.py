"""Does a quadrotor policy look at its columns? Its rollouts on held-out instances of ``quadrotor/columns_K``, with
the instance's own columns, with another instance's columns (the goal kept) and with its own columns in another
order (the same problem), side by side: how far the flown path moves (largest horizontal distance between the two
paths, median over the instances), and the share of each set of rollouts that breaks the keep-out constraint of
the columns it was given (``guess_violations`` above the solver's tolerance).

A policy that avoids its columns moves its path by about a detour (tenths of a metre) when they are replaced, and not
at all when they are reordered; a policy blind to them moves it by its sampling noise either way. Round 43
(docs/results/ablations.md):

    python3 benchmarks/bench_column_blindness.py runs/scorecard-v27/quadrotor/columns_9 --instances 256
    python3 benchmarks/bench_column_blindness.py runs/scorecard-v27/quadrotor/columns_9 --training-instances

``--teacher-forced`` looks at one step instead of a flight (round 44): at the training solutions' own states (every
second step), each policy's first executed action, sampled with the same noise given the instance's columns and
another instance's. It prints the mean distance of the predicted velocity (body x, y) from the solver's, how far it
moves with the other columns, and the solver's own velocity change over that step, for scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.rollout import load_policy_runner, rollout
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import guess_violations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a scorecard variant folder (<out>/quadrotor/columns_K)")
    ap.add_argument("--methods", nargs="+", default=["sob_diff", "diff"])
    ap.add_argument("--instances", type=int, default=256)
    ap.add_argument("--test-seed", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0, help="rollout noise seed and the shuffles' seed")
    ap.add_argument("--training-instances", action="store_true",
                    help="roll out from the training instances (collect/trajectories.npz) instead of held-out ones")
    ap.add_argument("--teacher-forced", action="store_true",
                    help="also: one step from the training solutions' states (see the module's docstring)")
    args = ap.parse_args()
    s = load_settings(args.folder)
    task = sw.make_task(s.task, s.variant)
    if task.name != "quadrotor" or task.nz <= 3:
        raise SystemExit(f"folder: expected a quadrotor variant among columns, got {s.task}/{s.variant}")
    if args.training_instances:
        data = np.load(args.folder / "collect" / "trajectories.npz")
        x0s, params = data["xs"][:, 0], data["params"]
    else:
        x0s, params = task.sample_instances(args.instances, seed=args.test_seed)
    k = (task.nz - 3) // 2
    rng = np.random.default_rng(args.seed)
    other = params.copy()
    other[:, 3:] = params[np.roll(np.arange(len(params)), 1), 3:]
    reordered = params.copy()
    reordered[:, 3:] = params[:, 3:].reshape(len(params), k, 2)[:, rng.permutation(k)].reshape(len(params), 2 * k)
    tol = s.options().tol
    where = (f"its {len(x0s)} training instances" if args.training_instances
             else f"{args.instances} held-out instances (seed {args.test_seed})")
    print(f"{s.task}/{s.variant}, {where}, rollout seed {args.seed}")
    print("| method | path moves, other columns [m] | path moves, reordered [m] | infeasible, own / other columns [%] |")
    print("|---|---|---|---|")
    for method in ["to", *args.methods]:
        paths = {}
        runner = None if method == "to" else load_policy_runner(next((args.folder / method).glob("policy_export.*")))
        for name, z in (("own", params), ("other", other), ("reordered", reordered)):
            if method == "to":  # the solver's own paths (its converged solves), for scale
                res = sw.solve(task, x0s, z, options=s.options())
                xs, us, ok = res.xs, res.us, res.converged
            else:
                ro = rollout(task, x0s, z, runner, action_steps=s.action_steps, seed=args.seed)
                xs, us, ok = ro.xs, ro.us, np.ones(len(x0s), bool)
            paths[name] = (xs, guess_violations(task, x0s, z, xs, us, s.divergence_bound), ok)

        def moved(name):
            both = paths[name][2] & paths["own"][2]
            return float(np.median(np.abs(paths[name][0][both, :, :2] - paths["own"][0][both, :, :2]).max(axis=(1, 2))))

        def infeasible(name):
            return 100 * np.mean(paths[name][1][paths[name][2]] > tol)

        label = "TO alone (converged solves)" if method == "to" else method
        print(f"| {label} | {moved('other'):.3f} | {moved('reordered'):.3f} | "
              f"{infeasible('own'):.0f} / {infeasible('other'):.0f} |")
    if args.teacher_forced:
        teacher_forced(args.folder, args.methods, args.seed)


def teacher_forced(folder: Path, methods, seed: int) -> None:
    """One step from the solver's own training states: see the module's docstring. The network is called directly
    (the eager policy, as the C++ runner's ``sample_chunks`` would): a rollout refuses a state that another
    instance's column covers, and those states are part of what is asked."""
    data = np.load(folder / "collect" / "trajectories.npz")
    obs, actions, params = data["observations"], data["actions"], data["params"]
    n, steps = len(params), np.arange(0, actions.shape[1] - 2, 2)
    other = params.copy()
    other[:, 3:] = params[np.roll(np.arange(n), 1), 3:]
    velocity = slice(9, 11)  # the action's (and observation's) linear velocity, body x and y
    change = np.linalg.norm(actions[:, steps, velocity] - obs[:, steps, velocity], axis=-1).mean()
    print(f"\nteacher-forced, {n} training solutions, every second step: the solver's velocity change over a step "
          f"{change:.3f} m/s")
    print("| method | predicted velocity's distance from the solver's [m/s] | moves with other columns [m/s] |")
    print("|---|---|---|")
    for method in methods:
        policy = sw.load_policy(folder / method / "checkpoint" / "checkpoint.pt")
        h = policy.history_steps
        if h != 1:
            raise SystemExit(f"--teacher-forced: expected policies with one observation of history, got {h}")
        o = torch.as_tensor(obs[:, steps], dtype=torch.float32).reshape(-1, 1, obs.shape[-1])
        prev = np.where(steps[None, :, None] > 0, actions[:, np.maximum(steps - 1, 0)], data["initial_actions"][:, None])
        hist = torch.as_tensor(prev, dtype=torch.float32).reshape(-1, 1, actions.shape[-1])
        noise = torch.randn(policy.num_steps, len(o), policy.horizon, policy.na,
                            generator=torch.Generator().manual_seed(seed))

        def first(z):
            zz = torch.as_tensor(np.repeat(z, len(steps), axis=0), dtype=torch.float32)
            with torch.no_grad():
                return policy(o, zz, hist, noise)[:, h, velocity].numpy()
        own, moved = first(params), first(other)
        error = np.linalg.norm(own - actions[:, steps, velocity].reshape(-1, 2), axis=-1).mean()
        print(f"| {method} | {error:.3f} | {np.linalg.norm(moved - own, axis=-1).mean():.3f} |")


if __name__ == "__main__":
    main()
