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
