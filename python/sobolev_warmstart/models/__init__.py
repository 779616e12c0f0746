"""Networks; they know nothing of data or normalisation."""

from .mlp import MLP, MLPConfig
from .unet import ConditionalUNet1D, UNetConfig, validate_horizon
from .chunk_mlp import ChunkMLPDenoiser

#: Denoisers of a diffusion policy: the reference's 1-D U-Net, or an MLP over the flattened chunk.
DENOISERS = ("unet", "mlp")

__all__ = ["ConditionalUNet1D", "UNetConfig", "validate_horizon", "MLP", "MLPConfig", "ChunkMLPDenoiser", "DENOISERS"]
