"""The form's components, in-process: what a model hides, what the drawing surfaces give,
plugins' controls (and a broken one), and the handlers' calls into the pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import toolkit_tiny
from PIL import Image, ImageDraw

from toolkit.errors import ImageInputError, InvalidRequestError
from toolkit.generation.images import to_data_url as pipeline_data_url
from toolkit.generation.recipe import read_recipe
from toolkit.host.loading import plugins_with_extra
from toolkit_apps.controls import Form
from toolkit_apps.form import model_cards, request_fields
from toolkit_apps.handlers import Actions
from toolkit_apps.widgets import inpainting_from_editor, sketch_from_editor

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "packages" / "toolkit-example-sepia"))
import toolkit_sepia  # noqa: E402


class Broken:
    """A plugin whose web control fails to build."""

    @staticmethod
    @toolkit_tiny.hookimpl
    def register_web_controls(register):
        register("Broken", lambda: 1 / 0)


@pytest.fixture
def plugins(home: Path):
    toolkit_tiny.make_model(home / "models" / "tinym", default=True, accepts=["class", "sketch", "mask", "init_image"])
    toolkit_tiny.make_model(home / "models" / "tinyd", "tiny-diffusion")
    return plugins_with_extra([("tiny", toolkit_tiny), ("sepia", toolkit_sepia), ("broken-web", Broken)])


@pytest.fixture
def form(plugins):
    pm, registry = plugins
    with gr.Blocks():
        return Form(request_fields(), model_cards(registry), registry, pm, gr.Button)


def _values(form: Form, **changes) -> dict:
    """The form's values as Gradio passes them (one dict keyed by component)."""
    values = {component: component.value for component in form.inputs}
    values.update({form.sketch: None, form.inpaint: None})
    for key, value in changes.items():
        values[getattr(form, key, None) or form.fields[key]] = value
    return values


def test_picking_a_model_hides_what_it_cannot_use(form):
    updates = form.for_model("tinyd")
    assert updates[form.sketch]["visible"] is False and updates[form.inpaint]["visible"] is False
    assert updates[form.fields["steps"]] == {"__type__": "update", "visible": True, "value": 4}
    assert updates[form.fields["prompt"]]["visible"] is True
    back = form.for_model("tinym")
    assert back[form.sketch]["visible"] is True and back[form.fields["steps"]]["visible"] is False
    assert back[form.fields["class_label"]]["choices"][:2] == [("0", 0), ("1", 1)]


def test_hidden_controls_do_not_reach_the_request(form):
    fields = form.to_fields(_values(form, model="tinym", steps=50, prompt="ignored", class_label=3))
    assert fields["model"] == "tinym" and fields["class_label"] == 3
    assert "steps" not in fields and "prompt" not in fields


def test_plugin_controls_replace_the_generic_toggle_and_a_broken_one_is_left_out(form, plugins):
    _, registry = plugins
    assert [c.label for c in form.controls] == ["Sepia"] and "sepia" not in form.post and "invert" in form.post
    assert "sepia" in registry.postprocessors and registry.plugins["broken-web"].ok  # the registry is untouched
    slider = form.controls[0].components[0]
    fields = form.to_fields(_values(form, model="tinym") | {slider: 0.4, form.post["invert"][0]: True})
    assert [(s.name, s.options) for s in fields["post"]] == [("invert", {}), ("sepia", {"strength": 0.4})]


def _strokes(size=(64, 64)) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).line([(8, 8), (56, 56)], fill=(0, 0, 0, 255), width=4)
    return layer


def test_the_sketchpad_gives_strokes_on_white_or_nothing():
    blank = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert sketch_from_editor(None) is None
    assert sketch_from_editor({"background": None, "layers": [blank], "composite": blank}) is None
    sketch = sketch_from_editor({"background": None, "layers": [_strokes()], "composite": _strokes()})
    grey = np.asarray(sketch.convert("L"))
    assert sketch.mode == "RGB" and grey[32, 32] == 0 and grey[8, 56] == 255


def test_the_mask_painter_gives_the_init_image_and_the_painted_mask():
    photo = Image.new("RGBA", (64, 64), (20, 120, 200, 255))
    init, mask = inpainting_from_editor({"background": photo, "layers": [_strokes()], "composite": photo})
    assert init.mode == "RGB" and init.getpixel((0, 0)) == (20, 120, 200)
    assert mask.mode == "L" and mask.getpixel((32, 32)) == 255 and mask.getpixel((8, 56)) == 0
    assert inpainting_from_editor({"background": photo, "layers": [], "composite": photo})[1] is None
    with pytest.raises(ImageInputError, match="upload an init image first"):
        inpainting_from_editor({"background": None, "layers": [_strokes()], "composite": _strokes()})


def test_generate_reports_progress_and_saves_what_the_cli_saves(plugins, tmp_path):
    _, registry = plugins
    calls = []
    actions = Actions(registry, model_cards(registry), tmp_path)
    outcome = actions.generate({"model": "tinyd", "prompt": "a b", "seed": 7, "steps": 3, "n": 2},
                               lambda *args, **kwargs: calls.append((args, kwargs)))
    assert calls[0] == ((0,), {"desc": "loading model tinyd"})
    assert calls[1] == (((1, 1),), {"desc": "step 1 of 1", "unit": "steps"})  # what the tiny generator reports
    recipe = read_recipe(outcome.paths[1])
    assert recipe["request"]["prompt"] == "a b" and recipe["seed"] == 7 and recipe["index"] == 1
    assert [caption for _, caption in outcome.gallery()] == ["seed 7 · #0", "seed 7 · #1"]
    assert outcome.info()["images"] == [{"file": "tinyd-a-b-7-00.png", "index": 0}, {"file": "tinyd-a-b-7-01.png", "index": 1}]


def test_compare_runs_the_same_seed_on_a_second_sampler_or_model(plugins, tmp_path):
    _, registry = plugins
    actions = Actions(registry, model_cards(registry), tmp_path)
    first, second = actions.compare({"model": "tinyd", "class_label": 2, "steps": 2}, "tinym", None, lambda *a, **k: None)
    assert second.result.seed == first.result.seed and second.result.plan.model.name == "tinym"
    assert second.result.plan.request.class_label == 2
    with pytest.raises(InvalidRequestError, match="takes no sampler"):
        actions.compare({"model": "tinyd"}, "tinym", "tiny-euler", lambda *a, **k: None)


def test_a_recipe_fills_the_form(form):
    sketch = Image.new("RGB", (16, 16), "white")
    request = {"model": "tinym", "seed": 12, "class_label": 4, "sketch": pipeline_data_url(sketch), "width": 16,
               "height": 16, "post": [{"name": "safety", "options": {"blur": 0.3}}]}
    updates = form.from_request(request)
    assert updates[form.model] == "tinym" and updates[form.random_seed] is False and updates[form.seed] == 12
    assert updates[form.fields["class_label"]]["value"] == 4 and updates[form.fields["class_label"]]["visible"] is True
    assert updates[form.sketch]["visible"] is True and updates[form.sketch]["value"]["composite"].size == (16, 16)
    assert updates[form.post["safety"][0]] is True and updates[form.post["safety"][1]["blur"]] == 0.3
    assert updates[form.post["invert"][0]] is False


def test_a_withheld_image_is_labelled_not_silent(plugins, tmp_path):
    _, registry = plugins
    outcome = Actions(registry, model_cards(registry), tmp_path).generate({"model": "tinym", "n": 2, "seed": 1},
                                                                           lambda *a, **k: None)
    outcome.result.post_records = [{"name": "safety", "stage": "safety", "options": {}, "record": {
        "images": [{"action": "block"}, {"action": "pass"}], "summary": "image 0 withheld (violence 0.91)"}}]
    assert [caption for _, caption in outcome.gallery()] == ["seed 1 · #0 · safety: block", "seed 1 · #1"]
    assert "- **safety** (safety): image 0 withheld (violence 0.91)" in outcome.report()
