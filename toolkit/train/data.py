"""Batches for training: deterministic shuffling by seed and epoch, augmentations declared
in the config, and a collate function for samples that carry strings and metadata.

Determinism is what makes exact resume possible: the order of epoch ``e`` is a function
of ``(seed, e)`` only, and a sample's augmentation a function of ``(seed, e, index)``, so
no RNG state of worker processes has to be saved.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from toolkit.components import Dataset
from toolkit.errors import ToolkitError
from toolkit.train.config import DataConfig


class EpochSampler(Sampler[int]):
    """Yields ``epoch * len(data) + i`` for a permutation of ``i`` seeded by ``(seed, epoch)``.

    Encoding the epoch in the index lets ``AugmentedDataset`` (possibly in a worker process)
    seed each sample's augmentation without shared state.
    """

    def __init__(self, length: int, seed: int):
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        return iter((order + self.epoch * self.length).tolist())

    def __len__(self) -> int:
        return self.length


class AugmentedDataset(torch.utils.data.Dataset):
    """Applies the config's flips and shifts to image, sketch and mask alike."""

    def __init__(self, dataset: Dataset, config: DataConfig, seed: int):
        self.dataset, self.config, self.seed = dataset, config, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, index = divmod(key, len(self.dataset))
        sample = dict(self.dataset[index])
        if self.config.hflip == 0 and self.config.translate == 0:
            return sample
        rng = torch.Generator().manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF)
        flip = torch.rand((), generator=rng).item() < self.config.hflip
        t = self.config.translate
        dy, dx = (torch.randint(-t, t + 1, (2,), generator=rng).tolist() if t else (0, 0))
        for key_ in ("image", "sketch", "mask"):
            if isinstance(sample.get(key_), torch.Tensor):
                sample[key_] = _shift(sample[key_].flip(-1) if flip else sample[key_], dy, dx)
        return sample


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift ``(C, H, W)`` by whole pixels, repeating the edge pixels."""
    if dy == 0 and dx == 0:
        return x
    _, h, w = x.shape
    rows = (torch.arange(h) - dy).clamp(0, h - 1)
    cols = (torch.arange(w) - dx).clamp(0, w - 1)
    return x[:, rows][:, :, cols]


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and ints; keep strings and metadata as lists of length B."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[key] = values
    return batch


def make_dataloader(dataset: Dataset, config: DataConfig, seed: int) -> tuple[DataLoader, EpochSampler]:
    sampler = EpochSampler(len(dataset), seed)
    loader = DataLoader(
        AugmentedDataset(dataset, config, seed), batch_size=config.batch_size, sampler=sampler,
        num_workers=config.num_workers, collate_fn=collate, drop_last=True,
        persistent_workers=config.num_workers > 0,
        # Its own generator: creating an iterator must not draw from the global RNG, or a
        # resumed run (which creates one extra iterator) would see different noise.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def evaluation_split(dataset: Dataset) -> Dataset:
    """The test split of the training data's dataset (default options: full captions), or
    the training data itself when the dataset has no test split."""
    if "test" not in type(dataset).splits:
        return dataset
    try:
        return type(dataset)("test", size=dataset.size, seed=dataset.seed)
    except (TypeError, ToolkitError):  # a dataset that needs options (a folder path): use what we have
        return dataset


def evaluation_samples(dataset: Dataset, n: int) -> list[dict]:
    """The first ``n`` samples (fewer if there are fewer) of ``evaluation_split(dataset)``:
    the fixed inputs of training previews."""
    data = evaluation_split(dataset)
    return [data[i] for i in range(min(n, len(data)))]
