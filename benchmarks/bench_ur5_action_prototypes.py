"""Prototype action encodings for the UR5, trained and evaluated outside the scorecard on one scorecard folder's data
(its settings, training trajectories and held-out seed), to test a hypothesis before building it into the product.

- ``plain``: the scorecard's encoding (min-max normalised (cos q, sin q, v) of the next state), retrained here as
  the control row.
- ``residual``: the next velocity predicted relative to the observed one, ``v_{t0+k} - v_{t0}`` (derivative targets
  ``D - dv_{t0}/dx``); the rollout adds ``v_{t0}`` back (an eager wrapper, Python rollouts).
- ``robust``: the action normaliser fitted on the q and 1 - q quantiles instead of the extremes, samples clipped to
  the training data's hull instead of [-1, 1] (min-max ranges grow with outliers: 1024 random-start trajectories
  put joint 3's velocity range at 100 rad/s against a 99th percentile of 11).

Prints the median policy cost / TO alone's on the held-out instances, the refine iterations from the rollouts, and
the policy's one-step velocity error from the solver's own states at t = 5 and 20 (zero sampling noise, as
``bench_reach_error.py --one-step``):

    python3 benchmarks/bench_ur5_action_prototypes.py "runs/abl21/rsrt/base/policy_seed_0/ur5/random_start_random_target" \\
        --encoding plain residual --method diff
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.data import Normaliser, build_dataset
from sobolev_warmstart.policy import DiffusionPolicy
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import guess_costs

from bench_reach_error import one_step_velocity_errors, zero_noise  # this folder's diagnostic


def residual_dataset(ds, task, va: slice, vo: slice) -> None:
    """Chunks and derivative targets of ``ds`` rewritten in place as ``a - M o_{t0}`` (M: v_{t0} into the velocity
    slots), with a min-max normaliser refitted on them."""
    d, spec, nrm = ds.data, ds.spec, ds.normalisers
    N, T, H, h, na = d.num_instances, task.horizon, spec.horizon, spec.history, task.na
    tau = np.arange(T)[:, None] - h + np.arange(H)[None, :]
    padded = np.concatenate([d.initial_actions[:, None], d.actions], axis=1)
    chunks = padded[:, np.clip(tau, -1, T - 1) + 1].copy()
    chunks[..., va] -= d.observations[:, :T, None, vo]
    new = Normaliser.fit(chunks.reshape(-1, na), "minmax")
    jac = np.zeros((N, T, H, na, task.ndx))
    jac[:, :, h:] = d.action_jacobians[:, :, : H - h]
    jac[:, :, h:, va] -= d.observation_jacobians[:, :T, None, vo]
    nrm.action = new
    ds.chunks = torch.from_numpy(np.ascontiguousarray(new.normalise(chunks).reshape(N * T, H, na), dtype=np.float32))
    ds.chunk_jac = torch.from_numpy(np.ascontiguousarray(
        (jac / new.scale[:, None] * nrm.state.scale).reshape(N * T, H, na, task.ndx), dtype=np.float32))


def robust_dataset(ds, data, q: float) -> float:
    """The action normaliser of ``ds`` refitted on the q / 1 - q quantiles (in place); returns the hull of the
    normalised chunks, the sampler's clip range."""
    old, na = ds.normalisers.action, data.task.na
    phys = old.unnormalise(ds.chunks.double().numpy())
    flat = np.concatenate([data.actions.reshape(-1, na), data.initial_actions])
    lo, hi = np.quantile(flat, q, axis=0), np.quantile(flat, 1 - q, axis=0)
    new = Normaliser(0.5 * (lo + hi), np.where(0.5 * (hi - lo) > 1e-6, 0.5 * (hi - lo), 1.0))
    ds.normalisers.action = new
    ds.chunks = torch.from_numpy(new.normalise(phys).astype(np.float32))
    ds.chunk_jac = (ds.chunk_jac.double() * torch.from_numpy(old.scale / new.scale)[None, None, :, None]).float()
    return float(np.abs(ds.chunks.numpy()).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a UR5 variant's scorecard folder (settings.json, collect/trajectories.npz)")
    ap.add_argument("--encoding", nargs="+", default=["plain", "residual", "robust"],
                    choices=["plain", "residual", "robust"])
    ap.add_argument("--method", default="diff", choices=["diff", "sob_diff", "mlp", "sob_mlp"])
    ap.add_argument("--quantile", type=float, default=0.005, help="q of the robust normaliser")
    ap.add_argument("--policy-seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    s = dataclasses.replace(s, policy_seed=args.policy_seed)
    if s.task != "ur5":
        raise SystemExit(f"folder: expected a UR5 variant's scorecard folder, got task {s.task!r}")
    task = sw.make_task("ur5", s.variant)
    data = sw.load_dataset(folder / "collect" / "trajectories.npz").data
    keep = np.asarray(data.converged, bool)
    va, vo = slice(2 * task.nq, 3 * task.nq), slice(task.nq, 2 * task.nq)
    x0s, params = task.sample_instances(s.test_instances, s.test_seed)
    to = sw.solve(task, x0s, params, options=s.options(1))
    for encoding in args.encoding:
        ds = build_dataset(data, s.chunk())
        hull = 1.0
        if encoding == "residual":
            residual_dataset(ds, task, va, vo)
        elif encoding == "robust":
            hull = robust_dataset(ds, data, args.quantile)
        cfg = s.train_config(args.method, len(ds), Path("unused"))
        extra = {"sobolev_weight": s.sobolev_weight} if args.method.startswith("sob") else {}
        cfg = dataclasses.replace(cfg, resume=False, checkpoint_dir=None, **extra,
                                  diffusion=dataclasses.replace(cfg.diffusion, clip_sample_range=hull))
        policy = sw.train(ds, cfg).eval()
        if encoding == "residual":
            if not isinstance(policy, DiffusionPolicy):
                raise SystemExit("--encoding residual: a diffusion method only (diff, sob_diff)")

            class Residual(DiffusionPolicy):  # adds v_{t0} back to the velocity slots of the chunk
                def forward(self, obs_history, params, history_actions, noise):
                    ref = torch.zeros(obs_history.shape[0], 1, task.na)
                    ref[:, 0, va] = obs_history[:, -1, vo]
                    return super().forward(obs_history, params, history_actions - ref, noise) + ref

            policy.__class__ = Residual
        ro = sw.rollout(task, x0s, params, policy, seed=0)
        cost = guess_costs(task, x0s, params, ro.xs, ro.us, s.divergence_bound, 1)
        warm = sw.solve(task, x0s, params, ro.xs, ro.us, options=s.options(1))
        noise = zero_noise(s, task, int(keep.sum())) if isinstance(policy, DiffusionPolicy) else None
        errors = [e for e, _ in one_step_velocity_errors(task, policy, data.xs[keep], data.params[keep],
                                                         data.actions[keep], (5, 20), noise)]
        ok = to.converged
        print(f"{args.method} {encoding:8s} policy seed {args.policy_seed}: policy/TO median "
              f"{np.median(cost[ok] / to.cost[ok]):.3g}; refine iterations {warm.iterations.mean():.1f} "
              f"({100 * warm.converged.mean():.0f}% converged; TO alone {to.iterations.mean():.1f}); one-step velocity "
              f"error t = 5: {errors[0]:.2f}, t = 20: {errors[1]:.2f} rad/s")


if __name__ == "__main__":
    main()
