"""The fixed inputs of training previews, shared by both stages."""

from __future__ import annotations

from typing import Any

from toolkit.components import Dataset


class FixedSamples:
    """The first samples of the training data's test split, read once: every preview grid
    of a run shows the same images (autoencoder) or captions (denoiser), so grids compare."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._taken: dict[str, Any] | None = None

    def take(self, n: int) -> dict[str, Any]:
        """``images`` ``(n, 3, H, W)`` in [-1, 1], ``captions`` (n strings, "" where the
        dataset has none), ``labels`` ``(n,)`` (0 where it has no classes) and, when the
        dataset draws them, ``sketches`` ``(n, 1, H, W)`` in [0, 1]; fewer than ``n`` when the
        split is smaller."""
        if self._taken is None or len(self._taken["captions"]) < n:
            import torch

            from toolkit.train.data import evaluation_samples

            samples = evaluation_samples(self.dataset, max(n, 16))
            self._taken = {"images": torch.stack([s["image"] for s in samples]), "captions": [s.get("caption", "") for s in samples],
                           "labels": torch.tensor([s.get("class_label", 0) for s in samples])}
            if all("sketch" in s for s in samples):
                self._taken["sketches"] = torch.stack([s["sketch"] for s in samples])
        return {key: value[:n] for key, value in self._taken.items()}
