"""Which action variable can a learned policy of the UR5 execute? A diagnostic with direct regressors.

The same MLP (two hidden layers of 256, Mish, cosine learning rate, no Sobolev term) regresses one action variable
on (x, z) from TO alone's trajectories and is rolled out in closed loop on held-out instances:

- ``qfeat``: (cos q, sin q) of the next configuration, torques by inverse dynamics (the UR5's action before it
  gained the velocity). An error e in q_{t+1} reaches the torque as M e / dt^2;
- ``vel``: the next velocity v_{t+1}, decoded as q_{t+1} = q_t + dt v_{t+1} (semi-implicit Euler), torques by
  inverse dynamics: the same error reaches the torque as M e / dt (the reference predicts velocities too). This
  is how the project's action (cos q, sin q, v) is executed now;
- ``torque``: the solver's torques themselves.

Prints the closed-loop cost over TO alone's converged cost (median, mean) per target and training seed:

    python3 benchmarks/bench_action_representation.py --variant random_start_random_target

Two input features can be added to test what the regressor lacks: ``--time-to-go`` ((T - t) / T) and
``--ee-feature`` (the tool's position p(q) by forward kinematics and its offset p* - p(q) to the target):

    python3 benchmarks/bench_action_representation.py --targets vel --time-to-go
    python3 benchmarks/bench_action_representation.py --targets vel --ee-feature
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart import _core


def fit(X: np.ndarray, Y: np.ndarray, steps: int, seed: int):
    torch.manual_seed(seed)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    ym, ys = Y.mean(0), Y.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 256), torch.nn.Mish(), torch.nn.Linear(256, 256),
                              torch.nn.Mish(), torch.nn.Linear(256, Y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    Xt = torch.tensor((X - mu) / sd, dtype=torch.float32)
    Yt = torch.tensor((Y - ym) / ys, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(Xt), (256,), generator=g)
        loss = ((net(Xt[idx]) - Yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.tensor((x - mu) / sd, dtype=torch.float32)).double().numpy() * ys + ym

    return predict


def _ee_features(task):
    """``f(xs (..., nx), targets (..., 3)) -> (..., 6)``: the tool frame's position and its offset to the target."""
    import pinocchio as pin
    from pathlib import Path
    model = pin.buildModelFromUrdf(str(Path(sw.robots_dir()) / "ur_description/urdf/ur5_robot.urdf"))
    data, frame = model.createData(), model.getFrameId("tool0")

    def f(xs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        flat = xs.reshape(-1, xs.shape[-1])
        p = np.empty((len(flat), 3))
        for i, x in enumerate(flat):
            pin.framesForwardKinematics(model, data, x[: model.nq])
            p[i] = data.oMf[frame].translation
        p = p.reshape(*xs.shape[:-1], 3)
        return np.concatenate([p, targets - p], -1)

    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="random_start_random_target")
    ap.add_argument("--train", type=int, default=64, help="training instances (seed 0)")
    ap.add_argument("--test", type=int, default=32, help="held-out instances (seed 1,000,000)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--targets", nargs="+", default=["qfeat", "vel", "torque"])
    ap.add_argument("--time-to-go", action="store_true",
                    help="append the normalised time to go (T - t) / T to the regressor's input")
    ap.add_argument("--ee-feature", action="store_true",
                    help="append the end effector's position p(q) and its offset to the target p* - p(q) (pinocchio)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = sw.make_task("ur5", args.variant)
    nq, dt, T = task.nq, task.dt, task.horizon
    x0s, params = task.sample_instances(args.train, 0)
    res = sw.solve(task, x0s, params, options=sw.SolverOptions(num_threads=1))
    ok = res.converged
    xs, us, P = res.xs[ok], res.us[ok], params[ok]
    n = len(xs)
    feats = np.concatenate([np.cos(xs[:, 1:, :nq]), np.sin(xs[:, 1:, :nq])], -1)
    if args.ee_feature and task.nz != 3:
        raise SystemExit(f"--ee-feature: expected a variant with a random target (nz = 3), got {args.variant}")
    ee = _ee_features(task) if args.ee_feature else None
    tau = np.broadcast_to(((T - np.arange(T)) / T)[None, :, None], (n, T, 1))
    extra = [ee(xs[:, :T], np.repeat(P[:, None], T, 1))] if ee else []
    X = np.concatenate([xs[:, :T], np.repeat(P[:, None], T, 1)] + ([tau] if args.time_to_go else []) + extra, -1)
    X = X.reshape(n * T, -1)
    targets = {"qfeat": feats.reshape(n * T, -1), "vel": xs[:, 1:, nq:].reshape(n * T, -1),
               "torque": us.reshape(n * T, -1)}
    tx0, tz = task.sample_instances(args.test, 1_000_000)
    to = sw.solve(task, tx0, tz, options=sw.SolverOptions(num_threads=1))
    print(f"ur5/{args.variant}: {n} training trajectories, {args.test} held-out instances, {args.steps} steps, "
          f"time to go {'in' if args.time_to_go else 'not in'} the input")
    print("| action variable | seed | closed-loop cost / TO alone, median | mean |")
    print("|---|---|---|---|")
    for name in args.targets:
        for seed in args.seeds:
            predict = fit(X, targets[name], args.steps, seed)
            x, XS, US = tx0.copy(), [tx0.copy()], []
            for t in range(T):
                tau_t = np.full((len(x), 1), (T - t) / T)
                y = predict(np.concatenate([x, tz] + ([tau_t] if args.time_to_go else []) + ([ee(x, tz)] if ee else []), -1))
                if name == "torque":
                    u = np.clip(y, task.u_lower, task.u_upper)
                    xn = task.step(x, u)
                else:
                    if name == "vel":
                        q, v = x[:, :nq] + dt * y, y
                    else:  # the velocity that reaches the predicted configuration
                        q = np.arctan2(y[:, nq:], y[:, :nq])
                        v = (q - x[:, :nq] + np.pi) % (2 * np.pi) / dt - np.pi / dt
                    u, xn, _ = _core.execute_actions(task, x, np.concatenate([np.cos(q), np.sin(q), v], -1))
                x = np.clip(xn, -1e3, 1e3)
                US.append(u)
                XS.append(x.copy())
            cost = _core.trajectory_costs(task, tx0, tz, np.stack(XS, 1), np.stack(US, 1))
            r = (cost / to.cost)[to.converged]
            print(f"| {name} | {seed} | {np.median(r):.3g} | {r.mean():.3g} |", flush=True)


if __name__ == "__main__":
    main()
