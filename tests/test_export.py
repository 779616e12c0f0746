import dataclasses
import json
import shutil
import struct

import numpy as np

import pytest
import torch

from sobolev_warmstart.data import ChunkSpec, TrajectoryData, build_dataset
from sobolev_warmstart.diffusion import DiffusionConfig
from sobolev_warmstart.export import (export_aoti, export_native, export_policy, export_torchscript, load_aoti,
                                     load_native, load_torchscript)
from sobolev_warmstart.rollout import load_policy_runner
from sobolev_warmstart.models import MLPConfig, UNetConfig
from sobolev_warmstart.policy import DiffusionPolicy, MLPPolicy, load_policy, policy_state, save_policy
from sobolev_warmstart.synthetic import lqr_double_integrator

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="AOTInductor needs a C++ compiler")


def _dataset(nz: int, relative_actions: bool = False):
    data = lqr_double_integrator(4, horizon=20, chunk_offsets=16)
    if nz == 0:  # a task without parameters, like the pendulum
        kw = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
        kw.update(task=dataclasses.replace(data.task, nz=0, name="no_params"), params=None)
        data = TrajectoryData(**kw)
    return build_dataset(data, ChunkSpec(16, 2, 8, relative_actions=relative_actions))


def _perturbed(policy):
    """Random (not freshly initialised-looking) weights so outputs are nontrivial."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return policy.eval()


def _diffusion_inputs(policy, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 2, 2, generator=g), torch.randn(batch, policy.nz, generator=g),
            torch.randn(batch, 2, 1, generator=g), torch.randn(policy.num_steps, batch, 16, 1, generator=g))


@pytest.mark.parametrize("nz,denoiser", [(1, "unet"), (0, "unet"), (1, "mlp")])
def test_torchscript_diffusion_equals_eager(tmp_path, nz, denoiser):
    ds = _dataset(nz)
    # default U-Net and K = 5, or the MLP denoiser
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser=denoiser,
                                        mlp=MLPConfig((32, 32))))
    path = export_torchscript(policy, tmp_path / "p.pt")
    module, meta = load_torchscript(path)
    assert meta["kind"] == "diffusion" and meta["task"]["name"] == ds.task.name
    assert (meta["horizon"], meta["history"], meta["action_steps"], meta["num_steps"]) == (16, 2, 8, 5)
    assert (meta["na"], meta["no"], meta["nz"]) == (1, 2, nz)
    for batch in (1, 3):
        args = _diffusion_inputs(policy, batch)
        with torch.no_grad():
            ref = policy(*args)
        torch.testing.assert_close(module(*args), ref, rtol=1e-6, atol=1e-6)
        assert torch.equal(ref[:, :2], args[2])
    bad = list(_diffusion_inputs(policy, 2))
    bad[3] = bad[3][:4]
    with pytest.raises(Exception, match=r"noise: expected shape \[5, 2, 16, 1\]"):
        module(*bad)


@needs_compiler
def test_aoti_diffusion_equals_eager(tmp_path):
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers,
                                        UNetConfig(down_dims=(8, 16), n_groups=4, step_embed_dim=8),
                                        DiffusionConfig(num_steps=3)))  # small: compile time
    path = export_aoti(policy, tmp_path / "p.pt2")
    model, meta = load_aoti(path)
    assert meta["kind"] == "diffusion" and meta["num_steps"] == 3 and meta["task"] == ds.task.to_dict()
    for batch in (1, 5):  # one package, dynamic batch
        args = _diffusion_inputs(policy, batch, seed=batch)
        with torch.no_grad():
            ref = policy(*args)
        torch.testing.assert_close(model(*args), ref, rtol=1e-5, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("nz", [1, 0])
def test_mlp_exports_equal_eager(tmp_path, nz):
    ds = _dataset(nz)
    policy = _perturbed(MLPPolicy(ds.task, ds.spec, ds.normalisers, MLPConfig((32, 32))))
    ts, ts_meta = load_torchscript(export_torchscript(policy, tmp_path / "m.pt"))
    aoti, aoti_meta = load_aoti(export_aoti(policy, tmp_path / "m.pt2"))
    assert ts_meta == aoti_meta and ts_meta["kind"] == "mlp" and ts_meta["nz"] == nz
    for batch in (1, 4):
        g = torch.Generator().manual_seed(batch)
        args = (torch.randn(batch, 2, generator=g), torch.randn(batch, nz, generator=g))
        with torch.no_grad():
            ref = policy(*args)
        assert ref.shape == (batch, 1)
        torch.testing.assert_close(ts(*args), ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(aoti(*args), ref, rtol=1e-5, atol=1e-5)


def test_export_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="policy: expected a DiffusionPolicy or MLPPolicy"):
        export_torchscript(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_saved_policies_keep_their_denoiser_and_older_files_load_as_before(tmp_path):
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="mlp", mlp=MLPConfig((32, 32))))
    save_policy(policy, tmp_path / "p.pt")
    loaded = load_policy(tmp_path / "p.pt")
    assert loaded.denoiser == "mlp" and not loaded.diffusion_config.past_actions
    args = _diffusion_inputs(policy, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), policy(*args))
    # a file written before the MLP denoiser and past_actions existed: a U-Net that conditions on past actions
    old = DiffusionPolicy(ds.task, ds.spec, ds.normalisers, UNetConfig(down_dims=(8, 16), n_groups=4),
                          DiffusionConfig(past_actions=True))
    state = policy_state(old)
    build = json.loads(state["build"])
    del build["denoiser"], build["mlp"], build["diffusion"]["past_actions"]
    state["build"] = json.dumps(build)
    torch.save(state, tmp_path / "old.pt")
    legacy = load_policy(tmp_path / "old.pt")
    assert legacy.denoiser == "unet" and legacy.diffusion_config.past_actions
    # the MLP denoiser's first layout named its layers net.net.* (its own Sequential, before it wrapped an MLP)
    state = policy_state(policy)
    state["model"] = {k.replace(".mlp.net.", ".net."): v for k, v in state["model"].items()}
    assert any(k.startswith("net.net.") for k in state["model"])
    torch.save(state, tmp_path / "first_layout.pt")
    with torch.no_grad():
        torch.testing.assert_close(load_policy(tmp_path / "first_layout.pt")(*args), policy(*args))
    with pytest.raises(ValueError, match="denoiser: expected one of"):
        DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="transformer")


# ------------------------------------------------------------------------------------ native (.safetensors)
def _close(got, ref):
    """float32 rounding of a different summation order, through K denoising steps (measured: <= 3e-5 on outputs
    of magnitude 20)."""
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("nz,denoiser,past_actions,unet,relative", [
    (1, "unet", False, None, False), (0, "unet", True, None, False), (1, "mlp", False, None, False),
    (0, "mlp", True, None, False),
    (1, "unet", False, UNetConfig(down_dims=(8, 16), n_groups=4, kernel_size=3, step_embed_dim=8), False),
    (1, "mlp", False, None, True), (1, "unet", True, None, True)],
    ids=["unet", "unet-nz0-past", "mlp", "mlp-nz0-past", "unet-2-levels", "mlp-relative", "unet-past-relative"])
def test_native_diffusion_equals_eager(tmp_path, nz, denoiser, past_actions, unet, relative):
    ds = _dataset(nz, relative)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, unet, DiffusionConfig(past_actions=past_actions),
                                        denoiser=denoiser, mlp=MLPConfig((32, 24))))
    runner = load_policy_runner(export_native(policy, tmp_path / "p.safetensors"))
    assert (runner.backend, runner.kind, runner.num_steps, runner.horizon) == ("native", "diffusion", 5, 16)
    for batch in (1, 3, 8):
        args = _diffusion_inputs(policy, batch, seed=batch)
        with torch.no_grad():
            ref = policy(*args).numpy()
        got = runner.sample_chunks(*[a.numpy() for a in args])
        _close(got, ref)
        np.testing.assert_array_equal(got[:, :2], args[2].numpy())  # the history as given
    # the earlier history entry conditions the chunk exactly when the policy uses past actions
    args = [a.numpy() for a in _diffusion_inputs(policy, 2)]
    base = runner.sample_chunks(*args)
    earlier = args[2].copy()
    earlier[:, 0] += 1.0
    moved = runner.sample_chunks(args[0], args[1], earlier, args[3])
    assert (np.abs(moved[:, 2:] - base[:, 2:]).max() > 1e-4) == past_actions
    # a relative chunk moves with the whole history; an absolute one only through past actions
    moved = runner.sample_chunks(args[0], args[1], args[2] + 1.0, args[3])
    if relative:
        np.testing.assert_allclose(moved[:, 2:] - base[:, 2:], 1.0, atol=1e-4)
    else:
        assert (np.abs(moved[:, 2:] - base[:, 2:]).max() > 1e-4) == past_actions
    assert json.loads(runner.metadata_json)["relative_actions"] == relative == policy.metadata()["relative_actions"]


@pytest.mark.parametrize("nz", [1, 0])
def test_native_mlp_policy_equals_eager(tmp_path, nz):
    ds = _dataset(nz)
    policy = _perturbed(MLPPolicy(ds.task, ds.spec, ds.normalisers, MLPConfig((32, 16, 8))))
    runner = load_policy_runner(export_native(policy, tmp_path / "m.safetensors"))
    assert (runner.backend, runner.kind) == ("native", "mlp")
    for batch in (1, 5):
        g = torch.Generator().manual_seed(batch)
        args = (torch.randn(batch, 2, generator=g), torch.randn(batch, nz, generator=g))
        with torch.no_grad():
            ref = policy(*args).numpy()
        _close(runner.act(*[a.numpy() for a in args]), ref)


def test_native_file_is_a_standard_safetensors_file(tmp_path):
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="mlp", mlp=MLPConfig((16,))))
    path = export_policy(policy, tmp_path / "p.safetensors")
    tensors, meta = load_native(path)
    assert meta["kind"] == "diffusion" and meta["architecture"] == {
        "network": "mlp_denoiser", "hidden_dims": [16], "step_embed_dim": 32, "clip_sample": True,
        "clip_sample_range": 1.0, "past_actions": False}
    state = policy.state_dict()
    for name, t in state.items():
        if not name.startswith("sampler.denoiser."):
            np.testing.assert_array_equal(tensors[name], t.numpy())
    assert "net.step_embed.freqs" in tensors  # a non-persistent buffer the forward needs
    assert not any(n.startswith("sampler.denoiser.") for n in tensors)  # each tensor once
    st = pytest.importorskip("safetensors.numpy")
    other = st.load_file(str(path))
    assert other.keys() == tensors.keys() and all(np.array_equal(other[k], tensors[k]) for k in other)


@pytest.mark.parametrize("denoiser,past_actions", [("unet", False), ("mlp", True)])
def test_ddim_sampling_exports_equal_eager(tmp_path, denoiser, past_actions):
    """A policy sampled in fewer calls (sampling_steps): native and TorchScript equal eager, carry the steps in their
    metadata, and the saved policy keeps them; only the starting draw matters."""
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, diffusion=DiffusionConfig(
        past_actions=past_actions), denoiser=denoiser, mlp=MLPConfig((32, 24))))
    args = _diffusion_inputs(policy, 4, seed=3)
    with torch.no_grad():
        ddpm = policy(*args).numpy()
        assert policy.set_sampling_steps("4,0") is policy
        ref = policy(*args).numpy()
    assert np.abs(ref - ddpm).max() > 1e-3
    runner = load_policy_runner(export_native(policy, tmp_path / "p.safetensors"))
    module, meta = load_torchscript(export_torchscript(policy, tmp_path / "p.pt"))
    native_meta = load_native(tmp_path / "p.safetensors")[1]
    assert (meta["sampler"], meta["sampling_steps"]) == ("ddim", [4, 0]) == (native_meta["sampler"],
                                                                             native_meta["sampling_steps"])
    other = list(args)
    other[3] = torch.cat([args[3][:1], torch.randn_like(args[3][1:])])
    for a in (args, other):
        _close(runner.sample_chunks(*[x.numpy() for x in a]), ref)
        with torch.no_grad():
            torch.testing.assert_close(module(*a).numpy(), ref)
    save_policy(policy, tmp_path / "saved.pt")
    loaded = load_policy(tmp_path / "saved.pt")
    assert loaded.diffusion_config.sampling_steps == (4, 0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args).numpy(), ref)
        policy.set_sampling_steps(None)
        torch.testing.assert_close(policy(*args).numpy(), ddpm)
    assert policy.metadata()["sampler"] == "ddpm" and policy.metadata()["sampling_steps"] == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="sampling_steps: expected"):
        policy.set_sampling_steps((3, 0))


@pytest.mark.parametrize("denoiser", ["unet", "mlp"])
def test_sampling_temperature_exports_equal_eager_and_scales_only_the_posterior_noise(tmp_path, denoiser):
    """sampling_temperature tau: the native and TorchScript exports equal eager; tau = 1 is the trained sampler to the
    bit; a policy at tau equals the trained sampler given the posterior draws scaled by tau and the initial draw as is;
    tau = 0 leaves only the initial draw random; it is saved, and DDIM refuses it."""
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser=denoiser, mlp=MLPConfig((32, 24))))
    o, z, a, noise = _diffusion_inputs(policy, 4, seed=5)
    scaled = torch.cat([noise[:1], 0.5 * noise[1:]])
    with torch.no_grad():
        trained, trained_scaled = policy(o, z, a, noise).numpy(), policy(o, z, a, scaled).numpy()
        assert policy.set_sampling_temperature(1.0) is policy
        np.testing.assert_array_equal(policy(o, z, a, noise).numpy(), trained)
        policy.set_sampling_temperature(0.5)
        ref = policy(o, z, a, noise).numpy()
    assert np.abs(ref - trained).max() > 1e-3
    np.testing.assert_array_equal(ref, trained_scaled)  # tau = 0.5 scales by a power of two: exact
    runner = load_policy_runner(export_native(policy, tmp_path / "p.safetensors"))
    module, meta = load_torchscript(export_torchscript(policy, tmp_path / "p.pt"))
    assert meta["sampling_temperature"] == 0.5 == load_native(tmp_path / "p.safetensors")[1]["sampling_temperature"]
    _close(runner.sample_chunks(o.numpy(), z.numpy(), a.numpy(), noise.numpy()), ref)
    with torch.no_grad():
        torch.testing.assert_close(module(o, z, a, noise).numpy(), ref)
    save_policy(policy, tmp_path / "saved.pt")
    loaded = load_policy(tmp_path / "saved.pt")
    assert loaded.diffusion_config.sampling_temperature == 0.5
    with torch.no_grad():
        torch.testing.assert_close(loaded(o, z, a, noise).numpy(), ref)
        policy.set_sampling_temperature(0)
        cold = policy(o, z, a, noise).numpy()
        other = torch.cat([noise[:1], torch.randn_like(noise[1:])])
        np.testing.assert_array_equal(policy(o, z, a, other).numpy(), cold)
    _close(load_policy_runner(export_native(policy, tmp_path / "cold.safetensors")).sample_chunks(
        o.numpy(), z.numpy(), a.numpy(), other.numpy()), cold)
    with pytest.raises(ValueError, match="sampling_temperature: DDIM"):
        policy.set_sampling_steps((4, 0))
    for bad in (-0.1, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ValueError, match="sampling_temperature: expected a finite number >= 0"):
            policy.set_sampling_temperature(bad)
    assert policy.diffusion_config.sampling_temperature == 0.0  # a refused value changes nothing
    policy.set_sampling_temperature(1).set_sampling_steps((4, 0))
    with pytest.raises(ValueError, match="sampling_temperature: DDIM"):
        policy.set_sampling_temperature(0.5)
    with pytest.raises(ValueError, match="sampling_temperature: DDIM"):
        DiffusionConfig(sampling_steps=(4, 0), sampling_temperature=0.5)


def test_native_files_exported_before_the_sampling_tables_run_ddpm(tmp_path):
    """A file without ``sampling_steps`` and the per-call tables (exported before they existed) samples with the
    schedule's DDPM coefficients, as it did."""
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="mlp", mlp=MLPConfig((16,))))
    tensors, meta = load_native(export_native(policy, tmp_path / "new.safetensors"))
    old_meta = {k: v for k, v in meta.items() if k not in ("sampler", "sampling_steps")}
    old = _write_safetensors(tmp_path / "old.safetensors", {k: v for k, v in tensors.items() if ".call_" not in k},
                             {"sobolev_warmstart": json.dumps(old_meta)})
    args = _diffusion_inputs(policy, 3, seed=4)
    with torch.no_grad():
        ref = policy(*args).numpy()
    _close(load_policy_runner(old).sample_chunks(*[a.numpy() for a in args]), ref)


def test_export_policy_follows_the_suffix(tmp_path):
    ds = _dataset(1)
    policy = _perturbed(MLPPolicy(ds.task, ds.spec, ds.normalisers, MLPConfig((8,))))
    assert load_policy_runner(export_policy(policy, tmp_path / "m.pt")).backend == "torchscript"
    assert load_policy_runner(export_policy(policy, tmp_path / "m.safetensors")).backend == "native"
    with pytest.raises(ValueError, match=r"path: expected a \.safetensors \(native\), \.pt"):
        export_policy(policy, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"path: expected a \.safetensors file name"):
        export_native(policy, tmp_path / "m.pt")
    with pytest.raises(TypeError, match="policy: expected a DiffusionPolicy or MLPPolicy"):
        export_native(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def _write_safetensors(path, tensors: dict, metadata: dict | None, dtype: str = "F32"):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4" if dtype == "F32" else "<f8").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


def test_bad_native_files_give_clear_errors(tmp_path):
    ds = _dataset(1)
    policy = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="mlp", mlp=MLPConfig((16,))))
    tensors, meta = load_native(export_native(policy, tmp_path / "good.safetensors"))
    key = {"sobolev_warmstart": json.dumps(meta)}

    def error(path):
        with pytest.raises(ValueError) as e:
            load_policy_runner(path)
        return str(e.value)

    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    assert "shorter than the 8-byte header length" in error(tmp_path / "short.safetensors")
    (tmp_path / "long.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    assert "exceeds the file size" in error(tmp_path / "long.safetensors")
    (tmp_path / "json.safetensors").write_bytes(struct.pack("<Q", 5) + b"{oops")
    assert "invalid JSON" in error(tmp_path / "json.safetensors")
    assert "without sobolev_warmstart metadata" in error(_write_safetensors(tmp_path / "nometa.safetensors", tensors, None))
    missing = {k: v for k, v in tensors.items() if k != "net.mlp.net.2.weight"}
    assert "no tensor 'net.mlp.net.2.weight'" in error(_write_safetensors(tmp_path / "missing.safetensors", missing, key))
    wrong = dict(meta, architecture=dict(meta["architecture"], hidden_dims=[17]))
    msg = error(_write_safetensors(tmp_path / "shape.safetensors", tensors, {"sobolev_warmstart": json.dumps(wrong)}))
    assert "tensor 'net.mlp.net.0.weight' has shape (16, " in msg and "expects (17, " in msg
    assert "dtype F64, expected F32" in error(_write_safetensors(tmp_path / "f64.safetensors", tensors, key, "F64"))
    net = dict(meta, architecture=dict(meta["architecture"], network="transformer"))
    assert "unknown architecture.network 'transformer'" in error(
        _write_safetensors(tmp_path / "net.safetensors", tensors, {"sobolev_warmstart": json.dumps(net)}))
    for steps in ([4, 4], [5, 0], [], "4,0"):
        bad = dict(meta, sampling_steps=steps)
        assert "sampling_steps: expected" in error(
            _write_safetensors(tmp_path / "steps.safetensors", tensors, {"sobolev_warmstart": json.dumps(bad)}))
    two = dict(meta, sampling_steps=[4, 0])  # five calls' tables in the file, two steps in the metadata
    assert "tensor 'sampler.call_c0' has shape (5,), the architecture in the metadata expects (2,)" in error(
        _write_safetensors(tmp_path / "calls.safetensors", tensors, {"sobolev_warmstart": json.dumps(two)}))
    raw = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-100])  # truncated data
    assert "do not hold" in error(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="not a sobolev_warmstart policy file"):
        load_native(_write_safetensors(tmp_path / "plain.safetensors", tensors, None))


@pytest.mark.parametrize("steps", [None, "4,0"], ids=["ddpm", "ddim"])
def test_unclipped_sampling_exports_equal_eager(tmp_path, steps):
    """A policy sampled without clipping its clean estimate (``clip_sample=False``, as with standardised actions):
    the native and TorchScript forwards equal eager, the metadata says so, and the clean estimates really do leave
    [-1, 1] here, so clipping would have changed the chunk."""
    ds = _dataset(1)
    policies = {}
    for clip in (True, False):
        p = _perturbed(DiffusionPolicy(ds.task, ds.spec, ds.normalisers, diffusion=DiffusionConfig(clip_sample=clip),
                                       denoiser="mlp", mlp=MLPConfig((32, 24))))
        with torch.no_grad():  # large enough outputs that the clean estimate leaves [-1, 1]
            for prm in p.parameters():
                prm.mul_(3.0)
        policies[clip] = p.set_sampling_steps(steps) if steps else p
    policy = policies[False]
    policies[True].load_state_dict(policy.state_dict())  # the same weights: only the clipping differs
    args = _diffusion_inputs(policy, 4, seed=5)
    with torch.no_grad():
        ref = policy(*args).numpy()
        clipped = policies[True](*args).numpy()
    assert np.abs(ref - clipped).max() > 1e-2
    runner = load_policy_runner(export_native(policy, tmp_path / "p.safetensors"))
    module, meta = load_torchscript(export_torchscript(policy, tmp_path / "p.pt"))
    assert load_native(tmp_path / "p.safetensors")[1]["architecture"]["clip_sample"] is False
    _close(runner.sample_chunks(*[a.numpy() for a in args]), ref)
    with torch.no_grad():
        torch.testing.assert_close(module(*args).numpy(), ref)
