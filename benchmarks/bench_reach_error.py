"""Where do a UR5 policy's rollouts end, against the target, on its training and on held-out instances?
(ablations, round 9: a fit problem when both are far, a coverage problem when only the held-out ones are.)

Rolls the exported Diff and Sob+Diff policies of a scorecard folder out with zero sampling noise on the folder's
training instances and on its held-out ones, and prints the median and largest distance of the tool (frame tool0)
from the target at the last step, and the median final joint speed:

    python3 benchmarks/bench_reach_error.py runs/scorecard-v5/ur5/random_start_random_target
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pinocchio as pin

import sobolev_warmstart as sw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a UR5 variant's scorecard folder (holding settings.json, diff/, sob_diff/)")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = json.loads((folder / "settings.json").read_text())
    if s["task"] != "ur5":
        raise SystemExit(f"folder: expected a UR5 variant's scorecard folder, got task {s['task']!r}")
    task = sw.make_task("ur5", s["variant"])
    model = pin.buildModelFromUrdf(str(sw.robots_dir() / "ur_description" / "urdf" / "ur5_robot.urdf"))
    data, frame = model.createData(), model.getFrameId("tool0")
    sets = {"training": task.sample_instances(s["train_instances"], seed=s["train_seed"]),
            "held-out": task.sample_instances(s["test_instances"], seed=s["test_seed"])}
    for method in ("diff", "sob_diff"):
        runner = sw.load_policy_runner(folder / method / "policy_export.safetensors")
        for name, (x0s, params) in sets.items():
            noise = np.zeros((len(x0s), task.horizon, s.get("diffusion_steps", 5), s["horizon"], task.na), np.float32)
            xs = np.asarray(sw.rollout(task, x0s, params, runner, noise=noise).xs)
            miss = []
            for x, p in zip(xs[:, -1], params):
                pin.framesForwardKinematics(model, data, x[:task.nq])
                miss.append(np.linalg.norm(data.oMf[frame].translation - p))
            speed = np.linalg.norm(xs[:, -1, task.nq:], axis=1)
            print(f"{method:8s} {name:9s} ({len(x0s)}): final tool error median {np.median(miss):.3f} m, "
                  f"max {np.max(miss):.3f} m; final joint speed median {np.median(speed):.2f} rad/s")


if __name__ == "__main__":
    main()
