"""Drawing scenes: the image, a line-drawing sketch of the outlines, and one mask per object.

Everything is drawn ``SUPERSAMPLE`` times larger with PIL and box-downsampled, so edges are
anti-aliased the way a photograph's are rather than jagged.

Geometry is in continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``
(x to the right, y down). An object is placed by the centre ``(cx, cy)`` of its cell plus
jitter and its half-extent ``r`` (the circumradius for the circle, square, diamond and star;
half the height and half the base for the triangle). Sizes are fractions of a grid cell,
so a scene scales with the image size. The largest object plus the largest jitter stays
more than a pixel inside its cell at 64x64, so objects in neighbouring cells never touch.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from toolkit.errors import InvalidRequestError

from .scene import COLOURS, Scene, ShapeObject

BACKGROUND = (240, 240, 240)  # light neutral grey: far from every palette colour
SUPERSAMPLE = 4
HALF_EXTENT = {"small": 0.25, "large": 0.38}  # fraction of a cell's side
# Half-extent, in cells, that separates small from large: the geometric mean of the two.
SIZE_THRESHOLD = math.sqrt(HALF_EXTENT["small"] * HALF_EXTENT["large"])
SIZE_JITTER = 0.04  # relative change of r, uniform in +-SIZE_JITTER
POSITION_JITTER = 0.06  # shift of the centre, uniform in +-POSITION_JITTER cells (~1.3 px at 64)
STAR_INNER = 0.45  # inner radius of the five-pointed star, relative to r
STROKE_WIDTH = 1.25  # sketch line width in pixels at 64x64; scales with the image, 1 px at least
MIN_SIZE = 16


def outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """The polygon ``[(x, y), ...]`` of a shape centred at (cx, cy) with half-extent r, or
    None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":  # pointing up, as wide as it is tall
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":  # a square standing on a corner
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "star":  # five points, the first straight up
        radii = [r if k % 2 == 0 else STAR_INNER * r for k in range(10)]
        angles = [k * math.pi / 5 for k in range(10)]
        return [(cx + rk * math.sin(a), cy - rk * math.cos(a)) for rk, a in zip(radii, angles)]
    raise InvalidRequestError(f"cannot draw unknown shape '{shape}'")


@lru_cache(maxsize=None)
def unit_geometry(shape: str) -> tuple[float, float, float]:
    """``(area, dx, dy)`` of a shape with r = 1 centred at the origin: its area and where its
    centre of mass lies relative to the centre (only the triangle's is off-centre)."""
    points = outline(shape, 0.0, 0.0, 1.0)
    if points is None:
        return math.pi, 0.0, 0.0
    # Shoelace formula for the area and centroid of a simple polygon.
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        cross = x0 * y1 - x1 * y0
        area += cross / 2
        cx += (x0 + x1) * cross / 6
        cy += (y0 + y1) * cross / 6
    return abs(area), cx / area, cy / area


def _to_pil(values: list[tuple[float, float]], scale: int) -> list[tuple[float, float]]:
    # PIL puts integer coordinates on pixel centres; ours put them on pixel corners.
    return [(x * scale - 0.5, y * scale - 0.5) for x, y in values]


def _fill(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, scale: int, fill) -> None:
    points = outline(shape, cx, cy, r)
    if points is None:
        (x0, y0), (x1, y1) = _to_pil([(cx - r, cy - r), (cx + r, cy + r)], scale)
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    else:
        draw.polygon(_to_pil(points, scale), fill=fill)


def _stroke(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, scale: int, width: int) -> None:
    """Draw the outline centred on the shape's edge, like a pen tracing it."""
    points = outline(shape, cx, cy, r)
    if points is None:
        half = width / 2 / scale  # PIL's ellipse strokes inwards from its box: widen the box
        (x0, y0), (x1, y1) = _to_pil([(cx - r - half, cy - r - half), (cx + r + half, cy + r + half)], scale)
        draw.ellipse((x0, y0, x1, y1), outline=0, width=width)
    else:
        closed = _to_pil(points + points[:2], scale)  # one vertex past the start, so every corner gets a joint
        draw.line(closed, fill=0, width=width, joint="curve")


def coverage(shape: str, cx: float, cy: float, r: float, height: int, width: int,
             supersample: int = SUPERSAMPLE) -> np.ndarray:
    """The fraction of each pixel a shape covers: ``(height, width)`` float32 in [0, 1].

    Coordinates are those of the ``(height, width)`` window (see the module docstring).
    """
    canvas = Image.new("L", (width * supersample, height * supersample), 0)
    _fill(ImageDraw.Draw(canvas), shape, cx, cy, r, supersample, 255)
    return np.asarray(canvas.resize((width, height), Image.BOX), dtype=np.float32) / 255.0


def placement(obj: ShapeObject, size: int, rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """Where an object is drawn at ``size`` x ``size``: ``(cx, cy, r)`` in pixels.

    With ``rng`` the size and position get a little jitter (three draws, in the order
    size, x, y); without it the object sits exactly at its nominal place.
    """
    cell = size / 3
    row, col = obj.position
    r = HALF_EXTENT[obj.size] * cell
    cx, cy = (col + 0.5) * cell, (row + 0.5) * cell
    if rng is not None:
        r *= 1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER)
        cx += rng.uniform(-POSITION_JITTER, POSITION_JITTER) * cell
        cy += rng.uniform(-POSITION_JITTER, POSITION_JITTER) * cell
    return cx, cy, r


def render(scene: Scene, size: int = 64, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Draw a scene at ``size`` x ``size`` pixels.

    Returns a dict:

    * ``"image"``: ``(size, size, 3)`` uint8 RGB, the objects on a plain light grey;
    * ``"sketch"``: ``(size, size)`` float32 in [0, 1], 1 = stroke: the outlines, about
      1.25 px wide at 64x64 and never under 1 px (dark lines on white when shown as
      ``1 - sketch``);
    * ``"masks"``: ``(objects, size, size)`` bool, the pixels each object covers at least half.

    ``rng`` jitters size and position slightly (see ``placement``); None draws every object
    at its nominal place.
    """
    if size < MIN_SIZE:
        raise InvalidRequestError(f"shapes are drawn at {MIN_SIZE}x{MIN_SIZE} pixels or more, not {size}")
    if not isinstance(scene, Scene):
        scene = Scene(tuple(scene))  # validates: complete objects in distinct cells
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUND)
    sketch = Image.new("L", (big, big), 255)
    paint, pen = ImageDraw.Draw(image), ImageDraw.Draw(sketch)
    # Thinner than a pixel, a line fades to grey once downsampled: small images get 1 px lines.
    stroke = round(max(1.0, STROKE_WIDTH * size / 64) * SUPERSAMPLE)
    masks = []
    for obj in scene:
        cx, cy, r = placement(obj, size, rng)
        _fill(paint, obj.shape, cx, cy, r, SUPERSAMPLE, COLOURS[obj.colour])
        _stroke(pen, obj.shape, cx, cy, r, SUPERSAMPLE, stroke)
        covered = coverage(obj.shape, cx, cy, r, size, size)
        # At tiny sizes a small star covers no pixel by half; keep its most covered pixel.
        masks.append(covered >= min(0.5, covered.max()))
    ink = 1.0 - np.asarray(sketch.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    return {
        "image": np.asarray(image.resize((size, size), Image.BOX)),
        # A thin line covers no pixel fully once downsampled; boost it so strokes read as solid ink.
        "sketch": np.clip(ink * 1.6, 0.0, 1.0),
        "masks": np.stack(masks),
    }
