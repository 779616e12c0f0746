"""Where does a policy's cost above TO alone's come from, on any task? The objective is a sum of state terms and
control terms, so swapping one trajectory's states or controls into the other splits the excess exactly: the
controls, the running states, the terminal state, and the terminal state's entries (``--state-slices``, with their
final size along TO's solution and the rollout). Then the policy's one-step error on chosen action entries
(``--entries``) from the solver's own states, on the trajectories it trained on, for Sob+Diff and Diff; and each
action entry's share of the Sobolev term's targets in the training set, with its ``sobolev_cap_entries`` weight
(ablations round 40: among the quadrotor's 9 columns the whole excess is the final angular velocity):

    python3 benchmarks/bench_cost_split.py runs/scorecard-v24/quadrotor/columns_9 \\
        --state-slices p=0:3 quat=3:7 v=7:10 omega=10:13 --entries 12:15
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.losses import sobolev_entry_scales, sobolev_entry_weights
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


def cost_split(task, x0s, params, ref, guess, slices) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per instance, ``ref``'s cost and the excess of ``guess`` (xs, us) over it split into controls, running states
    and terminal state (and the terminal state's ``slices``); raises if the objective is not separable (the parts
    must add up). Both trajectories finite."""
    cost = lambda xs, us: sw._core.trajectory_costs(task, x0s, params, xs, us)  # noqa: E731
    (xr, ur), (xg, ug) = ref, guess
    base = cost(xr, ur)
    with_states = cost(xg, ur)  # the guess's states, the reference's controls
    total = cost(xg, ug) - base
    control = cost(xr, ug) - base
    states = with_states - base
    if not np.allclose(total, control + states, rtol=1e-8, atol=1e-9 * np.abs(base).max()):
        raise RuntimeError(f"task {task.name}/{task.variant}: its objective does not split into state and control "
                           "terms, so the swaps do not split the excess")

    def last_replaced(sl: slice) -> np.ndarray:  # the terminal cost the guess's last state entries ``sl`` add
        moved = xg.copy()
        moved[:, -1, sl] = xr[:, -1, sl]
        return with_states - cost(moved, ur)

    terminal = last_replaced(slice(None))
    out = {"total": total, "controls": control, "running states": states - terminal, "terminal state": terminal}
    out.update({f"terminal {name}": last_replaced(sl) for name, sl in slices})
    return base, out


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
        for name, sl in args.state_slices:
            if not range(task.nx)[sl]:
                ap.error(f"--state-slices: {name} selects no entry of the state ({task.nx} entries)")
        x0s, params = task.sample_instances(args.n, seed=s.test_seed)
        to = sw.solve(task, x0s, params, options=s.options(0))
        ro = sw.rollout(task, x0s, params, str(folder / args.method / _EXPORT), action_steps=s.action_steps, seed=0)
        xs_to, xs_ro = np.asarray(to.xs), np.asarray(ro.xs)
        finite = np.isfinite(xs_ro).all(axis=(1, 2)) & np.isfinite(np.asarray(ro.us)).all(axis=(1, 2))
        ok = np.asarray(to.converged, bool) & finite
        base, parts = cost_split(task, x0s[ok], params[ok], (xs_to[ok], np.asarray(to.us)[ok]),
                                 (xs_ro[ok], np.asarray(ro.us)[ok]), args.state_slices)
        print(f"{s.key} ({args.method}, {int(ok.sum())} of {args.n} held-out instances of seed {s.test_seed}: TO alone "
              f"converged, the rollout finite ({int((~finite).sum())} not)): policy/TO median "
              f"{np.median(1 + parts['total'] / base):.4f}, TO's cost median {np.median(base):.4g}")
        print("| part of the excess | median | mean |\n|---|---|---|")
        for name, v in parts.items():
            print(f"| {name} | {np.median(v):.4f} | {np.mean(v):.4f} |")
        for name, sl in args.state_slices:
            size = [np.median(np.linalg.norm(x[ok, -1, sl], axis=1)) for x in (xs_to, xs_ro)]
            print(f"final |{name}|, median: TO {size[0]:.4g}, the rollout {size[1]:.4g}")
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
        dataset = sw.load_dataset(folder / "collect" / "trajectories.npz")  # the training set, its normalisers
        jac = dataset.chunk_jac[:, s.history:]
        share, weight = sobolev_entry_scales(jac), sobolev_entry_weights(jac)
        print("Sobolev targets per action entry (training set, normalised): share of the mean square / "
              "sobolev_cap_entries weight")
        print(" ".join(f"{d}: {c:.3f}/{w:.3f}" for d, (c, w) in enumerate(zip(share / share.sum(), weight))) + "\n")


if __name__ == "__main__":
    main()
