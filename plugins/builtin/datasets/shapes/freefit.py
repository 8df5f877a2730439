"""Reading turned and partly hidden objects: the shapes evaluator's free layout.

A free-layout object (free.py) may be turned and partly hidden under later objects. The
evaluator finds its pixels as in the grid layout, then fits every shape's template to
them, counting only pixels that no other object covers (under a neighbour, the object
may or may not go on):

1. Each turn of the template, in ``TURN_STEP`` steps over its symmetry period (then finer
   around the best), with the radius and centre that give it the object's area and centre
   of mass: the exact answer for an object nothing hides.
2. An object that borders another may be partly hidden, so its area and centre of mass
   understate it. From the best turn, centre, radius and turn are refined together
   (Nelder-Mead) on the same overlap, less a small cost for template area left under the
   neighbours: a whole object then does not swell underneath them. Only shapes that come
   within ``REFINE_MARGIN`` of the best first fit are refined.
3. Square and diamond are one template turned: within 22.5 degrees of upright it reads as
   a square, otherwise as a diamond (the free layout keeps each within 15 degrees).

The shape whose template overlaps best wins; blurred templates are compared too, as in
the grid layout, since generated images are rarely as sharp as renders.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.optimize import minimize

from .free import unit_polygon
from .render import SUPERSAMPLE, unit_geometry

TURN_STEP = 10.0  # degrees between the turns tried first; the best is then refined to a quarter of it
# The templates tried and the turns that give every pose once; the diamond is a turned square.
PERIODS = {"circle": 0.0, "square": 90.0, "triangle": 360.0, "star": 72.0}
HIDDEN_COST = 0.1  # per share of the template left under neighbours
NEIGHBOUR_GROW = 1  # pixels: a neighbour's anti-aliased rim belongs to neither object
REFINE_CALLS = 120  # most template drawings one refinement may use
REFINE_MARGIN = 0.1  # shapes whose first fit overlaps this much less than the best are not refined


@dataclass
class Fit:
    """A shape's best template: centre and radius in pixels of the window, rotation in
    degrees clockwise from the shape's upright pose, and its overlap with the object."""

    shape: str
    cx: float
    cy: float
    radius: float
    rotation: float
    overlap: float


def template(shape: str, cx: float, cy: float, radius: float, rotation: float, height: int, width: int
             ) -> np.ndarray:
    """The share of each pixel of a ``(height, width)`` window the template covers,
    ``(height, width)`` float32 in [0, 1]; centre (cx, cy) in corner coordinates."""
    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        r = radius * SUPERSAMPLE
        x, y = cx * SUPERSAMPLE - 0.5, cy * SUPERSAMPLE - 0.5
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    else:
        points = (unit_polygon(shape, rotation) * radius + (cx, cy)) * SUPERSAMPLE - 0.5
        draw.polygon([tuple(p) for p in points], fill=255)
    return np.asarray(canvas.resize((width, height), Image.BOX), dtype=np.float32) / 255.0


def drop_slivers(labels: np.ndarray, min_area: float) -> np.ndarray:
    """The free layout's clean-up of ``labels`` ``(H, W)`` int, 0 = none. Where two objects
    of different colours meet, the anti-aliased edge mixes their colours and can read as a
    third (red and blue make purple): such a sliver, no thicker than two pixels, is no object
    and is dropped. A component smaller than any object that touches another joins it."""
    sizes = np.bincount(labels.ravel())
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        window = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        own = labels[window] == index
        if not ndimage.binary_erosion(own).any():
            labels[window][own] = 0
        elif sizes[index] < min_area:
            touching = labels[window][ndimage.binary_dilation(own, structure=np.ones((3, 3), bool)) & ~own]
            touching = touching[(touching > 0) & (touching != index)]
            if touching.size:
                labels[window][own] = max(np.unique(touching), key=lambda n: sizes[n])
    return labels


def neighbours_of(labels: np.ndarray, index: int) -> np.ndarray:
    """``(h, w)`` bool: the pixels of a labelled window ``(h, w)`` that other objects than
    ``index`` cover, grown by their anti-aliased rim."""
    others = (labels > 0) & (labels != index)
    return ndimage.binary_dilation(others, iterations=NEIGHBOUR_GROW) if others.any() else others


def fit_shapes(soft: np.ndarray, hidden: np.ndarray, blurs: tuple[float, ...]) -> dict[str, Fit]:
    """Each shape's best template for an object's soft coverage ``soft`` ``(h, w)`` in
    [0, 1], scoring only pixels outside ``hidden`` ``(h, w)`` bool (where neighbours lie);
    ``blurs``: Gaussian sigmas in pixels the templates are also compared at."""
    area, mass_x, mass_y = _moments(soft)
    candidates = []  # the best turn of each shape
    for family, period in PERIODS.items():
        radius = math.sqrt(area / unit_geometry(family)[0])
        # Drawn shapes come out a little larger than their exact area, and a little up and to
        # the left of their centre: correct both by drawing the template once.
        drawn_area, drawn_x, drawn_y = _moments(template(family, mass_x, mass_y, radius, 0.0, *soft.shape))
        radius *= math.sqrt(area / max(drawn_area, 1e-6))
        cx, cy = 2 * mass_x - drawn_x, 2 * mass_y - drawn_y
        pose = functools.partial(_pose, soft, hidden, family, cx, cy, radius)  # turn -> Fit
        tried = [pose(float(t)) for t in (np.arange(-period / 2, period / 2, TURN_STEP) if period else [0.0])]
        # One template, two shapes: a square within 22.5 degrees of upright, a diamond beyond.
        halves = [[f for f in tried if _is_square(f)], [f for f in tried if not _is_square(f)]]
        for group in halves if family == "square" else [tried]:
            best = max(group, key=lambda f: f.overlap)
            candidates.append(_finer_turn(best, pose) if period else best)

    may_be_hidden = bool((hidden & ndimage.binary_dilation(soft > 0, iterations=2)).any())
    leader = max(c.overlap for c in candidates)
    fits: dict[str, Fit] = {}
    for candidate in candidates:
        options = [candidate]
        if candidate.overlap >= leader - REFINE_MARGIN:  # one far behind cannot catch up: spare the work
            options.append(_refine(candidate, soft, hidden) if may_be_hidden else _recentre(candidate, soft, hidden))
        for fit in options:  # a refined square may have turned into a diamond, or back
            named = _as_shape(_name(fit), fit, soft, hidden, blurs)
            if named.shape not in fits or named.overlap > fits[named.shape].overlap:
                fits[named.shape] = named
    return fits


def _pose(soft: np.ndarray, hidden: np.ndarray, shape: str, cx: float, cy: float, radius: float, turn: float
          ) -> Fit:
    """The template so placed, with its ``_score`` against ``soft`` ``(h, w)``."""
    return Fit(shape, cx, cy, radius, turn, _score(soft, hidden, template(shape, cx, cy, radius, turn, *soft.shape)))


def _finer_turn(fit: Fit, pose: Callable[[float], Fit]) -> Fit:
    """The best of ``fit`` and the turns around it at half, then a quarter of ``TURN_STEP``."""
    for step in (TURN_STEP / 2, TURN_STEP / 4):
        fit = max((fit, pose(fit.rotation - step), pose(fit.rotation + step)), key=lambda f: f.overlap)
    return fit


def _moments(coverage: np.ndarray) -> tuple[float, float, float]:
    """The area of a soft coverage ``(h, w)`` and its centre of mass (x, y), in corner coordinates."""
    area = float(coverage.sum())
    if area == 0:
        return 0.0, coverage.shape[1] / 2, coverage.shape[0] / 2
    ys, xs = np.mgrid[0:coverage.shape[0], 0:coverage.shape[1]]
    return area, float((coverage * (xs + 0.5)).sum() / area), float((coverage * (ys + 0.5)).sum() / area)


def _name(fit: Fit) -> str:
    """The shape a template fit shows: its own, but a square template may show a diamond."""
    if fit.shape != "square":
        return fit.shape
    return "square" if _is_square(fit) else "diamond"


def _is_square(fit: Fit) -> bool:
    """Whether a square template turned ``fit.rotation`` degrees reads as a square."""
    return abs((fit.rotation + 45) % 90 - 45) < 22.5


def _score(soft: np.ndarray, hidden: np.ndarray, shape_template: np.ndarray) -> float:
    """Soft intersection over union on the pixels outside ``hidden``, less ``HIDDEN_COST``
    per share of the template under it. All ``(h, w)``."""
    seen = ~hidden
    inter = np.minimum(soft, shape_template)[seen].sum()
    union = np.maximum(soft, shape_template)[seen].sum()
    covered = shape_template.sum()
    under = shape_template[hidden].sum() / covered if covered > 0 else 0.0
    return float(inter / max(union, 1e-6) - HIDDEN_COST * under)


def _recentre(fit: Fit, soft: np.ndarray, hidden: np.ndarray) -> Fit:
    """``fit`` moved so that its drawn template's centre of mass is the object's, if that
    overlaps better (how a drawn shape sits off its centre depends on its turn)."""
    _, mass_x, mass_y = _moments(soft)
    _, drawn_x, drawn_y = _moments(template(fit.shape, fit.cx, fit.cy, fit.radius, fit.rotation, *soft.shape))
    cx, cy = fit.cx + mass_x - drawn_x, fit.cy + mass_y - drawn_y
    overlap = _score(soft, hidden, template(fit.shape, cx, cy, fit.radius, fit.rotation, *soft.shape))
    return Fit(fit.shape, cx, cy, fit.radius, fit.rotation, overlap) if overlap > fit.overlap else fit


def _refine(start: Fit, soft: np.ndarray, hidden: np.ndarray) -> Fit:
    """``start`` with centre, radius and turn (none for a circle) refined together to the
    best ``_score``."""
    turns = bool(PERIODS[start.shape])

    def loss(p: np.ndarray) -> float:
        cx, cy, radius = p[:3]
        if radius <= 0.5:
            return 1.0
        return -_pose(soft, hidden, start.shape, cx, cy, radius, p[3] if turns else 0.0).overlap

    x0 = np.array([start.cx, start.cy, start.radius, start.rotation][:4 if turns else 3])
    steps = np.array([1.0, 1.0, 0.15 * start.radius, TURN_STEP][:len(x0)])
    result = minimize(loss, x0, method="Nelder-Mead", options={
        "initial_simplex": np.vstack([x0, x0 + np.diag(steps)]), "maxfev": REFINE_CALLS, "xatol": 0.05, "fatol": 1e-4})
    if -result.fun <= start.overlap:
        return start
    cx, cy, radius = (float(v) for v in result.x[:3])
    return Fit(start.shape, cx, cy, radius, float(result.x[3]) if turns else 0.0, float(-result.fun))


def _as_shape(shape: str, fit: Fit, soft: np.ndarray, hidden: np.ndarray, blurs: tuple[float, ...]) -> Fit:
    """A template fit named as ``shape`` (a turned square may be a diamond, whose upright
    pose is the square's 45 degrees), scored at its best blur."""
    family = "square" if shape == "diamond" else shape
    exact = template(family, fit.cx, fit.cy, fit.radius, fit.rotation, *soft.shape)
    overlap = max(_score(soft, hidden, ndimage.gaussian_filter(exact, sigma) if sigma else exact) for sigma in blurs)
    rotation = {"diamond": fit.rotation % 90 - 45, "square": (fit.rotation + 45) % 90 - 45}.get(shape, fit.rotation)
    radius = fit.radius * math.sqrt(2) if shape == "diamond" else fit.radius  # a diamond's radius is half its diagonal
    return Fit(shape, fit.cx, fit.cy, radius, rotation, overlap)
