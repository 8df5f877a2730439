"""The HTTP API: Gradio's own named endpoints, whose inputs are the request's fields.

``/generate`` takes one input per ``GenerationRequest`` field, in schema order (images as
uploaded files, ``post`` as JSON) and returns the PNGs ``toolkit generate`` would write plus
a JSON summary; ``/models`` lists what the form offers; ``/recipe`` reads a PNG's request.
docs/app.md shows them from gradio_client and from curl."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import gradio as gr

from toolkit_apps.form import FieldSpec, ModelCard
from toolkit_apps.handlers import Actions, readable

GENERATE = "generate"  # the concurrency group of everything that generates


def _input(spec: FieldSpec) -> Any:
    """A plain input for one request field, no bounds of its own: the request's validation
    is the one place that checks values, so the API and the CLI give the same messages."""
    if spec.image:
        return gr.File(label=spec.name, file_types=["image"], type="filepath")
    if spec.name == "post":
        return gr.JSON(label=spec.name, value=[])
    if spec.type is bool:
        return gr.Checkbox(label=spec.name, value=bool(spec.default))
    if spec.type in (int, float):
        return gr.Number(label=spec.name, value=spec.default, precision=0 if spec.type is int else None)
    return gr.Textbox(label=spec.name, value=spec.default)


def add_api(specs: dict[str, FieldSpec], cards: dict[str, ModelCard], actions: Actions) -> None:
    """Hidden components and the named endpoints, inside the current Blocks."""
    with gr.Column(visible=False):
        inputs = {name: _input(spec) for name, spec in specs.items()}
        files = gr.File(label="images", file_count="multiple")
        info = gr.JSON(label="info")
        upload = gr.File(label="png", file_types=[".png"], type="filepath")
        listing = gr.JSON(label="models")
        request = gr.JSON(label="request")
        trigger = gr.Button("api")

    @readable
    def generate(progress: gr.Progress = gr.Progress(), **fields: Any) -> tuple[list[str], dict[str, Any]]:
        """Generate images; each PNG carries its recipe (``toolkit info`` reads it)."""
        for name, spec in specs.items():  # an upload's bytes: errors then name no server path
            if spec.image and fields.get(name):
                fields[name] = Path(fields[name]).read_bytes()
        outcome = actions.generate(fields, progress)
        return [str(p) for p in outcome.paths], outcome.info()

    def models() -> list[dict[str, Any]]:
        """The installed models: generator, what each accepts, sizes, classes, defaults."""
        return [{"name": c.name, "generator": c.generator, "accepts": sorted(c.accepts), "sizes": c.sizes,
                 "size_bytes": c.size_bytes, "classes": list(c.classes), "fields": sorted(c.usable),
                 "defaults": c.defaults, "error": c.error} for c in cards.values()]

    @readable
    def recipe(path: str | None) -> dict[str, Any]:
        """The request inside a toolkit PNG; its input images are PNG ``data:`` URLs."""
        return actions.recipe(path)

    # One keyword per request field, each optional: Gradio reads the names and defaults that
    # API clients see from the signature.
    keywords = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in specs]
    progress = inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress())
    generate.__signature__ = inspect.Signature([*keywords, progress])  # type: ignore[attr-defined]
    trigger.click(generate, inputs_kwargs=inputs, outputs=[files, info], api_name="generate", concurrency_id=GENERATE,
                  concurrency_limit=1)
    trigger.click(models, None, listing, api_name="models", queue=False)
    trigger.click(recipe, upload, request, api_name="recipe")
