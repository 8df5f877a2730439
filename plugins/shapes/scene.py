"""The shapes world: its vocabulary, scenes of one or two objects, and their captions.

A scene is a few ``ShapeObject``s, each in its own cell of a 3x3 grid. ``caption`` writes
it in plain English; ``parse_caption`` reads such a caption back (the evaluator uses it to
know what an image should show).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.errors import InvalidRequestError

# Saturated, well separated hues on a light grey background, so colour alone finds objects.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 15),
    "yellow": (230, 200, 0),
    "green": (30, 160, 50),
    "cyan": (0, 180, 200),
    "blue": (35, 70, 215),
    "purple": (140, 50, 190),
}
SHAPES = ("circle", "square", "triangle", "diamond", "star")
SIZES = ("small", "large")
# (row, col) -> the phrase a caption uses for that cell.
POSITIONS: dict[tuple[int, int], str] = {
    (0, 0): "in the top left", (0, 1): "at the top", (0, 2): "in the top right",
    (1, 0): "on the left", (1, 1): "in the center", (1, 2): "on the right",
    (2, 0): "in the bottom left", (2, 1): "at the bottom", (2, 2): "in the bottom right",
}
POSITION_NAMES = {cell: phrase.split(" ", 2)[-1] for cell, phrase in POSITIONS.items()}  # "top left", "center"


@dataclass(frozen=True)
class ShapeObject:
    """One object. Fields are None only in parsed captions that leave them unsaid."""

    shape: str | None
    colour: str | None
    size: str | None
    position: tuple[int, int] | None  # (row, col) in the 3x3 grid

    def to_json(self) -> dict:
        data = asdict(self)
        data["position"] = POSITION_NAMES[self.position] if self.position is not None else None
        return data


def sample_scene(rng: np.random.Generator, *, max_objects: int = 2,
                 allowed: set[tuple[str, str]] | None = None,
                 required: set[tuple[str, str]] | None = None) -> list[ShapeObject]:
    """One or two objects in distinct cells.

    allowed: (shape, colour) combinations that may appear (None: all).
    required: at least one object must use one of these combinations.
    """
    combos = [(s, c) for s in SHAPES for c in COLOURS]
    pool = [c for c in combos if allowed is None or c in allowed]
    count = int(rng.integers(1, max_objects + 1))
    cells = rng.choice(9, size=count, replace=False)
    chosen = [pool[int(rng.integers(len(pool)))] for _ in range(count)]
    if required:
        needed = sorted(required)
        chosen[int(rng.integers(count))] = needed[int(rng.integers(len(needed)))]
    return [
        ShapeObject(shape, colour, SIZES[int(rng.integers(2))], (int(cell) // 3, int(cell) % 3))
        for (shape, colour), cell in zip(chosen, cells)
    ]


def describe(obj: ShapeObject) -> str:
    words = ["a"] + [w for w in (obj.size, obj.colour, obj.shape or "shape") if w]
    phrase = " ".join(words)
    return f"{phrase} {POSITIONS[obj.position]}" if obj.position is not None else phrase


def caption(scene: list[ShapeObject]) -> str:
    """'a small red circle in the top left and a large blue square at the bottom'."""
    return " and ".join(describe(obj) for obj in scene)


_PHRASE_TO_CELL = {phrase: cell for cell, phrase in POSITIONS.items()}
_OBJECT = re.compile(
    r"^an? (?:(?P<size>%s) )?(?:(?P<colour>%s) )?(?P<shape>%s|shape)(?: (?P<position>%s))?$"
    % ("|".join(SIZES), "|".join(COLOURS), "|".join(SHAPES), "|".join(re.escape(p) for p in POSITIONS.values()))
)


def parse_caption(text: str) -> list[ShapeObject]:
    """Invert ``caption``; unsaid attributes come back as None ('a red circle')."""
    objects = []
    for part in text.strip().lower().rstrip(".").split(" and "):
        match = _OBJECT.match(part.strip())
        if match is None:
            raise InvalidRequestError(
                f"cannot read '{part.strip()}' as a shapes description; write e.g. 'a small red circle in the top left' "
                f"(sizes: {', '.join(SIZES)}; colours: {', '.join(COLOURS)}; shapes: {', '.join(SHAPES)})"
            )
        shape = match["shape"] if match["shape"] != "shape" else None
        position = _PHRASE_TO_CELL[match["position"]] if match["position"] else None
        objects.append(ShapeObject(shape, match["colour"], match["size"], position))
    return objects
