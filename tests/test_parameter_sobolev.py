"""The parameter Sobolev term: derivatives of the solutions with respect to the task parameters (re-solves at
perturbed parameters, checked against a re-solve further out and against the synthetic LQR's closed form), their
normalised chunk targets, the loss's extended directions, the columns' shuffle, training and the scorecard stage."""

import dataclasses

import numpy as np
import pytest
import torch

import sobolev_warmstart as sw
from sobolev_warmstart.data import (ChunkSpec, Normaliser, TrajectoryData, build_dataset, load_dataset, save_dataset,
                                    shuffle_param_groups)
from sobolev_warmstart.diffusion import DDPMSchedule
from sobolev_warmstart.losses import diffusion_loss, make_cond, random_directions, sobolev_tangent_target
from sobolev_warmstart.models import ConditionalUNet1D, UNetConfig
from sobolev_warmstart.sensitivities import parameter_jacobians, with_parameter_jacobians
from sobolev_warmstart.synthetic import lqr_double_integrator
from sobolev_warmstart.train import TrainConfig, train

from conftest import check_missing_setting_reads_as_default, pinocchio_model, tangent_difference


@pytest.mark.parametrize("name,variant", [("quadrotor", "columns_3"), ("ur5", "fixed_start_random_target")])
def test_task_difference_is_the_tangent_difference(name, variant):
    task = sw.make_task(name, variant)
    model = pinocchio_model(task)
    x0s, _ = task.sample_instances(3, seed=4)
    x1s, _ = task.sample_instances(3, seed=5)
    got = task.difference(x0s, x1s)
    for i in range(3):
        np.testing.assert_allclose(got[i], tangent_difference(model, x0s[i], x1s[i]), atol=1e-12)
    with pytest.raises(ValueError, match="x1s"):
        task.difference(x0s, x1s[:2])


def _solved(name, variant, n, seed):
    task = sw.make_task(name, variant)
    x0s, params = task.sample_instances(n, seed=seed)
    res = sw.solve(task, x0s, params, options=sw.SolverOptions(num_threads=1))
    assert res.converged.all()
    der = sw.chained_derivatives(task, res, 4)
    return task, res, der


@pytest.mark.parametrize("name,variant,seed", [("ur5", "fixed_start_random_target", 0),
                                               ("ur5", "fixed_start_random_target", 7),
                                               ("ur5", "random_start_random_target", 3),
                                               ("quadrotor", "columns_3", 0)])
def test_parameter_jacobians_predict_the_solution_of_a_nearby_instance(name, variant, seed):
    """x*(z + δ) ⊖ x*(z) ≈ (d x*/dz) δ for a small δ, re-solved from x*(z): the first-order prediction leaves
    a small part of the change (measured 2-5% at |δ| ~ 2e-3 over these seeds; 10% at 1e-2), where ignoring the
    derivative leaves all of it. Both solutions at the re-solves' tolerance: on the quadrotor a solution at the
    default 1e-4 is further from the exact one than such a δ moves it."""
    task, res, der = _solved(name, variant, 3, seed)
    tight = sw.SolverOptions(tol=1e-6, max_iters=200, num_threads=1)
    res = sw.solve(task, res.xs[:, 0], res.params, res.xs, res.us, tight)
    assert res.converged.all()
    pj = parameter_jacobians(task, res.xs, res.us, res.params, res.feedback_gains, der.action_jacobians)
    assert pj.converged.sum() >= 2  # a re-solve can stall short of 1e-6 (ur5 random start, seed 3: 1 of 3)
    assert pj.action_param_jacobians.shape == (3, task.horizon, 4, task.na, task.nz)
    assert pj.observation_param_jacobians.shape == (3, task.horizon + 1, task.no, task.nz)
    delta = np.random.default_rng(seed).normal(size=res.params.shape) * 2e-3
    near = sw.solve(task, res.xs[:, 0], res.params + delta, res.xs, res.us, tight)
    moved = task.difference(res.xs.reshape(-1, task.nx), near.xs.reshape(-1, task.nx)).reshape(3, -1, task.ndx)
    predicted = np.einsum("ntdz,nz->ntd", pj.state_jacobians, delta)
    ok = pj.converged & near.converged
    assert np.linalg.norm((moved - predicted)[ok]) < 0.15 * np.linalg.norm(moved[ok])
    # the start does not depend on the parameters: at t0 = 0 the partial derivative is the total one
    np.testing.assert_allclose(pj.state_jacobians[:, 0], 0.0, atol=1e-9)


def test_ur5_observation_param_jacobian_is_minus_the_offset_identity():
    """The UR5 observes e = p_ee(q) - p* and J^T e: ∂e/∂p* = -I at a fixed state, ∂(J^T e)/∂p* = -J^T."""
    task, res, der = _solved("ur5", "fixed_start_random_target", 2, 1)
    pj = parameter_jacobians(task, res.xs, res.us, res.params, res.feedback_gains, der.action_jacobians)
    o, _ = task.observation(res.xs[0, 5], res.params[0])
    step = 1e-6 * np.eye(task.nz)
    fd = np.stack([(task.observation(res.xs[0, 5], res.params[0] + s)[0] - task.observation(
        res.xs[0, 5], res.params[0] - s)[0]) / 2e-6 for s in step], axis=-1)
    np.testing.assert_allclose(pj.observation_param_jacobians[0, 5], fd, atol=1e-6)
    assert o.shape == (24,)  # (q, v, e, J^T e, J v)
    np.testing.assert_allclose(fd[12:15], -np.eye(3), atol=1e-8)
    np.testing.assert_allclose(fd[:12], 0.0, atol=1e-8)
    np.testing.assert_allclose(fd[21:], 0.0, atol=1e-8)
    assert np.abs(fd[15:21]).max() > 1e-3  # J^T e moves with the target too


def test_parameter_jacobians_check_their_inputs():
    task, res, der = _solved("ur5", "fixed_start_random_target", 2, 2)
    args = (res.xs, res.us, res.params, res.feedback_gains, der.action_jacobians)
    with pytest.raises(ValueError, match="eps"):
        parameter_jacobians(task, *args, eps=0.0)
    with pytest.raises(ValueError, match="xs"):
        parameter_jacobians(task, res.xs[:, :-1], *args[1:])
    with pytest.raises(TypeError, match="options"):
        parameter_jacobians(task, *args, options={"tol": 1e-6})
    with pytest.raises(ValueError, match="action_jacobians"):
        parameter_jacobians(task, *args[:4], der.action_jacobians[..., :-1])
    pend = sw.make_task("pendulum", "default")
    x0s, params = pend.sample_instances(1, seed=0)
    r = sw.solve(pend, x0s, params)
    d = sw.chained_derivatives(pend, r, 2)
    with pytest.raises(ValueError, match="no parameters"):
        parameter_jacobians(pend, r.xs, r.us, r.params, r.feedback_gains, d.action_jacobians)
    data = TrajectoryData.from_solve(task, res, der)
    with pytest.raises(ValueError, match="feedback_gains"):
        with_parameter_jacobians(task, dataclasses.replace(data, feedback_gains=None))


@pytest.mark.parametrize("action_space", ["torque", "state"])
def test_synthetic_parameter_jacobians_are_the_closed_loop_derivative(action_space):
    """The synthetic LQR's closed form against central differences of its closed loop from a fixed x_{t0}."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8, action_space=action_space, param_jacobians=True)
    dt, T = 0.05, 12
    A, B = np.array([[1.0, dt], [0.0, 1.0]]), np.array([[dt * dt], [dt]])
    K = data.feedback_gains[0]
    for i, t0 in ((0, 0), (1, 3), (1, 9)):
        def chunk(z):
            x, out = data.xs[i, t0].copy(), []
            for t in range(t0, T):
                u = K[t] @ (x - np.array([z, 0.0]))
                x = A @ x + B @ u
                out.append(u if action_space == "torque" else np.array([np.cos(x[0]), np.sin(x[0])]))
            return np.array(out)[np.minimum(np.arange(8), T - t0 - 1)]
        z = data.params[i, 0]
        fd = (chunk(z + 1e-6) - chunk(z - 1e-6)) / 2e-6
        np.testing.assert_allclose(data.action_param_jacobians[i, t0, ..., 0], fd, atol=1e-6)


def test_chunk_targets_are_normalised_and_saved():
    data = lqr_double_integrator(3, horizon=12, chunk_offsets=8, param_jacobians=True)
    spec = ChunkSpec(horizon=8, history=2, action_steps=4)
    ds = build_dataset(data, spec)
    nrm = ds.normalisers
    i, t0 = 2, 5
    m = i * 12 + t0
    expected = data.action_param_jacobians[i, t0, :6, 0, 0] / nrm.action.scale[0] * nrm.params.scale[0]
    np.testing.assert_allclose(ds.chunk_param_jac[m, 2:, 0, 0].numpy(), expected, rtol=1e-6)
    assert (ds.chunk_param_jac[:, :2] == 0).all()  # history rows
    assert ds.obs_param_jac.shape == (len(ds), 2, data.task.no, 1)
    plain = build_dataset(lqr_double_integrator(3, horizon=12, chunk_offsets=8), spec)
    assert plain.chunk_param_jac is None and plain.obs_param_jac is None
    with pytest.raises(ValueError, match="action_param_jacobians, observation_param_jacobians"):
        dataclasses.replace(data, observation_param_jacobians=None)
    with pytest.raises(ValueError, match="observation_param_jacobians"):
        dataclasses.replace(data, observation_param_jacobians=data.observation_param_jacobians[:, :-1])


def test_saved_datasets_keep_their_parameter_targets(tmp_path):
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8, param_jacobians=True)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    save_dataset(ds, tmp_path / "d.npz")
    back = load_dataset(tmp_path / "d.npz")
    torch.testing.assert_close(back.chunk_param_jac, ds.chunk_param_jac)
    torch.testing.assert_close(back.obs_param_jac, ds.obs_param_jac)


def test_extended_tangent_moves_the_observations_and_the_parameters():
    g = torch.Generator().manual_seed(0)
    b, h, no, ndx, nz, H, na = 3, 2, 4, 3, 2, 5, 2
    obs_jac, jac = torch.randn(b, no, ndx, generator=g), torch.randn(b, H, na, ndx, generator=g)
    opj, pj = torch.randn(b, h, no, nz, generator=g), torch.randn(b, H, na, nz, generator=g)
    v = torch.randn(b, ndx + nz, generator=g)
    tangent, target = sobolev_tangent_target(obs_jac, jac, v, h, nz + 1, opj, pj)  # + the time to go column
    vx, vz = v[:, :ndx], v[:, ndx:]
    slots = torch.einsum("bhoz,bz->bho", opj, vz)
    slots[:, -1] += torch.einsum("bod,bd->bo", obs_jac, vx)
    expected = torch.cat([slots.reshape(b, -1), vz, torch.zeros(b, 1)], dim=-1)
    torch.testing.assert_close(tangent, expected)
    torch.testing.assert_close(target, torch.einsum("bhad,bd->bha", jac, vx) + torch.einsum("bhaz,bz->bha", pj, vz))
    with pytest.raises(ValueError, match="directions"):
        sobolev_tangent_target(obs_jac, jac, vx, h, nz, opj, pj)
    with pytest.raises(ValueError, match="both"):
        sobolev_tangent_target(obs_jac, jac, v, h, nz, opj, None)


def test_stochastic_term_is_unbiased_for_the_extended_jacobian():
    """E[sobolev] = m / (ndx + nz) · mean ||[J_x, J_z] - [D_x, D_z]||_F² over the predicted entries."""
    data = lqr_double_integrator(2, horizon=12, chunk_offsets=8, param_jacobians=True)
    ds = build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))
    torch.manual_seed(0)
    net = ConditionalUNet1D(1, 3, 8, UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8)).double()
    sched = DDPMSchedule(5)
    idx = torch.tensor([3, 17])
    b, n = 2, 4000
    obs, prm, ch = ds.obs[idx].double(), ds.params[idx].double(), ds.chunks[idx].double()
    cj, oj = ds.chunk_jac[idx].double(), ds.obs_jac[idx].double()
    pj, opj = ds.chunk_param_jac[idx].double(), ds.obs_param_jac[idx].double()
    pj = pj + 0.5  # targets the network does not meet, so both blocks count
    steps, noise = torch.tensor([1, 3]), torch.randn(b, 8, 1, dtype=torch.float64)
    dirs = random_directions(b, n, 3, torch.Generator().manual_seed(0), torch.float64)
    with torch.no_grad():
        out = diffusion_loss(net, sched, obs, prm, ch, cj, oj, 1, sobolev_weight=1.0, num_directions=n, steps=steps,
                             noise=noise, directions=dirs, chunk_param_jac=pj, obs_param_jac=opj)
    noisy = torch.cat([ch[:, :1], sched.add_noise(ch, noise, steps)[:, 1:]], 1)
    cond = make_cond(obs, prm)
    exact = 0.0
    for j in range(b):
        jc = torch.func.jacrev(lambda c: net(noisy[j:j + 1], steps[j:j + 1], c))(cond[j:j + 1])[0, :, :, 0]  # (8,1,3)
        jx = jc @ torch.cat([oj[j], torch.zeros(1, 2, dtype=torch.float64)])  # (8, 1, 2)
        jz = jc @ torch.cat([opj[j, 0], torch.ones(1, 1, dtype=torch.float64)])  # (8, 1, 1)
        full = torch.cat([jx - cj[j], jz - pj[j]], dim=-1)
        exact += (full[1:] ** 2).sum() / 7
    exact = exact / b * n / 3
    torch.testing.assert_close(out.sobolev, exact, rtol=0.03, atol=0)


def test_shuffled_columns_carry_their_derivatives():
    """Each group's derivative column moves with the group, in raw units, whatever slot it lands in."""
    nrm = Normaliser(offset=np.array([0.0, 1.0, -1.0, 2.0, 0.5]), scale=np.array([1.0, 2.0, 0.5, 4.0, 3.0]))
    g = torch.Generator().manual_seed(0)
    params = torch.randn(64, 5, generator=g, dtype=torch.float64)
    jac = torch.randn(64, 3, 5, generator=g, dtype=torch.float64)
    out, moved = shuffle_param_groups(params, nrm, 1, 2, torch.Generator().manual_seed(1), jacobians=[jac])
    plain = shuffle_param_groups(params, nrm, 1, 2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, plain)  # the same draws with or without derivatives
    scale, offset = torch.as_tensor(nrm.scale), torch.as_tensor(nrm.offset)
    raw_p, raw_out = params * scale + offset, out * scale + offset
    raw_j, raw_moved = jac / scale, moved / scale
    swapped = 0
    for r in range(64):
        for slot in (1, 3):
            src = 1 if torch.allclose(raw_out[r, slot:slot + 2], raw_p[r, 1:3]) else 3
            torch.testing.assert_close(raw_moved[r, :, slot:slot + 2], raw_j[r, :, src:src + 2])
            swapped += src != slot
    assert swapped > 0
    torch.testing.assert_close(moved[..., 0], jac[..., 0])


@pytest.mark.parametrize("policy", ["sob_diff", "sob_mlp"])
def test_training_uses_the_parameter_targets_where_the_data_hold_them(policy, tmp_path):
    with_p = build_dataset(lqr_double_integrator(4, horizon=12, chunk_offsets=8, param_jacobians=True),
                           ChunkSpec(horizon=8, history=1, action_steps=4))
    without = build_dataset(lqr_double_integrator(4, horizon=12, chunk_offsets=8),
                            ChunkSpec(horizon=8, history=1, action_steps=4))
    kw = dict(policy=policy, epochs=2, batch_size=16, seed=0, sobolev_weight=1.0, progress=False)
    if policy == "sob_diff":
        kw["unet"] = UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8)
    a = train(with_p, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "a")))
    b = train(without, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "b")))
    assert all(np.isfinite(r["loss"]) for r in a.train_history)
    assert a.train_history[0]["sobolev"] != b.train_history[0]["sobolev"]
    with pytest.raises(ValueError, match="another dataset"):  # a checkpoint remembers that its data held them
        train(without, TrainConfig(**{**kw, "epochs": 3}, checkpoint_dir=str(tmp_path / "a")))
    # Diff ignores them: the same losses as without
    d1 = train(with_p, TrainConfig(policy="diff" if policy == "sob_diff" else "mlp", epochs=1, batch_size=16, seed=0,
                                   progress=False, **({"unet": kw["unet"]} if "unet" in kw else {})))
    d2 = train(without, TrainConfig(policy="diff" if policy == "sob_diff" else "mlp", epochs=1, batch_size=16, seed=0,
                                    progress=False, **({"unet": kw["unet"]} if "unet" in kw else {})))
    assert d1.train_history == d2.train_history


def test_scorecard_stage_computes_them_for_sob_diff_and_old_folders_load_without(tmp_path):
    """parameter_sobolev computes the training set's parameter derivatives once, in the collection stage
    (saved with it, reported in collect.json); a variant without parameters is refused by name; a folder written
    before the setting existed reads as off."""
    import json

    from sobolev_warmstart.scorecard import _collect, settings_for

    with pytest.raises(ValueError, match="parameter_sobolev"):
        dataclasses.replace(settings_for("pendulum/default", "smoke"), parameter_sobolev=1.0)
    for bad in (True, -1.0, float("nan")):
        with pytest.raises(ValueError, match="parameter_sobolev"):
            dataclasses.replace(settings_for("ur5/fixed_start_random_target", "smoke"), parameter_sobolev=bad)
    s = dataclasses.replace(settings_for("ur5/fixed_start_random_target", "smoke"), parameter_sobolev=3.0)
    assert s.train_config("sob_diff", 100, tmp_path).parameter_sobolev_weight == 3.0
    task = sw.make_task("ur5", "fixed_start_random_target")
    ds = _collect(task, s, tmp_path / "collect", 1, lambda msg: None)
    assert ds.chunk_param_jac is not None and ds.chunk_param_jac.abs().max() > 0
    info = json.loads((tmp_path / "collect" / "collect.json").read_text())["parameter_jacobians"]
    assert info["instances"] == ds.data.num_instances and info["converged"] == info["instances"]
    assert load_dataset(tmp_path / "collect" / "trajectories.npz").chunk_param_jac is not None
    check_missing_setting_reads_as_default(tmp_path, settings_for("ur5/fixed_start_random_target", "smoke"), s,
                                           "parameter_sobolev")


def test_parameter_weight_scales_the_parameter_block_of_the_residual():
    """w weighs the parameter block: with the state block's residual zero, the term is w times that of w = 1; with
    w = 0 training ignores the derivatives (the same losses as data without them)."""
    g = torch.Generator().manual_seed(0)
    b, h, no, ndx, nz, H, na = 4, 1, 3, 2, 1, 4, 1
    obs_jac, jac = torch.randn(b, no, ndx, generator=g), torch.zeros(b, H, na, ndx)
    opj, pj = torch.zeros(b, h, no, nz), torch.randn(b, H, na, nz, generator=g)
    v = torch.randn(b, ndx + nz, generator=g)
    t1, y1 = sobolev_tangent_target(obs_jac, jac, v, h, nz, opj, pj)
    t4, y4 = sobolev_tangent_target(obs_jac, jac, v, h, nz, opj, pj, param_weight=4.0)
    torch.testing.assert_close(y4, 2.0 * y1)
    torch.testing.assert_close(t4[:, no:], 2.0 * t1[:, no:])
    with pytest.raises(ValueError, match="parameter_sobolev_weight"):
        TrainConfig(parameter_sobolev_weight=-1.0)
    spec = ChunkSpec(horizon=8, history=1, action_steps=4)
    with_p = build_dataset(lqr_double_integrator(4, horizon=12, chunk_offsets=8, param_jacobians=True), spec)
    without = build_dataset(lqr_double_integrator(4, horizon=12, chunk_offsets=8), spec)
    kw = dict(policy="sob_mlp", epochs=1, batch_size=16, seed=0, sobolev_weight=1.0, progress=False)
    a = train(with_p, TrainConfig(**kw, parameter_sobolev_weight=0.0))
    b_ = train(without, TrainConfig(**kw))
    assert a.train_history == b_.train_history


def test_copies_and_consolidation_do_not_carry_stale_parameter_derivatives():
    """A rotated copy or a consolidated solution is another solution: the parameter derivatives are computed after
    them, and a set that already holds them is refused by the symmetry (consolidation returns new data without)."""
    task, res, der = _solved("ur5", "random_start_random_target", 2, 5)
    data, _ = with_parameter_jacobians(task, TrajectoryData.from_solve(task, res, der))
    assert data.action_param_jacobians is not None
    with pytest.raises(ValueError, match="action_param_jacobians"):
        sw.augment_by_symmetry(task, data, copies=1)
    out, _ = sw.consolidate_data(task, data, 4, neighbours=1, rounds=1)
    assert out.action_param_jacobians is None and out.observation_param_jacobians is None
