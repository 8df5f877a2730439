"""The colour emoji font: finding it, telling which emoji it can draw, and drawing one.

Noto Color Emoji (Linux), Apple Color Emoji (macOS) and Segoe UI Emoji (Windows) all draw
through Pillow with ``embedded_color=True``. Noto's and Apple's are bitmap fonts that load
at their bitmap sizes only (Noto: 109 px, a glyph 136 x 128); a glyph is drawn once at that
size and resized, so images are sharp up to about 128 pixels.

Skin tones, hair, gender signs and flags are sequences of code points that the font joins
into one glyph. Pillow joins them only with its raqm layout (``PIL.features.check("raqm")``);
without it, or when the font is older than the sequence, they come out as several glyphs
side by side, and those are skipped, as are emoji the font has no glyph for and the
placeholder flag Noto draws for a region it does not know.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from toolkit.errors import DatasetError, ToolkitWarning

# Where the systems put their colour emoji font, in the order they are tried.
FONT_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",  # Debian, Ubuntu: fonts-noto-color-emoji
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",  # Arch: noto-fonts-emoji
    "/usr/share/fonts/google-noto-color-emoji-fonts/NotoColorEmoji.ttf",  # Fedora
    "~/.local/share/fonts/NotoColorEmoji.ttf",
    "~/.fonts/NotoColorEmoji.ttf",
    "/System/Library/Fonts/Apple Color Emoji.ttc",  # macOS
    os.path.join(os.environ.get("WINDIR", "C:/Windows"), "Fonts", "seguiemj.ttf"),  # Windows: Segoe UI Emoji
)
INSTALL = ("install a colour emoji font (Debian/Ubuntu: sudo apt-get install fonts-noto-color-emoji; "
           "Fedora: sudo dnf install google-noto-color-emoji-fonts; macOS and Windows have one: "
           "/System/Library/Fonts/Apple Color Emoji.ttc, C:\\Windows\\Fonts\\seguiemj.ttf) or pass font=PATH")
# Pixel sizes tried in turn: bitmap fonts load at their own sizes only (Noto 109, Apple 160 or 96).
LOAD_SIZES = (109, 160, 96, 64)
MARGIN = 1 / 16  # background left on each side of the widest glyph, as a share of the image
REFERENCE = "\U0001F600"  # grinning face: every colour emoji font has it
UNKNOWN_FLAG = "\U0001F1FD\U0001F1FD"  # the region "XX", which no country has


@dataclass(frozen=True, eq=False)
class EmojiFont:
    """A colour emoji font loaded at a size it can draw, and the width of one glyph there."""

    path: str
    font: ImageFont.FreeTypeFont
    cell: int  # pixels


def find_font() -> str | None:
    """The first of ``FONT_PATHS`` that is a file, or None."""
    return next((str(p) for p in map(Path, FONT_PATHS) if p.expanduser().is_file()), None)


@lru_cache(maxsize=8)
def load_font(path: str | None = None) -> EmojiFont:
    """The font at ``path``, or the system's (None). Raises ``DatasetError`` with how to
    install one when there is none, or when ``path`` is no colour emoji font."""
    if path is None:
        path = find_font()
        if path is None:
            raise DatasetError(f"dataset 'emoji' needs a colour emoji font and found none: {INSTALL}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetError(f"dataset 'emoji': font {path} is not a file; {INSTALL}")
    font = None
    for size in LOAD_SIZES:
        try:
            font = ImageFont.truetype(str(file), size)
            break
        except OSError:  # "invalid pixel size" from a bitmap font; "unknown file format"
            continue
    if font is None:
        raise DatasetError(f"dataset 'emoji': cannot read {path} as a font at any of the sizes {LOAD_SIZES}; {INSTALL}")
    left, top, right, bottom = font.getbbox(REFERENCE)
    if bottom <= top or right <= left or not _ink(_render(EmojiFont(str(file), font, right - left), REFERENCE)):
        raise DatasetError(f"dataset 'emoji': {path} draws no colour emoji; {INSTALL}")
    return EmojiFont(str(file), font, right - left)


@lru_cache(maxsize=8)
def scan(font: EmojiFont, emoji: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Which of ``emoji`` the font draws as one glyph: ``(drawable, {reason: count skipped})``
    with the reasons "missing", "several glyphs" and "unknown flag". Warns once with the counts."""
    placeholder = _render(font, UNKNOWN_FLAG).tobytes() if _one_glyph(font, UNKNOWN_FLAG) else None
    drawable, skipped = [], Counter()
    for e in emoji:
        left, top, right, bottom = font.font.getbbox(e)
        if bottom <= top or right <= left:
            skipped["missing"] += 1
        elif not _one_glyph(font, e):
            skipped["several glyphs"] += 1
        elif placeholder is not None and _is_region_flag(e) and _render(font, e).tobytes() == placeholder:
            skipped["unknown flag"] += 1
        else:
            drawable.append(e)
    if skipped:
        how = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        raqm = "" if features.check("raqm") else (
            "; this Pillow lacks raqm, so skin tones, hair and flags cannot be joined into one glyph: "
            "install libraqm (Debian/Ubuntu: sudo apt-get install libraqm0) or Pillow's own wheel, which bundles it")
        warnings.warn(f"dataset 'emoji': {Path(font.path).name} draws {len(drawable):,} of the {len(emoji):,} "
                      f"fully-qualified emoji; skipped {sum(skipped.values())} ({how}){raqm}", ToolkitWarning,
                      stacklevel=2)
    return tuple(drawable), dict(skipped)


@lru_cache(maxsize=4096)  # one size and background of every emoji; 12 kB each at 64 px
def draw(font: EmojiFont, e: str, size: int, background: tuple[int, int, int]) -> np.ndarray:
    """Emoji ``e`` centred on ``background`` at ``size`` x ``size``: ``(size, size, 3)`` uint8.

    The glyph keeps the font's scale (a small emoji stays small), its ink centred in a square
    ``MARGIN`` wider than one glyph cell on each side."""
    glyph = _render(font, e)
    ink = glyph.getchannel("A").getbbox() or (0, 0, 1, 1)
    glyph = glyph.crop(ink)
    side = max(round(font.cell * (1 + 2 * MARGIN)), glyph.width, glyph.height)
    square = Image.new("RGBA", (side, side), (*background, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return np.asarray(square.convert("RGB").resize((size, size), Image.LANCZOS))


def _render(font: EmojiFont, e: str) -> Image.Image:
    """``e`` drawn at the font's own size on transparent pixels, as large as its box."""
    left, top, right, bottom = font.font.getbbox(e)
    image = Image.new("RGBA", (max(right - left, 1), max(bottom - top, 1)), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((-left, -top), e, font=font.font, embedded_color=True)
    return image


def _one_glyph(font: EmojiFont, e: str) -> bool:
    """Whether ``e`` is drawn about one cell wide: a sequence the font did not join is as wide
    as its parts."""
    left, _, right, _ = font.font.getbbox(e)
    return right - left <= 1.5 * font.cell


def _is_region_flag(e: str) -> bool:
    return len(e) == 2 and all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in e)


def _ink(image: Image.Image) -> bool:
    return image.getchannel("A").getbbox() is not None
