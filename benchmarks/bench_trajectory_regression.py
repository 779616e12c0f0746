"""Would a learned whole-trajectory guess, closed with a feedback law, beat the lookup where step-by-step policies
drift? (a prototype for the random-start UR5, ablations round 12, tested outside the product.)

An MLP maps the instance (x0, z) to its whole solved trajectory (states and controls, z-score normalised), trained on
a scorecard folder's training trajectories. One call per instance, so no error compounds over steps. Its guess is
scored as is ("regression") and closed around the dynamics from x0 with the nearest training instance's feedback
gains ("regression+feedback"), against the lookup ("NN") and the lookup's own feedback law ("NN+feedback"), each
refined by the solver on the folder's held-out instances:

    python3 benchmarks/bench_trajectory_regression.py runs/abl21/rsrt/base/policy_seed_0/ur5/random_start_random_target
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import closed_loop_rollout, guess_costs


def fit(inputs: np.ndarray, targets: np.ndarray, steps: int, width: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(inputs.shape[1], width), torch.nn.Mish(),
                              torch.nn.Linear(width, width), torch.nn.Mish(), torch.nn.Linear(width, targets.shape[1]))
    x, y = torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(64, len(x)),), generator=gen)
        loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard folder (settings.json, collect/trajectories.npz)")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task = sw.make_task(s.task, s.variant)
    if task.nx != task.ndx:
        raise SystemExit("folder: this prototype regresses states in Euclidean coordinates (nx == ndx tasks only)")
    data = sw.load_dataset(folder / "collect" / "trajectories.npz").data
    data = data.select(np.asarray(data.converged, bool))
    n, T = data.num_instances, task.horizon
    inputs = np.concatenate([data.xs[:, 0], data.params], axis=1)
    targets = np.concatenate([data.xs[:, 1:].reshape(n, -1), data.us.reshape(n, -1)], axis=1)
    mu_i, sd_i = inputs.mean(0), inputs.std(0) + 1e-6
    mu_t, sd_t = targets.mean(0), targets.std(0) + 1e-6
    net = fit((inputs - mu_i) / sd_i, (targets - mu_t) / sd_t, args.steps, args.width, args.seed)

    x0s, params = task.sample_instances(s.test_instances, s.test_seed)
    with torch.no_grad():
        out = net(torch.as_tensor((np.concatenate([x0s, params], 1) - mu_i) / sd_i, dtype=torch.float32)).numpy()
    out = out * sd_t + mu_t
    m = len(x0s)
    xs_hat = np.concatenate([x0s[:, None], out[:, : T * task.nx].reshape(m, T, task.nx)], axis=1)
    us_hat = np.clip(out[:, T * task.nx:].reshape(m, T, task.nu), task.u_lower, task.u_upper)
    lookup = NearestNeighbourLookup.from_data(data)
    gains = lookup.feedback_gains[lookup.nearest(x0s, params)]
    xs_fb, us_fb, _ = closed_loop_rollout(task, x0s, xs_hat, us_hat, gains)
    options = s.options(1)
    to = sw.solve(task, x0s, params, options=options)
    guesses = {"regression": (xs_hat, us_hat), "regression+feedback": (xs_fb, us_fb),
               "NN": lookup.guess(task, x0s, params), "NN+feedback": lookup.feedback_guess(task, x0s, params)}
    print(f"{s.key}: {n} training trajectories, {args.steps} steps, width {args.width}, seed {args.seed}; "
          f"{m} held-out instances (seed {s.test_seed}); TO alone {to.iterations.mean():.1f} iterations, "
          f"{100 * to.converged.mean():.0f}% converged")
    print("| guess | policy/TO median | refine iters mean | converged [%] |")
    print("|---|---|---|---|")
    ok = to.converged
    for name, (xs, us) in guesses.items():
        cost = guess_costs(task, x0s, params, xs, us, s.divergence_bound, 1)
        res = sw.solve(task, x0s, params, xs, us, options=options)
        print(f"| {name} | {np.median(cost[ok] / to.cost[ok]):.3g} | {res.iterations.mean():.1f} | "
              f"{100 * res.converged.mean():.0f} |")


if __name__ == "__main__":
    main()
