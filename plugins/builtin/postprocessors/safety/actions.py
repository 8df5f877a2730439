"""What the safety post-processor does to an image: withhold it (a placeholder that says
so) or blur it. Both take and return ``(3, H, W)`` / ``(B, 3, H, W)`` in ``[-1, 1]``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (150, 150, 150)  # neutral mid grey: plainly not a photo, and never black
INK = (40, 40, 40)
SIGN = (200, 30, 30)  # the "no entry" ring and bar
SUPERSAMPLE = 4  # drawn this many times larger, then reduced: clean edges even at 16x16
MIN_TEXT_PX = 7  # below this font size text is unreadable; small placeholders show the sign only


def placeholder(height: int, width: int, category: str) -> torch.Tensor:
    """A neutral grey image with a prohibition sign and, where it fits, "WITHHELD" and the
    category, so a withheld image is never mistaken for a real (or a failed, black) one.
    Returns ``(3, height, width)`` in [-1, 1]."""
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    canvas = Image.new("RGB", (big_w, big_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    lines = [("WITHHELD", 1.0), (category, 0.7)]
    fonts = [_fit_font(draw, text, 0.9 * big_w, 0.16 * big_h * scale) for text, scale in lines]
    readable = MIN_TEXT_PX * SUPERSAMPLE
    shown = [(text, font) for (text, _), font in zip(lines, fonts) if font is not None and font.size >= readable]
    text_h = sum(_text_size(draw, t, f)[1] * 1.3 for t, f in shown)
    # The sign fills what the text leaves: the whole image when there is no room for text.
    diameter = min(big_w * 0.8, (big_h - text_h) * 0.8)
    cx, cy = big_w / 2, (big_h - text_h) / 2
    radius, thickness = diameter / 2, max(diameter * 0.12, 1)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=SIGN, width=round(thickness))
    offset = radius * 0.7071 - thickness * 0.3  # the bar runs top-left to bottom-right, inside the ring
    draw.line((cx - offset, cy - offset, cx + offset, cy + offset), fill=SIGN, width=round(thickness))
    y = big_h - text_h
    for text, font in shown:
        w, h = _text_size(draw, text, font)
        draw.text(((big_w - w) / 2, y), text, fill=INK, font=font)
        y += h * 1.3
    small = canvas.resize((width, height), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(small, dtype=np.float32)).permute(2, 0, 1)  # (3, H, W) in 0-255
    return pixels / 127.5 - 1


def _fit_font(draw: ImageDraw.ImageDraw, text: str, max_width: float,
              max_height: float) -> ImageFont.FreeTypeFont | None:
    """The largest built-in font (Pillow's own, no system fonts needed) that fits, or None."""
    size = int(max_height)
    while size >= 4:
        font = ImageFont.load_default(size=size)
        if _text_size(draw, text, font)[0] <= max_width:
            return font
        size = int(size * 0.85)
    return None


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont) -> tuple[float, float]:
    left, _, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, 3, H, W)`` with standard deviation ``sigma`` pixels
    (edges repeat the border pixels). Returns the same shape."""
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()  # (K,)
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along the width
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along the height
