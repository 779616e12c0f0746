import pytest
import torch

from sobolev_warmstart.diffusion import (DDPMSampler, DDPMSchedule, DiffusionConfig, check_sampling_steps,
                                        squaredcos_betas)
from sobolev_warmstart.models import ConditionalUNet1D, UNetConfig

diffusers = pytest.importorskip("diffusers")


def _reference(K, clip=False):
    return diffusers.DDPMScheduler(num_train_timesteps=K, beta_schedule="squaredcos_cap_v2",
                                   prediction_type="sample", clip_sample=clip)


@pytest.mark.parametrize("K", [5, 16, 100])
def test_schedule_matches_diffusers(K):
    ref = _reference(K)
    ours = DDPMSchedule(K)
    torch.testing.assert_close(ours.betas, ref.betas, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(squaredcos_betas(K).float(), ref.betas, rtol=1e-6, atol=1e-7)


def test_add_noise_matches_diffusers():
    ref, ours = _reference(5), DDPMSchedule(5)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 16, 2, generator=g)
    eps = torch.randn(8, 16, 2, generator=g)
    k = torch.tensor([0, 1, 2, 3, 4, 4, 2, 0])
    torch.testing.assert_close(ours.add_noise(x0, eps, k), ref.add_noise(x0, eps, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [4, 3, 2, 1, 0])
def test_posterior_step_matches_diffusers(k):
    ref, ours = _reference(5), DDPMSchedule(5)
    ref.set_timesteps(5)
    assert ref.timesteps.tolist() == [4, 3, 2, 1, 0]
    g = torch.Generator().manual_seed(k)
    sample = torch.randn(3, 16, 2, generator=g)
    x0 = torch.randn(3, 16, 2, generator=g)
    seed = 100 + k
    out = ref.step(x0, k, sample, generator=torch.Generator().manual_seed(seed)).prev_sample
    noise = torch.randn(3, 16, 2, generator=torch.Generator().manual_seed(seed))  # what diffusers draws
    torch.testing.assert_close(ours.posterior_step(x0, k, sample, noise), out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip", [False, True])
def test_full_sampling_loop_matches_diffusers_with_inpainting(clip):
    torch.manual_seed(0)
    K, B, H, D, h = 5, 4, 8, 2, 2
    net = ConditionalUNet1D(D, 3, H, UNetConfig(down_dims=(8, 16), n_groups=4)).eval()
    cond = torch.randn(B, 3)
    hist = torch.randn(B, h, D)
    sampler = DDPMSampler(net, K, h, clip_sample=clip)
    # diffusers loop, with its own noise draws from a seeded generator
    ref = _reference(K, clip)
    ref.set_timesteps(K)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, H, D, generator=g)
    with torch.no_grad():
        for t in ref.timesteps:
            x = torch.cat([hist, x[:, h:]], 1)
            x0 = net(x, torch.full((B,), int(t)), cond)
            x = ref.step(x0, t, x, generator=g).prev_sample
    x = torch.cat([hist, x[:, h:]], 1)
    # the same draws, as the sampler's noise tensor
    g = torch.Generator().manual_seed(7)
    noise = torch.stack([torch.randn(B, H, D, generator=g) for _ in range(K)])
    with torch.no_grad():
        ours = sampler(cond, hist, noise)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)
    assert torch.equal(ours[:, :h], hist)
    # deterministic given the noise; different noise gives a different sample
    with torch.no_grad():
        assert torch.equal(sampler(cond, hist, noise), ours)
        assert not torch.allclose(sampler(cond, hist, noise + 0.5), ours)


def test_sampler_without_past_actions_ignores_the_history():
    torch.manual_seed(0)
    K, B, H, D, h = 5, 3, 8, 2, 2
    net = ConditionalUNet1D(D, 3, H, UNetConfig(down_dims=(8, 16), n_groups=4)).eval()
    cond, noise = torch.randn(B, 3), torch.randn(K, B, H, D)
    hist = torch.randn(B, h, D)
    blind = DDPMSampler(net, K, h, past_actions=False)
    seeing = DDPMSampler(net, K, h, past_actions=True)
    with torch.no_grad():
        out = blind(cond, hist, noise)
        torch.testing.assert_close(out, blind(cond, torch.zeros_like(hist), noise))
        torch.testing.assert_close(out, seeing(cond, torch.zeros_like(hist), noise))
        assert not torch.allclose(seeing(cond, hist, noise)[:, h:], out[:, h:])
    assert torch.equal(out[:, :h], torch.zeros(B, h, D))
    with pytest.raises(ValueError, match="past_actions"):
        DiffusionConfig(past_actions=1)


def test_sampler_and_config_errors():
    net = ConditionalUNet1D(1, 2, 8, UNetConfig(down_dims=(8, 16), n_groups=4))
    s = DDPMSampler(net, 5, 1)
    with pytest.raises(ValueError, match=r"noise: expected shape \(5, B, H, D\)"):
        s(torch.zeros(2, 2), torch.zeros(2, 1, 1), torch.zeros(4, 2, 8, 1))
    with pytest.raises(ValueError, match=r"history: expected shape \(B, 1, D\)"):
        s(torch.zeros(2, 2), torch.zeros(2, 2, 1), torch.zeros(5, 2, 8, 1))
    with pytest.raises(ValueError, match="num_steps"):
        DiffusionConfig(num_steps=0)
    with pytest.raises(ValueError, match="clip_sample_range"):
        DiffusionConfig(clip_sample_range=-1.0)


@pytest.mark.parametrize("K,steps", [(5, (4, 3, 2, 1, 0)), (10, (9, 7, 5, 3, 1))])
def test_ddim_sampling_matches_diffusers_ddim(K, steps):
    """sampling_steps: diffusers' DDIMScheduler (eta = 0, clean-sample prediction, trailing spacing: the steps
    start at K - 1) on the same network, history and starting sample. Without clipping: with it, diffusers derives
    the noise estimate from the unclipped clean estimate, this sampler from the clipped one (next test)."""
    clip = False
    torch.manual_seed(1)
    B, H, D, h = 4, 8, 2, 2
    net = ConditionalUNet1D(D, 3, H, UNetConfig(down_dims=(8, 16), n_groups=4)).eval()
    cond, hist = torch.randn(B, 3), torch.randn(B, h, D)
    ref = diffusers.DDIMScheduler(num_train_timesteps=K, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                                  clip_sample=clip, timestep_spacing="trailing", set_alpha_to_one=True)
    ref.set_timesteps(len(steps))
    assert tuple(ref.timesteps.tolist()) == steps
    noise = torch.randn(K, B, H, D)
    x = noise[0]
    with torch.no_grad():
        for t in ref.timesteps:
            x = torch.cat([hist, x[:, h:]], 1)
            x = ref.step(net(x, torch.full((B,), int(t)), cond), t, x, eta=0.0).prev_sample
        x = torch.cat([hist, x[:, h:]], 1)
        sampler = DDPMSampler(net, K, h, clip_sample=clip, sampling_steps=steps)
        ours = sampler(cond, hist, noise)
        torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)
        # deterministic: only the starting sample is drawn
        other = noise.clone()
        other[1:] = torch.randn_like(other[1:])
        assert torch.equal(sampler(cond, hist, other), ours)
        # back to the DDPM posterior, which uses the other draws
        sampler.set_sampling_steps(None)
        assert sampler.steps == list(range(K - 1, -1, -1))
        assert not torch.allclose(sampler(cond, hist, other), sampler(cond, hist, noise))


def test_ddim_with_clipping_renoises_the_clipped_estimate():
    """a_k' = sqrt(abar_k') x0c + sqrt(1 - abar_k') (a_k - sqrt(abar_k) x0c) / sqrt(1 - abar_k), x0c clipped;
    the last call returns x0c (round 25's measured sampler, benchmarks/bench_sampling_steps.py)."""
    torch.manual_seed(2)
    B, H, D, h = 3, 8, 2, 1
    net = ConditionalUNet1D(D, 3, H, UNetConfig(down_dims=(8, 16), n_groups=4)).eval()
    with torch.no_grad():  # large outputs, so that clipping acts
        for p in net.parameters():
            p.mul_(3.0)
    cond, hist, noise = torch.randn(B, 3), torch.randn(B, h, D), torch.randn(5, B, H, D)
    abar = DDPMSchedule(5).alphas_cumprod.double()
    x, steps, clipped = noise[0].double(), (4, 2, 0), 0
    with torch.no_grad():
        for i, k in enumerate(steps):
            x = torch.cat([torch.zeros(B, h, D, dtype=x.dtype), x[:, h:]], 1)
            raw = net(x.float(), torch.full((B,), k), cond).double()
            clipped += int((raw.abs() > 1).sum())
            x0 = raw.clamp(-1, 1)
            if i + 1 == len(steps):
                x = x0
            else:
                eps = (x - abar[k].sqrt() * x0) / (1 - abar[k]).sqrt()
                x = abar[steps[i + 1]].sqrt() * x0 + (1 - abar[steps[i + 1]]).sqrt() * eps
        ours = DDPMSampler(net, 5, h, past_actions=False, sampling_steps=steps)(cond, hist, noise)
    assert clipped > 0
    torch.testing.assert_close(ours[:, h:].double(), x[:, h:], rtol=1e-5, atol=1e-5)


def test_fewer_ddim_calls_call_the_network_fewer_times():
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x, k, cond):
            calls.append(int(k[0]))
            return torch.zeros_like(x)

    sampler = DDPMSampler(Counting(), 5, 1, sampling_steps=(4, 0))
    out = sampler(torch.zeros(2, 3), torch.zeros(2, 1, 2), torch.randn(5, 2, 8, 2))
    assert calls == [4, 0]
    assert torch.equal(out, torch.zeros(2, 8, 2))  # the last call's clean estimate is the sample
    assert sampler.state_dict().keys() == DDPMSampler(Counting(), 5, 1).state_dict().keys()  # tables not saved


@pytest.mark.parametrize("bad", [(3, 0), (4, 4), (4, 2, 3), (4, -1), (), (4.0, 0), (4, True), 4, "4;0", [5, 0]])
def test_sampling_steps_errors_name_the_argument(bad):
    with pytest.raises(ValueError, match="sampling_steps: expected a strictly descending sequence of integers that "
                                         "starts at 4"):
        DiffusionConfig(sampling_steps=bad)
    net = ConditionalUNet1D(1, 2, 8, UNetConfig(down_dims=(8, 16), n_groups=4))
    with pytest.raises(ValueError, match="sampling_steps"):
        DDPMSampler(net, 5, 1, sampling_steps=bad)


def test_sampling_steps_accepts_lists_and_strings():
    assert DiffusionConfig(sampling_steps=[4, 2, 0]).sampling_steps == (4, 2, 0)
    assert check_sampling_steps("4,0", 5) == (4, 0)
    assert check_sampling_steps(None, 5) is None
    assert DiffusionConfig(num_steps=3, sampling_steps=(2,)).sampling_steps == (2,)
    import numpy as np
    steps = check_sampling_steps(np.array([4, 0]), 5)
    assert steps == (4, 0) and all(type(k) is int for k in steps)
