"""The shapes world: its vocabulary, scenes of one or two objects, and their captions.

A scene holds one or two ``ShapeObject``s, each in its own cell of a 3x3 grid.
``caption`` writes a scene in plain English ("a small red circle in the top left and a
large blue square at the bottom"); ``parse_caption`` reads such text back. The parser
also accepts partial descriptions ("a red circle", "a large shape on the left"): what the
text leaves unsaid comes back as ``None``, so the evaluator can score partial prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from toolkit.errors import InvalidRequestError

# Saturated, well separated hues, all far from the neutral background, so that colour
# alone finds the objects and no two classes are confused by blur or a small shift.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (235, 205, 20),
    "green": (40, 165, 60),
    "cyan": (20, 180, 210),
    "blue": (40, 75, 220),
    "purple": (140, 55, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
SIZES: tuple[str, ...] = ("small", "large")
# Cell names in row-major order: POSITIONS[3 * row + col] names cell (row, col).
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
# How a caption places an object in each cell ("a red circle at the top").
POSITION_PHRASES: dict[str, str] = {
    "top left": "in the top left", "top": "at the top", "top right": "in the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left", "bottom": "at the bottom", "bottom right": "in the bottom right",
}
MAX_OBJECTS = 2
# Nouns a partial description may use when it does not name the shape.
GENERIC_NOUNS = ("shape", "object")


def position_name(cell: tuple[int, int]) -> str:
    """(row, col) -> its name, e.g. (0, 2) -> "top right"."""
    row, col = cell
    return POSITIONS[3 * row + col]


def cell_of(name: str) -> tuple[int, int]:
    """A position name -> (row, col), e.g. "bottom" -> (2, 1)."""
    if name not in POSITIONS:
        raise InvalidRequestError(f"unknown position '{name}'; positions are: {', '.join(POSITIONS)}")
    return divmod(POSITIONS.index(name), 3)


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene, or one object a caption asks for.

    Rendered objects have every field set. In a parsed caption a field is None when the
    text does not say it ("a red circle" has no size and no position).
    """

    shape: str | None
    colour: str | None
    size: str | None
    position: tuple[int, int] | None  # (row, col) in the 3x3 grid, row 0 at the top

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.shape, SHAPES, "shape"), (self.colour, COLOURS, "colour"),
                                     (self.size, SIZES, "size")):
            if value is not None and value not in allowed:
                raise InvalidRequestError(f"unknown {what} '{value}'; choose one of: {', '.join(allowed)}")
        if self.position is not None:
            row, col = self.position
            if not (0 <= row < 3 and 0 <= col < 3):
                raise InvalidRequestError(f"position {self.position} is outside the 3x3 grid")
            object.__setattr__(self, "position", (int(row), int(col)))  # numpy ints -> plain, for equality and JSON

    @property
    def is_complete(self) -> bool:
        """Whether every attribute is set (only complete objects can be drawn)."""
        return None not in (self.shape, self.colour, self.size, self.position)

    @property
    def position_name(self) -> str | None:
        return None if self.position is None else position_name(self.position)

    def describe(self) -> str:
        """The object as a caption phrase: 'a small red circle in the top left'."""
        words = [w for w in (self.size, self.colour, self.shape or GENERIC_NOUNS[0]) if w]
        article = "an" if words[0][0] in "aeiou" else "a"  # "an orange star"
        phrase = " ".join([article, *words])
        if self.position is not None:
            phrase += " " + POSITION_PHRASES[position_name(self.position)]
        return phrase

    def to_json(self) -> dict[str, str | None]:
        """{"shape", "colour", "size", "position"} with the position as its name."""
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "position": self.position_name}


@dataclass(frozen=True)
class Scene:
    """One or two fully specified objects, each in a different grid cell."""

    objects: tuple[ShapeObject, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise InvalidRequestError(f"a scene has 1 to {MAX_OBJECTS} objects, not {len(self.objects)}")
        for obj in self.objects:
            if not obj.is_complete:
                raise InvalidRequestError(f"every object of a scene needs shape, colour, size and position: {obj}")
        cells = [obj.position for obj in self.objects]
        if len(set(cells)) != len(cells):
            raise InvalidRequestError(f"two objects of a scene share a grid cell: {cells}")

    def __iter__(self) -> Iterator[ShapeObject]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> ShapeObject:
        return self.objects[index]

    def to_json(self) -> list[dict[str, str | None]]:
        return [obj.to_json() for obj in self.objects]


def all_combinations() -> list[tuple[str, str]]:
    """Every (shape, colour) pair, in a fixed order."""
    return [(shape, colour) for shape in SHAPES for colour in COLOURS]


def sample_scene(rng: np.random.Generator, *, max_objects: int = MAX_OBJECTS,
                 allowed: set[tuple[str, str]] | None = None,
                 required: set[tuple[str, str]] | None = None) -> Scene:
    """A random scene of 1 to ``max_objects`` objects in distinct cells.

    allowed: the (shape, colour) pairs objects may use; None allows all.
    required: if given, one object (chosen at random) uses one of these pairs; the
        others still come from ``allowed``.
    """
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise InvalidRequestError(f"max_objects must be between 1 and {MAX_OBJECTS}, not {max_objects}")
    pool = [pair for pair in all_combinations() if allowed is None or pair in allowed]
    if not pool:
        raise InvalidRequestError("no (shape, colour) combination is allowed")
    count = int(rng.integers(1, max_objects + 1))
    cells = rng.choice(9, size=count, replace=False)
    pairs = [pool[int(rng.integers(len(pool)))] for _ in range(count)]
    if required:
        needed = sorted(required)  # sorted: set order must not leak into the samples
        pairs[int(rng.integers(count))] = needed[int(rng.integers(len(needed)))]
    sizes = rng.integers(len(SIZES), size=count)
    return Scene(tuple(
        ShapeObject(shape, colour, SIZES[int(size)], divmod(int(cell), 3))
        for (shape, colour), size, cell in zip(pairs, sizes, cells)
    ))


def caption(scene: Scene | Sequence[ShapeObject]) -> str:
    """The scene in plain English, objects joined by "and":
    'a small red circle in the top left and a large blue square at the bottom'."""
    return " and ".join(obj.describe() for obj in scene)


_PHRASE_TO_POSITION = {phrase: name for name, phrase in POSITION_PHRASES.items()}
_EXAMPLE = "write e.g. 'a small red circle in the top left and a large blue square at the bottom'"


def _parse_object(part: str) -> ShapeObject:
    """One 'a [size] [colour] shape [position phrase]' phrase -> its ShapeObject."""
    words = part.split()
    fail = f"cannot read '{part}' as a shapes description"
    if not words or words[0] not in ("a", "an"):
        raise InvalidRequestError(f"{fail}: it should start with 'a' or 'an'; {_EXAMPLE}")
    rest = words[1:]
    size = rest.pop(0) if rest and rest[0] in SIZES else None
    colour = rest.pop(0) if rest and rest[0] in COLOURS else None
    if not rest or (rest[0] not in SHAPES and rest[0] not in GENERIC_NOUNS):
        found = f"'{rest[0]}'" if rest else "nothing"
        raise InvalidRequestError(
            f"{fail}: expected a shape ({', '.join(SHAPES)}) after the size and colour, found {found} "
            f"(sizes: {', '.join(SIZES)}; colours: {', '.join(COLOURS)}); {_EXAMPLE}"
        )
    noun = rest.pop(0)
    position = None
    if rest:
        phrase = " ".join(rest)
        if phrase not in _PHRASE_TO_POSITION:
            raise InvalidRequestError(
                f"{fail}: unknown position '{phrase}'; positions are: {', '.join(POSITION_PHRASES.values())}"
            )
        position = cell_of(_PHRASE_TO_POSITION[phrase])
    return ShapeObject(None if noun in GENERIC_NOUNS else noun, colour, size, position)


def parse_caption(text: str) -> list[ShapeObject]:
    """Read a caption back into the objects it describes; inverts ``caption`` exactly.

    Case, surrounding spaces and a final full stop are ignored. Attributes the text does
    not give are None. Raises InvalidRequestError naming the phrase it cannot read.
    """
    normal = " ".join(text.strip().rstrip(".").lower().split())
    if not normal:
        raise InvalidRequestError(f"the caption is empty; {_EXAMPLE}")
    # No vocabulary word contains " and ", so splitting on it is unambiguous.
    return [_parse_object(part) for part in normal.split(" and ")]
