"""The example plugin package, really installed: discovered, listed, and used by `toolkit generate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import toolkit_tiny
from PIL import Image

from toolkit.generation.recipe import read_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "packages" / "toolkit-example-sepia"))
from toolkit_sepia import Sepia, SepiaOptions  # noqa: E402


def test_sepia_tones_and_keeps_range():
    images = torch_images = __import__("torch").rand(2, 3, 8, 8) * 2 - 1
    out = Sepia().process(torch_images, SepiaOptions(strength=1.0), None).images
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    r, g, b = ((out + 1) / 2).mean(dim=(0, 2, 3)).tolist()
    assert r > g > b  # warm
    same = Sepia().process(images, SepiaOptions(strength=0.0), None).images
    assert (same - images).abs().max() < 1e-6


def test_installed_example_plugin_is_listed_and_used(run_toolkit, home, tmp_path):
    toolkit_tiny.make_model(home / "models" / "tinym")
    rows = {r["name"]: r for r in json.loads(run_toolkit("plugins", "--json", check=True).stdout)}
    assert rows["sepia"]["package"] == "toolkit-sepia" and rows["sepia"]["status"] == "ok"
    assert rows["sepia"]["components"] == {"postprocessors": ["sepia"]} and rows["sepia"]["stages"] == {"sepia": "edit"}
    out = tmp_path / "out"
    plain = run_toolkit("generate", "--model", "tinym", "--seed", "3", "--out", str(out / "plain"), check=True)
    toned = run_toolkit("generate", "--model", "tinym", "--seed", "3", "--post", "sepia:strength=1", "--out", str(out / "toned"), check=True)
    assert "chain: tinym (tiny) -> sepia [edit]" in toned.stderr
    plain_png, toned_png = Path(plain.stdout.split()[-1]), Path(toned.stdout.split()[-1])
    assert not np.array_equal(np.asarray(Image.open(plain_png)), np.asarray(Image.open(toned_png)))
    recipe = read_recipe(toned_png)
    assert recipe["plugins"]["sepia"] == "0.1.0"
    assert recipe["postprocessors"] == [{"name": "sepia", "stage": "edit", "options": {"strength": 1.0}, "record": {"strength": 1.0}}]
    bad = run_toolkit("generate", "--model", "tinym", "--post", "sepia:strength=2", "--out", str(out / "bad"))
    assert bad.returncode == 1 and "post-processor 'sepia': strength: Input should be less than or equal to 1" in bad.stderr
    assert not (out / "bad").exists()
