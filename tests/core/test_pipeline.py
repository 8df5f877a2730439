"""The pipeline end to end on the tiny test plugin: planning checks, determinism,
post-processor order, recipes in real PNGs, replay."""

from __future__ import annotations

import numpy as np
import pytest
import toolkit_tiny
from PIL import Image

from toolkit import generate
from toolkit.errors import InvalidRequestError, UnknownNameError, UnsupportedRequestError
from toolkit.generation.images import open_image
from toolkit.generation.pipeline import plan, replay, save
from toolkit.generation.recipe import a1111_parameters, read_recipe
from toolkit.generation.request import GenerationRequest


def test_generate_shapes_range_and_seed_determinism(tiny_model):
    a = generate(model="tinym", class_label=3, n=3, seed=7)
    b = generate(model="tinym", class_label=3, n=3, seed=7)
    c = generate(model="tinym", class_label=3, n=3, seed=8)
    assert [im.size for im in a.images] == [(16, 16)] * 3
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(c.images[0]))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(a.images[1]))  # a batch varies


def test_default_model_and_fresh_seed_recorded(tiny_model):
    result = generate()
    assert result.plan.model.name == "tinym"
    assert isinstance(result.seed, int) and result.recipes[0]["seed"] == result.seed


def test_unsupported_conditioning_fails_before_loading_and_names_models(tiny_model, home, monkeypatch):
    toolkit_tiny.make_model(home / "models" / "tiny-text", "tiny-diffusion")
    loaded = []
    monkeypatch.setattr(toolkit_tiny.TinyGenerator, "from_pretrained", classmethod(lambda *a, **k: loaded.append(1)))
    with pytest.raises(UnsupportedRequestError) as err:
        generate(model="tinym", prompt="a red circle")
    message = str(err.value)
    assert "does not accept text" in message and "tiny-text" in message
    assert loaded == []


def test_size_class_range_and_sampler_checks(tiny_model):
    with pytest.raises(UnsupportedRequestError, match="makes 16x16 images, not 32x32"):
        plan(GenerationRequest(model="tinym", width=32, height=32))
    with pytest.raises(InvalidRequestError, match="classes 0-9"):
        plan(GenerationRequest(model="tinym", class_label=12))
    with pytest.raises(UnsupportedRequestError, match="apply to diffusion models"):
        plan(GenerationRequest(model="tinym", steps=10))


def test_sampler_generator_defaults_and_unknown_sampler(tiny_model, home):
    toolkit_tiny.make_model(home / "models" / "tdiff", "tiny-diffusion")
    resolved = plan(GenerationRequest(model="tdiff", prompt="a b")).request
    assert (resolved.sampler, resolved.steps, resolved.guidance_scale) == ("tiny-euler", 4, 1.0)
    with pytest.raises(UnknownNameError, match="Did you mean 'tiny-euler'"):
        plan(GenerationRequest(model="tdiff", sampler="tiny-eular"))
    result = generate(model="tdiff", prompt="a b", negative_prompt="c", steps=2, seed=1)
    assert result.images[0].size == (16, 16)


def test_sketch_conditioning_changes_output_and_another_aspect_is_letterboxed(tiny_model, tmp_path):
    sketch = Image.new("RGB", (32, 32), "white")
    sketch.paste((0, 0, 0), (4, 4, 28, 8))
    path = tmp_path / "sketch.png"
    sketch.save(path)
    plain = generate(model="tinym", seed=1)
    drawn = generate(model="tinym", seed=1, sketch=str(path))
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(drawn.images[0]))
    assert drawn.plan.request.sketch.startswith("data:image/png")  # stored at the size used
    assert open_image(drawn.plan.request.sketch).size == (64, 64)  # kept on the conditioner's working canvas (4x)
    wide = Image.new("RGB", (40, 20), "white")
    wide.paste((0, 0, 0), (4, 4, 36, 6))
    wide.save(tmp_path / "wide.png")
    letterboxed = generate(model="tinym", seed=1, sketch=str(tmp_path / "wide.png"))
    width, height = open_image(letterboxed.plan.request.sketch).size
    assert width == 2 * height  # the drawing as drawn, never stretched; encode letterboxes it
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(letterboxed.images[0]))


def test_postprocessors_run_in_stage_order_and_are_recorded(tiny_model):
    plain = generate(model="tinym", seed=2)
    inverted = generate(model="tinym", seed=2, post=[{"name": "invert"}])
    assert np.array_equal(255 - np.asarray(plain.images[0]).astype(int), np.asarray(inverted.images[0]))
    assert inverted.recipes[0]["postprocessors"][0]["name"] == "invert"
    assert inverted.plan.chain[-1] == "invert [edit]"
    with pytest.raises(UnknownNameError, match="unknown postprocessor 'nope'"):
        generate(model="tinym", post=[{"name": "nope"}])
    with pytest.raises(InvalidRequestError, match="invert.*unknown option"):
        generate(model="tinym", post=[{"name": "invert", "options": {"amount": 1}}])


def test_out_of_order_chain_is_refused(tiny_model, registry):
    from toolkit.components import PostProcessor, Stage
    from toolkit.host.registry import Entry

    class Mark(PostProcessor):
        name, stage = "mark", Stage.WATERMARK

        def process(self, images, options, ctx):
            raise AssertionError("must not run")

    registry.postprocessors["mark"] = Entry("mark", Mark, "test")
    with pytest.raises(InvalidRequestError, match="'invert' \\(edit\\) cannot run after 'mark' \\(watermark\\).*invert -> mark"):
        plan(GenerationRequest(model="tinym", post=[{"name": "mark"}, {"name": "invert"}]))


def test_png_recipe_round_trip_and_bit_identical_replay(tiny_model, tmp_path):
    result = generate(model="tinym", class_label=4, n=2, seed=11, post=[{"name": "invert"}])
    paths = save(result, tmp_path / "out")
    recipe = read_recipe(paths[1])
    assert recipe["index"] == 1 and recipe["seed"] == 11
    assert recipe["request"]["class_label"] == 4 and recipe["request"]["height"] == 16
    assert recipe["model"]["name"] == "tinym" and len(recipe["model"]["sha256"]) == 64
    assert set(recipe["plugins"]) == {"conditioners", "tiny"}  # generator, class conditioner, post-processor
    assert recipe["plugins"]["conditioners"] == "0.1.0"
    assert {"torch", "diffusers", "toolkit", "python"} <= set(recipe["versions"])
    image, _ = replay(paths[1])
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(paths[1]).convert("RGB")))


def test_png_carries_the_parameters_text_other_tools_read(tiny_model, tmp_path):
    result = generate(model="tinym", class_label=4, n=2, seed=11, post=[{"name": "invert"}])
    path = save(result, tmp_path / "out")[1]
    lines = Image.open(path).info["parameters"].split("\n")
    assert lines[0] == ""  # a class model has no prompt: the web UI writes an empty first line then
    pairs = dict(pair.split(": ", 1) for pair in lines[-1].split(", "))
    recipe = read_recipe(path)
    assert pairs["Seed"] == "11" and pairs["Batch pos"] == "1" and pairs["Class"] == "4" and pairs["Model"] == "tinym"
    assert pairs["Size"] == "16x16" and pairs["Model hash"] == recipe["model"]["sha256"][:10]
    assert pairs["Postprocessors"] == "invert"


def test_parameters_text_quotes_what_would_split_it():
    recipe = {"request": {"prompt": "a star, red", "negative_prompt": "blue", "steps": 20, "sampler": "dpmpp-2m",
                          "guidance_scale": 4.0, "width": 64, "height": 64, "n": 1},
              "seed": 3, "model": {"name": "m: one, two", "sha256": "ab" * 32}, "versions": {"toolkit": "0.1.0"}}
    text = a1111_parameters(recipe)
    assert text.split("\n")[:2] == ["a star, red", "Negative prompt: blue"]
    assert 'Model: "m: one, two"' in text and "Sampler: DPM++ 2M" in text and "Batch pos" not in text


def test_the_result_saves_as_the_cli_does(tiny_model, tmp_path):
    result = generate(model="tinym", class_label=2, seed=5)
    (path,) = result.save(tmp_path)
    image, recipe = replay(path)
    assert recipe["request"]["class_label"] == 2
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(path).convert("RGB")))


def test_save_never_overwrites(tiny_model, tmp_path):
    result = generate(model="tinym", seed=3)
    first = save(result, tmp_path)
    second = save(result, tmp_path)
    assert first[0] != second[0] and first[0].exists() and second[0].exists()
