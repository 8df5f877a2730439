"""Free-layout scenes: one to four objects anywhere on the canvas, at any size in a range,
turned, and overlapping (later objects on top).

Geometry is in fractions of the canvas side, so a scene is the same at every image size.
An object is its shape and colour, its centre ``(x, y)`` (x to the right, y down), its
half-extent ``radius`` (as in render.py: the circle's radius, half the square's side, half
the triangle's height and base, the star's outer radius) and ``rotation``, clockwise in
degrees from the upright pose the grid layout draws. The centre is the point the shape
turns about: its middle, and for the triangle its centroid.

Captions keep the grid layout's coarse words (``FreeObject.coarse``): the position is the
3x3 cell holding the centre; the size is small below ``SIZE_BOUNDARY`` and large above it,
the threshold the evaluator reads sizes with.

Rotations (``ROTATION``) keep every shape recognisably its class. A square turned by 45
degrees is a diamond, so each turns at most 15 degrees from its own upright pose: a square
is turned 0 to 15 degrees either way, a diamond is a square turned 30 to 60, and no object
is ever turned in between. Triangles turn freely (all the way round: the triangle is
isosceles, as wide as it is tall), stars over one period of their symmetry (72 degrees);
a circle does not turn.

Scenes are sampled so that every object can be seen and told apart:

* each object keeps at least ``MIN_VISIBLE`` of its area in view, in one piece;
* two objects of one colour never touch (their circumscribed circles stay
  ``SAME_COLOUR_GAP`` apart): touching, they would be one region of one colour;
* every object lies inside the canvas, at least ``MARGIN`` from its edges.

Sizes start at ``RADIUS["small"][0]``, as small as the grid layout's small objects: the
smallest the evaluator reads reliably at 64x64.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from toolkit.errors import InvalidRequestError

from .render import BACKGROUND, SIZE_THRESHOLD, SUPERSAMPLE, outline, unit_geometry
from .scene import COLOURS, SIZES, ShapeObject, all_combinations

MAX_FREE_OBJECTS = 4
SIZE_BOUNDARY = SIZE_THRESHOLD / 3  # in canvas sides: the grid's threshold (in cells) over 3 cells
# Radius ranges, in canvas sides, by size word; each size is drawn half of the time. Radii
# within about 7% of the boundary are never drawn, so the size word is never a coin toss.
RADIUS = {"small": (0.08, 0.095), "large": (0.11, 0.18)}
# Rotation ranges in degrees (see the module docstring for why).
ROTATION = {"circle": (0.0, 0.0), "square": (-15.0, 15.0), "diamond": (-15.0, 15.0),
            "triangle": (0.0, 360.0), "star": (0.0, 72.0)}
MIN_VISIBLE = 0.65
SAME_COLOUR_GAP = 0.04  # in canvas sides, about 2.5 px at 64x64
MARGIN = 0.02
PLACEMENT_TRIES = 40  # positions tried for an object before it is left out of the scene
RASTER = 128  # the grid, in pixels a side, on which sampling measures overlaps
CIRCLE_VERTICES = 64  # the polygon that stands for a circle in sketches and overlap tests


def unit_polygon(shape: str, rotation: float = 0.0) -> np.ndarray:
    """The outline ``(vertices, 2)`` of ``shape`` with radius 1, centred on the origin (its
    centroid for the triangle) and turned ``rotation`` degrees clockwise (y points down)."""
    points = outline(shape, 0.0, 0.0, 1.0)
    if points is None:
        angles = np.linspace(0.0, 2 * math.pi, CIRCLE_VERTICES, endpoint=False)
        unit = np.stack([np.sin(angles), -np.cos(angles)], axis=1)
    else:
        _, dx, dy = unit_geometry(shape)
        unit = np.asarray(points) - (dx, dy)
    turn = math.radians(rotation)
    cos, sin = math.cos(turn), math.sin(turn)
    return unit @ np.array([[cos, sin], [-sin, cos]])


@dataclass(frozen=True)
class FreeObject:
    """One object of a free-layout scene; lengths in canvas sides, rotation in degrees."""

    shape: str
    colour: str
    x: float
    y: float
    radius: float
    rotation: float = 0.0

    def __post_init__(self) -> None:
        ShapeObject(self.shape, self.colour, None, None)  # validates the names

    @property
    def size(self) -> str:
        return "large" if self.radius > SIZE_BOUNDARY else "small"

    @property
    def position(self) -> tuple[int, int]:
        """(row, col) of the 3x3 cell holding the centre."""
        return min(max(int(self.y * 3), 0), 2), min(max(int(self.x * 3), 0), 2)

    def coarse(self) -> ShapeObject:
        """The object in the caption's words: shape, colour, size and cell."""
        return ShapeObject(self.shape, self.colour, self.size, self.position)

    def polygon(self, size: int) -> np.ndarray:
        """The outline ``(vertices, 2)`` as (x, y) in pixels of a ``size`` x ``size`` image
        (corner coordinates, as in render.py)."""
        return (unit_polygon(self.shape, self.rotation) * self.radius + (self.x, self.y)) * size

    def to_json(self, size: int) -> dict[str, Any]:
        """The coarse words plus the exact geometry in pixels at ``size`` x ``size``."""
        return {**self.coarse().to_json(), "centre": [self.x * size, self.y * size],
                "radius": self.radius * size, "rotation": self.rotation}


@dataclass(frozen=True)
class FreeScene:
    """Objects in drawing order (later on top) and the share of each one left in view."""

    objects: tuple[FreeObject, ...]
    visible: tuple[float, ...]

    def __iter__(self) -> Iterator[FreeObject]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> FreeObject:
        return self.objects[index]

    def coarse(self) -> list[ShapeObject]:
        """The objects in the caption's words, in drawing order."""
        return [obj.coarse() for obj in self.objects]

    def to_json(self, size: int) -> list[dict[str, Any]]:
        """Per object: its ``FreeObject.to_json`` plus "visible", the share in view."""
        return [{**obj.to_json(size), "visible": share} for obj, share in zip(self.objects, self.visible)]


def sample_free_scene(rng: np.random.Generator, *, max_objects: int = MAX_FREE_OBJECTS,
                      allowed: set[tuple[str, str]] | None = None,
                      required: set[tuple[str, str]] | None = None) -> FreeScene:
    """A random free-layout scene of 1 to ``max_objects`` objects.

    allowed: the (shape, colour) pairs objects may use; None allows all.
    required: if given, one object (chosen at random) uses one of these pairs.
    An object that finds no place within the rules (see the module docstring) after
    ``PLACEMENT_TRIES`` tries is left out; the required one never is.
    """
    if not 1 <= max_objects <= MAX_FREE_OBJECTS:
        raise InvalidRequestError(f"max_objects must be between 1 and {MAX_FREE_OBJECTS}, not {max_objects}")
    pool = [pair for pair in all_combinations() if allowed is None or pair in allowed]
    if not pool:
        raise InvalidRequestError("no (shape, colour) combination is allowed")
    count = int(rng.integers(1, max_objects + 1))
    pairs = [pool[int(rng.integers(len(pool)))] for _ in range(count)]
    must = None
    if required:
        needed = sorted(required)  # sorted: set order must not leak into the samples
        must = int(rng.integers(count))
        pairs[must] = needed[int(rng.integers(len(needed)))]
    placed, masks, owner = _place(rng, pairs)
    if must is not None and must not in placed:
        placed, masks, owner = _place(rng, [pairs[must]])  # alone on the canvas it always fits
    visible = tuple(float(np.count_nonzero(owner == k) / np.count_nonzero(m)) for k, m in enumerate(masks))
    return FreeScene(tuple(placed.values()), visible)


def _place(rng: np.random.Generator, pairs: list[tuple[str, str]]
           ) -> tuple[dict[int, FreeObject], list[np.ndarray], np.ndarray]:
    """Objects for ``pairs`` in order, each where it keeps the rules, by index in ``pairs``;
    their ``(RASTER, RASTER)`` masks, and which object shows at each raster pixel (-1: none)."""
    placed: dict[int, FreeObject] = {}
    masks: list[np.ndarray] = []
    owner = np.full((RASTER, RASTER), -1, np.int16)  # which placed object shows at each raster pixel
    for index, (shape, colour) in enumerate(pairs):
        size = SIZES[int(rng.integers(len(SIZES)))]
        radius = float(rng.uniform(*RADIUS[size]))
        rotation = float(rng.uniform(*ROTATION[shape]))
        unit = unit_polygon(shape, rotation) * radius
        (left, top), (right, bottom) = unit.min(axis=0), unit.max(axis=0)
        for _ in range(PLACEMENT_TRIES):
            x = float(rng.uniform(MARGIN - left, 1 - MARGIN - right))
            y = float(rng.uniform(MARGIN - top, 1 - MARGIN - bottom))
            obj = FreeObject(shape, colour, x, y, radius, rotation)
            if any(other.colour == colour and _apart(obj, other) < SAME_COLOUR_GAP for other in placed.values()):
                continue
            mask = _raster(obj)
            trial = np.where(mask, len(masks), owner)
            if all(_in_view(trial == k, below) for k, below in enumerate(masks) if (below & mask).any()):
                placed[index], owner = obj, trial
                masks.append(mask)
                break
    return placed, masks, owner


def _apart(a: FreeObject, b: FreeObject) -> float:
    """The distance between the circumscribed circles of two objects, in canvas sides."""
    reach = [obj.radius * float(np.linalg.norm(unit_polygon(obj.shape), axis=1).max()) for obj in (a, b)]
    return math.hypot(a.x - b.x, a.y - b.y) - sum(reach)


def _in_view(shown: np.ndarray, full: np.ndarray) -> bool:
    """Whether an object whose full raster mask is ``full`` ``(RASTER, RASTER)`` and whose
    uncovered part is ``shown`` keeps enough of itself in view, in one piece."""
    from scipy import ndimage  # here, not at plugin load: scipy is slow to import

    if np.count_nonzero(shown) < MIN_VISIBLE * np.count_nonzero(full):
        return False
    return ndimage.label(shown)[1] == 1


def _raster(obj: FreeObject) -> np.ndarray:
    """``(RASTER, RASTER)`` bool: the raster pixels the object covers."""
    canvas = Image.new("1", (RASTER, RASTER), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in obj.polygon(RASTER) - 0.5], fill=1)
    return np.asarray(canvas)


def _fill(draw: ImageDraw.ImageDraw, obj: FreeObject, canvas: int, fill: Any) -> None:
    """Fill ``obj`` on a ``canvas`` x ``canvas`` PIL drawing (canvas = image size x SUPERSAMPLE)."""
    if obj.shape == "circle":
        r = obj.radius * canvas
        x, y = obj.x * canvas - 0.5, obj.y * canvas - 0.5  # PIL puts integers on pixel centres
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    else:
        draw.polygon([tuple(p) for p in obj.polygon(canvas) - 0.5], fill=fill)


def render_free(scene: FreeScene, size: int) -> np.ndarray:
    """The scene at ``size`` x ``size``: ``(size, size, 3)`` uint8 RGB, objects on the grid
    layout's light grey, anti-aliased by drawing ``SUPERSAMPLE`` times larger."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene:
        _fill(draw, obj, big, COLOURS[obj.colour])
    return np.asarray(image.resize((size, size), Image.BOX))


def free_coverage(obj: FreeObject, size: int) -> np.ndarray:
    """The fraction of each pixel ``obj`` covers, hidden or not: ``(size, size)`` float32 in [0, 1]."""
    big = size * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    _fill(ImageDraw.Draw(canvas), obj, big, 255)
    return np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32) / 255.0

