"""The page: the form on the left, the results on the right, and the events between them.

``build_app(registry, pm, out_dir)`` is the whole UI; each event calls one handler of
``toolkit_apps.handlers.Actions`` and nothing here generates anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pluggy

from toolkit.errors import UnknownNameError
from toolkit.host.registry import Registry
from toolkit_apps.api import GENERATE, add_api
from toolkit_apps.controls import Form
from toolkit_apps.form import model_cards, request_fields
from toolkit_apps.handlers import Actions, readable

TITLE = "toolkit"
# System fonts: a theme's web fonts would be fetched from the internet on every page load.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
# On a phone every pixel of width goes to the form. While an image generates, the progress
# overlay is drawn only when it changes: without Gradio's pulsing border, eased bars and the
# running clock above the bar (the clock redraws the overlay every frame; the bar's label
# says the step), whose redraws take the cores that sample the image on a small server.
# docs/app.md, "Latency", has the figures. While a request waits in the queue, the line
# above shows its place as Gradio draws it: it is hidden only when a bar follows it.
CSS = """@media (max-width: 640px) { .gradio-container { padding: 4px !important; } }
[data-testid="status-tracker"], [data-testid="status-tracker"] * { animation: none !important; transition: none !important; }
[data-testid="status-tracker"] .progress-text:has(+ .progress-level) { display: none !important; }"""


def build_app(registry: Registry, pm: pluggy.PluginManager, out_dir: Path, device: str = "cpu") -> gr.Blocks:
    """The Blocks app for the installed plugins; images are written to ``out_dir``."""
    cards = model_cards(registry)
    if not cards:
        raise UnknownNameError("no models are installed, so the app has nothing to offer; see `toolkit models`")
    specs = request_fields()
    actions = Actions(registry, cards, out_dir, device)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"## {TITLE}\n{len(cards)} models installed; every image downloads as the PNG `toolkit generate` "
                    "writes, its recipe inside.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                form = Form(specs, cards, registry, pm, lambda: gr.Button("Generate", variant="primary", elem_id="generate"))
                generate = form.submit
                with gr.Accordion("Load recipe", open=False):
                    recipe_file = gr.File(label="A PNG made by toolkit: fills the form with its request",
                                          file_types=[".png"], type="filepath", elem_id="load-recipe")
            with gr.Column(scale=1, min_width=300, elem_id="results"):
                gallery = gr.Gallery(label="Images", columns=2, object_fit="contain", height="auto", elem_id="gallery",
                                     buttons=["download", "fullscreen"], interactive=False)
                report = gr.Markdown(elem_id="report")
                downloads = gr.File(label="Download PNGs (recipe inside)", file_count="multiple", interactive=False,
                                    elem_id="downloads")
                with gr.Accordion("Compare: the same request and seed on another model or sampler", open=False):
                    with gr.Row():
                        other_model = gr.Dropdown([("same model", "")] + [(c.label, c.name) for c in cards.values()],
                                                  value="", label="Second model", elem_id="compare-model")
                        other_sampler = gr.Dropdown([("same sampler", "")] + list(registry.samplers), value="",
                                                    label="Second sampler", elem_id="compare-sampler")
                    compare = gr.Button("Compare", elem_id="compare")
                    with gr.Row():
                        with gr.Column(min_width=150):
                            first_gallery, first_report = gr.Gallery(label="A", columns=2, height="auto"), gr.Markdown()
                        with gr.Column(min_width=150):
                            second_gallery, second_report = gr.Gallery(label="B", columns=2, height="auto"), gr.Markdown()
        add_api(specs, cards, actions)

        @readable
        def on_generate(data: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> tuple[Any, str, list[str]]:
            outcome = actions.generate(form.to_fields(data), progress)
            return outcome.gallery(), outcome.report(), [str(p) for p in outcome.paths]

        @readable
        def on_compare(data: dict[Any, Any], progress: gr.Progress = gr.Progress()) -> tuple[Any, str, Any, str]:
            first, second = actions.compare(form.to_fields(data), data[other_model], data[other_sampler], progress)
            return first.gallery(), first.report(), second.gallery(), second.report()

        @readable
        def on_recipe(path: str | None) -> dict[Any, Any]:
            return form.from_request(actions.recipe(path)) if path else {}

        private = {"api_visibility": "private"}
        form.model.input(form.for_model, form.model, form.outputs, queue=False, **private)
        generate.click(on_generate, form.inputs, [gallery, report, downloads], concurrency_id=GENERATE,
                       concurrency_limit=1, show_progress_on=gallery, **private)
        compare.click(on_compare, form.inputs | {other_model, other_sampler},
                      [first_gallery, first_report, second_gallery, second_report], concurrency_id=GENERATE,
                      concurrency_limit=1, show_progress_on=[first_gallery, second_gallery], **private)
        recipe_file.upload(on_recipe, recipe_file, form.outputs, **private)
    return app

