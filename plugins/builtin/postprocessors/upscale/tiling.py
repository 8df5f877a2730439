"""Running an upscaling network on an image of any size, a tile at a time, without seams.

Memory grows with the tile, not the image. A convolution network's output near a cut
edge is wrong (it sees zero padding there instead of the image), so each tile's input
reaches ``overlap`` pixels past its own area on every side that has a neighbour. Two
neighbours' outputs are cross-faded (linear weights summing to one) across a band
``overlap / 2`` pixels wide centred on their boundary: every pixel that counts has at
least ``3/4 * overlap`` pixels of real image beyond it, and no hard edge remains.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Network = Callable[[torch.Tensor], torch.Tensor]


def spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``range(length)`` into the fewest near-equal pieces of at most ``tile``
    (``tile`` 0: one piece), as ``(start, stop)`` pairs."""
    count = 1 if tile <= 0 else math.ceil(length / tile)
    step = math.ceil(length / count)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def count_tiles(height: int, width: int, tile: int) -> int:
    return len(spans(height, tile)) * len(spans(width, tile))


def _ramp(length: int, scale: int, start_cut: bool, stop_cut: bool, overlap: int) -> torch.Tensor:
    """Blend weights along one axis of a tile's output: ``(length,)`` in [0, 1], fading out
    towards each end that was cut from the image (``*_cut``), 1 towards image edges."""
    weights = torch.ones(length)
    if overlap == 0:
        return weights
    # Context (in input pixels) each output pixel has before the cut; the fade runs from
    # 3/4 to 5/4 of the overlap, so a neighbour's fade-in mirrors it and the two sum to 1.
    context = (torch.arange(length, dtype=torch.float32) + 0.5) / scale

    def fade(context: torch.Tensor) -> torch.Tensor:
        return ((context - 0.75 * overlap) / (0.5 * overlap)).clamp(0, 1)

    if start_cut:
        weights = torch.minimum(weights, fade(context))
    if stop_cut:
        weights = torch.minimum(weights, fade(length / scale - context))
    return weights


def run_tiled(network: Network, x: torch.Tensor, scale: int, *, tile: int, overlap: int,
              progress: Callable[[], None] | None = None) -> torch.Tensor:
    """Apply ``network`` (which maps ``(B, C, h, w)`` to ``(B, C, scale*h, scale*w)``) to
    ``x`` of shape ``(B, C, H, W)`` tile by tile; returns ``(B, C, scale*H, scale*W)``.

    ``tile`` is the most input pixels per tile side (0: the whole image at once);
    ``progress()`` is called after each tile.
    """
    batch, channels, height, width = x.shape
    rows, cols = spans(height, tile), spans(width, tile)
    if len(rows) == len(cols) == 1:
        out = network(x)
        if progress:
            progress()
        return out
    total = x.new_zeros(batch, channels, scale * height, scale * width)
    weight_sum = x.new_zeros(1, 1, scale * height, scale * width)
    for top, bottom in rows:
        for left, right in cols:
            y0, y1 = max(top - overlap, 0), min(bottom + overlap, height)
            x0, x1 = max(left - overlap, 0), min(right + overlap, width)
            out = network(x[:, :, y0:y1, x0:x1])
            wy = _ramp(out.shape[2], scale, y0 > 0, y1 < height, overlap)
            wx = _ramp(out.shape[3], scale, x0 > 0, x1 < width, overlap)
            weight = (wy[:, None] * wx[None, :]).to(x)  # (scale*h, scale*w)
            total[:, :, scale * y0:scale * y1, scale * x0:scale * x1] += out * weight
            weight_sum[:, :, scale * y0:scale * y1, scale * x0:scale * x1] += weight
            if progress:
                progress()
    # Every pixel lies in some tile's own area, where that tile's weight is at least 1/4.
    return total / weight_sum


def reflect_pad(x: torch.Tensor, pad: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Mirror ``pad`` pixels onto each side of ``(B, C, H, W)`` images (fewer on an image
    too small to mirror that many). Returns the padded images and the (vertical,
    horizontal) padding used."""
    py, px = min(pad, x.shape[2] - 1), min(pad, x.shape[3] - 1)
    return F.pad(x, (px, px, py, py), mode="reflect"), (py, px)
