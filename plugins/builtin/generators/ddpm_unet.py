"""The `ddpm` generator's network: a UNet that predicts the noise (or v) in a noisy image,
given the timestep and an optional class (ddpm.py builds it when a model is made or loaded).

Sinusoidal timestep embedding (Vaswani et al. 2017), residual blocks with the time and class
embedding added between two convolutions, self-attention at the levels the config names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

if TYPE_CHECKING:
    from .ddpm import DDPMConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of float timesteps ``(B,)`` -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the time/class embedding added in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: ``(B, c_in, H, W)``, emb: ``(B, emb_dim)`` -> ``(B, c_out, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all pixels, with a residual connection."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm, self.qkv, self.out = nn.GroupNorm(8, channels), nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, C, H, W)`` -> same shape."""
        _, _, h, w = x.shape
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three n d) h w -> three b n (h w) d", three=3, n=self.heads)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, head_dim)
        return x + self.out(rearrange(attended, "b n (h w) d -> b (n d) h w", h=h, w=w))


class UNet(nn.Module):
    """Predicts the noise (or v) in ``x_t`` given the timestep and an optional class."""

    def __init__(self, config: DDPMConfig, num_classes: int):
        super().__init__()
        c, emb_dim = config.channels, 4 * config.channels
        self.num_classes = num_classes
        self.time_mlp = nn.Sequential(nn.Linear(c, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # Index num_classes is "no class": what guidance compares against.
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        widths = [c * m for m in config.channel_mults]
        self.down, skips, width = nn.ModuleList(), [c], c
        for level, out in enumerate(widths):
            for _ in range(config.layers_per_level):
                attn = SelfAttention(out) if level in config.attention_levels else nn.Identity()
                self.down.append(nn.ModuleList([ResBlock(width, out, emb_dim, config.dropout), attn]))
                width = out
                skips.append(width)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.mid = nn.ModuleList([ResBlock(width, width, emb_dim, config.dropout), SelfAttention(width),
                                  ResBlock(width, width, emb_dim, config.dropout)])
        self.up = nn.ModuleList()
        for level, out in reversed(list(enumerate(widths))):
            for _ in range(config.layers_per_level + 1):
                attn = SelfAttention(out) if level in config.attention_levels else nn.Identity()
                self.up.append(nn.ModuleList([ResBlock(width + skips.pop(), out, emb_dim, config.dropout), attn]))
                width = out
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1)))
        self.head = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``(B, 3, H, W)`` noisy images; t: ``(B,)`` float timesteps; class_labels: ``(B,)``
        with ``num_classes`` meaning none. Returns the prediction, ``(B, 3, H, W)``."""
        emb = self.time_mlp(timestep_embedding(t, self.stem.out_channels))
        if self.class_emb is not None:
            if class_labels is None:
                class_labels = torch.full((x.shape[0],), self.num_classes, device=x.device)
            emb = emb + self.class_emb(class_labels)
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            if isinstance(block, nn.ModuleList):
                h = block[1](block[0](h, emb))
            else:
                h = block(h)
            skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for block in self.up:
            if isinstance(block, nn.ModuleList):
                h = block[1](block[0](torch.cat([h, skips.pop()], dim=1), emb))
            else:
                h = block(h)
        return self.head(h)
