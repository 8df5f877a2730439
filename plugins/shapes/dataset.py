"""The `shapes` dataset: procedural, deterministic by seed, with a generalisation split.

Each sample is rendered on the fly from ``np.random.default_rng([seed, split, index])``.
A seeded set of (shape, colour) combinations never appears in ``train`` or ``test``; every
``heldout`` sample contains one, so a model's generalisation to unseen combinations can be
measured apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError

from .render import render
from .scene import COLOURS, SHAPES, caption, sample_scene

HELDOUT_FRACTION = 0.15
DEFAULT_LENGTHS = {"train": 20_000, "test": 2_000, "heldout": 1_000}


def heldout_combinations(seed: int) -> set[tuple[str, str]]:
    """About 15% of (shape, colour) pairs, never two of the same shape or colour, so every
    shape and every colour is still seen in training with most partners."""
    rng = np.random.default_rng([seed, 7919])
    count = round(HELDOUT_FRACTION * len(SHAPES) * len(COLOURS))
    shapes = rng.permutation(len(SHAPES))[:count]
    colours = rng.permutation(len(COLOURS))[:count]
    return {(SHAPES[s], list(COLOURS)[c]) for s, c in zip(shapes, colours)}


class ShapesDataset(Dataset):
    """Procedural shapes: 1-2 objects, 7 colours, 5 shapes, 2 sizes, 3x3 positions, with
    captions, sketches and inpainting masks."""

    name = "shapes"
    description = "procedural shapes with captions, sketches and masks (7 colours, 5 shapes, 2 sizes, 3x3 positions)"
    splits = ("train", "test", "heldout")

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, length: int | None = None,
                 max_objects: int = 2, **options: Any):
        if options:
            raise InvalidRequestError(f"dataset 'shapes' has no options {sorted(options)}; it takes length and max_objects")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'shapes' has splits {', '.join(self.splits)}, not '{split}'")
        if max_objects not in (1, 2):
            raise InvalidRequestError(f"shapes: max_objects must be 1 or 2, not {max_objects}")
        super().__init__(split, size=size, seed=seed)
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        self.max_objects = max_objects
        self.heldout_combinations = heldout_combinations(seed)
        combos = {(s, c) for s in SHAPES for c in COLOURS}
        self._allowed = combos - self.heldout_combinations

    @property
    def class_names(self) -> list[str]:
        return list(SHAPES)

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> tuple[list, np.random.Generator]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.splits.index(self.split), index])
        if self.split == "heldout":
            return sample_scene(rng, max_objects=self.max_objects, required=self.heldout_combinations), rng
        return sample_scene(rng, max_objects=self.max_objects, allowed=self._allowed), rng

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, rng = self.scene(index)
        drawn = render(scene, self.size, rng)
        target = int(rng.integers(len(scene)))  # the object the inpainting mask covers
        ys, xs = np.nonzero(drawn["masks"][target])
        pad = max(1, self.size // 32)
        mask = np.zeros((self.size, self.size), np.float32)
        mask[max(ys.min() - pad, 0): ys.max() + pad + 1, max(xs.min() - pad, 0): xs.max() + pad + 1] = 1
        image = torch.from_numpy(drawn["image"].copy()).permute(2, 0, 1).float() / 127.5 - 1  # (3, H, W)
        return {
            "image": image,
            "caption": caption(scene),
            "class_label": SHAPES.index(scene[0].shape),
            "sketch": torch.from_numpy(drawn["sketch"])[None],  # (1, H, W), 1 = stroke
            "mask": torch.from_numpy(mask)[None],  # (1, H, W), 1 = regenerate
            "attributes": [obj.to_json() for obj in scene],
        }
