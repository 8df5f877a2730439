"""The `vae` generator's networks (vae.py builds them when a model is made or loaded): the
class-conditional encoder, and encoder and decoder as one module. The decoder is
``toolkit.families.conv_decoder.ConvDecoder``, shared with the GAN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from toolkit.families.conv_decoder import ConvDecoder
from toolkit.families.latent import pyramid_levels

if TYPE_CHECKING:
    from .vae import VAEConfig


class Encoder(nn.Module):
    """Image ``(B, 3, S, S)`` (+ class) -> posterior mean and log-variance, each ``(B, latent_dim)``."""

    def __init__(self, config: VAEConfig, num_classes: int, size: int):
        super().__init__()
        widths = [config.channels * 2**i for i in range(pyramid_levels(size, "VAE") + 1)]  # full size ... 4x4
        # The class enters as extra constant input planes.
        self.class_emb = nn.Embedding(num_classes, config.class_dim) if num_classes else None
        c_in = 3 + (config.class_dim if num_classes else 0)
        layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 3, padding=1), nn.SiLU()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(8, b), nn.SiLU(),
                       nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.posterior = nn.Linear(widths[-1] * 16, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.class_emb is not None:
            planes = self.class_emb(labels)[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, class_dim, S, S)
            x = torch.cat([x, planes], dim=1)
        mean, logvar = self.posterior(self.features(x).flatten(1)).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)  # keeps exp() finite early in training


class VAENet(nn.Module):
    """Encoder and decoder as one module, so one optimizer (and one EMA) holds both."""

    def __init__(self, config: VAEConfig, num_classes: int, size: int):
        super().__init__()
        self.encoder = Encoder(config, num_classes, size)
        self.decoder = ConvDecoder(config.latent_dim, size, config.channels, num_classes=num_classes,
                                   class_dim=config.class_dim, activation=nn.SiLU, model="VAE")
