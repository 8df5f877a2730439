"""The shapes evaluator: does an image show what its caption says?

It finds the coloured objects on the grey background, measures each one (colour, shape,
size, grid cell), matches them to the caption's objects, and reports per attribute. It is
how generators are scored on shapes (GenEval-style: counting, colours, position, binding).

Shape is read from three scale-free measurements of the object's silhouette:

* extent = area / bounding-box area: square ~1, circle ~0.79, triangle and diamond ~0.5;
* solidity = area / convex-hull area: a star's points make it ~0.6, the others ~1;
* weight = height of the centre of mass within the box, from the top: a triangle (point up)
  ~0.67, a diamond ~0.5.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from skimage.measure import label, regionprops

from .scene import COLOURS, POSITION_NAMES, ShapeObject, parse_caption

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)  # (colours, 3)
_NAMES = list(COLOURS)
MIN_SATURATION = 70  # max(rgb) - min(rgb): the background is grey (0), every palette colour > 150
MIN_AREA_FRACTION = 0.0015  # smaller blobs are noise (about 6 pixels at 64x64)
ATTRIBUTES = ("shape", "colour", "size", "position")


@dataclass
class Detected:
    shape: str
    colour: str
    size: str
    position: tuple[int, int]
    area: int
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right)

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size,
                "position": POSITION_NAMES[self.position], "area": self.area}


@dataclass
class EvalResult:
    """Per attribute: True/False, or None when the caption does not say."""

    shape: bool | None
    colour: bool | None
    size: bool | None
    position: bool | None
    count: bool
    binding: bool  # every said attribute of every object right, on the same object
    all_correct: bool  # binding and the right number of objects
    expected: list[ShapeObject] = field(default_factory=list)
    detected: list[Detected] = field(default_factory=list)

    def scores(self) -> dict[str, bool]:
        """The attributes that were scored, by name."""
        named = {"shape": self.shape, "colour": self.colour, "size": self.size, "position": self.position,
                 "count": self.count}
        return {k: v for k, v in named.items() if v is not None}


def to_uint8(image: Any) -> np.ndarray:
    """PIL image, ``(H, W, 3)`` uint8 array or ``(3, H, W)`` float tensor in [-1, 1] ->
    ``(H, W, 3)`` uint8 array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got {tuple(image.shape)}")
        return ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got {array.shape}")
    return array.astype(np.uint8)


def _shape_of(mask: np.ndarray, solidity: float) -> str:
    """Classify a cropped boolean silhouette ``(h, w)``."""
    h, w = mask.shape
    extent = mask.sum() / (h * w)
    if solidity < 0.8:
        return "star"
    if extent > 0.9:
        return "square"
    if extent > 0.66:
        return "circle"
    rows = np.nonzero(mask)[0]
    weight = (rows.mean() + 0.5) / h
    return "triangle" if weight > 0.58 else "diamond"


class ShapesEvaluator:
    """Scores images against shapes captions; stateless, so one instance serves all."""

    def detect(self, image: Any) -> list[Detected]:
        """The objects in an image, largest first."""
        pixels = to_uint8(image).astype(np.float32)  # (H, W, 3)
        height, width, _ = pixels.shape
        saturated = pixels.max(axis=2) - pixels.min(axis=2) > MIN_SATURATION
        # Nearest palette colour by hue direction: blur and lighting change brightness more than hue.
        centred = pixels - pixels.mean(axis=2, keepdims=True)
        palette = _PALETTE - _PALETTE.mean(axis=1, keepdims=True)
        similarity = (centred @ palette.T) / (np.linalg.norm(centred, axis=2, keepdims=True) * np.linalg.norm(palette, axis=1) + 1e-6)
        nearest = similarity.argmax(axis=2)  # (H, W)
        objects = []
        for region in regionprops(label(saturated, connectivity=2)):
            if region.area < MIN_AREA_FRACTION * height * width:
                continue
            top, left, bottom, right = region.bbox
            colours = np.bincount(nearest[region.coords[:, 0], region.coords[:, 1]], minlength=len(_NAMES))
            cy, cx = region.centroid
            shape = _shape_of(region.image, region.solidity)
            # A star's points reach less far than the corners of the other shapes.
            extent = max(bottom - top, right - left) / min(height, width) / (0.93 if shape == "star" else 1.0)
            objects.append(Detected(
                shape=shape,
                colour=_NAMES[int(colours.argmax())],
                size="large" if extent > 0.23 else "small",
                position=(min(int(cy * 3 / height), 2), min(int(cx * 3 / width), 2)),
                area=int(region.area),
                bbox=(top, left, bottom, right),
            ))
        return sorted(objects, key=lambda o: -o.area)

    def evaluate(self, image: Any, caption: str | list[ShapeObject]) -> EvalResult:
        expected = parse_caption(caption) if isinstance(caption, str) else caption
        detected = self.detect(image)
        best: tuple[int, list[tuple[ShapeObject, Detected | None]]] | None = None
        # Try every way of matching caption objects to detected ones; keep the one that agrees most.
        padded = detected + [None] * len(expected)
        for chosen in itertools.permutations(range(len(padded)), len(expected)):
            pairs = [(exp, padded[i]) for exp, i in zip(expected, chosen)]
            score = sum(_matches(exp, det, a) for exp, det in pairs for a in ATTRIBUTES if getattr(exp, a) is not None)
            if best is None or score > best[0]:
                best = (score, pairs)
        assert best is not None
        pairs = best[1]
        per_attribute: dict[str, bool | None] = {}
        for attribute in ATTRIBUTES:
            said = [(exp, det) for exp, det in pairs if getattr(exp, attribute) is not None]
            per_attribute[attribute] = all(_matches(exp, det, attribute) for exp, det in said) if said else None
        binding = all(v is not False for v in per_attribute.values()) and all(det is not None for _, det in pairs)
        count = len(detected) == len(expected)
        return EvalResult(**per_attribute, count=count, binding=binding, all_correct=binding and count,
                          expected=expected, detected=detected)


def _matches(expected: ShapeObject, detected: Detected | None, attribute: str) -> bool:
    return detected is not None and getattr(expected, attribute) == getattr(detected, attribute)
