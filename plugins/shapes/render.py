"""Drawing scenes: the image, a sketch of the outlines, and one mask per object.

Everything is drawn 4x larger and downsampled, so edges are anti-aliased like a photo's
rather than jagged.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .scene import COLOURS, ShapeObject

BACKGROUND = (235, 235, 235)
SUPERSAMPLE = 4
# Half the extent of an object, as a fraction of a grid cell's side.
HALF_EXTENT = {"large": 0.42, "small": 0.27}


def outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Polygon of a shape centred at (cx, cy) with half-extent r; None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":  # pointing up, as wide as it is tall
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "star":  # five points, inner radius 45% of the outer
        return [
            (cx + (r if k % 2 == 0 else 0.45 * r) * math.sin(k * math.pi / 5),
             cy - (r if k % 2 == 0 else 0.45 * r) * math.cos(k * math.pi / 5))
            for k in range(10)
        ]
    raise ValueError(f"unknown shape {shape!r}")


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, **style) -> None:
    points = outline(shape, cx, cy, r)
    if points is None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), **style)
    else:
        draw.polygon(points, **style)


def render(scene: list[ShapeObject], size: int = 64, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Draw a scene.

    Returns ``image`` ``(size, size, 3)`` uint8 RGB, ``sketch`` ``(size, size)`` float32 in
    [0, 1] with 1 = stroke, and ``masks`` ``(objects, size, size)`` bool, one per object.
    ``rng`` adds a little jitter to position and size (none without it).
    """
    big = size * SUPERSAMPLE
    cell = big / 3
    image = Image.new("RGB", (big, big), BACKGROUND)
    sketch = Image.new("L", (big, big), 255)
    draw, pen = ImageDraw.Draw(image), ImageDraw.Draw(sketch)
    stroke = max(1, round(1.3 * SUPERSAMPLE * size / 64))
    masks = []
    for obj in scene:
        assert obj.shape and obj.colour and obj.size and obj.position, "render needs fully specified objects"
        row, col = obj.position
        r = HALF_EXTENT[obj.size] * cell
        jitter = (0.06 * cell) if rng is not None else 0.0
        if rng is not None:
            r *= 1 + rng.uniform(-0.06, 0.06)
        cx = (col + 0.5) * cell + (rng.uniform(-jitter, jitter) if rng is not None else 0)
        cy = (row + 0.5) * cell + (rng.uniform(-jitter, jitter) if rng is not None else 0)
        _draw(draw, obj.shape, cx, cy, r, fill=COLOURS[obj.colour])
        _draw(pen, obj.shape, cx, cy, r, outline=0, width=stroke)
        mask = Image.new("L", (big, big), 0)
        _draw(ImageDraw.Draw(mask), obj.shape, cx, cy, r, fill=255)
        masks.append(np.asarray(mask.resize((size, size), Image.BOX)) >= 128)
    image = image.resize((size, size), Image.BOX)
    sketch_small = np.asarray(sketch.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    return {
        "image": np.asarray(image),
        "sketch": np.clip((1.0 - sketch_small) * 1.5, 0, 1),  # thin lines stay dark after downsampling
        "masks": np.stack(masks) if masks else np.zeros((0, size, size), bool),
    }
