"""Networks; they know nothing of data or normalisation."""

from .mlp import MLP, MLPConfig
from .unet import ConditionalUNet1D, UNetConfig, validate_horizon

__all__ = ["ConditionalUNet1D", "UNetConfig", "validate_horizon", "MLP", "MLPConfig"]
