import numpy as np
import pytest
import torch

from sobolev_warmstart.data import ChunkSpec, build_dataset
from sobolev_warmstart.diffusion import DDPMSchedule
from sobolev_warmstart.losses import (cond_tangent, denoiser_jvp, diffusion_loss, direct_loss, make_cond,
                                      random_directions, sobolev_cap_weights, sobolev_entry_scales,
                                      sobolev_entry_weights, sobolev_target_scales)
from sobolev_warmstart.models import MLP, ChunkMLPDenoiser, ConditionalUNet1D, MLPConfig, UNetConfig
from sobolev_warmstart.models.dual import group_norm_dual, mish_dual
from sobolev_warmstart.synthetic import lqr_double_integrator


def _tiny_unet(na, nc, horizon, dtype=torch.float32):
    torch.manual_seed(0)
    return ConditionalUNet1D(na, nc, horizon, UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8)).to(dtype)


def test_dual_functions_gradcheck():
    """Hand-derived first and second derivatives of the fused Mish and GroupNorm dual ops."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(mish_dual, (z,))
    w = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, w, b: group_norm_dual(z, 2, w, b), (z, w, b))
    # the tangent half is the directional derivative of the primal op
    x, dx = z[:2].detach(), z[2:].detach()
    gn = lambda x: torch.nn.functional.group_norm(x, 2, w.detach(), b.detach())  # noqa: E731
    for f, fd in ((mish_dual, torch.nn.functional.mish), (lambda z: group_norm_dual(z, 2, w, b), gn)):
        out = f(torch.cat([x, dx]))
        ref_y, ref_t = torch.func.jvp(fd, (x,), (dx,))
        torch.testing.assert_close(out[:2], ref_y)
        torch.testing.assert_close(out[2:], ref_t)


def _tiny_chunk_mlp(na, nc, horizon, dtype=torch.float32):
    torch.manual_seed(0)
    return ChunkMLPDenoiser(na, nc, horizon, MLPConfig((16, 16)), step_embed_dim=8).to(dtype)


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_denoiser_dual_equals_func_jvp_values_and_weight_gradients(make):
    net = make(2, 5, 8, torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, 2, generator=g, dtype=torch.float64)
    k = torch.tensor([0, 2, 4])
    c = torch.randn(3, 5, generator=g, dtype=torch.float64)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64)
    target = torch.randn(3, 8, 2, generator=g, dtype=torch.float64)
    grads = []
    for method in ("dual", "autograd"):
        net.zero_grad()
        y, jv = denoiser_jvp(net, x, k, c, t, method)
        ((y - target) ** 2 + (jv - target) ** 2).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        if method == "dual":
            y_dual, jv_dual = y.detach(), jv.detach()
    y_ref, jv_ref = torch.func.jvp(lambda cc: net(x, k, cc), (c,), (t,))
    torch.testing.assert_close(y_dual, y_ref)
    torch.testing.assert_close(jv_dual, jv_ref)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("observation", ["identity", "angle"])
def test_sobolev_derivative_matches_finite_differences_through_the_state(observation):
    """The J v the loss uses equals a central difference of the network output when the current state x̃
    moves along v (observation recomputed from the state), and the full Jacobian contracted with v."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8, observation=observation)
    spec = ChunkSpec(horizon=8, history=2, action_steps=4)
    ds = build_dataset(data, spec)
    nrm = ds.normalisers
    net = _tiny_unet(1, 2 * data.task.no + 1, 8, torch.float64)
    i, t0 = 1, 5
    m = i * 12 + t0
    obs, prm = ds.obs[m:m + 1].double(), ds.params[m:m + 1].double()
    sample = torch.randn(1, 8, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    k = torch.tensor([2])
    v = torch.tensor([[0.6, -0.8]], dtype=torch.float64)
    tangent = cond_tangent(ds.obs_jac[m:m + 1].double(), v, 2, 1)
    _, jv = denoiser_jvp(net, sample, k, make_cond(obs, prm), tangent)

    def out_at(eps):
        xs = nrm.state.normalise(data.xs[i, t0]) + eps * v[0].numpy()
        q, vel = nrm.state.unnormalise(xs)
        o = np.array([q, vel]) if observation == "identity" else np.array([np.cos(q), np.sin(q), vel])
        ob = obs.clone()
        ob[0, -1] = torch.from_numpy(nrm.observation.normalise(o))
        with torch.no_grad():
            return net(sample, k, make_cond(ob, prm))

    eps = 1e-5
    fd = (out_at(eps) - out_at(-eps)) / (2 * eps)
    torch.testing.assert_close(jv.detach(), fd, rtol=1e-5, atol=1e-7)
    full = torch.func.jacrev(lambda c: net(sample, k, c))(make_cond(obs, prm))  # (1, 8, 1, 1, nc)
    torch.testing.assert_close(jv.detach(), torch.einsum("bhaxc,xc->bha", full, tangent), rtol=1e-8, atol=1e-10)


def test_stochastic_sobolev_term_is_unbiased_for_the_frobenius_loss():
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    net = _tiny_unet(1, 3, 8, torch.float64)
    sched = DDPMSchedule(5)
    idx = torch.tensor([3, 17])
    b, n = 2, 4000
    obs, prm, ch = ds.obs[idx].double(), ds.params[idx].double(), ds.chunks[idx].double()
    cj, oj = ds.chunk_jac[idx].double(), ds.obs_jac[idx].double()
    steps, noise = torch.tensor([1, 3]), torch.randn(b, 8, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    dirs = random_directions(b, n, 2, g, torch.float64)
    with torch.no_grad():
        out = diffusion_loss(net, sched, obs, prm, ch, cj, oj, 1, sobolev_weight=1.0, num_directions=n,
                             steps=steps, noise=noise, directions=dirs)
    # exact: J = ∂x̂0/∂x̃ = ∂x̂0/∂cond · ∂cond/∂x̃, full Jacobian
    noisy = sched.add_noise(ch, noise, steps)
    noisy = torch.cat([ch[:, :1], noisy[:, 1:]], 1)
    cond = make_cond(obs, prm)
    exact = 0.0
    for j in range(b):
        jc = torch.func.jacrev(lambda c: net(noisy[j:j + 1], steps[j:j + 1], c))(cond[j:j + 1])[0, :, :, 0]
        jx = jc @ torch.cat([torch.zeros(0, 2, dtype=torch.float64), oj[j], torch.zeros(1, 2, dtype=torch.float64)])
        exact += ((jx - cj[j])[1:] ** 2).sum() / (7 * 1)  # mean over the predicted entries
    exact = exact / b * n / 2  # m directions, ndx = 2: E||M v||² = ||M||_F² / ndx
    torch.testing.assert_close(out.sobolev, exact, rtol=0.03, atol=0)


def test_zero_weight_is_plain_ddpm():
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    net = _tiny_unet(1, 3, 8)
    sched = DDPMSchedule(5)
    sl = slice(0, 6)
    args = (ds.obs[sl], ds.params[sl], ds.chunks[sl], ds.chunk_jac[sl], ds.obs_jac[sl], 1)
    steps, noise = torch.randint(0, 5, (6,)), torch.randn(6, 8, 1)
    out = diffusion_loss(net, sched, *args, sobolev_weight=0.0, steps=steps, noise=noise)
    noisy = sched.add_noise(ds.chunks[sl], noise, steps)
    noisy[:, :1] = ds.chunks[sl][:, :1]
    plain = ((net(noisy, steps, make_cond(ds.obs[sl], ds.params[sl])) - ds.chunks[sl])[:, 1:] ** 2).mean()
    torch.testing.assert_close(out.loss, plain)
    assert out.sobolev.item() == 0.0
    # the Sobolev loss with lambda > 0 has the same regression part plus a positive term
    sob = diffusion_loss(net, sched, *args, sobolev_weight=2.0, steps=steps, noise=noise,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sob.mse, plain.detach())
    assert sob.sobolev.item() > 0
    torch.testing.assert_close(sob.loss, plain + 2.0 * sob.sobolev, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="sobolev_weight"):
        diffusion_loss(net, sched, *args, sobolev_weight=-1.0)
    with pytest.raises(ValueError, match="num_directions"):
        diffusion_loss(net, sched, *args, sobolev_weight=1.0, num_directions=0)
    with pytest.raises(ValueError, match="method"):
        diffusion_loss(net, sched, *args, sobolev_weight=1.0, method="fd")


def test_without_past_actions_the_history_entries_are_zeros_and_the_chunk_history_is_unused():
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=2, action_steps=4))
    net = _tiny_chunk_mlp(1, 2 * 2 + 1, 8)
    sched = DDPMSchedule(5)
    sl = slice(0, 6)
    steps, noise = torch.randint(0, 5, (6,)), torch.randn(6, 8, 1)
    args = (ds.obs[sl], ds.params[sl], ds.chunks[sl], ds.chunk_jac[sl], ds.obs_jac[sl], 2)
    out = diffusion_loss(net, sched, *args, steps=steps, noise=noise, past_actions=False)
    noisy = sched.add_noise(ds.chunks[sl], noise, steps)
    noisy[:, :2] = 0.0
    plain = ((net(noisy, steps, make_cond(ds.obs[sl], ds.params[sl])) - ds.chunks[sl])[:, 2:] ** 2).mean()
    torch.testing.assert_close(out.loss, plain)
    # other history actions in the chunk change nothing; with past actions they do
    other = ds.chunks[sl].clone()
    other[:, :2] += 1.0
    moved = (ds.obs[sl], ds.params[sl], other, ds.chunk_jac[sl], ds.obs_jac[sl], 2)
    torch.testing.assert_close(diffusion_loss(net, sched, *moved, steps=steps, noise=noise, past_actions=False).loss,
                               out.loss)
    assert not torch.allclose(diffusion_loss(net, sched, *moved, steps=steps, noise=noise).loss,
                              diffusion_loss(net, sched, *args, steps=steps, noise=noise).loss)


def test_direct_loss_derivative_matches_jacobian():
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    torch.manual_seed(0)
    net = MLP(3, 1, MLPConfig((16, 16))).double()
    sl = slice(0, 5)
    obs, prm = ds.obs[sl, -1].double(), ds.params[sl].double()
    act, aj, oj = ds.chunks[sl, 1].double(), ds.chunk_jac[sl, 1].double(), ds.obs_jac[sl].double()
    n = 3000
    dirs = random_directions(5, n, 2, torch.Generator().manual_seed(1), torch.float64)
    with torch.no_grad():
        out = direct_loss(net, obs, prm, act, aj, oj, sobolev_weight=1.0, num_directions=n, directions=dirs)
    cond = make_cond(obs, prm)
    jc = torch.func.vmap(torch.func.jacrev(lambda c: net(c[None])[0]))(cond)  # (5, 1, 3)
    jx = jc[:, :, :2] @ oj
    exact = ((jx - aj) ** 2).sum((1, 2)).mean() / 1 * n / 2
    torch.testing.assert_close(out.sobolev, exact, rtol=0.03, atol=0)
    torch.testing.assert_close(out.mse, ((net(cond) - act) ** 2).mean().detach())


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_sobolev_fraction_keeps_the_whole_batch_regression_and_the_subsets_sobolev_term(make):
    """sobolev_fraction = S / B: the regression term over all B samples (as lambda = 0 gives it), the Sobolev term
    equal to the full loss's on the first S samples with the same directions, gradients of the sum of both."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    net = make(1, 3, 8, torch.float64)
    sched = DDPMSchedule(5)
    b, s = 8, 2
    sl = slice(0, b)
    args = [t[sl].double() for t in (ds.obs, ds.params, ds.chunks, ds.chunk_jac, ds.obs_jac)]
    g = torch.Generator().manual_seed(3)
    steps, noise = torch.randint(0, 5, (b,), generator=g), torch.randn(b, 8, 1, generator=g, dtype=torch.float64)
    dirs = random_directions(s, 2, 2, g, torch.float64)
    part = diffusion_loss(net, sched, *args, 1, sobolev_weight=0.5, num_directions=2, steps=steps, noise=noise,
                          directions=dirs, sobolev_fraction=s / b)
    plain = diffusion_loss(net, sched, *args, 1, sobolev_weight=0.0, steps=steps, noise=noise)
    head = diffusion_loss(net, sched, *[t[:s] for t in args], 1, sobolev_weight=0.5, num_directions=2,
                          steps=steps[:s], noise=noise[:s], directions=dirs)
    torch.testing.assert_close(part.mse, plain.mse)
    torch.testing.assert_close(part.sobolev, head.sobolev)
    torch.testing.assert_close(part.loss, plain.loss + 0.5 * head.sobolev)
    grads = torch.autograd.grad(part.loss, list(net.parameters()))
    head_plain = diffusion_loss(net, sched, *[t[:s] for t in args], 1, sobolev_weight=0.0, steps=steps[:s],
                                noise=noise[:s])
    ref = torch.autograd.grad(plain.loss + head.loss - head_plain.loss, list(net.parameters()))  # λ·sobolev(head)
    for got, want in zip(grads, ref):
        torch.testing.assert_close(got, want)
    # the direct policy: same split
    mlp = MLP(3, 1, MLPConfig((16, 16))).double()
    obs, prm, act, aj, oj = args[0][:, -1], args[1], args[2][:, 1], args[3][:, 1], args[4]
    dpart = direct_loss(mlp, obs, prm, act, aj, oj, sobolev_weight=1.0, directions=dirs[:, :1], sobolev_fraction=s / b)
    dhead = direct_loss(mlp, obs[:s], prm[:s], act[:s], aj[:s], oj[:s], sobolev_weight=1.0, directions=dirs[:, :1])
    torch.testing.assert_close(dpart.mse, direct_loss(mlp, obs, prm, act, aj, oj).mse)
    torch.testing.assert_close(dpart.sobolev, dhead.sobolev)
    for bad in (0.0, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="sobolev_fraction: expected a float in"):
            diffusion_loss(net, sched, *args, 1, sobolev_weight=1.0, sobolev_fraction=bad)
        with pytest.raises(ValueError, match="sobolev_fraction: expected a float in"):
            direct_loss(mlp, obs, prm, act, aj, oj, sobolev_weight=1.0, sobolev_fraction=bad)


def test_dual_functions_with_fewer_tangent_rows_than_primal_rows():
    """A dual tensor of P primal and Q < P tangent rows (the tangents of the first Q samples): the outputs are the
    full dual's rows, and the hand-derived backward passes gradcheck."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 4, 3, dtype=torch.float64, generator=g)
    dx = torch.randn(2, 4, 3, dtype=torch.float64, generator=g)
    w = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    full_dx = torch.cat([dx, torch.zeros(3, 4, 3, dtype=torch.float64)])
    for f in (lambda z, p: mish_dual(z, p), lambda z, p: group_norm_dual(z, 2, w, b, primal=p)):
        part = f(torch.cat([x, dx]), 5)
        full = f(torch.cat([x, full_dx]), None)
        torch.testing.assert_close(part, torch.cat([full[:5], full[5:7]]))
    z = torch.cat([x, dx]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: mish_dual(z, 5), (z,))
    assert torch.autograd.gradcheck(lambda z, w, b: group_norm_dual(z, 2, w, b, primal=5), (z, w, b))


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_denoiser_dual_with_tangents_of_the_first_samples_only(make):
    net = make(2, 5, 8, torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 8, 2, generator=g, dtype=torch.float64)
    k = torch.tensor([0, 2, 4, 1])
    c = torch.randn(4, 5, generator=g, dtype=torch.float64)
    t = torch.randn(2, 5, generator=g, dtype=torch.float64)
    y, jv = denoiser_jvp(net, x, k, c, t, "dual")
    y_ref, jv_ref = torch.func.jvp(lambda cc: net(x, k, cc), (c,), (torch.cat([t, torch.zeros_like(t)]),))
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(jv, jv_ref[:2])
    torch.testing.assert_close(denoiser_jvp(net, x, k, c, t, "autograd")[1], jv_ref[:2])
    with pytest.raises(ValueError, match="cond_tangent: expected shape"):
        denoiser_jvp(net, x, k, c, torch.randn(5, 5, dtype=torch.float64), "dual")


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_sobolev_sample_weights_scale_each_samples_residual(make):
    """The weighted Sobolev term is the mean of w_i times each sample's own term (same directions), with several
    directions and with the term on part of the batch; the regression term does not change."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    net = make(1, 3, 8, torch.float64)
    sched = DDPMSchedule(5)
    b, m = 6, 2
    args = [t[:b].double() for t in (ds.obs, ds.params, ds.chunks, ds.chunk_jac, ds.obs_jac)]
    g = torch.Generator().manual_seed(5)
    steps, noise = torch.randint(0, 5, (b,), generator=g), torch.randn(b, 8, 1, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, 0.5, 0.0, 2.0, 0.25, 1.0], dtype=torch.float64)
    for frac, rows in ((1.0, b), (4 / 6, 4)):
        dirs = random_directions(rows, m, 2, g, torch.float64)
        kw = dict(sobolev_weight=0.3, num_directions=m, steps=steps, noise=noise, directions=dirs, sobolev_fraction=frac)
        with torch.no_grad():
            weighted = diffusion_loss(net, sched, *args, 1, sobolev_sample_weight=w, **kw)
            plain = diffusion_loss(net, sched, *args, 1, **kw)
            each = [diffusion_loss(net, sched, *[t[i:i + 1] for t in args], 1, sobolev_weight=0.3, num_directions=m,
                                   steps=steps[i:i + 1], noise=noise[i:i + 1], directions=dirs[i:i + 1]).sobolev
                    for i in range(rows)]
        torch.testing.assert_close(weighted.sobolev, sum(w[i] * each[i] for i in range(rows)) / rows)
        torch.testing.assert_close(plain.sobolev, sum(each) / rows)
        torch.testing.assert_close(weighted.mse, plain.mse)
    mlp = MLP(3, 1, MLPConfig((16, 16))).double()
    obs, prm, act, aj, oj = args[0][:, -1], args[1], args[2][:, 1], args[3][:, 1], args[4]
    dirs = random_directions(b, 1, 2, g, torch.float64)
    with torch.no_grad():
        dw = direct_loss(mlp, obs, prm, act, aj, oj, sobolev_weight=1.0, directions=dirs, sobolev_sample_weight=w)
        deach = [direct_loss(mlp, obs[i:i + 1], prm[i:i + 1], act[i:i + 1], aj[i:i + 1], oj[i:i + 1],
                             sobolev_weight=1.0, directions=dirs[i:i + 1]).sobolev for i in range(b)]
    torch.testing.assert_close(dw.sobolev, sum(w[i] * deach[i] for i in range(b)) / b)
    for bad in (torch.ones(b + 1, dtype=torch.float64), torch.ones(b, 1, dtype=torch.float64), [1.0] * b):
        with pytest.raises(ValueError, match=r"sobolev_sample_weight: expected a tensor of shape \(6,\)"):
            diffusion_loss(net, sched, *args, 1, sobolev_weight=1.0, sobolev_sample_weight=bad)
        with pytest.raises(ValueError, match=r"sobolev_sample_weight: expected a tensor of shape \(6,\)"):
            direct_loss(mlp, obs, prm, act, aj, oj, sobolev_weight=1.0, sobolev_sample_weight=bad)


def test_sobolev_cap_weights_leave_the_bulk_and_make_the_tail_relative():
    jac = torch.zeros(5, 3, 2, 4)
    for i, a in enumerate((1.0, 2.0, 3.0, 4.0, 100.0)):
        jac[i, 0, 0, 0] = a  # ||D_i||_F^2 = a^2 over 3 * 2 entries and ndx = 4
    s = sobolev_target_scales(jac)
    torch.testing.assert_close(s, torch.tensor([1.0, 4.0, 9.0, 16.0, 1e4]) / 24)
    w = sobolev_cap_weights(s, 0.5)  # tau = the median scale, 9 / 24
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 1.0, 9 / 16, 9e-4]))
    torch.testing.assert_close(sobolev_cap_weights(s, 1.0), torch.ones(5))
    # the capped samples' weighted target scale is the quantile: none of them counts more than tau
    assert float((w * s).max()) <= float(torch.quantile(s, 0.5)) * (1 + 1e-6)
    # a zero target (no gain) keeps weight 1, finite
    torch.testing.assert_close(sobolev_cap_weights(torch.tensor([0.0, 1.0, 2.0]), 0.5), torch.tensor([1.0, 1.0, 0.5]))
    for bad in (0.0, 1.5, -0.2, True, "0.9"):
        with pytest.raises(ValueError, match="sobolev_cap_quantile: expected a float in"):
            sobolev_cap_weights(s, bad)


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_sobolev_entry_weights_scale_each_action_entrys_residual(make):
    """The Sobolev term weighted per action entry is the weighted sum of the terms on each entry alone (one-hot
    weights, the same directions), which add up to the unweighted term; the regression term does not change. The
    direct loss alike; a weight of the wrong shape is refused by name."""
    g = torch.Generator().manual_seed(7)
    b, h, horizon, na, no, nz, ndx = 5, 1, 8, 3, 4, 1, 4
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    args = [r(b, h, no), r(b, nz), r(b, horizon, na), r(b, horizon, na, ndx), r(b, no, ndx)]
    net, sched = make(na, h * no + nz, horizon, torch.float64), DDPMSchedule(5)
    kw = dict(sobolev_weight=0.3, num_directions=2, steps=torch.randint(0, 5, (b,), generator=g),
              noise=r(b, horizon, na), directions=random_directions(b, 2, ndx, g, torch.float64))
    w = torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64)
    with torch.no_grad():
        plain = diffusion_loss(net, sched, *args, h, **kw)
        weighted = diffusion_loss(net, sched, *args, h, sobolev_entry_weight=w, **kw)
        each = [diffusion_loss(net, sched, *args, h, sobolev_entry_weight=e, **kw).sobolev
                for e in torch.eye(na, dtype=torch.float64)]
    torch.testing.assert_close(plain.sobolev, sum(each))
    torch.testing.assert_close(weighted.sobolev, sum(w[d] * each[d] for d in range(na)))
    torch.testing.assert_close(weighted.mse, plain.mse)
    mlp = MLP(no + nz, na, MLPConfig((16, 16))).double()
    dargs = (args[0][:, -1], args[1], args[2][:, h], args[3][:, h], args[4])
    dirs = random_directions(b, 1, ndx, g, torch.float64)
    with torch.no_grad():
        dw = direct_loss(mlp, *dargs, sobolev_weight=1.0, directions=dirs, sobolev_entry_weight=w).sobolev
        deach = [direct_loss(mlp, *dargs, sobolev_weight=1.0, directions=dirs, sobolev_entry_weight=e).sobolev
                 for e in torch.eye(na, dtype=torch.float64)]
    torch.testing.assert_close(dw, sum(w[d] * deach[d] for d in range(na)))
    for bad in (torch.ones(na + 1, dtype=torch.float64), torch.ones(1, na, dtype=torch.float64), [1.0] * na):
        with pytest.raises(ValueError, match=r"sobolev_entry_weight: expected a tensor of shape \(3,\)"):
            diffusion_loss(net, sched, *args, h, sobolev_weight=1.0, sobolev_entry_weight=bad)
        with pytest.raises(ValueError, match=r"sobolev_entry_weight: expected a tensor of shape \(3,\)"):
            direct_loss(mlp, *dargs, sobolev_weight=1.0, sobolev_entry_weight=bad)


@pytest.mark.parametrize("make", [_tiny_unet, _tiny_chunk_mlp], ids=["unet", "mlp"])
def test_regression_sample_weights_scale_each_samples_regression_residual(make):
    """The regression term weighted per sample is the weighted mean of each sample's term alone (one-hot weights
    times the batch size), with or without the Sobolev term, whose value does not change; ones give the plain term.
    The direct loss alike; a weight of the wrong shape is refused by name."""
    g = torch.Generator().manual_seed(11)
    b, h, horizon, na, no, nz, ndx = 4, 1, 8, 2, 4, 1, 4
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    args = [r(b, h, no), r(b, nz), r(b, horizon, na), r(b, horizon, na, ndx), r(b, no, ndx)]
    net, sched = make(na, h * no + nz, horizon, torch.float64), DDPMSchedule(5)
    kw = dict(num_directions=1, steps=torch.randint(0, 5, (b,), generator=g), noise=r(b, horizon, na),
              directions=random_directions(b, 1, ndx, g, torch.float64))
    w = torch.tensor([0.5, 3.0, 0.0, 1.0], dtype=torch.float64)
    mlp = MLP(no + nz, na, MLPConfig((16, 16))).double()
    dargs = (args[0][:, -1], args[1], args[2][:, h], args[3][:, h], args[4])
    dirs = kw["directions"]
    for lam in (0.0, 0.3):
        with torch.no_grad():
            plain = diffusion_loss(net, sched, *args, h, sobolev_weight=lam, **kw)
            ones = diffusion_loss(net, sched, *args, h, sobolev_weight=lam, regression_sample_weight=torch.ones(
                b, dtype=torch.float64), **kw)
            weighted = diffusion_loss(net, sched, *args, h, sobolev_weight=lam, regression_sample_weight=w, **kw)
            each = [diffusion_loss(net, sched, *args, h, sobolev_weight=lam, regression_sample_weight=e * b, **kw).mse
                    for e in torch.eye(b, dtype=torch.float64)]
            dplain = direct_loss(mlp, *dargs, sobolev_weight=lam, directions=dirs)
            dweighted = direct_loss(mlp, *dargs, sobolev_weight=lam, directions=dirs, regression_sample_weight=w)
            deach = [direct_loss(mlp, *dargs, sobolev_weight=lam, directions=dirs, regression_sample_weight=e * b).mse
                     for e in torch.eye(b, dtype=torch.float64)]
        torch.testing.assert_close(ones.mse, plain.mse)
        torch.testing.assert_close(plain.mse, sum(each) / b)
        torch.testing.assert_close(weighted.mse, sum(w[i] * each[i] for i in range(b)) / b)
        torch.testing.assert_close(weighted.sobolev, plain.sobolev)
        torch.testing.assert_close(weighted.loss, weighted.mse + lam * weighted.sobolev)
        torch.testing.assert_close(dplain.mse, sum(deach) / b)
        torch.testing.assert_close(dweighted.mse, sum(w[i] * deach[i] for i in range(b)) / b)
    for bad in (torch.ones(b + 1, dtype=torch.float64), torch.ones(1, b, dtype=torch.float64), [1.0] * b):
        with pytest.raises(ValueError, match=r"regression_sample_weight: expected a tensor of shape \(4,\)"):
            diffusion_loss(net, sched, *args, h, regression_sample_weight=bad)
        with pytest.raises(ValueError, match=r"regression_sample_weight: expected a tensor of shape \(4,\)"):
            direct_loss(mlp, *dargs, regression_sample_weight=bad)


def test_sobolev_entry_weights_cap_the_stiff_entries_at_the_mean():
    """w_d = min(1, mean(c) / c_d): the entries with larger targets than the mean are scaled down to it, the others
    (a zero one included) keep weight 1; the weighted targets' largest entry scale is the mean."""
    jac = torch.zeros(4, 2, 3, 5)  # (B, H', D_a, ndx)
    jac[..., 0, :] = 1.0  # c_0 = 5 / 5 = 1
    jac[..., 1, :2] = 6.0  # c_1 = 72 / 5
    c = torch.tensor([1.0, 72 / 5, 0.0])
    torch.testing.assert_close(sobolev_entry_scales(jac), c.double())
    w = sobolev_entry_weights(jac)
    torch.testing.assert_close(w, torch.tensor([1.0, float(c.mean() / c[1]), 1.0]))
    assert float((w * c).max()) <= float(c.mean()) * (1 + 1e-6)
    torch.testing.assert_close(sobolev_entry_weights(torch.zeros(2, 3, 4)), torch.ones(3))  # no gains: unchanged
    torch.testing.assert_close(sobolev_entry_weights(torch.ones(2, 3, 4)), torch.ones(3))  # equal entries
    with pytest.raises(ValueError, match=r"jac: expected \(B, \.\.\., D_a, ndx\), got shape \(3, 4\)"):
        sobolev_entry_weights(torch.ones(3, 4))
