"""Every registered conditioner, the tiny test plugin's included, passes the checks of
``toolkit.contracts`` for its kind: class labels, sketches, masks and init images from PIL
images of any mode and of the model's aspect ratio (another aspect is a ToolkitError, except for sketches: letterboxed), and
text conditioners loaded the way the pipeline loads them, from a registered model folder
whose config.json names them. The checks themselves catch a conditioner that breaks them."""

from __future__ import annotations

import pytest
import toolkit_tiny
import torch

from toolkit.components import Conditioner
from toolkit.contracts import check_conditioner
from toolkit.generation.model_folder import read_config
from toolkit.generation.store import conditioner_name
from toolkit.host.loading import plugins_with_extra

# Conditioners whose contract is checked in another file, with where and why.
TESTED_ELSEWHERE = {
    "diffusers-text": "tests/plugins/test_diffusers_generator.py: it loads from a diffusers pipeline folder, and "
                      "none ships; that file builds tiny ones and generates through them",
}


def names() -> list[str]:
    """The conditioners the ``registry`` fixture holds, known at collection time."""
    _, registry = plugins_with_extra([("tiny", toolkit_tiny)])
    return sorted(set(registry.conditioners) - set(TESTED_ELSEWHERE))


def model_folder_naming(name: str, kind: str, registry):
    """(folder, config) of the first registered model whose config.json names conditioner
    ``name`` for ``kind``, or (None, {}): how the pipeline finds a conditioner's weights."""
    for model in sorted(registry.models):
        folder = registry.get("models", model)
        config = read_config(folder)
        if conditioner_name(config, kind) == name and kind in config.get("accepts", []):
            return folder, config
    return None, {}


def test_every_registered_conditioner_is_checked(registry):
    assert set(registry.conditioners) == set(names()) | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize("name", names())
def test_conditioner_contract(name, registry):
    cls = registry.get("conditioners", name)
    folder, config = model_folder_naming(name, cls.kind, registry)
    if folder is not None:
        check_conditioner(cls, folder=folder, config=config)
        return
    try:
        cls.load(None, {})
    except Exception as error:  # noqa: BLE001 - reported as a failure that says what to do
        pytest.fail(f"conditioner '{name}' does not load without a model folder ({type(error).__name__}: {error}) and "
                    "no registered model names it: register one that does, or list it in TESTED_ELSEWHERE")
    check_conditioner(cls)


# -- the checks catch what they are meant to ------------------------------------------------


class UpsideDownSketch(Conditioner):
    """Forgets to invert: paper is 1 and strokes 0."""

    name = "upside-down"
    kind = "sketch"

    def encode(self, value, *, n, height, width):
        from toolkit.generation.images import fit_to, pil_to_tensor, to_rgb

        image = fit_to(to_rgb(value), width, height, what="sketch")
        return ((pil_to_tensor(image).mean(dim=1, keepdim=True) + 1) / 2).expand(n, -1, -1, -1)


class StretchingMask(Conditioner):
    """Resizes any mask to the model's size, moving what the user marked."""

    name = "stretching"
    kind = "mask"

    def encode(self, value, *, n, height, width):
        from toolkit.generation.images import pil_to_tensor

        grey = (pil_to_tensor(value.convert("RGB").resize((width, height))).mean(dim=1, keepdim=True) + 1) / 2
        return (grey > 0.5).float().expand(n, -1, -1, -1)


class FloatClasses(Conditioner):
    name = "float-classes"
    kind = "class"

    def encode(self, value, *, n, height, width):
        return torch.full((n,), float(value))


def test_the_checks_catch_broken_conditioners():
    with pytest.raises(AssertionError, match="the traced edge does not read as strokes"):
        check_conditioner(UpsideDownSketch)
    with pytest.raises(AssertionError, match="encode of a 48x16 image for 24x16: was accepted"):
        check_conditioner(StretchingMask)
    with pytest.raises(AssertionError, match="expected dtype torch.int64, got torch.float32"):
        check_conditioner(FloatClasses)
