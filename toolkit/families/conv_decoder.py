"""The network GANs and VAEs share: ``ConvDecoder``, latent (+ class) -> image, the GAN's
generator and the VAE's decoder; with ``ClassGroupNorm``, its class-conditional normalisation.
Generators import it when they build a model (latent.py holds what needs no torch at import).
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.families.latent import pyramid_levels


class ClassGroupNorm(nn.Module):
    """GroupNorm whose per-channel gain and bias depend on the class: conditional
    normalisation (de Vries et al. 2017, https://arxiv.org/abs/1707.00683), as in the
    generators of SNGAN's projection discriminator paper and BigGAN. Every layer then draws
    with the class in hand, rather than only what survives of it from the input.

    x: ``(B, C, H, W)``, labels: ``(B,)`` -> ``(B, C, H, W)``.
    """

    def __init__(self, groups: int, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)  # starts as a plain GroupNorm
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class ConvDecoder(nn.Module):
    """Latent ``(B, latent_dim)`` (+ class) -> image ``(B, 3, size, size)`` in [-1, 1]: the
    GAN's generator and the VAE's decoder.

    A linear layer makes a 4x4 map, then each level doubles the resolution (nearest
    upsampling + 3x3 convolutions, which avoid the checkerboard of transposed convolutions)
    and halves the width, ending at ``channels``. The class embedding joins the latent; with
    ``class_norm`` every normalisation also takes its gain and bias from the class.
    """

    def __init__(self, latent_dim: int, size: int, channels: int, *, num_classes: int = 0, class_dim: int = 0,
                 activation: type[nn.Module] = nn.ReLU, model: str = "model", class_norm: bool = False):
        super().__init__()
        levels = pyramid_levels(size, model)
        widths = [channels * 2 ** (levels - i) for i in range(levels + 1)]  # 4x4 ... full size
        self.class_emb = nn.Embedding(num_classes, class_dim) if num_classes else None
        self.base = nn.Linear(latent_dim + (class_dim if num_classes else 0), widths[0] * 4 * 4)
        self.base_width = widths[0]
        norm = (lambda c: ClassGroupNorm(8, c, num_classes)) if class_norm and num_classes else (lambda c: nn.GroupNorm(8, c))
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            blocks += [norm(c_in), activation(), nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_in, c_out, 3, padding=1), norm(c_out), activation(),
                       nn.Conv2d(c_out, c_out, 3, padding=1)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(norm(widths[-1]), activation(), nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.class_emb is not None:
            z = torch.cat([z, self.class_emb(labels)], dim=1)
        h = self.base(z).view(z.shape[0], self.base_width, 4, 4)  # (B, C0, 4, 4)
        for layer in (*self.blocks, *self.head):
            h = layer(h, labels) if isinstance(layer, ClassGroupNorm) else layer(h)
        return h
