"""What the form offers is derived from the registry, the request schema and each model's
config: which fields a model can use, its defaults, the options a browser may set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import toolkit_tiny
from pydantic import BaseModel, Field

from toolkit.errors import InvalidRequestError, UnknownNameError
from toolkit.generation.request import GenerationRequest
from toolkit_apps.form import check_model, check_post, for_model, merge_request, model_cards, request_fields, web_options

SKETCH_FIELDS = {"sketch", "sketch_scale", "sketch_from_photo"}
SAMPLING_FIELDS = {"sampler", "steps", "guidance_scale"}


@pytest.fixture
def cards(registry, home: Path):
    toolkit_tiny.make_model(home / "models" / "tinym", default=True)  # tiny: class + sketch, one step
    toolkit_tiny.make_model(home / "models" / "tinyd", "tiny-diffusion")  # text + class, a sampler
    return model_cards(registry)


def test_each_model_gets_the_fields_it_can_use(cards):
    assert next(iter(cards)) == "tinym"  # the default model comes first
    tinym, tinyd = cards["tinym"], cards["tinyd"]
    assert {"class_label", *SKETCH_FIELDS} <= tinym.usable
    unusable = {"prompt", "negative_prompt", "mask", "init_image", "truncation", "width", "height"} | SAMPLING_FIELDS
    assert not unusable & tinym.usable
    assert {"prompt", "negative_prompt", "class_label", *SAMPLING_FIELDS} <= tinyd.usable
    assert not (SKETCH_FIELDS | {"truncation"}) & tinyd.usable
    assert tinyd.defaults == {"sampler": "tiny-euler", "steps": 4, "guidance_scale": 1.0}
    assert tinym.defaults == {} and tinym.classes == tuple(str(i) for i in range(10))
    assert tinym.label == "tinym · tiny · 0.0 MB · class, sketch"


def test_shipped_latent_models_take_truncation_not_steps(cards):
    gans = [card for card in cards.values() if card.generator in ("gan", "vae")]
    assert gans, "the shipped GAN and VAE models are installed"
    for card in gans:
        assert "truncation" in card.usable and not SAMPLING_FIELDS & card.usable


def test_a_model_with_several_sizes_offers_the_size(registry, home: Path):
    folder = toolkit_tiny.make_model(home / "models" / "tinyw")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sizes": [[16, 16], [16, 32]]}))
    card = model_cards(registry)["tinyw"]
    assert {"width", "height"} <= card.usable and card.sizes == ((16, 16), (16, 32))


def test_a_broken_model_is_listed_with_its_reason(registry, home: Path):
    folder = toolkit_tiny.make_model(home / "models" / "tinyx")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "generator": "nobody-has-this"}))
    cards = model_cards(registry)
    assert "nobody-has-this" in cards["tinyx"].error
    with pytest.raises(UnknownNameError, match="'tinyx' cannot be used"):
        check_model("tinyx", cards)


def test_request_fields_come_from_the_schema():
    specs = request_fields()
    assert list(specs) == list(GenerationRequest.model_fields)
    assert specs["steps"].type is int and (specs["steps"].minimum, specs["steps"].maximum) == (1, 1000)
    assert specs["prompt"].kind == "text" and specs["sketch"].image and specs["truncation"].minimum == 0


class Options(BaseModel):
    policy: str = "default"
    key: Path | None = None
    strength: float = Field(0.5, ge=0, le=1)
    mode: Literal["a", "b"] | None = None
    count: int | None = None
    on: bool = False


def test_only_numbers_switches_and_choices_reach_the_browser(registry):
    assert set(web_options(Options)) == {"strength", "mode", "count", "on"}
    assert web_options(Options)["mode"].choices == ("a", "b")
    assert set(web_options(registry.postprocessors["safety"].obj.Options)) == {"blur"}
    assert not {"key", "cert"} & set(web_options(registry.postprocessors["c2pa"].obj.Options))


def test_post_options_from_the_web_are_checked_and_ordered(registry):
    ordered = check_post([{"name": "invert"}, {"name": "safety", "options": {"blur": 0.2}}], registry)
    assert [s.name for s in ordered] == ["safety", "invert"]
    with pytest.raises(InvalidRequestError, match="option 'policy' cannot be set from the web app"):
        check_post([{"name": "safety", "options": {"policy": "/etc/passwd"}}], registry)
    with pytest.raises(UnknownNameError, match="unknown postprocessor 'sepai'"):
        check_post([{"name": "sepai"}], registry)


def test_models_are_names_never_paths(cards, home: Path):
    assert check_model(None, cards) == "tinym" and check_model("tinyd", cards) == "tinyd"
    with pytest.raises(UnknownNameError, match="unknown model"):
        check_model(str(home / "models" / "tinyd"), cards)


def test_plugin_fields_merge_into_the_form(cards):
    merged = merge_request({"prompt": "x", "post": [{"name": "safety"}, {"name": "sepia", "options": {"strength": 1}}]},
                           {"post": [{"name": "sepia", "options": {"strength": 0.3}}]}, {"n": 2})
    assert merged["prompt"] == "x" and merged["n"] == 2
    assert [(s.name, s.options) for s in merged["post"]] == [("safety", {}), ("sepia", {"strength": 0.3})]


def test_compare_keeps_conditioning_and_drops_what_the_other_model_cannot_use(cards):
    fields = {"model": "tinyd", "prompt": "a", "class_label": 3, "steps": 4, "sampler": "tiny-euler", "seed": 5, "n": 2}
    assert for_model(fields, cards["tinym"]) == {"model": "tinym", "prompt": "a", "class_label": 3, "seed": 5, "n": 2}
