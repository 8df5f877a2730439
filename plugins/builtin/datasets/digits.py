"""The `digits` dataset: the real handwritten digits that scikit-learn ships.

1797 scans of handwritten digits (8x8 pixels, 17 grey levels, 0..16) from the UCI optical
recognition dataset, class-labelled 0-9 and resized to the requested size.

They are drawn white on black, as in the original scans: "no ink" is -1 everywhere, so the
background is the constant a model learns first and the digit is what it has to get right,
and ``toolkit dataset preview digits`` looks like the data scikit-learn documents.

The split is stratified and seeded (``train_test_split(random_state=seed)``): every class
is in both splits, and the same seed always gives the same split.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from toolkit import hookimpl
from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError

if TYPE_CHECKING:  # numpy and torch are imported when the data is read, not when the plugins load
    import numpy as np


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All scans ``(1797, 8, 8)`` float32 in [0, 1] and their digits ``(1797,)`` int64.

    Cached: every split and size of every instance reads the same small array.
    """
    import numpy as np
    from sklearn.datasets import load_digits  # here, not at plugin load: scikit-learn takes a second to import

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


class DigitsDataset(Dataset):
    """scikit-learn's 1797 real handwritten digits, class-labelled 0-9."""

    name = "digits"
    description = "real handwritten digits from scikit-learn (1797 8x8 scans, 10 classes)"
    splits = ("train", "test")

    def __init__(self, split: str = "train", *, size: int = 32, seed: int = 0, test_fraction: float = 0.2,
                 **options: Any):
        if options:
            raise InvalidRequestError(
                f"dataset 'digits' has no options {sorted(options)}; it takes split, size, seed and test_fraction"
            )
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'digits' has splits {', '.join(self.splits)}, not '{split}'")
        if not isinstance(size, int) or size < 1:
            raise InvalidRequestError(
                f"dataset 'digits': size must be a positive whole number of pixels, not {size!r}"
            )
        if not 0.05 <= test_fraction <= 0.95:
            # Beyond this range one side holds only a handful of scans per class.
            raise InvalidRequestError(
                f"dataset 'digits': test_fraction must be between 0.05 and 0.95, not {test_fraction}"
            )
        super().__init__(split, size=size, seed=seed)
        import numpy as np
        import torch
        from sklearn.model_selection import train_test_split

        scans, digits = _digits()
        train, test = train_test_split(np.arange(len(digits)), test_size=test_fraction, random_state=seed,
                                       stratify=digits)
        # Sorted, so sample i is the same scan whatever order train_test_split returned.
        self.indices = np.sort(train if split == "train" else test)
        self.scans = torch.from_numpy(scans[self.indices])  # (N, 8, 8) in [0, 1]
        self.labels = digits[self.indices]  # (N,)

    @property
    def class_names(self) -> list[str]:
        return [str(digit) for digit in range(10)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``{"image": (3, size, size) float in [-1, 1], "class_label": int, "caption": str}``."""
        import torch.nn.functional as F

        # Resized one at a time: an 8x8 scan is tiny, and keeping only the scans keeps a
        # large `size` from costing gigabytes of memory up front.
        scan = self.scans[index][None, None]  # (1, 1, 8, 8)
        # Bicubic keeps strokes crisper than bilinear; its overshoot is clamped away.
        grey = F.interpolate(scan, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        image = (grey[0] * 2 - 1).expand(3, -1, -1).contiguous()  # grey replicated to RGB
        label = int(self.labels[index])
        return {"image": image, "class_label": label, "caption": f"a handwritten digit {label}"}


@hookimpl
def register_datasets(register):
    register(DigitsDataset)
