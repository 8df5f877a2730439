"""The attacks the embedder rehearses on its own output before it settles on a mark: JPEG,
blur, half size and back, brightness up and down, 10 % crops, and (from 256 pixels up) a
centre crop saved as JPEG. Pillow implements them, the library most images pass through.

docs/postprocessors.md ("Invisible watermark") lists them and what they cost the mark.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

BRIGHTER = 1.1  # the brightening the dips are made to survive (and the one rehearsed)
CROP_FRACTION = 0.1
CROP_ORIGINS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5))  # where the kept window sits
CROP_THEN_JPEG = "crop+jpeg"  # the rehearsal that is planned for but only breaks ties when choosing a mode


def rehearsals(height: int, width: int) -> dict:
    """name -> (attack on a (H, W, 3) float image, (row, col) of its origin in the original)."""
    small = min(height, width) < 256  # below this the promise is JPEG 75, not 50
    quality = 75 if small else 50
    attacks = {
        "jpeg": (lambda a: _jpeg(a, quality), (0, 0)),
        "blur": (lambda a: _pil(a, lambda im: im.filter(ImageFilter.GaussianBlur(1.0))), (0, 0)),
        "half": (lambda a: _pil(a, _half_and_back), (0, 0)),
        "brighter": (brighten, (0, 0)),
        "darker": (lambda a: _pil(a, lambda im: ImageEnhance.Brightness(im).enhance(0.9)), (0, 0)),
    }
    kept_h, kept_w = round(height * (1 - CROP_FRACTION)), round(width * (1 - CROP_FRACTION))
    for fy, fx in CROP_ORIGINS:
        top, left = round(fy * (height - kept_h)), round(fx * (width - kept_w))
        attacks[f"crop@{top},{left}"] = (lambda a, t=top, l=left: a[t: t + kept_h, l: l + kept_w], (top, left))
    if not small:
        # Not a promised attack, but what sharing a crop does: the centre crop is off the
        # 8-pixel grid, so JPEG's blocks straddle the mark's and quantise it harder than
        # either alone. Not below 256, where a crop alone often takes the mark already.
        top, left = (height - kept_h) // 2, (width - kept_w) // 2
        attacks[CROP_THEN_JPEG] = (lambda a: _jpeg(a[top: top + kept_h, left: left + kept_w], quality), (top, left))
    return attacks


def promised(height: int, width: int) -> set[str]:
    """The rehearsals a mark at this size is promised to survive (docs/postprocessors.md):
    from 256 pixels up all but ``CROP_THEN_JPEG``, below that JPEG 75 alone."""
    names = set(rehearsals(height, width)) - {CROP_THEN_JPEG}
    return names if min(height, width) >= 256 else {"jpeg"}


def describe(name: str, height: int, width: int) -> str:
    """A rehearsal's name in words, for messages."""
    if name.startswith("crop@"):
        return f"a {CROP_FRACTION:.0%} crop"
    return {"jpeg": f"JPEG {75 if min(height, width) < 256 else 50}", "blur": "a blur of sigma 1",
            "half": "halving the size and back", "brighter": f"brightening by {BRIGHTER - 1:.0%}",
            "darker": "darkening by 10%"}.get(name, name)


def brighten(a: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` -> the same brightened by ``BRIGHTER`` (Pillow's, clipped at 255)."""
    return _pil(a, lambda im: ImageEnhance.Brightness(im).enhance(BRIGHTER))


def _pil(a: np.ndarray, edit) -> np.ndarray:
    return np.asarray(edit(Image.fromarray(a.astype(np.uint8))), np.float64)


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float64)


def _half_and_back(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 2, im.height // 2), Image.BICUBIC).resize(im.size, Image.BICUBIC)
