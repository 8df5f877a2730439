"""Real-ESRGAN's two networks as plain torch modules.

Parameter names follow the official Real-ESRGAN checkpoints (``body.0.weight``,
``conv_first.weight``, ``body.3.rdb2.conv4.bias``...), so converted weights load into
the reference implementations too (tests check ours against spandrel's on the same
weights). Both take ``(batch, 3, H, W)`` RGB in ``[0, 1]``.

* ``SRVGGNetCompact``: a plain stack of 3x3 convolutions and PReLUs at the input's size, a
  pixel shuffle, plus the nearest-upsampled input (Real-ESRGAN, "realesr-animevideov3").
* ``RRDBNet``: ESRGAN's residual-in-residual dense blocks (Wang et al. 2018,
  https://arxiv.org/abs/1809.00219), two nearest x2 upsamplings ("realesrgan-x4plus").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    def __init__(self, *, num_feat: int = 64, num_conv: int = 16, upscale: int = 4):
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, 3, H, W)`` in [0, 1] -> ``(batch, 3, upscale * H, upscale * W)``, roughly
        [0, 1] (not clamped)."""
        # The network learns only the residual over a nearest-neighbour enlargement.
        return self.shuffle(self.body(x)) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


class ResidualDenseBlock(nn.Module):
    """Five convolutions, each seeing the block's input and every earlier output."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat + num_grow, num_grow, 3, padding=1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow, num_grow, 3, padding=1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow, num_grow, 3, padding=1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow, num_feat, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, num_feat, H, W)`` -> same shape."""
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), 0.2))
        # Residuals are scaled down by 0.2 so that a deep stack trains stably (ESRGAN, sec. 3.1).
        return x + 0.2 * self.conv5(torch.cat(features, 1))


class RRDB(nn.Module):
    """Residual in residual: three dense blocks inside one more scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, num_feat, H, W)`` -> same shape."""
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    upscale = 4

    def __init__(self, *, num_feat: int = 64, num_block: int = 23, num_grow: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, 3, H, W)`` in [0, 1] -> ``(batch, 3, 4H, 4W)``, roughly [0, 1] (not clamped)."""
        feat = self.conv_first(x)  # (B, num_feat, H, W)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):  # (B, num_feat, 2H, 2W), then 4H, 4W
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
