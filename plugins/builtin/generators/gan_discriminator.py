"""The `gan` generator's discriminator (gan.py builds it for training): a spectral-norm
projection discriminator, and DiffAugment's translation of the images it sees.

The generator network is ``toolkit.families.conv_decoder.ConvDecoder``, shared with the VAE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from toolkit.families.latent import pyramid_levels

if TYPE_CHECKING:
    from .gan import GANConfig


class DiscriminatorNet(nn.Module):
    """Image ``(B, 3, size, size)`` (+ class) -> realness score ``(B,)``."""

    def __init__(self, config: GANConfig, num_classes: int, size: int):
        super().__init__()
        sn = spectral_norm if config.spectral_norm else (lambda m: m)
        widths = [config.channels * 2**i for i in range(pyramid_levels(size, "GAN") + 1)]  # full size ... 4x4
        # Without normalisation no module is added, so older checkpoints keep their layer indices.
        norm = (lambda c: [nn.GroupNorm(8, c)]) if config.discriminator_norm == "group" else (lambda c: [])
        layers: list[nn.Module] = [sn(nn.Conv2d(3, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), *norm(c_out), nn.LeakyReLU(0.2),
                       sn(nn.Conv2d(c_out, c_out, 3, padding=1)), *norm(c_out), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.minibatch_std = config.minibatch_std
        self.score = sn(nn.Linear(widths[-1] + int(config.minibatch_std), 1))
        # Projection: the class enters as an inner product with the features (Miyato & Koyama 2018).
        self.class_emb = sn(nn.Embedding(num_classes, widths[-1])) if num_classes else None
        # Not spectrally normalised: SN bounds the logits' scale, and a classifier that cannot
        # grow confident gives the generator almost no push towards the class.
        self.classifier = nn.Linear(widths[-1], num_classes) if num_classes and config.aux_classifier else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(B,)``; with ``with_logits`` also the auxiliary classifier's ``(B, classes)``."""
        h = self.features(x).sum(dim=(2, 3))  # (B, C): sum pooling keeps the scale SN controls
        scored = h
        if self.minibatch_std:  # one number for the whole batch: how much its images differ
            spread = h.std(dim=0, unbiased=False).mean() if len(h) > 1 else h.new_zeros(())
            scored = torch.cat([h, spread.expand(len(h), 1)], dim=1)  # (B, C + 1)
        out = self.score(scored).squeeze(1)
        if self.class_emb is not None:
            out = out + (self.class_emb(labels) * h).sum(dim=1)
        if with_logits:
            assert self.classifier is not None, "with_logits needs aux_classifier > 0 and classes"
            return out, self.classifier(h)
        return out


def diff_augment(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Shift each image ``(B, C, H, W)`` by a random whole number of pixels up to
    ``fraction`` of its size, filling with the border (DiffAugment's translation)."""
    b, _, h, w = x.shape
    pad = max(1, round(fraction * h))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # (B, H)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])  # (B, W)
    index = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
