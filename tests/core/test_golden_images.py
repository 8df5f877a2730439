"""Every shipped model draws exactly what it drew before: the PNGs in fixtures/golden/ were
made with `toolkit generate` (their recipes inside) and must replay to the same pixels.

A change that is meant to alter a model's images (new weights) regenerates them with the
commands in fixtures/golden/README.md; anything else that changes a pixel is a regression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.generation import pipeline
from toolkit.generation.recipe import read_recipe
from toolkit.host.loading import get_registry

GOLDEN = sorted((Path(__file__).parents[1] / "fixtures" / "golden").glob("*.png"))


def test_every_shipped_model_has_a_golden_image():
    shipped = {m.name for m in pipeline.list_models(get_registry()) if m.source == "models"}
    assert shipped and shipped <= {read_recipe(p)["model"]["name"] for p in GOLDEN}


@pytest.fixture
def two_threads(monkeypatch):
    """The goldens were made with 2 threads; another count sums floats in another order, which
    can move a pixel by one level."""
    before = torch.get_num_threads()
    monkeypatch.setenv("TOOLKIT_THREADS", "2")  # else the Python API's first generation picks its own
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("png", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_replay_gives_the_same_pixels(png: Path, two_threads):
    image, recipe = pipeline.replay(png)
    before = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    after = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert after.shape == before.shape
    assert int(np.abs(after - before).max()) == 0, f"{png.name}: {recipe['chain']}"
