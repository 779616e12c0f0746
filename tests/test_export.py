import dataclasses
import json
import shutil

import pytest
import torch

from sobolev_warmstart.data import ChunkSpec, TrajectoryData, build_dataset
from sobolev_warmstart.diffusion import DiffusionConfig
from sobolev_warmstart.export import export_aoti, export_torchscript, load_aoti, load_torchscript
from sobolev_warmstart.models import MLPConfig, UNetConfig
from sobolev_warmstart.policy import DiffusionPolicy, MLPPolicy, load_policy, policy_state, save_policy
from sobolev_warmstart.synthetic import lqr_double_integrator

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="AOTInductor needs a C++ compiler")


def _dataset(nz: int):
    data = lqr_double_integrator(4, horizon=20, chunk_offsets=16)
    if nz == 0:  # a task without parameters, like the pendulum
        kw = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
        kw.update(task=dataclasses.replace(data.task, nz=0, name="no_params"), params=None)
        data = TrajectoryData(**kw)
    return build_dataset(data, ChunkSpec(16, 2, 8))


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
    with pytest.raises(ValueError, match="denoiser: expected one of"):
        DiffusionPolicy(ds.task, ds.spec, ds.normalisers, denoiser="transformer")
