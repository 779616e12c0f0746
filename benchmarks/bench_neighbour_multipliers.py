"""Do a neighbouring solution's multipliers speed up a warm start? (ablations round 19)

ProxDDP starts its multipliers from zero, or from ``dual_init``'s adjoint estimate when the guess is nearly
stationary. A lookup knows more: the nearest training instance's converged multipliers. This benchmark re-solves a
scorecard folder's training solutions from themselves (recognised at once) to get their multipliers
(``SolveResult.lams``/``vs``), then refines every method's guess on the held-out instances twice, from the solver's
own estimate and from the nearest training instance's multipliers (``sw.solve(..., lams_init, vs_init)``). A third
row starts each guess from the multipliers of its own instance's optimum (TO alone's solve of the instance: its
solution where it converged, its last iterate elsewhere), which no user has: if even those leave the iterations where they were, the guess's primal precision, not its multipliers,
is what the refine lacks (round 48):

    python3 benchmarks/bench_neighbour_multipliers.py runs/scorecard-v10/double_pendulum/default
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sobolev_warmstart as sw
from sobolev_warmstart.scorecard import load_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a scorecard folder (settings.json, collect/trajectories.npz, sob_diff/)")
    ap.add_argument("--seed", type=int, default=0, help="the policy's rollout noise seed")
    args = ap.parse_args()
    folder = Path(args.folder)
    s = load_settings(folder)
    task, options = sw.make_task(s.task, s.variant), s.options(1)
    data = sw.load_dataset(folder / "collect" / "trajectories.npz").data
    data = data.select(np.asarray(data.converged, bool))
    train = sw.solve(task, data.xs[:, 0], data.params, data.xs, data.us, options=options)
    lookup = sw.NearestNeighbourLookup.from_data(data)
    x0s, params = task.sample_instances(s.test_instances, seed=s.test_seed)
    idx = lookup.nearest(x0s, params)
    guesses = {"NN": lookup.guess(task, x0s, params), "NN+feedback": lookup.feedback_guess(task, x0s, params)}
    policy = folder / "sob_diff" / "policy_export.safetensors"
    if policy.exists():
        ro = sw.rollout(task, x0s, params, sw.load_policy_runner(str(policy)), action_steps=s.action_steps,
                        seed=args.seed)
        guesses["Sob+Diff"] = (ro.xs, ro.us)
    to = sw.solve(task, x0s, params, options=options)
    at_bound = np.isclose(np.abs(data.us), np.abs(task.u_upper), rtol=0, atol=1e-3).mean()
    print(f"{s.key}: {data.num_instances} training solutions (re-solved from themselves in "
          f"{train.iterations.mean():.2f} iterations on average; controls within 1e-3 of a bound: "
          f"{100 * at_bound:.1f}%, nonzero path multipliers: {100 * (np.abs(train.vs) > 1e-8).mean():.1f}%); "
          f"{len(x0s)} held-out instances (seed {s.test_seed}); TO alone {to.iterations.mean():.1f} iterations, "
          f"converged on {100 * np.mean(to.converged):.0f}% (the oracle's multipliers are its last iterate's)")
    print("| guess | multipliers | iters mean | median | converged [%] | refined cost |")
    print("|---|---|---|---|---|---|")
    for name, (xs, us) in guesses.items():
        ok = np.isfinite(xs).all(axis=(1, 2)) & (np.abs(np.nan_to_num(xs)).max(axis=(1, 2)) < s.divergence_bound)
        rows = (("solver's estimate (dual_init)", {}),
                ("the neighbour's", {"lams_init": train.lams[idx[ok]], "vs_init": train.vs[idx[ok]]}),
                ("the optimum's own (oracle)", {"lams_init": to.lams[ok], "vs_init": to.vs[ok]}))
        for label, duals in rows:
            r = sw.solve(task, x0s[ok], params[ok], xs[ok], us[ok], options=options, **duals)
            cost = r.cost[r.converged].mean() if r.converged.any() else float("nan")
            print(f"| {name} ({ok.sum()} not diverged) | {label} | {r.iterations.mean():.1f} | "
                  f"{np.median(r.iterations):.1f} | {100 * r.converged.mean():.0f} | {cost:.4g} |", flush=True)


if __name__ == "__main__":
    main()
