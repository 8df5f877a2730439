"""The shapes evaluator: does an image show what its shapes caption says?

It is how generators are scored on the shapes world, GenEval-style: object count, colour,
shape, size, position, and whether attributes are bound to the right objects.

How objects are found (``ShapesEvaluator.detect``):

1. Colour unmixing. The background is estimated as the image's median colour (objects
   cover well under half of any scene). An anti-aliased or blurred edge pixel is a mix
   ``background + alpha * (colour - background)``, so for every palette colour the pixel
   is projected on the line from the background to that colour: the nearest line gives
   the pixel's colour class, the projection its coverage ``alpha``. A brighter or darker
   version of a colour stays on its line, which makes the classes robust to shading.
2. Segmentation. Colour classes are smoothed by a 3x3 vote (noise flips single pixels),
   pixels with ``alpha >= 0.5`` are foreground, and connected components per colour class
   are the objects. A small component touching a much larger one is a patch of it read as
   a neighbouring colour (off-palette shading) and joins it; components far smaller than
   the smallest object the renderer draws are specks and are dropped.
3. Measurement. The soft coverage ``alpha`` of an object sums to its area and has its
   centre of mass even after blur. Each shape is fitted with that area and centre of mass,
   and the shape whose template overlaps the object best (soft intersection over union)
   wins. The fitted half-extent gives the size class, the fitted centre the grid cell.

``ShapesEvaluator(layout="free")`` reads free.py's turned, overlapping objects: a touching
component is a neighbour, not a fragment; templates turn and may go on under neighbours (freefit.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from toolkit.errors import ImageInputError, InvalidRequestError

from .free import RADIUS
from .freefit import drop_slivers, fit_shapes, neighbours_of
from .render import BACKGROUND, HALF_EXTENT, SIZE_JITTER, SIZE_THRESHOLD, coverage, unit_geometry
from .scene import COLOURS, SHAPES, ShapeObject, parse_caption, position_name

ATTRIBUTES = ("shape", "colour", "size", "position")
_NAMES = list(COLOURS)
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)  # (colours, 3)
FOREGROUND_ALPHA = 0.5  # a pixel at least half covered by an object belongs to it
# Objects smaller than this fraction of the smallest object the renderer draws are specks.
MIN_OBJECT_FRACTION = 0.3
# A component touching one at least three times its size is a fragment of that object.
FRAGMENT_FRACTION = 1 / 3
# Blurs (Gaussian sigma in pixels at 64x64) the shape templates are also compared at, since
# generated images are rarely as sharp as the renders.
TEMPLATE_BLURS = (0.0, 0.6, 1.0, 1.5)


@dataclass
class DetectedObject:
    """One object found in an image, with the attributes read from it."""

    shape: str
    colour: str
    size: str
    position: tuple[int, int]  # (row, col) in the 3x3 grid
    area: float  # in pixels (soft: partly covered pixels count in part)
    centre: tuple[float, float]  # (x, y) of the fitted shape's centre, in pixels
    radius: float  # the fitted half-extent, in pixels
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right) of the foreground pixels, bottom/right exclusive
    shape_scores: dict[str, float] = field(default_factory=dict)  # template overlap per shape, best = shape
    rotation: float = 0.0  # degrees clockwise from the shape's upright pose (read in the free layout only)

    @property
    def position_name(self) -> str:
        return position_name(self.position)

    def as_object(self) -> ShapeObject:
        return ShapeObject(self.shape, self.colour, self.size, self.position)

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "position": self.position_name,
                "area": round(self.area, 1)}


@dataclass
class EvalResult:
    """How an image matches a caption.

    ``shape``/``colour``/``size``/``position``: whether the image has, for every caption
    object that states the attribute, a distinct detected object with that value (so a red
    circle and a blue square drawn as a blue circle and a red square pass both shape and
    colour). None when no caption object states it.
    ``count``: exactly as many objects as the caption names.
    ``binding``: for captions of two or more objects, whether one assignment of caption
    objects to distinct detected objects gets every stated attribute right; None for one.
    ``all_correct``: every stated attribute right on the same object, and the right count.
    ``assignment[i]``: the index in ``detected`` of caption object ``i`` under the best
    joint assignment, or None where there are too few detected objects.
    """

    shape: bool | None
    colour: bool | None
    size: bool | None
    position: bool | None
    count: bool
    binding: bool | None
    all_correct: bool
    expected: list[ShapeObject] = field(default_factory=list)
    detected: list[DetectedObject] = field(default_factory=list)
    assignment: list[int | None] = field(default_factory=list)

    def scores(self) -> dict[str, bool]:
        """The checks that were scored (not None), by name: shape, colour, size, position,
        count, binding, all_correct."""
        checks = {"shape": self.shape, "colour": self.colour, "size": self.size, "position": self.position,
                  "count": self.count, "binding": self.binding, "all_correct": self.all_correct}
        return {name: value for name, value in checks.items() if value is not None}


def to_rgb_array(image: Any) -> np.ndarray:
    """A PIL image, an ``(H, W, 3)`` uint8 array, or a ``(3, H, W)`` float tensor in [-1, 1]
    -> an ``(H, W, 3)`` float32 array of 0-255 RGB values."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ImageInputError(
                f"the evaluator takes a (3, H, W) image tensor in [-1, 1], not shape {tuple(image.shape)}")
        # numpy from here on: torch's per-op overhead dominates on images this small.
        pixels = image.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
        return (np.clip(pixels, -1.0, 1.0) + 1.0) * 127.5
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ImageInputError(
            f"the evaluator takes an (H, W, 3) uint8 array, not {array.dtype} of shape {array.shape}; "
            "pass a PIL image or a (3, H, W) tensor in [-1, 1] otherwise")
    return array.astype(np.float32)


class ShapesEvaluator:
    """Scores images against shapes captions, at any image size (objects are measured
    relative to the image). ``layout="free"`` also reads turned and overlapping objects."""

    def __init__(self, layout: str = "grid"):
        if layout not in ("grid", "free"):
            raise InvalidRequestError(f"the shapes evaluator reads layout grid or free, not '{layout}'")
        self.layout = layout

    def detect(self, image: Any) -> list[DetectedObject]:
        """The objects in an image, top to bottom then left to right.

        image: a PIL image, an ``(H, W, 3)`` uint8 array, or a ``(3, H, W)`` float tensor
        in [-1, 1].
        """
        pixels = to_rgb_array(image)  # (H, W, 3)
        height, width, _ = pixels.shape
        if min(height, width) < 8:
            raise ImageInputError(f"the image is too small to evaluate: {width}x{height}")
        alphas, classes = _unmix(pixels)  # (H, W, colours), (H, W)
        own_alpha = np.take_along_axis(alphas, classes[..., None], axis=2)[..., 0]  # (H, W)
        foreground = own_alpha >= FOREGROUND_ALPHA
        cell = min(height, width) / 3
        smallest_radius = RADIUS["small"][0] * 3 * cell if self.layout == "free" else \
            HALF_EXTENT["small"] * (1 - SIZE_JITTER) * cell
        min_area = MIN_OBJECT_FRACTION * (min(unit_geometry(s)[0] for s in SHAPES) * smallest_radius**2)

        # Components never cross colour classes, so two touching objects of different colours stay two.
        labels = np.zeros((height, width), np.int32)
        colour_of: list[int] = []  # colour index of each component, by label - 1
        for k in range(len(_NAMES)):
            found, count = ndimage.label(foreground & (classes == k))  # 4-connected: diagonal neighbours stay apart
            labels[found > 0] = found[found > 0] + len(colour_of)
            colour_of += [k] * count
        labels = _absorb_fragments(labels) if self.layout == "grid" else drop_slivers(labels, min_area)

        objects = []
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None or np.count_nonzero(labels[box] == index) < min_area / 2:
                continue  # a speck; the exact test on the soft area below would drop it too, more slowly
            # Work in a window around the object, with room for the widest template of its area.
            margin = 3 + math.ceil(math.sqrt(2 * np.count_nonzero(labels[box] == index)))
            y0, x0 = max(box[0].start - margin, 0), max(box[1].start - margin, 0)
            window = (slice(y0, min(box[0].stop + margin, height)), slice(x0, min(box[1].stop + margin, width)))
            # Fill holes: a noisy pixel inside an object must not punch through its silhouette.
            mask = ndimage.binary_fill_holes(labels[window] == index)
            # The soft edge lies just outside the foreground pixels; take it, but not other objects.
            region = ndimage.binary_dilation(mask, iterations=2) & ~((labels[window] > 0) & ~mask)
            k = colour_of[index - 1]
            soft = np.where(region, np.clip(alphas[window][..., k], 0.0, 1.0), 0.0)  # (h, w) of the window
            if soft.sum() < min_area:
                continue
            objects.append(_measure(soft, mask, (y0, x0), _NAMES[k], cell, height, width) if self.layout == "grid" else
                           _measure_free(soft, mask, neighbours_of(labels[window], index), (y0, x0), _NAMES[k], cell,
                                         height, width))
        return sorted(objects, key=lambda o: (o.position, o.centre[1], o.centre[0]))

    def evaluate(self, image: Any, caption: str | Sequence[ShapeObject]) -> EvalResult:
        """Score an image against a caption (text, or the objects it names).

        image: a PIL image, an ``(H, W, 3)`` uint8 array, or a ``(3, H, W)`` float tensor
        in [-1, 1]. Attributes the caption leaves unsaid are not scored.
        """
        expected = parse_caption(caption) if isinstance(caption, str) else list(caption)
        detected = self.detect(image)
        per_attribute: dict[str, bool | None] = {}
        for attribute in ATTRIBUTES:
            stated = [obj for obj in expected if getattr(obj, attribute) is not None]
            total, _ = _best_assignment(_agreement(stated, detected, (attribute,)))
            per_attribute[attribute] = total == len(stated) if stated else None
        # Joint assignment: the one that gets the most stated attributes right on the same objects.
        total, assignment = _best_assignment(_agreement(expected, detected, ATTRIBUTES))
        stated_total = sum(getattr(obj, a) is not None for obj in expected for a in ATTRIBUTES)
        joint = total == stated_total and None not in assignment
        count = len(detected) == len(expected)
        return EvalResult(**per_attribute, count=count, binding=joint if len(expected) > 1 else None,
                          all_correct=joint and count, expected=expected, detected=detected, assignment=assignment)


def _unmix(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` float RGB -> per palette colour the coverage ``alpha`` ``(H, W, colours)``
    and the smoothed colour class of each pixel ``(H, W)`` int."""
    flat = pixels.reshape(-1, 3)
    background = np.median(flat, axis=0)
    # A generated image whose background is itself saturated has no neutral reference: fall back.
    if np.ptp(background) > 40:
        background = np.array(BACKGROUND, np.float32)
    offsets = _PALETTE - background  # (colours, 3): from the background towards each colour
    diff = pixels - background  # (H, W, 3)
    alphas = diff @ offsets.T / (offsets**2).sum(axis=1)  # (H, W, colours)
    # Squared distance of the pixel from each background-to-colour line (the mix line).
    off_line = (diff**2).sum(axis=2, keepdims=True) - alphas**2 * (offsets**2).sum(axis=1)
    off_line = np.where(alphas > 0, off_line, np.inf)  # moving away from a colour is not that colour
    classes = off_line.argmin(axis=2)
    # Majority vote over 3x3, weighted by coverage, so single noisy pixels take their neighbours' class.
    votes = np.zeros_like(alphas)
    np.put_along_axis(votes, classes[..., None], np.clip(np.take_along_axis(alphas, classes[..., None], 2), 0, 1), 2)
    votes = ndimage.uniform_filter(votes, size=(3, 3, 1), mode="nearest")
    return alphas, votes.argmax(axis=2)


def _absorb_fragments(labels: np.ndarray) -> np.ndarray:
    """Merge each component into a touching one at least ``1 / FRAGMENT_FRACTION`` times its
    size: a shaded or off-palette object can have a rim or patch read as a neighbouring
    colour, which is part of it, not a second object. ``labels``: ``(H, W)`` int, 0 = none."""
    sizes = np.bincount(labels.ravel())
    boxes = ndimage.find_objects(labels)
    for index in np.argsort(sizes[1:], kind="stable") + 1:  # smallest first, so chains fold into the largest
        if boxes[index - 1] is None or sizes[index] == 0:
            continue
        rows, cols = boxes[index - 1]
        window = (slice(max(rows.start - 1, 0), rows.stop + 1), slice(max(cols.start - 1, 0), cols.stop + 1))
        own = labels[window] == index
        touching = labels[window][ndimage.binary_dilation(own, structure=np.ones((3, 3), bool)) & ~own]
        touching = touching[touching > 0]
        if touching.size == 0:
            continue
        neighbour = max(np.unique(touching), key=lambda n: sizes[n])
        if sizes[index] < FRAGMENT_FRACTION * sizes[neighbour]:
            labels[labels == index] = neighbour
            sizes[neighbour] += sizes[index]
            sizes[index] = 0
    return labels


def _measure_free(soft: np.ndarray, mask: np.ndarray, hidden: np.ndarray, origin: tuple[int, int], colour: str,
                  cell: float, height: int, width: int) -> DetectedObject:
    """Like ``_measure``, for the free layout: ``hidden`` ``(h, w)`` bool marks the window's
    pixels other objects cover, where this one may go on underneath (freefit.py)."""
    (y0, x0), (rows, cols) = origin, np.nonzero(mask)
    fits = fit_shapes(soft, hidden, tuple(sigma * 3 * cell / 64 for sigma in TEMPLATE_BLURS))  # blurs are at 64x64
    best = max(fits.values(), key=lambda f: f.overlap)
    cx, cy = best.cx + x0, best.cy + y0  # window -> image coordinates
    return DetectedObject(
        shape=best.shape, colour=colour, size="large" if best.radius / cell > SIZE_THRESHOLD else "small",
        position=(min(max(int(cy / (height / 3)), 0), 2), min(max(int(cx / (width / 3)), 0), 2)),
        area=float(soft.sum()), centre=(cx, cy), radius=best.radius,
        bbox=(int(y0 + rows.min()), int(x0 + cols.min()), int(y0 + rows.max() + 1), int(x0 + cols.max() + 1)),
        shape_scores={shape: round(fit.overlap, 4) for shape, fit in fits.items()}, rotation=best.rotation)


def _measure(soft: np.ndarray, mask: np.ndarray, origin: tuple[int, int], colour: str, cell: float,
             height: int, width: int) -> DetectedObject:
    """Read shape, size and position from an object's soft coverage ``(h, w)`` in [0, 1]
    and foreground pixels ``(h, w)`` bool, both in a window of the ``(height, width)`` image
    whose top left pixel is ``origin`` = (row, column)."""
    y0, x0 = origin
    area = float(soft.sum())
    ys, xs = np.mgrid[0:soft.shape[0], 0:soft.shape[1]]
    mass_x = float((soft * (xs + 0.5)).sum() / area)  # +0.5: pixel centres, in corner coordinates
    mass_y = float((soft * (ys + 0.5)).sum() / area)
    rows, cols = np.nonzero(mask)
    top, left, bottom, right = y0 + rows.min(), x0 + cols.min(), y0 + rows.max() + 1, x0 + cols.max() + 1
    scale = 3 * cell / 64  # blurs are given at 64x64
    fits = {}
    for shape in SHAPES:
        unit_area, dx, dy = unit_geometry(shape)
        radius = math.sqrt(area / unit_area)
        cx, cy = mass_x - dx * radius, mass_y - dy * radius  # centre such that the centres of mass coincide
        template = coverage(shape, cx, cy, radius, *soft.shape)
        # Blur rounds corners and eats a small star's points: compare with equally blurred templates too.
        overlap = max(_overlap(soft, ndimage.gaussian_filter(template, sigma * scale) if sigma else template)
                      for sigma in TEMPLATE_BLURS)
        fits[shape] = (overlap, cx, cy, radius)
    shape = max(fits, key=lambda s: fits[s][0])
    _, cx, cy, radius = fits[shape]
    cx, cy = cx + x0, cy + y0  # window -> image coordinates
    position = (min(max(int(cy / (height / 3)), 0), 2), min(max(int(cx / (width / 3)), 0), 2))
    return DetectedObject(
        shape=shape,
        colour=colour,
        size="large" if radius / cell > SIZE_THRESHOLD else "small",
        position=position,
        area=area,
        centre=(cx, cy),
        radius=radius,
        bbox=(int(top), int(left), int(bottom), int(right)),
        shape_scores={s: round(fit[0], 4) for s, fit in fits.items()},
    )


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Soft intersection over union of two coverage maps of the same shape, in [0, 1]."""
    return float(np.minimum(a, b).sum() / max(np.maximum(a, b).sum(), 1e-6))


def _agreement(expected: Sequence[ShapeObject], detected: Sequence[DetectedObject],
               attributes: Sequence[str]) -> np.ndarray:
    """``(len(expected), len(detected))`` float: how many of the given attributes that a
    caption object states each detected object has right."""
    table = np.zeros((len(expected), len(detected)))
    for i, obj in enumerate(expected):
        for j, det in enumerate(detected):
            table[i, j] = sum(getattr(obj, a) is not None and getattr(obj, a) == getattr(det, a) for a in attributes)
    return table


def _best_assignment(agreement: np.ndarray) -> tuple[float, list[int | None]]:
    """Assign rows (caption objects) to distinct columns (detected objects) maximising the
    summed ``agreement`` ``(rows, columns)``. Returns the total and each row's column, None
    for rows left without one (fewer columns than rows)."""
    rows, columns = linear_sum_assignment(agreement, maximize=True)
    chosen: list[int | None] = [None] * agreement.shape[0]
    for row, column in zip(rows, columns):
        chosen[row] = int(column)
    return float(agreement[rows, columns].sum()), chosen
