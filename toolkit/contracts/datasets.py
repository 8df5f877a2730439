"""The dataset contract (``toolkit.components.Dataset``), checked through
``toolkit.components.build_dataset``, the one way every command builds a dataset."""

from __future__ import annotations

from typing import Any

import torch

from toolkit.components import Dataset, build_dataset
from toolkit.host.registry import Registry

from .expect import UNKNOWN, expect, expect_json, expect_tensor, expect_toolkit_error


def check_dataset(registry: Registry, name: str, *, options: dict[str, Any] | None = None, size: int | None = None,
                  samples: int = 3) -> None:
    """Every check below. ``options``: what the dataset needs to be built at all (a folder);
    ``size``: None for the dataset's default; ``samples``: how many samples per split to read."""
    check_dataset_samples(registry, name, options=options, size=size, samples=samples)
    check_dataset_refuses_unknown_arguments(registry, name, options=options, size=size)


def check_dataset_samples(registry: Registry, name: str, *, options: dict[str, Any] | None = None,
                          size: int | None = None, samples: int = 3) -> None:
    """Every split builds, is not empty and is deterministic (built twice with the same
    seed, the same samples); each sample is a dict with "image" ``(3, size, size)`` float in
    [-1, 1] and, where present, "caption" (str), "class_label" (an int below the number of
    ``class_names``), "sketch" ``(1, size, size)`` in [0, 1], "mask" ``(1, size, size)`` in
    {0, 1} and JSON-able "attributes"."""
    cls = registry.get("datasets", name)
    expect(isinstance(cls.splits, tuple) and bool(cls.splits) and all(isinstance(s, str) for s in cls.splits),
           f"dataset '{name}': splits must be a non-empty tuple of names, not {cls.splits!r}")
    for split in cls.splits:
        what = f"dataset '{name}' split '{split}'"
        data = build_dataset(registry, name, split=split, size=size, options=options)
        again = build_dataset(registry, name, split=split, size=size, options=options)
        expect(isinstance(data, Dataset), f"{what}: build_dataset gave {type(data).__name__}, not a Dataset")
        expect(len(data) > 0, f"{what}: is empty")
        expect(len(again) == len(data), f"{what}: built twice, {len(data)} and {len(again)} samples")
        classes = data.class_names
        expect(classes is None or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)),
               f"{what}: class_names must be None or a list of names, not {classes!r}")
        for index in sorted({0, len(data) // 2, len(data) - 1})[:samples]:
            sample = data[index]
            check_sample(sample, f"{what} sample {index}", data.size, classes)
            _expect_same(sample, again[index], f"{what} sample {index}")


def check_sample(sample: Any, what: str, size: int, class_names: list[str] | None) -> None:
    """One sample against the documented fields (see ``check_dataset_samples``)."""
    expect(isinstance(sample, dict), f"{what}: is {type(sample).__name__}, not a dict")
    expect_tensor(sample.get("image"), f"{what}: 'image'", (3, size, size), low=-1, high=1)
    if "caption" in sample:
        expect(isinstance(sample["caption"], str), f"{what}: 'caption' is {type(sample['caption']).__name__}, not str")
    if "class_label" in sample:
        label = sample["class_label"]
        expect(isinstance(label, int) and not isinstance(label, bool), f"{what}: 'class_label' is {label!r}, not an int")
        expect(class_names is not None and 0 <= label < len(class_names),
               f"{what}: 'class_label' {label} is not an index into class_names {class_names}")
    if "sketch" in sample:
        expect_tensor(sample["sketch"], f"{what}: 'sketch'", (1, size, size), low=0, high=1)
    if "mask" in sample:
        mask = expect_tensor(sample["mask"], f"{what}: 'mask'", (1, size, size), low=0, high=1)
        expect(bool(((mask == 0) | (mask == 1)).all()), f"{what}: 'mask' holds values other than 0 and 1")
    if "attributes" in sample:
        expect_json(sample["attributes"], f"{what}: 'attributes'")


def check_dataset_refuses_unknown_arguments(registry: Registry, name: str, *, options: dict[str, Any] | None = None,
                                            size: int | None = None) -> None:
    """An unknown option and an unknown split are refused with a ``ToolkitError`` naming them."""
    expect_toolkit_error(lambda: build_dataset(registry, name, size=size, options={**(options or {}), UNKNOWN: 1}),
                         f"dataset '{name}' with an unknown option", mentions=UNKNOWN)
    expect_toolkit_error(lambda: build_dataset(registry, name, split="no-such-split", size=size, options=options),
                         f"dataset '{name}' with an unknown split", mentions="no-such-split")


def _expect_same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    expect(set(a) == set(b), f"{what}: built twice, fields {sorted(a)} and {sorted(b)}")
    for key, value in a.items():
        same = torch.equal(value, b[key]) if isinstance(value, torch.Tensor) else value == b[key]
        expect(bool(same), f"{what}: '{key}' differs between two builds with the same seed")
