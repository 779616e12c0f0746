"""How should a policy read the time to go near the end of the horizon? (The UR5 reach policies miss the solver's
abrupt stop on the last steps: their one-step velocity error is largest there, even on their training data, and
the linear time to go ``(T - t0) / T`` separates the last two steps by 1/T only.)

Trains the method of a scorecard folder on its collected trajectories with the folder's recipe, once per time
feature (none; linear ``(T - t0) / T``; logarithmic ``log(T - t0 + 1) / log(T + 1)``, which separates the last
steps ~5x more), over the given policy seeds, and reports on the folder's held-out instances the policy cost over
TO alone's and the refine iterations (eager rollouts with the folder's A and sampler; the feature is swapped in the
data module and the eager rollout, so no exported file is involved), and the one-step next-velocity error from
the solver's own training states at the last steps:

    python3 benchmarks/bench_time_feature.py runs/abl50/fsrt/base/policy_seed_0/ur5/fixed_start_random_target --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.data import build_dataset, load_dataset
from sobolev_warmstart.scorecard import load_settings
from sobolev_warmstart.warmstart import guess_costs

_data = sys.modules["sobolev_warmstart.data"]
_rollout = sys.modules["sobolev_warmstart.rollout"]
LINEAR = _data.time_to_go


def logarithmic(t0, horizon: int) -> np.ndarray:
    return np.log(horizon - np.asarray(t0, dtype=np.float64) + 1.0) / np.log(horizon + 1.0)


FEATURES = {"none": None, "linear": LINEAR, "log": logarithmic}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--method", default="sob_diff", choices=["sob_diff", "diff"])
    ap.add_argument("--features", nargs="+", default=list(FEATURES), choices=list(FEATURES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    s = load_settings(args.folder)
    if s.history != 1:  # the one-step errors below read one past action and one observation
        raise SystemExit(f"folder: a policy with history 1 expected, got {s.history}")
    task = sw.make_task(s.task, s.variant)
    collected = load_dataset(Path(args.folder) / "collect" / "trajectories.npz")
    data, T, nv = collected.data, task.horizon, task.nv
    x_te, p_te = task.sample_instances(s.test_instances, s.test_seed)
    to = sw.solve(task, x_te, p_te, options=s.options(0))
    ok = np.asarray(to.converged)
    print(f"{s.key}: {data.num_instances} trajectories, {s.train_steps} steps, held-out seed {s.test_seed}; TO alone "
          f"{to.iterations.mean():.1f} iterations")
    print("| time feature | policy seed | policy/TO median | refine iters mean | final joint speed [rad/s] | "
          "one-step |v'| error at t = 45 / 48 / 49 (training) |")
    print("|---|---|---|---|---|---|")
    for name in args.features:
        feature = FEATURES[name]
        _data.time_to_go = _rollout.time_to_go = feature or LINEAR
        for seed in args.seeds:
            s2 = dataclasses.replace(s, time_to_go=feature is not None, policy_seed=seed)
            ds = build_dataset(data, s2.chunk(), normalisers=collected.normalisers)
            cfg = dataclasses.replace(s2.train_config(args.method, len(ds), Path("unused")), checkpoint_dir=None,
                                      resume=False)
            policy = sw.train(ds, cfg).eval()
            ro = sw.rollout(task, x_te, p_te, policy, action_steps=s.action_steps, seed=0)
            cost = guess_costs(task, x_te, p_te, ro.xs, ro.us, s.divergence_bound, 1)
            warm = sw.solve(task, x_te, p_te, ro.xs, ro.us, options=s.options(1))
            errors = []
            for t in (45, 48, 49):
                params = data.params
                if feature is not None:
                    params = np.concatenate([params, np.full((len(params), 1), feature(t, T))], axis=1)
                zero = torch.zeros(policy.num_steps, data.num_instances, policy.horizon, policy.na)
                a = policy.sample(data.observations[:, t:t + 1], params, data.actions[:, t - 1:t], noise=zero)
                err = np.linalg.norm(a.numpy()[:, 1, -nv:] - data.actions[:, t, -nv:], axis=1)
                errors.append(f"{np.median(err):.3f}")
            speed = np.median(np.linalg.norm(np.asarray(ro.xs)[:, -1, task.nq:], axis=1))
            print(f"| {name} | {seed} | {np.median(cost[ok] / to.cost[ok]):.3g} | {warm.iterations.mean():.1f} | "
                  f"{speed:.3f} | {' / '.join(errors)} |", flush=True)
    _data.time_to_go = _rollout.time_to_go = LINEAR


if __name__ == "__main__":
    main()
