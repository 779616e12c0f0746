"""How precise must a policy be? The solver's own solutions replayed under torque noise, open loop and through
their own feedback law.

A policy's rollout can only reach the solver's cost if the solver's trajectories survive the errors a learned
policy makes. This program takes a training set (a scorecard's ``collect/trajectories.npz`` or a loop's) and, from
each solution's own start, replays it with Gaussian noise of ``sigma`` (a fraction of each control's box width) added
to every torque, clamped to the box:

- open loop: the solution's torques ``u*_t``;
- closed loop: its feedback law ``u*_t + K_t (x_t ⊖ x*_t)``, the best local policy the solver knows.

It prints the rollout's objective over the solution's (median and 75th percentile over the solutions; a rollout that diverges counts as
infinite), and the share of torques on their bounds (where ``K_t`` is zero). Where the feedback law itself does not hold the trajectory at the
noise of a trained network (about 1e-3 of the box on the scorecard's variants), no policy trained to imitate the
solver can be expected to reach its cost (docs/results/ablations.md, round 31). The replay is in torque space on
every task: where the policies act through the next state (the UR5, the quadrotor), it measures the problem's
sensitivity to the torques the inverse dynamics produce, not the action representation's.

    python3 benchmarks/bench_feedback_robustness.py runs/scorecard-v19/double_pendulum/default/collect/trajectories.npz default
    python3 benchmarks/bench_feedback_robustness.py runs/abl53/dpref_loopdata/collect/trajectories.npz reference
    python3 benchmarks/bench_feedback_robustness.py runs/scorecard-v19/ur5/random_start_random_target/collect/trajectories.npz \
        random_start_random_target --every 8
"""

from __future__ import annotations

import argparse

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart import _core
from sobolev_warmstart.data import load_dataset
from sobolev_warmstart.warmstart import closed_loop_rollout


def replay(task, xs_ref: np.ndarray, us_ref: np.ndarray, gains: np.ndarray | None, sigma: float,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each solution's torques from its own start with ``sigma`` x box-width Gaussian torque noise, clamped, through
    the feedback law ``gains`` (N, T, nu, ndx), or open loop if None (the product's :func:`closed_loop_rollout` with
    zero gains). Returns the rollouts' (xs, us) and which stayed within the rollout's bound."""
    n, T, nu = us_ref.shape
    width = np.asarray(task.u_upper) - np.asarray(task.u_lower)
    noise = sigma * width * np.random.default_rng(seed).standard_normal((T, n, nu)).transpose(1, 0, 2)
    if gains is None:
        gains = np.zeros((n, T, nu, task.ndx))
    xs, us, diverged = closed_loop_rollout(task, xs_ref[:, 0], xs_ref, us_ref, gains, noise=noise)
    return xs, us, ~diverged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", help="a training set: a scorecard's collect/trajectories.npz or a loop's")
    ap.add_argument("variant", help="the task's variant the training set was solved on (e.g. default, reference)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1e-5, 1e-4, 1e-3, 1e-2],
                    help="torque noise, fractions of each control's box width")
    ap.add_argument("--every", type=int, default=1, help="use every k-th solution")
    args = ap.parse_args()
    data = load_dataset(args.dataset).data
    task = sw.make_task(data.task.name, args.variant)
    if data.feedback_gains is None:
        raise SystemExit("dataset: holds no feedback gains")
    if args.every < 1:
        raise SystemExit(f"--every: expected a positive integer, got {args.every}")
    sel = np.arange(0, data.num_instances, args.every)
    xs_ref, us_ref, gains, params = data.xs[sel], data.us[sel], data.feedback_gains[sel], data.params[sel]
    ref = _core.trajectory_costs(task, xs_ref[:, 0], params, xs_ref, us_ref)
    lo, hi = np.asarray(task.u_lower), np.asarray(task.u_upper)
    on_bound = np.mean((us_ref <= lo + 1e-3 * (hi - lo)) | (us_ref >= hi - 1e-3 * (hi - lo)))
    print(f"{data.task.name}/{args.variant}: {len(sel)} solutions, {us_ref.shape[1]} steps; torques on their bounds: "
          f"{on_bound:.0%}; rollout objective / solution's: median, 75th percentile")
    print("| torque noise [box width] | open loop | feedback law |")
    print("|---|---|---|")
    for sigma in args.sigmas:
        cells = []
        for k in (None, gains):
            xs, us, alive = replay(task, xs_ref, us_ref, k, sigma)
            r = np.where(alive, _core.trajectory_costs(task, xs_ref[:, 0], params, xs, us) / ref, np.inf)
            cells.append(f"{np.median(r):.3g}, {np.percentile(r, 75):.3g}")
        print(f"| {sigma:g} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
