"""Where do a UR5 policy's rollouts end, against the target, on its training and on held-out instances?
(ablations, round 9: a fit problem when both are far, a coverage problem when only the held-out ones are.)

Rolls the exported Diff and Sob+Diff policies of a scorecard folder out with zero sampling noise on the folder's
training instances and on its held-out ones, and prints the median and largest distance of the tool (frame tool0)
from the target at the last step, and the median final joint speed:

    python3 benchmarks/bench_reach_error.py runs/scorecard-v5/ur5/random_start_random_target

With ``--drift``, also how far the rollouts from the training trajectories' own starts drift from those solved
trajectories over time: the median joint-space distance |q_rollout(t) - q*(t)| at a few steps (a chunk fitted well
whose rollout still drifts is compounding error in closed loop, not a fit problem). With ``--one-step``, the
policy's first executed action from the solver's own state x*(t) (the policies do not read the time): the median
error of its next-velocity part against the solver's, beside the solver's own velocity change |v*(t+1) - v*(t)|
(an error larger than the change is worse than holding the velocity).

    python3 benchmarks/bench_reach_error.py --drift --one-step "runs/abl21/rsrt/base/policy_seed_0/ur5/random_start_random_target"

With ``--approach``, the median tool distance to the target over time on the held-out instances, for TO alone's
solutions and for each policy's rollouts (which part of the reach a policy misses):

    python3 benchmarks/bench_reach_error.py --approach "runs/abl37/rsrt_eevel/train_instances=256+train_steps=4000/policy_seed_0/ur5/random_start_random_target"

With ``--motion``, how the tool moves on the held-out instances, for TO alone and each policy: at a few steps, the
median tool speed toward the target and across that direction (the tool velocity J v split along -e / |e|), and
the median joint speed; and the share of steps with a torque at its bound (a policy that is slow because its
torques saturate, or because it moves the tool sideways):

    python3 benchmarks/bench_reach_error.py --motion "runs/abl40/rsrt/base/policy_seed_0/ur5/random_start_random_target"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pinocchio as pin

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import load_settings


VELOCITY_STEPS = (0, 1, 2, 5, 10, 20, 30, 40)  # and the last step


def zero_noise(s, task, n: int) -> np.ndarray:
    """All-zero sampling noise for ``n`` rollouts of a diffusion policy trained with settings ``s`` (its own A:
    one replan per ``s.action_steps`` steps)."""
    replans = -(-task.horizon // s.action_steps)
    return np.zeros((n, replans, s.diffusion_steps, s.horizon, task.na), np.float32)


def one_step_velocity_errors(task, policy, xs, params, actions, times, noise=None) -> list[tuple[float, float]]:
    """Per step t of ``times``: the median error of the policy's first next-velocity action started from the
    solver's own states ``xs[:, t]`` (the policies do not read the time) against the solver's ``actions[:, t]``,
    and the median of the solver's own velocity change there (UR5 state actions (cos q, sin q, v))."""
    va = slice(2 * task.nq, 3 * task.nq)
    out = []
    for t in times:
        first = np.asarray(sw.rollout(task, xs[:, t], params, policy, noise=noise).actions)[:, 0]
        out.append((float(np.median(np.linalg.norm(first[:, va] - actions[:, t, va], axis=1))),
                    float(np.median(np.linalg.norm(actions[:, t, va] - xs[:, t, task.nq:], axis=1)))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a UR5 variant's scorecard folder (holding settings.json, diff/, sob_diff/)")
    ap.add_argument("--drift", action="store_true", help="the rollouts' joint drift from the training trajectories")
    ap.add_argument("--one-step", action="store_true",
                    help="the first action's velocity error from the training trajectories' own states")
    ap.add_argument("--approach", action="store_true",
                    help="the median tool distance to the target over time on the held-out instances")
    ap.add_argument("--motion", action="store_true",
                    help="the tool's speed toward the target and across it, joint speeds and saturated torques")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    if s.task != "ur5":
        raise SystemExit(f"folder: expected a UR5 variant's scorecard folder, got task {s.task!r}")
    task = sw.make_task("ur5", s.variant)
    model = pin.buildModelFromUrdf(str(sw.robots_dir() / "ur_description" / "urdf" / "ur5_robot.urdf"))
    data, frame = model.createData(), model.getFrameId("tool0")
    sets = {"training": task.sample_instances(s.train_instances, seed=s.train_seed),
            "held-out": task.sample_instances(s.test_instances, seed=s.test_seed)}
    if args.drift or args.one_step:
        solved = sw.load_dataset(folder / "collect" / "trajectories.npz").data
        keep = np.asarray(solved.converged, bool)
        ref, ref_params, acts = solved.xs[keep], solved.params[keep], solved.actions[keep]
    def tool_distance(xs: np.ndarray, params: np.ndarray) -> np.ndarray:
        """|p_ee(q) - p*| of states (..., nx) with params (N, 3) along the first axis."""
        out = np.zeros(xs.shape[:-1])
        for idx in np.ndindex(*xs.shape[:-1]):
            pin.framesForwardKinematics(model, data, xs[idx][:task.nq])
            out[idx] = np.linalg.norm(data.oMf[frame].translation - params[idx[0]])
        return out

    def motion(name: str, xs: np.ndarray, us: np.ndarray, params: np.ndarray) -> None:
        """Median tool speed toward the target / across, and joint speed, at a few steps; saturated steps."""
        cells = []
        for t in [t for t in (10, 20, 30, 40, 45) if t < task.horizon]:
            toward, across = [], []
            for i in range(len(xs)):
                q, v = xs[i, t, :task.nq], xs[i, t, task.nq:]
                jac = pin.computeFrameJacobian(model, data, q, frame, pin.LOCAL_WORLD_ALIGNED)[:3]
                e = data.oMf[frame].translation - params[i]
                tool_velocity, direction = jac @ v, -e / max(np.linalg.norm(e), 1e-12)
                toward.append(tool_velocity @ direction)
                across.append(np.linalg.norm(tool_velocity - (tool_velocity @ direction) * direction))
            cells.append(f"t = {t}: {np.median(toward):.3f} / {np.median(across):.3f} m/s, "
                         f"{np.median(np.linalg.norm(xs[:, t, task.nq:], axis=1)):.2f} rad/s")
        saturated = (np.abs(us) >= np.asarray(task.u_upper) * (1 - 1e-6)).any(-1).mean()
        print(f"{name:8s} held-out tool speed toward the target / across, joint speed (medians): " + "; ".join(cells)
              + f"; steps with a torque at its bound {100 * saturated:.1f}%")

    approach_steps = [t for t in (0, 10, 20, 30, 40) if t < task.horizon] + [task.horizon]
    if args.approach or args.motion:
        x0s, params = sets["held-out"]
        to = sw.solve(task, x0s, params, options=s.options(0))
    if args.motion:
        motion("TO alone", np.asarray(to.xs), np.asarray(to.us), params)
    if args.approach:
        d = np.median(tool_distance(np.asarray(to.xs), params), axis=0)
        print("TO alone held-out tool distance to the target, median [m] at t = "
              + ", ".join(f"{t}: {d[t]:.3f}" for t in approach_steps))
    for method in ("diff", "sob_diff"):
        runner = sw.load_policy_runner(folder / method / "policy_export.safetensors")
        for name, (x0s, params) in sets.items():
            rolled = sw.rollout(task, x0s, params, runner, noise=zero_noise(s, task, len(x0s)))
            xs = np.asarray(rolled.xs)
            miss = list(tool_distance(xs[:, -1], params))
            if args.motion and name == "held-out":
                motion(method, xs, np.asarray(rolled.us), params)
            if args.approach and name == "held-out":
                d = np.median(tool_distance(xs, params), axis=0)
                print(f"{method:8s} held-out tool distance to the target, median [m] at t = "
                      + ", ".join(f"{t}: {d[t]:.3f}" for t in approach_steps))
            speed = np.linalg.norm(xs[:, -1, task.nq:], axis=1)
            print(f"{method:8s} {name:9s} ({len(x0s)}): final tool error median {np.median(miss):.3f} m, "
                  f"max {np.max(miss):.3f} m; final joint speed median {np.median(speed):.2f} rad/s")
        if args.one_step:
            steps = [t for t in VELOCITY_STEPS if t < task.horizon - 1] + [task.horizon - 1]
            errors = one_step_velocity_errors(task, runner, ref, ref_params, acts, steps, zero_noise(s, task, len(ref)))
            print(f"{method:8s} one-step velocity error [rad/s] from the solver's states at t (its change): "
                  + ", ".join(f"{t}: {e:.2f} ({c:.2f})" for t, (e, c) in zip(steps, errors)))
        if args.drift:
            xs = np.asarray(sw.rollout(task, ref[:, 0], ref_params, runner, noise=zero_noise(s, task, len(ref))).xs)
            dq = np.linalg.norm(xs[..., :task.nq] - ref[..., :task.nq], axis=-1)  # (N, T+1) [rad]
            steps = [t for t in (1, 2, 5, 10, 20, 30, 40, task.horizon) if t <= task.horizon]
            print(f"{method:8s} drift from its {len(ref)} training trajectories, median |q - q*| [rad] at t = "
                  + ", ".join(f"{t}: {np.median(dq[:, t]):.3f}" for t in steps))


if __name__ == "__main__":
    main()
