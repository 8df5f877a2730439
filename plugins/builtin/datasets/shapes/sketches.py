"""Sketches of free-layout scenes, clean or drawn the way people draw.

``draw_sketch(scene, size)`` traces every object's outline in even lines ``CLEAN_WIDTH``
wide, erasing the parts hidden under later objects as the image hides them. Given an
``rng``, each sketch varies the way hand drawings do:

* stroke width: one pen per sketch, ``WIDTH`` px at 64x64 (scaled with the image);
* wobble: each outline is shifted by a smooth offset that changes slowly along it (a few
  whole waves per loop, so a closed loop still meets itself), more for a shakier hand;
* overshoot: at some corners the line runs on past the corner and the next side starts anew;
* gaps: a few short pieces of line are missing;
* open shapes: some outlines stop short of where they began, and drift off to one side;
* left out: some sketches of several objects draw only some of them;
* see-through: some sketches also draw the parts of objects hidden under later ones.

Lengths are in pixels at 64x64 (they scale with the image) or shares of the object's radius.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .free import FreeObject, FreeScene
from .render import SUPERSAMPLE

CLEAN_WIDTH = 2.0  # the even pen of clean sketches, within the range hands use
WIDTH = (1.0, 4.0)  # one pen per sketch, uniform in this range
WOBBLE = (0.05, 0.4)  # the shakiest hand's offset: this share of the radius plus these pixels
WOBBLE_WAVES = (2, 4)  # waves per loop, low enough to bend sides rather than roughen them
OVERSHOOT_CHANCE = 0.3  # per corner
OVERSHOOT = (0.1, 0.35)  # as a share of the radius
GAPS = 2  # at most this many per object
GAP = (1.5, 4.0)  # each gap's length
OPEN_CHANCE = 0.3  # per object
OPEN = (0.03, 0.12)  # how much of the loop is left undrawn, as a share of its length
OPEN_DRIFT = (0.05, 0.25)  # how far the loop's end lands from its start, as a share of the radius
LEFT_OUT_CHANCE = 0.15  # per sketch of two or more objects
SEE_THROUGH_CHANCE = 0.2  # per sketch
STEP = 1.0  # spacing of the points a stroke is drawn through
SHARP_TURN = math.radians(20)  # a line turning more than this at a point gets a round joint
INK_GAIN = 1.6  # as in render.py: a line thinner than a pixel still reads as ink


def draw_sketch(scene: FreeScene, size: int, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, list[bool]]:
    """The scene's outlines at ``size`` x ``size``: ``(size, size)`` float32 in [0, 1],
    1 = stroke, and for each object whether the sketch draws it. ``rng`` None draws the
    clean sketch (every object, even lines, hidden parts erased); otherwise the sketch varies
    as the module docstring says, deterministically from ``rng``."""
    scale = size / 64
    drawn = [True] * len(scene)
    see_through, shaky = False, 0.0
    width = CLEAN_WIDTH * scale
    if rng is not None:
        width = rng.uniform(*WIDTH) * scale
        shaky = rng.random()
        see_through = rng.random() < SEE_THROUGH_CHANCE
        if len(scene) > 1 and rng.random() < LEFT_OUT_CHANCE:
            keep = rng.choice(len(scene), size=int(rng.integers(1, len(scene))), replace=False)
            drawn = [k in keep for k in range(len(scene))]
    big = size * SUPERSAMPLE
    paper = Image.new("L", (big, big), 255)
    pen = ImageDraw.Draw(paper)
    pen_width = max(1, round(max(width, 1.0) * SUPERSAMPLE))  # under a pixel, a line fades to grey
    for obj, shown in zip(scene, drawn):
        if not shown:
            continue
        if not see_through:  # erase what this object hides, as the image does
            pen.polygon([tuple(p) for p in obj.polygon(big) - 0.5], fill=255)
        strokes = [_outline(obj, size)[0]] if rng is None else _hand_drawn(obj, size, scale, shaky, rng)
        for stroke in strokes:
            _draw_stroke(pen, stroke * SUPERSAMPLE - 0.5, pen_width)
    ink = 1.0 - np.asarray(paper.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    return np.clip(ink * INK_GAIN, 0.0, 1.0), drawn


def _loop(obj: FreeObject, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The closed outline in pixels ``(vertices + 1, 2)``, first vertex repeated at the end,
    and each vertex's distance along it ``(vertices + 1,)``: the last is the perimeter."""
    corners = obj.polygon(size)
    loop = np.vstack([corners, corners[:1]])
    return loop, np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(loop, axis=0), axis=1))])


def _outline(obj: FreeObject, size: int, start: float = 0.0, length: float | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points along the object's outline in pixels: from arc length ``start`` for ``length``
    (the whole loop by default, ending where it began), every ``STEP`` or closer, with every
    corner on the way. Returns points ``(n, 2)``, their distance along the path ``(n,)``
    and the indices of the corners among the points."""
    loop, along = _loop(obj, size)
    perimeter = float(along[-1])
    length = perimeter if length is None else length
    distance = np.linspace(0.0, length, max(2, math.ceil(length / (STEP * size / 64)) + 1))
    # Corners on the path, in path distance, over every lap the path might make of the loop.
    corner_at = ((along[:-1] - start) % perimeter)[None] + perimeter * np.arange(2)[:, None]
    corner_at = corner_at[(corner_at > 0) & (corner_at < length)] if obj.shape != "circle" else np.empty(0)
    distance = np.union1d(distance, corner_at)
    t = (start + distance) % perimeter
    points = np.stack([np.interp(t, along, loop[:, 0]), np.interp(t, along, loop[:, 1])], axis=1)
    return points, distance, np.searchsorted(distance, corner_at)


def _hand_drawn(obj: FreeObject, size: int, scale: float, shaky: float, rng: np.random.Generator
                ) -> list[np.ndarray]:
    """The object's outline as a hand would draw it: a list of strokes ``(n, 2)`` in pixels."""
    perimeter = float(_loop(obj, size)[1][-1])
    start = rng.uniform(0.0, perimeter)
    length = perimeter
    drift = np.zeros(2)
    if rng.random() < OPEN_CHANCE:
        length *= 1.0 - rng.uniform(*OPEN)
        angle = rng.uniform(0.0, 2 * math.pi)
        drift = rng.uniform(*OPEN_DRIFT) * obj.radius * size * np.array([math.cos(angle), math.sin(angle)])
    points, distance, corners = _outline(obj, size, start, length)

    # Wobble: a few sine waves of whole numbers per loop, in x and in y, summed.
    amplitude = shaky * (WOBBLE[0] * obj.radius * size + WOBBLE[1] * scale)
    waves = rng.integers(WOBBLE_WAVES[0], WOBBLE_WAVES[1] + 1, size=(3, 1))
    phases = rng.uniform(0.0, 2 * math.pi, size=(3, 2))
    weights = rng.dirichlet(np.ones(3))[:, None] * amplitude
    angle = 2 * math.pi * (start + distance) / perimeter  # (n,)
    offset = (weights[:, None] * np.sin(waves[:, None] * angle[None, :, None] + phases[:, None])).sum(axis=0)
    points = points + offset + drift * (distance / length)[:, None]

    # Cut the path at overshooting corners and at gaps; a stroke starts at a kept corner anew.
    breaks = [int(i) for i in corners if rng.random() < OVERSHOOT_CHANCE]
    keep = np.ones(len(points), bool)
    for _ in range(int(rng.integers(0, GAPS + 1))):
        middle, half = rng.uniform(0.0, length), rng.uniform(*GAP) * scale / 2
        keep &= np.abs(distance - middle) > half
    strokes = []
    for piece in np.split(np.arange(len(points)), [i + 1 for i in breaks]):
        if piece.size and piece[0] - 1 in breaks:
            piece = np.concatenate([[piece[0] - 1], piece])  # the next side starts at the corner
        for run in _runs(piece[keep[piece]]):
            stroke = points[run]
            if run[-1] in breaks and len(run) > 1:
                stroke = _extend(stroke, rng.uniform(*OVERSHOOT) * obj.radius * size)
            if len(stroke) > 1:
                strokes.append(stroke)
    return strokes


def _runs(indices: np.ndarray) -> list[np.ndarray]:
    """Sorted indices -> their runs of consecutive values."""
    return [run for run in np.split(indices, np.nonzero(np.diff(indices) != 1)[0] + 1) if run.size]


def _extend(stroke: np.ndarray, by: float) -> np.ndarray:
    """The stroke ``(n, 2)`` run on straight past its end by ``by`` pixels."""
    heading = stroke[-1] - stroke[max(len(stroke) - 3, 0)]
    norm = float(np.linalg.norm(heading))
    if norm == 0:
        return stroke
    return np.vstack([stroke, stroke[-1] + heading / norm * by])


def _draw_stroke(pen: ImageDraw.ImageDraw, points: np.ndarray, width: int) -> None:
    """A polyline ``(n, 2)`` in PIL pixel coordinates, with round ends and round joints where
    it turns sharply (PIL's own round joints cost a Python loop over every point)."""
    pen.line([tuple(p) for p in points], fill=0, width=width)
    closed = len(points) > 2 and bool((points[0] == points[-1]).all())
    heading = np.diff(points, axis=0)
    if closed:
        heading = np.vstack([heading, heading[:1]])
    turn = np.arccos(np.clip((_unit(heading[:-1]) * _unit(heading[1:])).sum(axis=1), -1.0, 1.0))
    joints = points[1:len(heading)][turn > SHARP_TURN]
    ends = points[:0] if closed else points[[0, -1]]
    r = width / 2
    for x, y in np.vstack([joints, ends]):
        pen.ellipse((x - r, y - r, x + r, y + r), fill=0)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` vectors scaled to length 1 (zero vectors stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)
