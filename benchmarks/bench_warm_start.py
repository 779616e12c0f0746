"""Warm-start path benchmark, measured side by side in one run:

1. rollout time per replan at batch 1: the C++ path (lockstep loop in C++) with the native export (a compact
   Eigen forward of the weights, ``.safetensors``), TorchScript, and AOTInductor unless --no-aoti, vs the Python
   eager rollout (the same network eagerly, the same C++ physics step per call);
2. lockstep N rollouts (one batched policy call per replan) vs N sequential batch-1 rollouts, one thread,
   then lockstep over all threads (native export; TorchScript for comparison);
3. TO alone vs the warm-started solve (iterations, solve time, rollout time, convergence, cost), on the
   double pendulum by default, warm-started through the native export.

    PYTHONPATH=python python3 benchmarks/bench_warm_start.py                          # untrained default U-Net
    PYTHONPATH=python python3 benchmarks/bench_warm_start.py --denoiser mlp           # untrained MLP denoiser
    PYTHONPATH=python python3 benchmarks/bench_warm_start.py --policy run/iter_003/policy.pt   # a trained policy

Items 1 and 2 depend only on the network's size, so an untrained policy of the default architecture measures
them faithfully; item 3 needs a trained one (``--policy``, a file written by ``save_policy`` / the loop).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.data import ChunkSpec, Normaliser, Normalisers, TaskInfo


def untrained_policy(task, denoiser: str = "unet") -> sw.DiffusionPolicy:
    info = TaskInfo.from_task(task)
    nrm = Normalisers(Normaliser.identity(task.na), Normaliser.identity(task.no), Normaliser.identity(task.nz),
                      Normaliser.identity(task.ndx))
    torch.manual_seed(0)
    return sw.DiffusionPolicy(info, ChunkSpec(16, 2, 8), nrm, denoiser=denoiser).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="double_pendulum")
    ap.add_argument("--variant", default="")
    ap.add_argument("--policy", help="a saved policy (save_policy / loop iter_XXX/policy.pt); default: untrained")
    ap.add_argument("-n", type=int, default=64, help="instances for lockstep and solve comparisons")
    ap.add_argument("--n-batch1", type=int, default=8, help="instances for the batch-1 latency comparison")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--denoiser", choices=["unet", "mlp"], default="unet",
                    help="the untrained policy's denoiser (default U-Net, or the MLP denoiser of 256 x 256)")
    ap.add_argument("--no-aoti", action="store_true", help="skip the AOTInductor backend (its compile takes ~1 min)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = sw.make_task(args.task, args.variant)
    policy = sw.load_policy(args.policy, task=task.name) if args.policy else untrained_policy(task, args.denoiser)
    tmp = Path(tempfile.mkdtemp())
    ts_runner = sw.load_policy_runner(sw.export_torchscript(policy, tmp / "policy.pt"))
    runner = sw.load_policy_runner(sw.export_native(policy, tmp / "policy.safetensors"))
    x0s, params = task.sample_instances(args.n, seed=args.seed)
    name = args.policy or f"untrained {'default U-Net' if args.denoiser == 'unet' else 'MLP denoiser'}"
    print(f"task {task.name}/{task.variant}, T = {task.horizon}; policy {name} "
          f"({policy.kind}); torch intra-op threads 1")

    # 1. batch 1: C++ vs Python eager, per replan
    xb, pb = x0s[: args.n_batch1], params[: args.n_batch1]
    def batch1(r):
        sw.rollout(task, xb[:1], pb[:1], r, batch_size=1, num_threads=1)  # warm-up
        return [sw.rollout(task, xb[i:i + 1], pb[i:i + 1], r, seed=args.seed, batch_size=1, num_threads=1)
                for i in range(len(xb))]

    cpp, cpp_ts = batch1(runner), batch1(ts_runner)
    sw.rollout(task, xb[:1], pb[:1], policy)  # warm-up
    eager = [sw.rollout(task, xb[i:i + 1], pb[i:i + 1], policy, seed=args.seed) for i in range(len(xb))]
    if not args.no_aoti:
        aoti = sw.load_policy_runner(sw.export_aoti(policy, tmp / "policy.pt2"))
        cpp_aoti = batch1(aoti)
    per_replan = lambda runs: np.mean([r.wall_time / r.num_replans for r in runs])  # noqa: E731
    per_replan_py = per_replan(eager)
    print("\n1. batch 1, per replan (policy call + A executed steps)")
    print(f"   Python eager rollout     {1e3 * per_replan_py:8.3f} ms   "
          f"(network {1e3 * np.mean([r.replan_latency for r in eager]):.3f} ms; "
          f"whole rollout {1e3 * np.mean([r.wall_time for r in eager]):.1f} ms)")
    rows = [("native", cpp), ("TorchScript", cpp_ts)] + ([] if args.no_aoti else [("AOTInductor", cpp_aoti)])
    for label, runs in rows:
        print(f"   C++ rollout, {label:<11s} {1e3 * per_replan(runs):8.3f} ms   "
              f"(network {1e3 * np.mean([r.replan_latency for r in runs]):.3f} ms; "
              f"whole rollout {1e3 * np.mean([r.wall_time for r in runs]):.2f} ms)   "
              f"{per_replan_py / per_replan(runs):7.1f}x eager")

    # 2. lockstep vs sequential
    sw.rollout(task, x0s, params, runner, batch_size=args.n, num_threads=1)  # warm-up
    seq = sw.rollout(task, x0s, params, runner, seed=args.seed, batch_size=1, num_threads=1)
    lock = sw.rollout(task, x0s, params, runner, seed=args.seed, batch_size=args.n, num_threads=1)
    par = sw.rollout(task, x0s, params, runner, seed=args.seed, batch_size=0, num_threads=os.cpu_count() or 1)
    print(f"\n2. {args.n} rollouts")
    print(f"   sequential batch 1, 1 thread   {args.n / seq.wall_time:8.1f} rollouts/s")
    print(f"   lockstep N = {args.n}, 1 thread     {args.n / lock.wall_time:8.1f} rollouts/s  "
          f"({seq.wall_time / lock.wall_time:.2f}x sequential)")
    print(f"   lockstep, all threads          {args.n / par.wall_time:8.1f} rollouts/s  "
          f"({seq.wall_time / par.wall_time:.2f}x sequential)")
    ts_seq = sw.rollout(task, x0s, params, ts_runner, seed=args.seed, batch_size=1, num_threads=1)
    ts_lock = sw.rollout(task, x0s, params, ts_runner, seed=args.seed, batch_size=args.n, num_threads=1)
    print(f"   TorchScript: sequential {args.n / ts_seq.wall_time:.1f}, lockstep {args.n / ts_lock.wall_time:.1f} "
          f"rollouts/s ({ts_seq.wall_time / ts_lock.wall_time:.2f}x)")

    # 3. TO alone vs warm start
    w = sw.warm_start(task, x0s, params, runner, seed=args.seed)
    d, ws = w.default, w.warm
    med = lambda a, m: float(np.median(a[m])) if m.any() else float("nan")  # noqa: E731
    print(f"\n3. solve, {args.n} instances          TO alone   warm start")
    print(f"   converged                    {d.converged.sum():5d}/{args.n:<4d} {ws.converged.sum():5d}/{args.n}")
    print(f"   iterations, mean / median    {d.iterations.mean():6.1f}/{np.median(d.iterations):<5.0f} "
          f"{ws.iterations.mean():6.1f}/{np.median(ws.iterations):.0f}")
    print(f"   solve time, mean [ms]        {1e3 * d.solve_time.mean():9.2f} {1e3 * ws.solve_time.mean():10.2f}")
    print(f"   rollout time, mean [ms]      {'-':>9s} {1e3 * w.rollout.time.mean():10.2f}")
    print(f"   total, mean [ms]             {1e3 * d.solve_time.mean():9.2f} "
          f"{1e3 * (ws.solve_time + w.rollout.time).mean():10.2f}")
    print(f"   cost, median of converged    {med(d.cost, d.converged):9.4f} {med(ws.cost, ws.converged):10.4f}"
          f"   (policy rollout: {np.median(w.policy_cost):.4f})")
    dual = w.dual()
    counts = {str(k): int(v) for k, v in zip(*np.unique(dual.source, return_counts=True))}
    print(f"   dual solve: {counts}, "
          f"median cost {med(dual.result.cost, dual.accepted):.4f}")


if __name__ == "__main__":
    main()
