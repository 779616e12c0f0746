"""Would steering the denoiser away from the columns keep a quadrotor policy's rollouts out of them, and would its
warm starts then beat TO alone? A prototype on a scorecard folder's Sob+Diff policy, before building anything in C++.

The quadrotor acts through its next state ``a = (p, R e_x, R e_y, v)``, executed through the velocity. At every
denoising step of every replan, the clean-chunk estimate ``x̂0`` (normalised) is moved down the gradient of a
clearance penalty on the path the chunk's velocities imply from the current state,
``p_{k+1} = p_k + dt R_k v_k`` (the pose of step ``k`` from the chunk's own rotation features),

    penalty = sum_k sum_j max(0, r^2 - |p_k,xy - c_j|^2),    x̂0 <- x̂0 - eta * d penalty / d x̂0,

before the sampler clips it (classifier-style guidance, as in diffusion planners). ``eta = 0`` is the policy as
trained (its eager rollout equals the C++ one). Prints, per eta: rollouts entering a column's 0.4 m keep-out radius,
the policy's own cost over TO alone's, and the refine iterations of its warm start against TO alone's:

    python3 benchmarks/bench_column_guidance.py runs/abl23/quad_state/base/policy_seed_0/quadrotor/columns_9 \
        --eta 0 1 3 10 --seed 1000000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.train import load_checkpoint
from sobolev_warmstart.warmstart import guess_costs

from bench_column_clearance import violations


class GuidedDenoiser(torch.nn.Module):
    """The policy's denoiser, its clean-chunk estimate pushed out of the columns by ``eta`` gradient steps."""

    def __init__(self, policy, eta: float, radius: float):
        super().__init__()
        self.net, self.eta, self.radius = policy.net, float(eta), float(radius)
        self.h, self.no, self.nz, self.dt = policy.history_steps, policy.no, policy.nz, policy.task.dt
        self.a = (policy.a_scale.double(), policy.a_offset.double())
        self.o = (policy.o_scale.double(), policy.o_offset.double())
        self.z = (policy.z_scale[:self.nz].double(), policy.z_offset[:self.nz].double())

    @staticmethod
    def _rotate(features: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        e1, e2 = features[:, 0:3], features[:, 3:6]
        return e1 * v[:, :1] + e2 * v[:, 1:2] + torch.linalg.cross(e1, e2) * v[:, 2:3]

    def penalty(self, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h, no = self.h, self.no
        a = x0[:, h:].double() * self.a[0] + self.a[1]
        o = cond[:, (h - 1) * no:h * no].double() * self.o[0] + self.o[1]
        z = cond[:, h * no:h * no + self.nz].double() * self.z[0] + self.z[1]
        cols = z[:, 3:].reshape(len(z), -1, 2)
        p, rot = o[:, 0:3], o[:, 3:9]
        total = x0.new_zeros((), dtype=torch.float64)
        for k in range(a.shape[1]):
            p = p + self.dt * self._rotate(rot, a[:, k, 9:12])
            d2 = ((p[:, None, :2] - cols) ** 2).sum(-1)
            total = total + torch.relu(self.radius ** 2 - d2).sum()
            rot = a[:, k, 3:9]
        return total

    def forward(self, x: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x0 = self.net(x, step, cond)
        if self.eta == 0.0:
            return x0
        with torch.enable_grad():
            y = x0.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.penalty(y, cond), y)
        return x0 - self.eta * grad.to(x0.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard variant folder of quadrotor/columns_K (holding settings.json, sob_diff/)")
    ap.add_argument("--method", default="sob_diff", choices=["diff", "sob_diff"])
    ap.add_argument("--eta", type=float, nargs="+", default=[0.0, 1.0, 3.0, 10.0])
    ap.add_argument("--radius", type=float, default=0.45, help="clearance radius of the penalty [m]")
    ap.add_argument("-n", type=int, default=32, help="held-out instances")
    ap.add_argument("--seed", type=int, default=1_000_000, help="instance seed of the held-out set")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    if s.task != "quadrotor":
        raise SystemExit(f"folder: expected a quadrotor scorecard folder, got {s.task}/{s.variant}")
    torch.set_num_threads(1)
    task = sw.make_task(s.task, s.variant)
    x0s, params = task.sample_instances(args.n, args.seed)
    options = sw.SolverOptions(num_threads=1, max_iters=s.max_iters)
    to = sw.solve(task, x0s, params, options=options)
    print(f"{s.task}/{s.variant}, {args.n} instances of seed {args.seed}, {args.method} of {folder}; "
          f"TO alone: {to.iterations.mean():.1f} iterations, {100 * to.converged.mean():.0f}% converged")
    print("| eta | rollouts inside a column | mean depth [m] | policy/TO median | warm-start iters mean | converged [%] |")
    print("|---|---|---|---|---|---|")
    for eta in args.eta:
        policy, _, _ = load_checkpoint(folder / args.method / "checkpoint")
        policy.sampler.denoiser = GuidedDenoiser(policy, eta, args.radius)
        roll = sw.rollout(task, x0s, params, policy, seed=0)
        pen, _ = violations(roll.xs, params)
        cost = guess_costs(task, x0s, params, roll.xs, roll.us, s.divergence_bound, num_threads=1)
        ok = to.converged
        ratio = np.median(cost[ok] / to.cost[ok])
        warm = sw.solve(task, x0s, params, roll.xs, roll.us, options=options)
        print(f"| {eta:g} | {int((pen > 1e-3).sum())}/{args.n} | {pen.mean():.3f} | {ratio:.3g} | "
              f"{warm.iterations.mean():.1f} | {100 * warm.converged.mean():.0f} |", flush=True)


if __name__ == "__main__":
    main()
