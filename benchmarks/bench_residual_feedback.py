"""Can a learned correction to the lookup's feedback law beat the lookup? (a prototype, tested outside the product.)

The nearest-neighbour feedback law ``u = clip(u^j_t + K^j_t (x ⊖ x^j_t))`` (``nn_feedback``) is the best warm start on
most variants; the step-by-step policies drift off the solver's trajectories where it does not (ablations round
12). This prototype learns what the law misses: a residual ``r(x ⊖ x^j_t, c)`` added to the clamped law (the sum clamped again), with the context
``c = (x^j_t, t / T, z, z - z^j, x0 ⊖ x0^j)`` (all known at rollout time), trained on pairs (instance i, one of its
k nearest *other* training instances j) along i's solved trajectory:

- value target: ``u*_i,t - clip(u^j_t + K^j_t (x*_i,t ⊖ x^j_t))`` (the law clamped to the bounds, as rolled out);
- Sobolev target (weight ``--sobolev-weight``): the residual's derivative in the deviation, ``K*_i,t`` minus the
  clamped law's (``K^j_t`` on the controls inside their bounds, zero on the saturated ones).

At ``r = 0`` the rollout is ``nn_feedback`` exactly. Held-out instances, the solver and its options are the
scorecard folder's; every guess is refined by the same solver:

    python3 benchmarks/bench_residual_feedback.py runs/scorecard-v10/ur5/random_start_random_target --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.baselines import NearestNeighbourLookup, neighbour_order
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import diverged_rollouts, guess_costs, state_difference


class Residual(torch.nn.Module):
    def __init__(self, ndx: int, nc: int, nu: int, width: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(ndx + nc, width), torch.nn.Mish(),
                                       torch.nn.Linear(width, width), torch.nn.Mish(),
                                       torch.nn.Linear(width, nu))

    def forward(self, dx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([dx, c], dim=-1))


def context(task, xref_t, t, z, zj, x0, x0j):
    n = len(xref_t)
    tt = np.full((n, 1), t / task.horizon) if np.isscalar(t) else (np.asarray(t, float) / task.horizon)[:, None]
    return np.concatenate([xref_t, tt, z, z - zj, state_difference(task, x0, x0j)], axis=1)


def training_pairs(task, data, k: int):
    """(dx, c, residual, residual gain) over pairs (i, j), j among the k nearest other instances, all t."""
    nbrs = neighbour_order(data.xs[:, 0], data.params, k)
    T = task.horizon
    out = {"dx": [], "c": [], "r": [], "J": []}
    for i in range(data.num_instances):
        for j in nbrs[i]:
            dx = state_difference(task, data.xs[i, :T], data.xs[j, :T])
            base = data.us[j] + np.einsum("tij,tj->ti", data.feedback_gains[j], dx)
            inside = ((base > task.u_lower) & (base < task.u_upper))[..., None]
            base = np.clip(base, task.u_lower, task.u_upper)
            c = context(task, data.xs[j, :T], np.arange(T), np.repeat(data.params[i][None], T, 0),
                        np.repeat(data.params[j][None], T, 0), np.repeat(data.xs[i, :1], T, 0),
                        np.repeat(data.xs[j, :1], T, 0))
            out["dx"].append(dx)
            out["c"].append(c)
            out["r"].append(data.us[i] - base)
            out["J"].append(data.feedback_gains[i] - inside * data.feedback_gains[j])
    return {key: np.concatenate(v) for key, v in out.items()}


def fit(pairs, task, steps: int, width: int, lam: float, seed: int):
    torch.manual_seed(seed)
    s_dx = pairs["dx"].std(0) + 1e-3
    mu_c, s_c = pairs["c"].mean(0), pairs["c"].std(0) + 1e-6
    lo, hi = np.asarray(task.u_lower, float), np.asarray(task.u_upper, float)
    s_u = np.where(np.isfinite(hi - lo), 0.5 * (hi - lo), pairs["r"].std(0) + 1e-6)
    dx = torch.as_tensor(pairs["dx"] / s_dx, dtype=torch.float32)
    c = torch.as_tensor((pairs["c"] - mu_c) / s_c, dtype=torch.float32)
    r = torch.as_tensor(pairs["r"] / s_u, dtype=torch.float32)
    J = torch.as_tensor(pairs["J"] * s_dx[None, None] / s_u[None, :, None], dtype=torch.float32)
    net = Residual(dx.shape[1], c.shape[1], r.shape[1], width)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    jac = torch.func.vmap(torch.func.jacrev(lambda a, b: net(a[None], b[None])[0], argnums=0))
    for _ in range(steps):
        idx = torch.randint(0, len(dx), (256,), generator=gen)
        loss = torch.nn.functional.mse_loss(net(dx[idx], c[idx]), r[idx])
        if lam > 0:
            loss = loss + lam * torch.nn.functional.mse_loss(jac(dx[idx], c[idx]), J[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()

    def residual(dx_np, c_np):
        with torch.no_grad():
            out = net(torch.as_tensor(dx_np / s_dx, dtype=torch.float32),
                      torch.as_tensor((c_np - mu_c) / s_c, dtype=torch.float32)).numpy()
        return out * s_u

    return residual


def rollout(task, x0s, params, lookup: NearestNeighbourLookup, residual, bound: float):
    idx = lookup.nearest(x0s, params)
    xr, ur, K = lookup.xs[idx], lookup.us[idx], lookup.feedback_gains[idx]
    zj, x0j = lookup.params[idx], lookup.x0s[idx]
    n, T = len(x0s), task.horizon
    xs = np.empty((n, T + 1, task.nx))
    us = np.zeros((n, T, task.nu))
    xs[:, 0] = x0s
    alive = np.ones(n, bool)
    for t in range(T):
        xs[:, t + 1] = xs[:, t]
        a = np.flatnonzero(alive)
        if not len(a):
            continue
        dx = state_difference(task, xs[a, t], xr[a, t])
        u = ur[a, t] + np.einsum("nij,nj->ni", K[a, t], dx)
        if residual is not None:
            u = np.clip(u, task.u_lower, task.u_upper)
            u = u + residual(dx, context(task, xr[a, t], t, params[a], zj[a], x0s[a], x0j[a]))
        us[a, t] = np.clip(u, task.u_lower, task.u_upper)
        xs[a, t + 1] = task.step(xs[a, t], us[a, t])
        alive[a] = ~diverged_rollouts(xs[a, t + 1, None], bound)
    return xs, us, ~alive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard folder (settings.json, collect/trajectories.npz)")
    ap.add_argument("--neighbours", type=int, default=4, help="training pairs per instance")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--sobolev-weight", type=float, nargs="+", default=[0.0, 0.1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    s = load_settings(Path(args.folder))
    task = sw.make_task(s.task, s.variant)
    data = sw.load_dataset(Path(args.folder) / "collect" / "trajectories.npz").data
    data = data.select(np.asarray(data.converged, bool))
    lookup = NearestNeighbourLookup.from_data(data)
    x0s, params = task.sample_instances(s.test_instances, s.test_seed)
    options = s.options(1)
    to = sw.solve(task, x0s, params, options=options)
    ok = to.converged
    t0 = time.perf_counter()
    pairs = training_pairs(task, data, args.neighbours)
    print(f"{s.key}: {data.num_instances} training trajectories, {len(pairs['dx'])} pair-steps "
          f"({time.perf_counter() - t0:.1f} s); {len(x0s)} held-out (seed {s.test_seed}); TO alone "
          f"{to.iterations.mean():.1f} iterations, {1e3 * to.solve_time.mean():.1f} ms, "
          f"{100 * ok.mean():.0f}% converged", flush=True)
    print("| guess | seed | train [s] | policy/TO median | mean | diverged | iters mean | median | solve [ms] "
          "| converged [%] | refined cost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [("NN+feedback", None, None)] + [(f"residual lambda {lam:g}", lam, seed)
                                            for lam in args.sobolev_weight for seed in args.seeds]
    for name, lam, seed in rows:
        t0 = time.perf_counter()
        res = None if lam is None else fit(pairs, task, args.steps, args.width, lam, seed)
        train_s = time.perf_counter() - t0
        xs, us, div = rollout(task, x0s, params, lookup, res, s.divergence_bound)
        cost = guess_costs(task, x0s, params, xs, us, s.divergence_bound, 1)
        warm = sw.solve(task, x0s, params, xs, us, options=options)
        ratio = cost[ok] / to.cost[ok]
        conv = warm.converged
        print(f"| {name} | {'-' if seed is None else seed} | {train_s:.0f} | {np.median(ratio):.3g} | "
              f"{ratio.mean():.3g} | {div.sum()} | {warm.iterations.mean():.1f} | {np.median(warm.iterations):.1f} "
              f"| {1e3 * warm.solve_time.mean():.1f} | {100 * conv.mean():.0f} | "
              f"{warm.cost[conv].mean():.4g} |", flush=True)


if __name__ == "__main__":
    main()
