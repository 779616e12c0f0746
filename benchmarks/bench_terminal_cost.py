"""Where does a reach policy's cost above TO alone's come from? The running and terminal parts of the objective
along the policy's rollout and along TO alone's solution, the tool's final distance to the target and the final
joint speed on held-out instances; and the policy's one-step next-velocity error from the solver's own states at a
few steps, on (up to 64 of) the trajectories it trained on and on held-out instances (zero sampling noise, the solver's previous action as
history). UR5 variants (cost: ``cpp/src/task_ur5.cpp``, ``task.describe()``; the terminal part is checked against
the objective itself before anything is printed):

    python3 benchmarks/bench_terminal_cost.py runs/scorecard-v18/ur5/fixed_start_random_target \\
        runs/scorecard-v18/ur5/random_start_random_target --method sob_diff
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.data import time_to_go
from sobolev_warmstart.scorecard import _EXPORT, load_settings
from sobolev_warmstart.warmstart import guess_costs

STEPS = (0, 10, 30, 40, 45, 48, 49)


def terminal_weights(task) -> tuple[float, float]:
    """The UR5's terminal weights on the tool's offset and the joint speed, as ``task.describe()`` states them
    (``terminal 1/2 (w_ee |p_ee - p*|^2 + w_v |v|^2)``)."""
    found = re.search(r"terminal 1/2 \(([0-9.e+-]+) \|p_ee - p\*\|\^2 \+ ([0-9.e+-]+) \|v\|\^2\)", task.describe())
    if found is None:
        raise ValueError(f"task: {task.name}/{task.variant} does not describe a UR5 reach's terminal cost")
    return float(found.group(1)), float(found.group(2))


def terminal(task, xs: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance: the terminal cost ``1/2 (w_ee |e|^2 + w_v |v|^2)``, the tool's final distance to the target, the
    final joint speed."""
    nq, nv = task.nq, task.nv
    w_ee, w_v = terminal_weights(task)
    e = np.stack([task.observation(x[-1], z)[0][nq + nv: nq + nv + 3] for x, z in zip(xs, params)])
    speed = np.linalg.norm(xs[:, -1, nq:], axis=1)
    return 0.5 * (w_ee * (e ** 2).sum(1) + w_v * speed ** 2), np.linalg.norm(e, axis=1), speed


def check_terminal(task, x0s, params, xs, us) -> None:
    """The objective changes with the last state by exactly what :func:`terminal` says (only the terminal cost reads
    it): moved in configuration and in velocity, both differences must agree to 1e-9 relative."""
    moved = xs.copy()
    moved[:, -1, : task.nq] += 0.05
    moved[:, -1, task.nq:] += 0.3
    objective = guess_costs(task, x0s, params, moved, us, 1e3, 0) - guess_costs(task, x0s, params, xs, us, 1e3, 0)
    formula = terminal(task, moved, params)[0] - terminal(task, xs, params)[0]
    if not np.allclose(objective, formula, rtol=1e-9, atol=1e-12):
        raise RuntimeError(f"terminal cost: the formula's differences {formula} are not the objective's {objective}")


def solved(task, s, x0s, params) -> sw.TrajectoryData:
    res = sw.solve(task, x0s, params, options=s.options(0))
    data = sw.TrajectoryData.from_solve(task, res, sw.chained_derivatives(task, res, s.horizon - s.history))
    return data.select(np.asarray(res.converged))


def one_step_errors(task, policy, s, data: sw.TrajectoryData, entries: slice | None = None,
                    steps: tuple[int, ...] = STEPS) -> list[float]:
    """Median |a'_policy - a'_solver| over the action ``entries`` (default: the last ``nv``, the next velocity) at
    each of ``steps``, from the solver's own states of ``data`` (zero sampling noise, the solver's previous action
    as history)."""
    n, T = data.num_instances, task.horizon
    entries = slice(-task.nv, None) if entries is None else entries
    out = []
    for t in steps:
        z = data.params
        if s.time_to_go:
            z = np.concatenate([z, np.full((n, 1), time_to_go(t, T))], axis=1)
        hist = data.actions[:, t - s.history:t] if t >= s.history else np.repeat(data.initial_actions[:, None], s.history, 1)
        obs = data.observations[:, max(t - s.history + 1, 0):t + 1]
        if obs.shape[1] < s.history:  # edge-padded at the start, as the chunk dataset does
            obs = np.concatenate([np.repeat(obs[:, :1], s.history - obs.shape[1], 1), obs], axis=1)
        zero = torch.zeros(policy.num_steps, n, policy.horizon, policy.na)
        a = policy.sample(obs, z, hist, noise=zero).numpy()[:, s.history]
        out.append(float(np.median(np.linalg.norm(a[:, entries] - data.actions[:, t, entries], axis=1))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="UR5 scorecard folders (settings.json, collect/, <method>/)")
    ap.add_argument("--method", default="sob_diff", choices=["sob_diff", "diff"])
    args = ap.parse_args()
    rows, steps = [], []
    for folder in map(Path, args.folders):
        s = load_settings(folder)
        task = sw.make_task(s.task, s.variant)
        policy, _, _ = sw.load_checkpoint(folder / args.method / "checkpoint")
        policy = policy.eval()
        x, p = task.sample_instances(s.test_instances, s.test_seed)
        to = sw.solve(task, x, p, options=s.options(0))
        ok = np.asarray(to.converged)
        ro = sw.rollout(task, x, p, str(folder / args.method / _EXPORT), action_steps=s.action_steps, seed=0)
        xs_p = np.asarray(ro.xs)
        check_terminal(task, x, p, np.asarray(to.xs), np.asarray(to.us))
        total_to = guess_costs(task, x, p, np.asarray(to.xs), np.asarray(to.us), s.divergence_bound, 0)
        total_p = guess_costs(task, x, p, xs_p, np.asarray(ro.us), s.divergence_bound, 0)
        term_to, dist_to, speed_to = terminal(task, np.asarray(to.xs), p)
        term_p, dist_p, speed_p = terminal(task, xs_p, p)
        share = (term_p - term_to)[ok] / (total_p - total_to)[ok]
        rows.append(f"| {s.key} | {np.median(total_p[ok] / total_to[ok]):.3g} | {np.median(total_to):.3g} / "
                    f"{np.median(term_to):.2g} | {np.median(total_p):.3g} / {np.median(term_p):.3g} | "
                    f"{np.median(share):.2f} | {1e3 * np.median(dist_to):.1f} / {1e3 * np.median(dist_p):.1f} | "
                    f"{np.median(speed_to):.3f} / {np.median(speed_p):.3f} |")
        trained_on = sw.load_dataset(folder / "collect" / "trajectories.npz").data
        train = one_step_errors(task, policy, s, trained_on.select(np.arange(min(64, trained_on.num_instances))))
        held = one_step_errors(task, policy, s, solved(task, s, x, p))
        steps.append(f"| {s.key} | " + " | ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(train, held)) + " |")
    print(f"{args.method}: held-out medians; TO alone / the policy's rollout")
    print("| variant | policy/TO | TO: total / terminal cost | policy: total / terminal | share of the excess that is "
          "terminal | final tool distance [mm] | final joint speed [rad/s] |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\none-step |v'| error [rad/s] from the solver's states: training trajectories (the first 64 the policy "
          "trained on) / held-out instances solved by TO alone, at t =")
    print("| variant | " + " | ".join(str(t) for t in STEPS) + " |")
    print("|---|" + "---|" * len(STEPS))
    print("\n".join(steps))


if __name__ == "__main__":
    main()
