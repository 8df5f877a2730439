"""Sketch control: a ControlNet (Zhang et al. 2023, "Adding Conditional Control to
Text-to-Image Diffusion Models", https://arxiv.org/abs/2302.05543), diffusers'
``ControlNetModel``, copied from the trained UNet's encoder with zero-initialised output
convolutions, so before training it changes nothing and training only adds.

It reads the sketch at image resolution: its small conditioning encoder brings the sketch
down to the latent's side, one stride-2 convolution per autoencoder downsampling. A model
folder keeps it in ``controlnet/`` (diffusers' layout); ``controlnet_stage`` trains it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import ConfigError

from .config import LDMConfig, load_part

if TYPE_CHECKING:
    import torch
    from torch import nn

CONTROLNET = "controlnet"  # the model folder's sub-folder


def build_controlnet(unet: nn.Module, config: LDMConfig, downsamplings: int) -> nn.Module:
    """A ControlNet initialised from ``unet`` for sketches ``(B, 1, H, W)``, with ``H`` the
    latent side times ``2 ** downsamplings``."""
    from diffusers import ControlNetModel

    channels = tuple(config.controlnet_embedding_channels)
    if len(channels) != downsamplings + 1:
        raise ConfigError(f"controlnet_embedding_channels needs {downsamplings + 1} widths (one more than the "
                          f"autoencoder's {downsamplings} downsamplings), not {len(channels)}")
    return ControlNetModel.from_unet(unet, conditioning_channels=1, conditioning_embedding_out_channels=channels)


def load_controlnet(folder: Path, device: torch.device | str) -> nn.Module:
    """A model folder's ``controlnet/``, in float32, on ``device``."""
    from diffusers import ControlNetModel

    return load_part(ControlNetModel, Path(folder) / CONTROLNET, "sketch ControlNet").to(device)
