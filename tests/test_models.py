import numpy as np
import pytest
import torch

from sobolev_warmstart.models import MLP, ChunkMLPDenoiser, ConditionalUNet1D, MLPConfig, UNetConfig


def test_unet_default_size_and_shapes():
    net = ConditionalUNet1D(action_dim=1, cond_dim=3, horizon=16)
    n = sum(p.numel() for p in net.parameters())
    assert 200_000 <= n <= 400_000, n
    out = net(torch.randn(5, 16, 1), torch.arange(5), torch.randn(5, 3))
    assert out.shape == (5, 16, 1)


def test_unet_conditioning_changes_output():
    torch.manual_seed(0)
    net = ConditionalUNet1D(2, 3, 8, UNetConfig(down_dims=(8, 16), n_groups=4))
    x = torch.randn(2, 8, 2)
    c = torch.randn(2, 3)
    k = torch.tensor([1, 1])
    base = net(x, k, c)
    assert not torch.allclose(base, net(x, k, c + 0.1))
    assert not torch.allclose(base, net(x, torch.tensor([2, 2]), c))
    # per-sample independence: GroupNorm normalises within a sample, never across the batch
    torch.testing.assert_close(net(x[:1], k[:1], c[:1]), base[:1])


@pytest.mark.parametrize("horizon,dims", [(10, (8, 16, 32)), (2, (8, 16, 32)), (7, (8, 16))])
def test_unet_rejects_invalid_horizon(horizon, dims):
    with pytest.raises(ValueError, match=r"horizon: the U-Net with \d levels needs a multiple of"):
        ConditionalUNet1D(1, 2, horizon, UNetConfig(down_dims=dims, n_groups=4))


def test_unet_call_shape_errors_and_config_validation():
    net = ConditionalUNet1D(1, 2, 8, UNetConfig(down_dims=(8, 16), n_groups=4))
    with pytest.raises(ValueError, match=r"sample: expected shape \(B, 8, 1\)"):
        net(torch.zeros(1, 4, 1), torch.zeros(1), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"cond: expected shape \(B, 2\)"):
        net(torch.zeros(1, 8, 1), torch.zeros(1), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="n_groups"):
        UNetConfig(down_dims=(12, 16), n_groups=8)
    with pytest.raises(ValueError, match="kernel_size"):
        UNetConfig(kernel_size=4)
    with pytest.raises(ValueError, match="hidden_dims"):
        MLPConfig(hidden_dims=(0,))


def test_mlp_shapes():
    net = MLP(3, 2, MLPConfig((16, 16)))
    assert net(torch.randn(4, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"cond: expected shape \(B, 3\)"):
        net(torch.randn(4, 2))


def test_chunk_mlp_denoiser_shapes_conditioning_and_errors():
    torch.manual_seed(0)
    net = ChunkMLPDenoiser(2, 3, 6, MLPConfig((16, 16)), step_embed_dim=8)
    x, c, k = torch.randn(4, 6, 2), torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    out = net(x, k, c)
    assert out.shape == (4, 6, 2)
    assert not torch.allclose(out, net(x, k, c + 0.1))
    assert not torch.allclose(out, net(x, k + 1, c))
    torch.testing.assert_close(net(x[:1], k[:1], c[:1]), out[:1])  # no coupling across the batch
    torch.jit.script(net)  # exportable like the U-Net
    with pytest.raises(ValueError, match=r"sample: expected shape \(B, 6, 2\)"):
        net(torch.randn(4, 5, 2), k, c)
    with pytest.raises(ValueError, match=r"cond: expected shape \(B, 3\)"):
        net(x, k, torch.randn(4, 2))
    with pytest.raises(ValueError, match="hidden_dims"):
        ChunkMLPDenoiser(2, 3, 6, MLPConfig(()))


def _set_layout(dim=30, members=9, seed=0):
    from sobolev_warmstart.models import SetLayout
    rng = np.random.default_rng(seed)
    scale = np.full(dim, 0.7)
    scale[:2] = 2.0  # the anchor's own normalisation differs from the members': the encoder works in physical units
    return SetLayout((0, 1), (10, 11), tuple((12 + 2 * j, 13 + 2 * j) for j in range(members)),
                     tuple(rng.normal(size=dim)), tuple(scale))


def test_set_encoder_is_order_free_relative_and_its_dual_pass_is_the_jvp():
    """The encoder reads the members whatever their order, only relative to the anchor (a common shift of anchor,
    context and members in physical units changes nothing), and the denoiser's dual pass through it equals
    torch.func.jvp."""
    from sobolev_warmstart.models import (ChunkMLPDenoiser, RelativeSetEncoder, SetConditionedDenoiser,
                                          SetEncoderConfig)
    torch.manual_seed(0)
    layout = _set_layout()
    enc = RelativeSetEncoder(layout, SetEncoderConfig(hidden_dims=(16, 16), width=8)).double()
    cond = torch.randn(5, 30, dtype=torch.float64)
    scale, offset = torch.tensor(layout.scale, dtype=torch.float64), torch.tensor(layout.offset, dtype=torch.float64)
    raw = cond * scale + offset
    perm = torch.randperm(9)
    swapped = raw.clone()
    swapped[:, 12:30] = raw[:, 12:30].reshape(5, 9, 2)[:, perm].reshape(5, 18)
    shifted = raw.clone()
    for idx in ([0, 1], [10, 11], *([12 + 2 * j, 13 + 2 * j] for j in range(9))):
        shifted[:, idx] += torch.tensor([0.8, -1.3], dtype=torch.float64)
    f = enc(cond)
    assert f.shape == (5, 8)
    # (the encoder's affine map is stored in float32, so the round trip through it agrees to float32 rounding)
    torch.testing.assert_close(enc((swapped - offset) / scale), f, rtol=0, atol=1e-7)
    torch.testing.assert_close(enc((shifted - offset) / scale), f, rtol=0, atol=1e-7)
    moved = raw.clone()
    moved[:, 12] += 0.5  # one column moves relative to the robot: the features move
    assert (enc((moved - offset) / scale) - f).abs().max() > 1e-4

    den = SetConditionedDenoiser(ChunkMLPDenoiser(4, 30 + 8, 8, MLPConfig((32, 32))), enc).double()
    sample = torch.randn(5, 8, 4, dtype=torch.float64)
    step = torch.tensor([0, 1, 2, 3, 4])
    tangent = torch.randn(3, 30, dtype=torch.float64)
    y, dy = den.forward_dual(sample, step, cond, tangent)
    full = torch.cat([tangent, torch.zeros(2, 30, dtype=torch.float64)])
    y_ref, dy_ref = torch.func.jvp(lambda c: den(sample, step, c), (cond,), (full,))
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(dy, dy_ref[:3], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="cond_tangent"):
        den.forward_dual(sample, step, cond, torch.randn(6, 30, dtype=torch.float64))
    with pytest.raises(ValueError, match="cond: expected shape"):
        enc(torch.randn(5, 29))


def test_set_encoder_config_and_layout_errors_name_the_argument():
    from sobolev_warmstart.models import SetEncoderConfig, SetLayout
    with pytest.raises(ValueError, match="hidden_dims"):
        SetEncoderConfig(hidden_dims=())
    with pytest.raises(ValueError, match="width"):
        SetEncoderConfig(width=0)
    with pytest.raises(ValueError, match="length_scale"):
        SetEncoderConfig(length_scale=float("inf"))
    with pytest.raises(ValueError, match="members, context"):
        SetLayout((0, 1), (2,), ((3, 4),), (0.0,) * 5, (1.0,) * 5)
    with pytest.raises(ValueError, match="indices"):
        SetLayout((0, 1), (2, 3), ((4, 5),), (0.0,) * 5, (1.0,) * 5)
    with pytest.raises(ValueError, match="scale"):
        SetLayout((0, 1), (2, 3), ((3, 4),), (0.0,) * 5, (1.0,) * 4)
    layout = _set_layout()
    assert SetLayout.from_dict(layout.to_dict()) == layout
