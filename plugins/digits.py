"""The `digits` dataset: the real handwritten digits that scikit-learn ships.

1797 scans of handwritten digits (8x8 pixels, 17 grey levels) from the UCI optical
recognition dataset, resized to the generator's size. They are drawn white on black, as in
the original scans, so that "no ink" is -1 and the digit is what the model must make.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from toolkit import hookimpl
from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)  # (1797, 8, 8) in [0, 1]


class DigitsDataset(Dataset):
    """scikit-learn's 1797 real handwritten digits, class-labelled 0-9."""

    name = "digits"
    description = "real handwritten digits from scikit-learn (1797 scans, 10 classes)"
    splits = ("train", "test")

    def __init__(self, split: str = "train", *, size: int = 32, seed: int = 0, test_fraction: float = 0.2, **options: Any):
        if options:
            raise InvalidRequestError(f"dataset 'digits' takes no options {sorted(options)}; it has split, size, seed, test_fraction")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'digits' has splits {', '.join(self.splits)}, not '{split}'")
        super().__init__(split, size=size, seed=seed)
        images, labels = _digits()
        # Stratified and seeded, so every class is in both splits and the split never changes.
        train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels)
        self.indices = np.sort(train if split == "train" else test)
        pixels = torch.from_numpy(images[self.indices])[:, None]  # (N, 1, 8, 8)
        resized = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        self.images = (resized * 2 - 1).expand(-1, 3, -1, -1).contiguous()  # (N, 3, size, size) in [-1, 1]
        self.labels = labels[self.indices]

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        label = int(self.labels[index])
        return {"image": self.images[index], "class_label": label, "caption": f"a handwritten digit {label}"}


@hookimpl
def register_datasets(register):
    register(DigitsDataset)
