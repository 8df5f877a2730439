"""Components get what they need from the objects the pipeline passes (the plan's registry,
``PostContext``, the generator's ``LoadContext``), never from the process-wide registry: a
run with a registry built by hand uses exactly that registry's components."""

from __future__ import annotations

import torch
from toolkit_plugins.postprocessors.upscale import UpscaleLanczos
from toolkit_plugins.samplers import sample_ddim

from toolkit.components import PostContext, PostResult
from toolkit.generation import pipeline
from toolkit.generation.store import find_model, load_model
from toolkit.host.loading import get_registry
from toolkit.host.registry import Entry, Registry


def hand_built_registry(calls: dict[str, list]) -> Registry:
    """The ddpm generator and its models from the installed plugins, plus a renamed copy of
    the DDIM sampler and of the Lanczos upscaler that record each call."""
    installed = get_registry()
    registry = Registry()
    registry.generators["ddpm"] = installed.generators["ddpm"]
    registry.conditioners["class"] = installed.conditioners["class"]
    registry.models = dict(installed.models)

    def my_ddim(model, x, sigmas, **kwargs):
        calls["sampler"].append(tuple(x.shape))
        return sample_ddim(model, x, sigmas, **kwargs)

    class MyLanczos(UpscaleLanczos):
        name = "my-lanczos"

        def process(self, images: torch.Tensor, options, ctx: PostContext) -> PostResult:
            calls["post"].append(ctx.registry)
            return super().process(images, options, ctx)

    registry.samplers["ddim"] = Entry("ddim", my_ddim, "hand")  # what the ddpm model asks for by default
    registry.samplers["my-ddim"] = Entry("my-ddim", my_ddim, "hand")
    registry.postprocessors["my-lanczos"] = Entry("my-lanczos", MyLanczos, "hand")
    return registry


def test_a_hand_built_registry_is_what_the_run_uses():
    calls: dict[str, list] = {"sampler": [], "post": []}
    registry = hand_built_registry(calls)
    assert "my-ddim" not in get_registry().samplers and "my-lanczos" not in get_registry().postprocessors

    result = pipeline.generate(model="ddpm-digits", class_label=3, n=2, seed=0, steps=3, sampler="my-ddim",
                               post=[{"name": "my-lanczos", "options": {"scale": 2}}], registry=registry)
    assert calls["sampler"] == [(2, 3, 16, 16)]
    assert calls["post"] == [registry]
    assert result.images[0].size == (32, 32) and result.recipes[0]["chain"] == ["ddpm-digits (ddpm, my-ddim)",
                                                                                "my-lanczos [upscale]"]

    # The generator was loaded with the same registry: its training preview samples with this
    # registry's default sampler, not the installed one.
    loaded = load_model(find_model("ddpm-digits", registry), registry)
    assert loaded.generator.preview_sampler is registry.samplers["ddim"].obj
    assert loaded.conditioners["class"] is loaded.conditioner("class")


def test_the_text_encoder_is_loaded_once_and_shared_with_the_generator():
    registry = get_registry()
    loaded = load_model(find_model("ldm-shapes", registry), registry)
    assert loaded.generator.text is loaded.conditioners["text"]
    assert load_model(find_model("ldm-shapes", registry), registry) is loaded  # kept loaded between requests
