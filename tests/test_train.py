import json
import math

import numpy as np
import pytest
import torch

from sobolev_warmstart.data import (ChunkSpec, Normaliser, TaskInfo, TrajectoryData, build_dataset,
                                    exchangeable_params, shuffle_param_groups)
from sobolev_warmstart.losses import diffusion_loss
from sobolev_warmstart.models import MLPConfig, UNetConfig
from sobolev_warmstart.policy import DiffusionPolicy, MLPPolicy, load_policy, save_policy
from sobolev_warmstart.synthetic import lqr_double_integrator
from sobolev_warmstart.train import (EMA_MAX_DECAY, TrainConfig, _training_tensors, ema_decay, load_checkpoint,
                                     regression_sample_weights, sobolev_entry_weights_of, sobolev_sample_weights,
                                     sobolev_weight_at, train)

TINY_UNET = UNetConfig(down_dims=(16, 32), n_groups=4, step_embed_dim=16)
TINY_MLP = MLPConfig((32, 32))


@pytest.fixture(scope="module")
def lqr_dataset():
    data = lqr_double_integrator(12, horizon=24, chunk_offsets=8, seed=1)
    return build_dataset(data, ChunkSpec(horizon=8, history=1, action_steps=4))


def _physical_batch(ds, idx):
    """Physical inputs and target chunks of dataset samples ``idx``."""
    nrm = ds.normalisers

    def un(n, x):
        return torch.as_tensor(n.unnormalise(x.double().numpy()), dtype=torch.float32)

    obs = un(nrm.observation, ds.obs[idx])
    prm = torch.as_tensor(ds.data.params[ds.instance[idx].numpy()], dtype=torch.float32)
    chunks = un(nrm.action, ds.chunks[idx])
    return obs, prm, chunks


def _sample_error(policy, ds, idx, seed=0):
    obs, prm, chunks = _physical_batch(ds, idx)
    h = ds.spec.history
    noise = torch.randn(policy.num_steps, len(idx), ds.spec.horizon, ds.task.na,
                        generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = policy(obs, prm, chunks[:, :h], noise)
    assert torch.equal(out[:, :h], chunks[:, :h])  # inpainted history returned as given
    return (out - chunks)[:, h:].abs().mean().item(), chunks[:, h:].abs().mean().item()


@pytest.mark.parametrize("kind", ["mlp", "sob_mlp", "diff", "sob_diff"])
def test_every_policy_kind_trains(kind, lqr_dataset):
    ds = lqr_dataset
    cfg = TrainConfig(policy=kind, epochs=30 if kind.endswith("diff") else 25, batch_size=32, lr=3e-3,
                      unet=TINY_UNET, mlp=TINY_MLP, progress=False, seed=0, num_threads=1)
    policy = train(ds, cfg)
    hist = policy.train_history
    assert len(hist) == cfg.epochs
    assert hist[-1]["mse"] < 0.1 * hist[0]["mse"], hist
    if kind.startswith("sob_"):
        assert hist[-1]["sobolev"] < 0.5 * hist[0]["sobolev"], hist
    else:
        assert all(h["sobolev"] == 0.0 for h in hist)
    idx = torch.arange(0, len(ds), 7)
    if kind.endswith("diff"):
        assert isinstance(policy, DiffusionPolicy)
        err, scale = _sample_error(policy, ds, idx)
        assert err < 0.2 * scale, (err, scale)  # sampled chunks close to the solver's
    else:
        assert isinstance(policy, MLPPolicy)
        obs, prm, chunks = _physical_batch(ds, idx)
        with torch.no_grad():
            err = (policy(obs[:, -1], prm) - chunks[:, 1]).abs().mean().item()
        assert err < 0.1 * chunks[:, 1].abs().mean().item()


def test_sobolev_mlp_learns_the_feedback_gain(lqr_dataset):
    """The derivative of the Sob+MLP policy approaches the LQR gain K (exact here) better than plain MLP's."""
    ds = lqr_dataset
    K = torch.as_tensor(ds.data.feedback_gains[0, 0], dtype=torch.float32)  # stationary gain (1, 2)
    errs = {}
    for kind in ("mlp", "sob_mlp"):
        cfg = TrainConfig(policy=kind, epochs=25, batch_size=32, lr=3e-3, mlp=TINY_MLP, progress=False, seed=0,
                          num_threads=1)
        policy = train(ds, cfg)
        obs = torch.as_tensor(ds.data.xs[:, :20].reshape(-1, 2), dtype=torch.float32)
        prm = torch.as_tensor(np.repeat(ds.data.params, 20, axis=0), dtype=torch.float32)
        jac = torch.func.vmap(torch.func.jacrev(lambda o, z: policy(o[None], z[None])[0]))(obs, prm)  # (M, 1, 2)
        errs[kind] = (jac - K).norm(dim=(1, 2)).mean().item() / K.norm().item()
    assert errs["sob_mlp"] < 0.05, errs
    assert errs["sob_mlp"] < errs["mlp"], errs


@pytest.mark.parametrize("ema_power", [None, 0.75])
def test_resume_after_interruption_continues_from_checkpoint(lqr_dataset, tmp_path, ema_power):
    ds = lqr_dataset
    kw = dict(policy="sob_diff", epochs=4, batch_size=64, lr=3e-3, unet=TINY_UNET, progress=False, seed=3,
              num_threads=1, ema_power=ema_power)
    straight = train(ds, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "a")))

    class Interrupt(Exception):
        pass

    def stop_after_two(epoch, logs):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(ds, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "b")), callback=stop_after_two)
    _, _, state = load_checkpoint(tmp_path / "b")
    assert state["epoch"] == 2
    seen = []
    resumed = train(ds, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "b")),
                    callback=lambda e, logs: seen.append(e))
    assert seen == [3, 4]  # continued, not restarted
    assert resumed.train_history == straight.train_history
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # the saved config and the checkpoint rebuild the same policy
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == TrainConfig(**kw, checkpoint_dir=str(tmp_path / "b"))
    policy, _, _ = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    obs, prm, chunks = _physical_batch(ds, torch.arange(5))
    noise = torch.randn(5, 5, 8, 1)
    torch.testing.assert_close(policy(obs, prm, chunks[:, :1], noise), resumed(obs, prm, chunks[:, :1], noise),
                               rtol=0, atol=0)
    # resuming with a different training config is refused
    with pytest.raises(ValueError, match=r"config: cannot resume .* fields \['lr'\]"):
        train(ds, TrainConfig(**{**kw, "lr": 1e-3}, checkpoint_dir=str(tmp_path / "b")))
    other = build_dataset(lqr_double_integrator(5, horizon=24, chunk_offsets=8, seed=2), ds.spec)
    with pytest.raises(ValueError, match="dataset: cannot resume"):
        train(other, TrainConfig(**kw, checkpoint_dir=str(tmp_path / "b")))


def test_save_and_load_policy(lqr_dataset, tmp_path):
    ds = lqr_dataset
    for kind in ("diff", "mlp"):
        policy = train(ds, TrainConfig(policy=kind, epochs=1, batch_size=128, unet=TINY_UNET, mlp=TINY_MLP,
                                       progress=False, num_threads=1))
        path = tmp_path / f"{kind}.pt"
        save_policy(policy, path)
        back = load_policy(path, task=ds.task.name)
        for (k, a), (_, b) in zip(policy.state_dict().items(), back.state_dict().items()):
            assert torch.equal(a, b), k
        with pytest.raises(ValueError, match="expected a policy for task 'ur5'"):
            load_policy(path, task="ur5")


def test_ema_decay_is_diffusion_policys_warmup_schedule():
    assert ema_decay(1, 0.75) == pytest.approx(1 - 2 ** -0.75)
    assert ema_decay(1000, 0.75) == pytest.approx(1 - 1001 ** -0.75)  # 0.9944: ~180 steps averaged
    decays = [ema_decay(t, 0.75) for t in range(1, 10**6, 997)]
    assert all(a <= b for a, b in zip(decays, decays[1:]))
    assert decays[-1] == EMA_MAX_DECAY


def test_ema_averages_the_weights_without_changing_the_training(lqr_dataset, tmp_path):
    """The average is taken beside the optimiser: the optimiser's weights (kept as the checkpoint's train_model)
    are those of a run without it, the returned and saved policy is the average, and with a decay near zero the
    average is the last weights."""
    kw = dict(policy="sob_diff", epochs=3, batch_size=64, lr=3e-3, unet=TINY_UNET, progress=False, seed=5,
              num_threads=1)
    plain = train(lqr_dataset, TrainConfig(**kw))
    averaged = train(lqr_dataset, TrainConfig(**kw, ema_power=0.75, checkpoint_dir=str(tmp_path / "ema")))
    almost_last = train(lqr_dataset, TrainConfig(**kw, ema_power=1e-12))
    _, _, state = load_checkpoint(tmp_path / "ema")
    moved = 0.0
    for k, w in plain.state_dict().items():
        assert torch.equal(state["train_model"][k], w), k
        assert torch.equal(state["model"][k], averaged.state_dict()[k]), k
        torch.testing.assert_close(almost_last.state_dict()[k], w, rtol=0, atol=1e-6)
        moved = max(moved, (averaged.state_dict()[k] - w).abs().max().item())
    assert moved > 1e-3  # the average is not the last weights
    assert averaged.train_history == plain.train_history


def test_train_config_validation():
    for bad in (0.0, -1.0, float("inf"), True, "0.75"):
        with pytest.raises(ValueError, match="ema_power: expected a positive float or None"):
            TrainConfig(ema_power=bad)
    with pytest.raises(ValueError, match="policy: expected one of"):
        TrainConfig(policy="transformer")
    with pytest.raises(ValueError, match="sobolev_weight: policy 'diff' trains without"):
        TrainConfig(policy="diff", sobolev_weight=1.0)
    with pytest.raises(ValueError, match="sobolev_weight: policy 'sob_mlp' needs a positive weight"):
        TrainConfig(policy="sob_mlp", sobolev_weight=0.0)
    with pytest.raises(ValueError, match=r"sobolev_fraction: expected a float in \(0, 1\]"):
        TrainConfig(sobolev_fraction=0.0)
    for bad in (0.0, 1.2, True, "0.9"):
        with pytest.raises(ValueError, match=r"sobolev_cap_quantile: expected a float in \(0, 1\] or None"):
            TrainConfig(sobolev_cap_quantile=bad)
    with pytest.raises(ValueError, match="epochs: expected a positive integer"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr: expected a positive float"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=2.5)
    with pytest.raises(ValueError, match="config: unknown fields"):
        TrainConfig.from_dict({"policy": "diff", "epoch": 3})
    assert TrainConfig(policy="sob_diff").sobolev_weight == 1.0
    assert TrainConfig.from_dict(TrainConfig(policy="mlp").to_dict()) == TrainConfig(policy="mlp")


@pytest.mark.parametrize("kind", ["sob_mlp", "sob_diff"])
def test_sobolev_cap_quantile_weights_the_tail_only(kind, lqr_dataset):
    """q = 1 trains exactly as no cap (all weights one); q < 1 caps the largest targets' weights only, and the
    capped training still fits the data and the derivatives."""
    ds = lqr_dataset
    base = dict(policy=kind, epochs=4, batch_size=32, lr=3e-3, unet=TINY_UNET, mlp=TINY_MLP, progress=False,
                seed=0, num_threads=1)
    assert sobolev_sample_weights(ds, TrainConfig(**base)) is None
    with pytest.raises(ValueError, match=f"sobolev_cap_quantile: policy '{kind[4:]}' trains without the Sobolev"):
        TrainConfig(**{**base, "policy": kind[4:]}, sobolev_cap_quantile=0.5)
    torch.testing.assert_close(sobolev_sample_weights(ds, TrainConfig(**base, sobolev_cap_quantile=1.0)),
                               torch.ones(len(ds)))
    w = sobolev_sample_weights(ds, TrainConfig(**base, sobolev_cap_quantile=0.5))
    assert w.shape == (len(ds),) and float(w.max()) == 1.0 and float((w == 1.0).float().mean()) >= 0.5
    if kind == "sob_diff":  # the chunks' targets vary (the direct policy's LQR gain is the same at every sample)
        assert float(w.min()) < 0.5
    uncapped = train(ds, TrainConfig(**base))
    same = train(ds, TrainConfig(**base, sobolev_cap_quantile=1.0))
    for a, b in zip(uncapped.net.parameters(), same.net.parameters()):
        assert torch.equal(a, b)
    capped = train(ds, TrainConfig(**{**base, "epochs": 25}, sobolev_cap_quantile=0.5))
    hist = capped.train_history
    assert hist[-1]["mse"] < 0.1 * hist[0]["mse"] and hist[-1]["sobolev"] < 0.5 * hist[0]["sobolev"], hist


def test_sobolev_cap_entries_is_off_by_default_and_the_identity_on_one_action_entry(lqr_dataset):
    """The double integrator has one action entry, which is its own mean: the entry cap leaves its training
    bit-identical. The option is refused for policies without the Sobolev term and when not a bool."""
    ds = lqr_dataset
    base = dict(policy="sob_diff", epochs=2, batch_size=32, lr=3e-3, unet=TINY_UNET, mlp=TINY_MLP, progress=False,
                seed=0, num_threads=1)
    assert sobolev_entry_weights_of(ds, TrainConfig(**base)) is None
    torch.testing.assert_close(sobolev_entry_weights_of(ds, TrainConfig(**base, sobolev_cap_entries=True)),
                               torch.ones(1))
    plain, capped = train(ds, TrainConfig(**base)), train(ds, TrainConfig(**base, sobolev_cap_entries=True))
    for a, b in zip(plain.net.parameters(), capped.net.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="sobolev_cap_entries: policy 'diff' trains without the Sobolev term"):
        TrainConfig(**{**base, "policy": "diff"}, sobolev_cap_entries=True)
    with pytest.raises(ValueError, match="sobolev_cap_entries: expected a bool, got 1"):
        TrainConfig(**base, sobolev_cap_entries=1)


def test_a_cosine_sobolev_schedule_decays_lambda_to_zero_and_still_trains(lqr_dataset):
    """lambda under the cosine schedule: the full weight at the first step, half at mid-training, positive and near
    zero at the last; constant by default and for policies without the term. Trained with it, the derivatives still
    fit (the term shapes the early steps; training seeds 0-2: last / first epoch's mse 0.001-0.003, Sobolev term
    0.06-0.07) and the training differs from the constant schedule's."""
    base = dict(policy="sob_diff", batch_size=32, lr=3e-3, unet=TINY_UNET, mlp=TINY_MLP, progress=False, seed=0,
                num_threads=1)
    cos = TrainConfig(**base, sobolev_weight=0.2, sobolev_schedule="cosine", epochs=25)
    assert sobolev_weight_at(cos, 0, 100) == 0.2 and sobolev_weight_at(cos, 50, 100) == pytest.approx(0.1)
    assert 0.0 < sobolev_weight_at(cos, 99, 100) < 1e-4
    assert sobolev_weight_at(TrainConfig(**base, sobolev_weight=0.2), 99, 100) == 0.2
    assert sobolev_weight_at(TrainConfig(**{**base, "policy": "diff"}, sobolev_schedule="cosine"), 5, 10) == 0.0
    hist = train(lqr_dataset, cos).train_history
    assert hist[-1]["mse"] < 0.1 * hist[0]["mse"] and hist[-1]["sobolev"] < 0.5 * hist[0]["sobolev"], hist
    const = train(lqr_dataset, TrainConfig(**base, sobolev_weight=0.2, epochs=25)).train_history
    assert hist[-1]["loss"] != const[-1]["loss"]
    with pytest.raises(ValueError, match="sobolev_schedule: expected one of"):
        TrainConfig(**base, sobolev_schedule="linear")


def test_final_steps_weight_the_regression_of_the_last_starts_and_change_the_training(lqr_dataset):
    """The samples starting in each trajectory's last ``final_steps`` steps get ``final_steps_weight``, the others 1;
    off (None) by default, with 0 steps or a weight of 1. Diff and Sob+Diff both take it, and it changes what they
    learn; bad values are refused by name."""
    ds = lqr_dataset
    T = ds.task.horizon
    base = dict(epochs=2, batch_size=32, lr=3e-3, unet=TINY_UNET, mlp=TINY_MLP, progress=False, seed=0,
                num_threads=1)
    assert regression_sample_weights(ds, TrainConfig(**base)) is None
    assert regression_sample_weights(ds, TrainConfig(**base, final_steps=3)) is None
    assert regression_sample_weights(ds, TrainConfig(**base, final_steps_weight=4.0)) is None
    w = regression_sample_weights(ds, TrainConfig(**base, final_steps=3, final_steps_weight=4.0))
    assert w.shape == (len(ds),) and w.dtype == ds.chunks.dtype
    final = ds.start >= T - 3
    assert int(final.sum()) == 3 * ds.data.num_instances
    assert bool((w[final] == 4.0).all()) and bool((w[~final] == 1.0).all())
    for policy in ("diff", "sob_diff"):
        plain = train(ds, TrainConfig(**base, policy=policy))
        weighted = train(ds, TrainConfig(**base, policy=policy, final_steps=3, final_steps_weight=4.0))
        assert any(not torch.equal(a, b) for a, b in zip(plain.net.parameters(), weighted.net.parameters()))
    with pytest.raises(ValueError, match=f"final_steps: expected at most the task's horizon T = {T} .*, got {T + 1}"):
        train(ds, TrainConfig(**base, final_steps=T + 1, final_steps_weight=4.0))
    assert bool((regression_sample_weights(ds, TrainConfig(**base, final_steps=T, final_steps_weight=4.0)) == 4.0).all())
    for key, bad, msg in (("final_steps", -1, "final_steps: expected a non-negative integer, got -1"),
                          ("final_steps", 2.0, "final_steps: expected a non-negative integer, got 2.0"),
                          ("final_steps_weight", 0.0, "final_steps_weight: expected a positive float, got 0.0"),
                          ("final_steps_weight", float("nan"), "final_steps_weight: expected a positive float")):
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**base, **{key: bad})


def test_train_rejects_bad_arguments(lqr_dataset):
    with pytest.raises(TypeError, match="dataset: expected a ChunkDataset"):
        train({"xs": 1}, TrainConfig())
    with pytest.raises(TypeError, match="config: expected a TrainConfig"):
        train(lqr_dataset, {"policy": "diff"})
    with pytest.raises(ValueError, match="horizon: the U-Net with 5 levels needs a multiple of 16"):
        train(lqr_dataset, TrainConfig(unet=UNetConfig(down_dims=(8, 8, 8, 8, 8), n_groups=4), progress=False))



def test_exchangeable_params_are_the_quadrotors_columns():
    def info(name, nz):
        return TaskInfo(name=name, nx=13, ndx=12, nu=4, na=15, no=15, nz=nz, dt=0.05, horizon=60,
                        action_space="state")
    assert exchangeable_params(info("quadrotor", 21)) == (3, 2)
    assert exchangeable_params(info("quadrotor", 5)) is None  # one column: nothing to reorder
    assert exchangeable_params(info("quadrotor", 3)) is None
    assert exchangeable_params(info("ur5", 21)) is None


def test_shuffle_param_groups_reorders_whole_groups_in_raw_units():
    """Each row's columns come back as the same (x, y) pairs in another order, every slot normalised by its own
    normaliser; the goal and the time-to-go column are untouched."""
    nrm = Normaliser(np.linspace(-1.0, 1.0, 9), np.linspace(0.5, 2.0, 9))
    params = torch.randn(64, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = shuffle_param_groups(params, nrm, 3, 2, generator=torch.Generator().manual_seed(1))
    raw_in = params[:, :9].numpy() * nrm.scale + nrm.offset
    raw_out = out[:, :9].numpy() * nrm.scale + nrm.offset
    np.testing.assert_array_equal(out[:, :3], params[:, :3])
    np.testing.assert_array_equal(out[:, 9], params[:, 9])
    for a, b in zip(raw_in, raw_out):
        assert sorted(map(tuple, a[3:].reshape(3, 2).round(9))) == sorted(map(tuple, b[3:].reshape(3, 2).round(9)))
    moved = (np.abs(raw_in[:, 3:] - raw_out[:, 3:]).max(axis=1) > 0).mean()
    assert 0.6 < moved < 0.95  # 5 of 6 orders move something


def test_shuffled_columns_train_a_quadrotor_policy_and_are_refused_elsewhere(solved, lqr_dataset, monkeypatch):
    import sobolev_warmstart as sw
    import importlib
    train_module = importlib.import_module("sobolev_warmstart.train")  # the package's `train` is the function

    def config(shuffle):
        return TrainConfig(policy="sob_diff", epochs=2, batch_size=64, denoiser="mlp", mlp=TINY_MLP,
                           shuffle_exchangeable_params=shuffle, progress=False, seed=0, num_threads=1)

    with pytest.raises(ValueError, match="shuffle_exchangeable_params: task 'lqr_double_integrator"):
        train(lqr_dataset, config(True))
    with pytest.raises(ValueError, match="shuffle_exchangeable_params: expected a bool"):
        TrainConfig(shuffle_exchangeable_params=1)
    task, x0s, params, r = solved("quadrotor", "columns_3")
    ds = build_dataset(TrajectoryData.from_solve(task, r, sw.chained_derivatives(task, r, horizon=4)),
                       ChunkSpec(horizon=4, history=1, action_steps=1))
    seen = []  # every batch's parameters go through the real shuffle (observed, not replaced)

    def observed(params, *args, **kwargs):
        out = shuffle_param_groups(params, *args, **kwargs)
        seen.append((params.shape[1], bool((out != params).any())))
        return out

    monkeypatch.setattr(train_module, "shuffle_param_groups", observed)
    a = train(ds, config(True))
    monkeypatch.undo()
    assert len(seen) == 2 * math.ceil(len(ds) / 64) and all(dim == task.nz and moved for dim, moved in seen)
    b = train(ds, config(True))
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))  # seeded, observed or not
    assert all(math.isfinite(h["loss"]) for h in a.train_history)
    # the loop shuffles batch entry 1, which must be the task parameters for both policy kinds (the shuffle itself
    # is checked above; comparing weights with and without it would not show it, its draws alone change them)
    for kind in ("sob_diff", "sob_mlp"):
        assert _training_tensors(ds, TrainConfig(policy=kind, progress=False))[1] is ds.params

# ------------------------------------------------------------------------------------------------------
# Real data: pendulum swing-ups solved by the C++ core (runs once the extension is built and importable).
def _solve_pendulum_swingups(n: int, horizon: int):
    sw = pytest.importorskip("sobolev_warmstart._core", reason="needs the compiled C++ core")
    del sw
    import sobolev_warmstart as swp

    task = swp.make_task("pendulum")
    x0s, params = task.sample_instances(n, 0)
    result = swp.solve(task, x0s, params)
    der = swp.chained_derivatives(task, result, horizon)
    return TrajectoryData.from_solve(task, result, der)


@pytest.fixture(scope="module")
def pendulum_data():
    return _solve_pendulum_swingups(24, 16)


def _fixed_draw_losses(policy, ds, seed: int = 12345) -> tuple[float, float]:
    """(ddpm, sobolev) of ``policy`` over the whole dataset with fixed draws (denoising steps, noise, directions):
    the training objective without its sampling noise."""
    with torch.no_grad():
        out = diffusion_loss(policy.net, policy.sampler.schedule, ds.obs, ds.params, ds.chunks, ds.chunk_jac,
                             ds.obs_jac, ds.spec.history, sobolev_weight=1.0,
                             generator=torch.Generator().manual_seed(seed))
    return out.mse.item(), out.sobolev.item()


def train_sob_diff_on_pendulum(data, seed: int = 0) -> dict:
    """The test's training run, measured: the per-epoch history, and the fixed-draw losses of the trained network
    against the untrained one of the same seed."""
    ds = build_dataset(data, ChunkSpec(horizon=16, history=1, action_steps=8))
    # lambda = 0.01: in normalised units the pendulum's derivative targets reach ~100 (torque range 0.4 N m
    # vs state ranges of several units), so lambda = 1 lets the Sobolev term swamp the regression.
    cfg = TrainConfig(policy="sob_diff", epochs=15, batch_size=64, lr=3e-3, unet=TINY_UNET, progress=False,
                      sobolev_weight=0.01, num_threads=1, seed=seed)
    torch.manual_seed(seed)  # what train() does before building the network: the same initial weights
    untrained = DiffusionPolicy(ds.task, ds.spec, ds.normalisers, TINY_UNET)
    policy = train(ds, cfg)
    (mse0, sob0), (mse1, sob1) = _fixed_draw_losses(untrained, ds), _fixed_draw_losses(policy, ds)
    err, scale = _sample_error(policy, ds, torch.arange(0, len(ds), 11))
    lam = cfg.sobolev_weight
    return {"history": policy.train_history, "mse": (mse0, mse1), "sobolev": (sob0, sob1),
            "loss": (mse0 + lam * sob0, mse1 + lam * sob1), "sample_error": (err, scale)}


def test_sobolev_diffusion_on_solved_pendulum_swingups(pendulum_data):
    """Training lowers its objective on real data, measured with fixed draws over the whole dataset.

    Not with the per-epoch means of the history: with lambda = 0.01 the loss is ~90% Sobolev term, whose
    targets are heavy-tailed here (normalised |D| median 0.07, p99 40, max 112), so its one-direction estimate
    swings by +-15% from epoch to epoch (65-113 within a run) while training lowers it by 7-21%: the first and
    last epoch means compare noise (the last exceeded the first on some CPUs, 0.958 vs 0.944, and the epoch
    mse ratio reached 0.30 for seed 3). Fixed-draw figures over seeds 0-4 on this machine: loss ratio
    0.47-0.71, ddpm ratio 0.016-0.055, Sobolev ratio 0.79-0.93 (a zero derivative scores the untrained 87.3)."""
    data = pendulum_data
    assert data.converged.mean() >= 0.75, f"only {data.converged.sum()} of {len(data.converged)} solves converged"
    m = train_sob_diff_on_pendulum(data, seed=0)
    assert all(math.isfinite(h["loss"]) for h in m["history"]), m["history"]
    (l0, l1), (e0, e1), (s0, s1) = m["loss"], m["mse"], m["sobolev"]
    assert l1 < 0.85 * l0, m
    assert e1 < 0.2 * e0, m
    assert s1 < s0, m  # the derivative fit improves (by 7-21% over seeds 0-4: ratio <= 0.93)
    err, scale = m["sample_error"]
    assert err < 0.25 * scale, (err, scale)
