"""Sketch control in the ldm generator: a ControlNet trained over a finished model, exported
into its folder, loaded when a request has a sketch; strength 0 is the plain image exactly;
inpainting keeps every pixel outside the mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import train  # noqa: E402  (tests/ is on sys.path)
from toolkit.errors import ConfigError, UnsupportedRequestError
from toolkit.generation.pipeline import generate
from toolkit.generation.store import find_model, load_generator
from toolkit.host.loading import get_registry


def stroke_png(tmp_path, size: int = 32):
    """A square outline, dark on white."""
    image = np.full((size, size), 255, np.uint8)
    image[8:24, 8] = image[8:24, 23] = image[8, 8:24] = image[23, 8:24] = 0
    path = tmp_path / "sketch.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture(scope="module")
def controlled(stages, tmp_path_factory):
    """The tiny denoiser with a ControlNet trained on it for a few steps."""
    root = tmp_path_factory.mktemp("cn")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLKIT_HOME", str(root / "home"))
        return train(root, "cn", {"generator": "ldm", "stage": "controlnet", "base": str(stages.denoiser),
                                  "controlnet_embedding_channels": [8, 16], "text_dropout": 0.5})


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


def test_the_export_is_the_base_model_with_a_controlnet(stages, controlled):
    config = json.loads((controlled / "config.json").read_text())
    assert config["stage"] == "denoiser" and "sketch" in config["accepts"]
    assert (controlled / "controlnet" / "config.json").is_file()
    base = json.loads((stages.denoiser / "config.json").read_text())
    assert "sketch" not in base["accepts"]


def test_strength_zero_is_the_plain_image_and_a_sketch_changes_it(controlled, tmp_path):
    sketch = stroke_png(tmp_path)
    request = {"model": str(controlled), "prompt": "a red circle", "seed": 3}
    plain = pixels(generate(request))
    assert np.array_equal(pixels(generate(request | {"sketch": sketch, "sketch_scale": 0.0})), plain)
    with torch.no_grad():  # a few training steps move the zero-initialised outputs a little: make them count
        model = load_generator(find_model(str(controlled), get_registry()), get_registry())
        model.sketch_control(torch.zeros(1, 1, 32, 32), 1.0)
        for p in model.controlnet.controlnet_down_blocks.parameters():
            p.add_(0.5)
    steered = pixels(generate(request | {"sketch": sketch, "sketch_scale": 1.0}))
    assert np.abs(steered.astype(int) - plain.astype(int)).max() > 0


def test_a_model_without_a_controlnet_refuses_a_sketch(stages, tmp_path):
    with pytest.raises(UnsupportedRequestError, match="does not accept sketch"):
        generate(model=str(stages.denoiser), prompt="a red circle", sketch=stroke_png(tmp_path))


def test_the_controlnet_stage_needs_a_base_model(stages, tmp_path):
    with pytest.raises(ConfigError, match="needs model.base"):
        train(tmp_path, "nobase", {"generator": "ldm", "stage": "controlnet"})


def test_inpainting_keeps_every_pixel_outside_the_mask(stages, tmp_path):
    init = (np.random.default_rng(0).integers(0, 256, (32, 32, 3))).astype(np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 10:24] = 255
    Image.fromarray(init).save(tmp_path / "init.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = pixels(generate(model=str(stages.denoiser), prompt="a red circle", seed=1, init_image=tmp_path / "init.png",
                          mask=tmp_path / "mask.png"))[0]
    assert np.array_equal(out[mask == 0], init[mask == 0])
    assert not np.array_equal(out[mask > 0], init[mask > 0])
