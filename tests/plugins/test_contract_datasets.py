"""Every registered dataset, the tiny test plugin's included, passes the checks of
``toolkit.contracts`` through ``build_dataset``: every split deterministic, samples with the
documented fields, shapes and ranges, and an unknown option or split refused with a
ToolkitError. The checks themselves catch a dataset that breaks them."""

from __future__ import annotations

import pytest
import toolkit_tiny
import torch
from PIL import Image
from toolkit_plugins.datasets.emoji import find_font

from toolkit.components import Dataset
from toolkit.contracts import check_dataset_refuses_unknown_arguments, check_dataset_samples
from toolkit.host.loading import plugins_with_extra
from toolkit.host.registry import Registry

# What a dataset needs to be built at all, by name: fixtures that return its options.
SETUP = {"imagefolder": "image_folder"}  # a folder of images: root= (and val_fraction, for its 'val' split)
# Datasets that need something outside Python, and why each skips without it.
MISSING = {"emoji": None if find_font() else "no colour emoji font: apt-get install fonts-noto-color-emoji"}
# Datasets whose contract is checked in another file, with where and why. None yet.
TESTED_ELSEWHERE: dict[str, str] = {}
# Known breaches, one (dataset, check) each: they fail here until fixed, and pass the suite meanwhile.
# Components known to break one check, with why: each is an xfail(strict) until fixed.
KNOWN_BREACHES: dict[tuple[str, str], str] = {}


@pytest.fixture
def image_folder(tmp_path) -> dict:
    """Four small images of several sizes in two class folders, one with a caption."""
    for i, (label, colour) in enumerate([("cats", "red"), ("cats", "blue"), ("dogs", "green"), ("dogs", "white")]):
        (tmp_path / label).mkdir(exist_ok=True)
        Image.new("RGB", (20 + 4 * i, 16), colour).save(tmp_path / label / f"{i}.png")
    (tmp_path / "cats" / "0.txt").write_text("a red square")
    return {"root": str(tmp_path), "labels": "folders", "val_fraction": 0.5}


def params(check: str) -> list:
    """The datasets the ``registry`` fixture holds (known at collection time), each marked
    xfail where ``KNOWN_BREACHES`` lists it for ``check``."""
    _, registry = plugins_with_extra([("tiny", toolkit_tiny)])
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREACHES[(name, check)]))
            if (name, check) in KNOWN_BREACHES else name
            for name in sorted(set(registry.datasets) - set(TESTED_ELSEWHERE))]


def options_for(name: str, request) -> dict | None:
    """What dataset ``name`` needs to be built; skips the test where something it needs is missing."""
    if MISSING.get(name):
        pytest.skip(f"dataset '{name}': {MISSING[name]}")
    return request.getfixturevalue(SETUP[name]) if name in SETUP else None


def test_every_registered_dataset_is_checked(registry):
    checked = {p if isinstance(p, str) else p.values[0] for p in params("samples")}
    assert set(registry.datasets) == checked | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize("name", params("samples"))
def test_dataset_samples(name, registry, request):
    check_dataset_samples(registry, name, options=options_for(name, request))


@pytest.mark.parametrize("name", params("arguments"))
def test_dataset_refuses_an_unknown_option_and_split(name, registry, request):
    check_dataset_refuses_unknown_arguments(registry, name, options=options_for(name, request))


# -- the checks catch what they are meant to ------------------------------------------------


class Drifting(Dataset):
    """Draws its images from the global RNG, so two builds differ."""

    name = "drifting"

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return {"image": torch.rand(3, self.size, self.size) * 2 - 1}


class Mislabelled(Drifting):
    """Labels past the end of its class names."""

    name = "mislabelled"

    @property
    def class_names(self):
        return ["only"]

    def __getitem__(self, index):
        return {"image": torch.zeros(3, self.size, self.size), "class_label": 1}


def test_the_checks_catch_broken_datasets():
    registry = Registry()
    register, staged = registry.stage("datasets", "test")
    register(Drifting)
    register(Mislabelled)
    registry.commit("datasets", staged)
    with pytest.raises(AssertionError, match="'image' differs between two builds with the same seed"):
        check_dataset_samples(registry, "drifting", size=4)
    with pytest.raises(AssertionError, match="'class_label' 1 is not an index into class_names"):
        check_dataset_samples(registry, "mislabelled", size=4)
