"""Policy benchmarks: Sobolev vs plain DDPM training-step time, and sampling latency eager / TorchScript /
AOTInductor / native (the C++ runner's compact forward of the ``.safetensors`` export, called from Python) at batch
1 and 64.

    PYTHONPATH=python python3 benchmarks/bench_policy.py            # from the repository root
    PYTHONPATH=python python3 benchmarks/bench_policy.py --no-aoti  # skip the ~1 min AOTInductor compile
    PYTHONPATH=python python3 benchmarks/bench_policy.py --macs runs/scorecard-v6/double_pendulum/default/sob_diff/checkpoint

Default setting: the default U-Net (~280k parameters) and the MLP denoiser (256 x 256), H = 16, h = 1, one action, observation (q, v) and one
task parameter, K = 5, one intra-op thread (PLATFORM.md). Times are medians over ``--repeats`` calls after
warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sobolev_warmstart.data import ChunkSpec, build_dataset
from sobolev_warmstart.export import export_aoti, export_native, export_torchscript, load_aoti, load_torchscript
from sobolev_warmstart.rollout import load_policy_runner
from sobolev_warmstart.losses import diffusion_loss, direct_loss
from sobolev_warmstart.models import MLPConfig, UNetConfig
from sobolev_warmstart.policy import DiffusionPolicy, MLPPolicy
from sobolev_warmstart.synthetic import lqr_double_integrator


def median_time(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def make_policy(ds, denoiser: str) -> DiffusionPolicy:
    """The default U-Net, or the MLP denoiser of the scorecard (256 x 256)."""
    return DiffusionPolicy(ds.task, ds.spec, ds.normalisers, UNetConfig(), denoiser=denoiser,
                           mlp=MLPConfig((256, 256)))


def bench_training(ds, batch: int, repeats: int, denoiser: str = "unet") -> None:
    torch.manual_seed(0)
    policy = make_policy(ds, denoiser)
    net, sched, h = policy.net, policy.sampler.schedule, ds.spec.history
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:batch]
    b = [t[idx] for t in (ds.obs, ds.params, ds.chunks, ds.chunk_jac, ds.obs_jac)]
    g = torch.Generator().manual_seed(0)

    def step(weight, method="dual", fraction=1.0):
        def run():
            out = diffusion_loss(net, sched, *b, h, sobolev_weight=weight, generator=g, method=method,
                                 sobolev_fraction=fraction)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return run

    n = sum(p.numel() for p in net.parameters())
    print(f"\nTraining step, diffusion {denoiser} denoiser ({n} parameters), batch {batch}, H={ds.spec.horizon}, "
          f"threads={torch.get_num_threads()}")
    per_epoch = -(-len(ds) // batch)
    print(f"  (an epoch of the {len(ds)} benchmark chunks is {per_epoch} steps)")
    plain = median_time(step(0.0), repeats)
    print(f"  plain DDPM step (diff)                          {plain * 1e3:8.1f} ms   1.00x"
          f"   {1 / (plain * per_epoch):6.2f} epochs/s")
    for label, method, fraction in (("Sobolev step, fused dual JVP (default)", "dual", 1.0),
                                    ("Sobolev step, dual JVP, sobolev_fraction 0.5", "dual", 0.5),
                                    ("Sobolev step, dual JVP, sobolev_fraction 0.25", "dual", 0.25),
                                    ("Sobolev step, torch.func.jvp", "autograd", 1.0)):
        t = median_time(step(1.0, method, fraction), repeats)
        print(f"  {label:46s}  {t * 1e3:8.1f} ms   {t / plain:.2f}x   {1 / (t * per_epoch):6.2f} epochs/s")

    mlp = MLPPolicy(ds.task, ds.spec, ds.normalisers, MLPConfig())
    opt = torch.optim.AdamW(mlp.net.parameters(), 1e-4)
    bm = (ds.obs[idx, -1], ds.params[idx], ds.chunks[idx, h], ds.chunk_jac[idx, h], ds.obs_jac[idx])

    def mstep(weight, fraction=1.0):
        def run():
            out = direct_loss(mlp.net, *bm, sobolev_weight=weight, generator=g, sobolev_fraction=fraction)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return run

    pm = median_time(mstep(0.0), repeats)
    sm = median_time(mstep(1.0), repeats)
    sh = median_time(mstep(1.0, 0.5), repeats)
    print(f"  MLP step (mlp) {pm * 1e3:.2f} ms, Sobolev MLP step (sob_mlp) {sm * 1e3:.2f} ms: {sm / pm:.2f}x, "
          f"with sobolev_fraction 0.5 {sh * 1e3:.2f} ms: {sh / pm:.2f}x")


def bench_sampling(ds, repeats: int, aoti: bool, denoiser: str = "unet") -> None:
    torch.manual_seed(0)
    policy = make_policy(ds, denoiser).eval()
    print(f"\nSampling latency, {denoiser} denoiser, one chunk per instance (K={policy.num_steps} denoising steps, "
          f"threads={torch.get_num_threads()}); per call and per sample")
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"eager": policy}
        ts, _ = load_torchscript(export_torchscript(policy, Path(tmp) / "p.pt"))
        runners["TorchScript"] = ts
        native = load_policy_runner(export_native(policy, Path(tmp) / "p.safetensors"))
        runners["native (C++)"] = lambda *a: torch.from_numpy(native.sample_chunks(*[x.numpy() for x in a]))
        if aoti:
            t0 = time.perf_counter()
            model, _ = load_aoti(export_aoti(policy, Path(tmp) / "p.pt2"))
            print(f"  (AOTInductor export + compile took {time.perf_counter() - t0:.0f} s)")
            runners["AOTInductor"] = model
        for batch in (1, 64):
            g = torch.Generator().manual_seed(batch)
            args = (torch.randn(batch, ds.spec.history, ds.task.no, generator=g),
                    torch.randn(batch, ds.task.nz, generator=g),
                    torch.randn(batch, ds.spec.history, ds.task.na, generator=g),
                    torch.randn(policy.num_steps, batch, ds.spec.horizon, ds.task.na, generator=g))
            with torch.no_grad():
                ref = policy(*args)
                for name, fn in runners.items():
                    err = (fn(*args) - ref).abs().max().item()
                    t = median_time(lambda: fn(*args), repeats)
                    print(f"  batch {batch:3d}  {name:12s} {t * 1e3:8.3f} ms/call  {t / batch * 1e3:8.3f} ms/sample"
                          f"   max |diff| vs eager {err:.1e}")


def replan_macs(policy) -> int:
    """Multiply-adds of one replan at batch 1 (a diffusion policy's K denoising steps, or one direct call), counted
    with forward hooks on the Conv1d, ConvTranspose1d and Linear layers (normalisation and activations left out)."""
    macs = 0

    def hook(m, inputs, out):
        nonlocal macs
        if isinstance(m, torch.nn.Conv1d):
            macs += out.numel() * m.in_channels // m.groups * m.kernel_size[0]
        elif isinstance(m, torch.nn.ConvTranspose1d):
            macs += inputs[0].numel() * m.out_channels * m.kernel_size[0]
        elif isinstance(m, torch.nn.Linear):
            macs += out.numel() // out.shape[-1] * m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in policy.net.modules()]
    obs = torch.zeros(1, policy.history_steps, policy.no) if isinstance(policy, DiffusionPolicy) \
        else torch.zeros(1, policy.task.no)
    z = torch.zeros(1, policy.param_dim)
    with torch.no_grad():
        if isinstance(policy, DiffusionPolicy):
            policy(obs, z, torch.zeros(1, policy.history_steps, policy.na),
                   torch.zeros(policy.num_steps, 1, policy.horizon, policy.na))
        else:
            policy(obs, z)
    for h in handles:
        h.remove()
    return macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256, help="training batch size (default 256)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-aoti", action="store_true", help="skip the AOTInductor export")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--denoiser", nargs="+", choices=["unet", "mlp"], default=["unet", "mlp"],
                    help="denoisers to measure, side by side (default both)")
    ap.add_argument("--macs", metavar="CHECKPOINT", help="only count a trained policy's multiply-adds per replan")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.macs:
        from sobolev_warmstart.train import load_checkpoint
        print(f"{args.macs}: {replan_macs(load_checkpoint(args.macs)[0]):,} multiply-adds per replan at batch 1")
        return
    ds = build_dataset(lqr_double_integrator(32, horizon=64, chunk_offsets=16), ChunkSpec(16, 1, 8))
    print(f"torch {torch.__version__}")
    for denoiser in args.denoiser:
        if not args.skip_training:
            bench_training(ds, args.batch, args.repeats, denoiser)
        bench_sampling(ds, args.repeats, not args.no_aoti, denoiser)


if __name__ == "__main__":
    main()
