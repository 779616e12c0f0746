"""Where does a policy's cost above TO alone's come from, on any task? The objective is a sum of state terms and
control terms, so swapping one trajectory's states or controls into the other splits the excess exactly: the
controls, the running states, the terminal state, and the terminal state's entries (``--state-slices``). Then
the policy's one-step error on chosen action entries (``--entries``) from the solver's own states, on the
trajectories it trained on, for Sob+Diff and Diff (ablations round 40: among the quadrotor's 9 columns the whole
excess is the final angular velocity):

    python3 benchmarks/bench_cost_split.py runs/scorecard-v24/quadrotor/columns_9 \\
        --state-slices p=0:3 quat=3:7 v=7:10 omega=10:13 --entries 12:15
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import _EXPORT, load_settings

from bench_terminal_cost import one_step_errors

STEPS = (0, 10, 30, 50, 57, 58, 59)


def slice_arg(text: str) -> slice:
    """``"a:b"`` -> ``slice(a, b)`` (either side may be empty or negative)."""
    try:
        a, b = text.split(":")
        return slice(int(a) if a else None, int(b) if b else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a:b (integers), got {text!r}") from None


def named_slice(text: str) -> tuple[str, slice]:
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=a:b, got {text!r}")
    return name, slice_arg(rest)


def cost_split(task, x0s, params, ref, guess, slices) -> dict[str, np.ndarray]:
    """Per instance, the excess of ``guess`` (xs, us) over ``ref`` split into controls, running states and terminal
    state (and the terminal state's ``slices``); raises if the objective is not separable (the parts must add up)."""
    cost = lambda xs, us: sw._core.trajectory_costs(task, x0s, params, xs, us)  # noqa: E731
    (xr, ur), (xg, ug) = ref, guess
    base = cost(xr, ur)
    total = cost(xg, ug) - base
    control = cost(xr, ug) - base
    states = cost(xg, ur) - base
    if not np.allclose(total, control + states, rtol=1e-8, atol=1e-9 * np.abs(base).max()):
        raise RuntimeError(f"task {task.name}/{task.variant}: its objective does not split into state and control "
                           "terms, so the swaps do not split the excess")
    last = xg.copy()
    last[:, -1] = xr[:, -1]
    terminal = states - (cost(last, ur) - base)
    out = {"total": total, "controls": control, "running states": states - terminal, "terminal state": terminal}
    for name, sl in slices:
        moved = xg.copy()
        moved[:, -1, sl] = xr[:, -1, sl]
        out[f"terminal {name}"] = cost(xg, ur) - cost(moved, ur)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="scorecard folders (settings.json, collect/, <method>/)")
    ap.add_argument("-n", type=int, default=64, help="held-out instances (the scorecard's seed; default 64)")
    ap.add_argument("--method", default="sob_diff", choices=["sob_diff", "diff"], help="the rollout to split")
    ap.add_argument("--state-slices", nargs="*", type=named_slice, default=[], metavar="NAME=A:B",
                    help="entries of the state whose terminal share to report, e.g. omega=10:13")
    ap.add_argument("--entries", type=slice_arg, default=None, metavar="A:B",
                    help="action entries of the one-step error (default: the last nv, the next velocity)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error(f"-n: expected a positive number of instances, got {args.n}")
    for folder in map(Path, args.folders):
        s = load_settings(folder)
        task = sw.make_task(s.task, s.variant)
        x0s, params = task.sample_instances(args.n, seed=s.test_seed)
        to = sw.solve(task, x0s, params, options=s.options(0))
        ok = np.asarray(to.converged, bool)
        ro = sw.rollout(task, x0s, params, str(folder / args.method / _EXPORT), action_steps=s.action_steps, seed=0)
        parts = cost_split(task, x0s, params, (np.asarray(to.xs), np.asarray(to.us)),
                           (np.asarray(ro.xs), np.asarray(ro.us)), args.state_slices)
        ratio = np.median((parts["total"][ok] + np.asarray(to.cost)[ok]) / np.asarray(to.cost)[ok])
        print(f"{s.key} ({args.method}, {int(ok.sum())} of {args.n} held-out instances of seed {s.test_seed} where TO "
              f"alone converged): policy/TO median {ratio:.4f}, TO's cost median {np.median(np.asarray(to.cost)[ok]):.4g}")
        print("| part of the excess | median | mean |\n|---|---|---|")
        for name, v in parts.items():
            print(f"| {name} | {np.median(v[ok]):.4f} | {np.mean(v[ok]):.4f} |")
        data = sw.load_dataset(folder / "collect" / "trajectories.npz").data
        data = data.select(np.arange(min(64, data.num_instances)))
        steps = tuple(t for t in STEPS if t < task.horizon) + (task.horizon - 1,) * (task.horizon - 1 not in STEPS)
        shown = "the last nv" if args.entries is None else f"{args.entries.start}:{args.entries.stop}"
        print(f"\none-step error of action entries {shown} from the solver's states "
              f"(the first {data.num_instances} training trajectories), median, and the solver's own size there")
        print("| policy | " + " | ".join(f"t = {t}" for t in steps) + " |\n|---|" + "---|" * len(steps))
        for method in ("sob_diff", "diff"):
            policy, _, _ = sw.load_checkpoint(folder / method / "checkpoint")
            err = one_step_errors(task, policy.eval(), s, data, args.entries, steps)
            print(f"| {method} | " + " | ".join(f"{e:.3f}" for e in err) + " |")
        sl = slice(-task.nv, None) if args.entries is None else args.entries
        size = [float(np.median(np.linalg.norm(data.actions[:, t, sl], axis=1))) for t in steps]
        print("| solver's |a| | " + " | ".join(f"{e:.3f}" for e in size) + " |\n")


if __name__ == "__main__":
    main()
