"""What the evaluation classifier trains on besides the images themselves: each image moved a
little, so that a generated image that is not pixel-exact is still read as its class."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``(B, C, H, W)`` by its own whole-pixel offset of up to
    ``max_shift`` in each direction, repeating edge pixels (the classifier's augmentation)."""
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, b, 1), generator=generator)  # (B, 1) each
    rows = (torch.arange(h) - dy).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w) - dx).clamp(0, w - 1)  # (B, W)
    batch = torch.arange(b)[:, None, None]
    shifted = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return shifted.permute(0, 3, 1, 2).contiguous()


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What a generated image may differ from its training render by, drawn per image of
    ``(B, 3, S, S)`` in [-1, 1]: a zoom of 0.85-1.15 and a shift of up to 6% (on the
    background, which the corner pixel gives), a blur half the time, brightness and contrast
    within 10%, and faint noise. A judge trained on clean renders alone reads a slightly soft
    or off-centre sample as another class."""
    b = images.shape[0]
    u = torch.rand(b, 6, generator=generator)
    zoom = 0.85 + 0.3 * u[:, 0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = (u[:, 1:3] - 0.5) * 0.12
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    background = images[:, :, :1, :1]  # (B, 3, 1, 1): the renders are centred on a plain background
    moved = F.grid_sample(images - background, grid, padding_mode="zeros", align_corners=False) + background
    blurred = F.avg_pool2d(F.pad(moved, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    moved = torch.where((u[:, 3] < 0.5)[:, None, None, None], blurred, moved)
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.9 + 0.2 * u[:, 4]).reshape(b, 1, 1, 1)
    brightness = ((u[:, 5] - 0.5) * 0.2).reshape(b, 1, 1, 1)
    noise = 0.03 * torch.randn(moved.shape, generator=generator)
    return ((moved - mean) * contrast + mean + brightness + noise).clamp(-1, 1)
