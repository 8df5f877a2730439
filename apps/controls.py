"""The generation form: a control per request field (from the schema), per post-processor
option (from its ``Options``) and per plugin control, and the translation between their
values and request fields in both directions (submit, model picked, recipe loaded)."""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr
import pluggy
from PIL import Image

from toolkit.generation.images import open_image, to_rgb
from toolkit.generation.request import PostSpec
from toolkit.host.registry import Registry
from toolkit_apps.form import FieldSpec, ModelCard, merge_request, web_options
from toolkit_apps.widgets import (
    canvas_size,
    control,
    inpainting_from_editor,
    mask_painter,
    plugin_controls,
    sketch_from_editor,
    sketchpad,
)

# Fields with a control of their own below; every other request field gets ``control()``.
OWN_CONTROL = {"model", "width", "height", "seed", "class_label", "sampler", "post", "sketch", "mask", "init_image"}


def _size_text(size: tuple[int, int]) -> str:
    height, width = size
    return f"{width}x{height}"


def _class_choices(card: ModelCard) -> list[tuple[str, int]]:
    return [(name if name == str(i) else f"{i}: {name}", i) for i, name in enumerate(card.classes)]


class Form:
    """Builds the form's components (inside the current Blocks) and maps their values."""

    def __init__(self, specs: dict[str, FieldSpec], cards: dict[str, ModelCard], registry: Registry,
                 pm: pluggy.PluginManager, submit: Callable[[], gr.Button]):
        """``submit`` makes the button that sends the form, placed after what is drawn and
        before the settings, so that it is in reach on a phone."""
        self.cards, self.registry = cards, registry
        card = next(iter(cards.values()))
        self.model = gr.Dropdown([(c.label, c.name) for c in cards.values()], value=card.name, label="Model", elem_id="model",
                                 info="size, generator and what each model accepts")
        self.summary = gr.Markdown(card.summary)
        generic = {name: spec for name, spec in specs.items() if name not in OWN_CONTROL}
        self.fields: dict[str, Any] = {}
        for name, spec in generic.items():
            if spec.type is str and spec.choices is None:
                self.fields[name] = control(spec, visible=name in card.usable, placeholder=spec.description,
                                           elem_id=f"field-{name}")
        self.fields["class_label"] = gr.Dropdown(_class_choices(card), value=None, label="Class", elem_id="field-class_label",
                                                 info=specs["class_label"].description, visible="class_label" in card.usable)
        height, width = card.sizes[0] if card.sizes else (64, 64)
        with gr.Row(equal_height=False):
            self.sketch = sketchpad(height, width, label="Sketch: draw dark lines, or upload a drawing",
                                    visible="sketch" in card.usable, elem_id="sketchpad")
            self.inpaint = mask_painter(height, width, label="Init image: upload, then paint what to regenerate",
                                        visible=bool({"mask", "init_image"} & card.usable), elem_id="mask-painter")
        self.submit = submit()
        with gr.Accordion("Settings", open=True):
            with gr.Row():
                self.random_seed = gr.Checkbox(True, label="Random seed", info="the seed used is shown with each image")
                self.seed = control(specs["seed"], slider=False, label="Seed")
            sizes = [_size_text(s) for s in card.sizes]
            self.size = gr.Dropdown(sizes, value=sizes[0] if sizes else None, label="Size", visible=len(sizes) > 1)
            self.fields["sampler"] = gr.Dropdown(list(registry.samplers), value=card.defaults.get("sampler"), label="Sampler",
                                             info=specs["sampler"].description, visible="sampler" in card.usable,
                                             elem_id="field-sampler")
            for name, spec in generic.items():
                if name not in self.fields:
                    start = next((c.defaults[name] for c in cards.values() if name in c.defaults), None)
                    self.fields[name] = control(spec, value=card.defaults.get(name, start), visible=name in card.usable,
                                               elem_id=f"field-{name}")
        with gr.Accordion("Post-processing", open=False):
            with_controls = {impl.plugin_name for impl in pm.hook.register_web_controls.get_hookimpls()}
            self.post = self._post_controls(with_controls)
        with gr.Accordion("Plugin options", open=True, visible=bool(with_controls)):
            self.controls, failures = plugin_controls(pm, registry)
            for failure in failures:
                gr.Markdown(f"⚠ {failure}")

    def _post_controls(self, replaced_by_plugin: set[str]) -> dict[str, tuple[gr.Checkbox, dict[str, Any]]]:
        """A toggle and the options of each post-processor, in stage order; a plugin that adds
        its own web controls replaces the generic ones of its post-processors."""
        post = {}
        entries = sorted(self.registry.postprocessors.values(), key=lambda e: (e.obj.stage, e.name))
        for entry in entries:
            if entry.plugin in replaced_by_plugin:
                continue
            reason = entry.obj.unavailable()
            toggle = gr.Checkbox(False, label=f"{entry.name} ({entry.obj.stage.name.lower()})",
                                 info=reason and f"unavailable here: {reason}" or entry.description, interactive=not reason)
            with gr.Group(visible=False) as group:
                options = {name: control(spec) for name, spec in web_options(entry.obj.Options).items()}
            toggle.change(lambda on: gr.update(visible=on), toggle, group, queue=False, api_visibility="private")
            post[entry.name] = (toggle, options)
        return post

    # -- values <-> request fields ------------------------------------------------------------

    @property
    def inputs(self) -> set[Any]:
        """Every component whose value goes into a request (Gradio passes them as one dict)."""
        parts = [self.model, self.random_seed, self.seed, self.size, self.sketch, self.inpaint, *self.fields.values()]
        for toggle, options in self.post.values():
            parts += [toggle, *options.values()]
        for plugin in self.controls:
            parts += plugin.components
        return set(parts)

    @property
    def outputs(self) -> list[Any]:
        """Every component ``for_model`` and ``from_request`` may update."""
        parts = [self.model, self.summary, self.random_seed, self.seed, self.size, self.sketch, self.inpaint,
                 *self.fields.values()]
        for toggle, options in self.post.values():
            parts += [toggle, *options.values()]
        return parts

    def to_fields(self, data: dict[Any, Any]) -> dict[str, Any]:
        """Request fields from the form's values: only those the picked model can use, since
        hidden controls keep their values; then the plugins' controls."""
        card = self.cards.get(data[self.model]) or next(iter(self.cards.values()))
        fields = {name: data[component] for name, component in self.fields.items()}
        fields["seed"] = None if data[self.random_seed] else data[self.seed]
        if data[self.size]:
            width, height = map(int, data[self.size].split("x"))
            fields |= {"width": width, "height": height}
        fields["sketch"] = sketch_from_editor(data[self.sketch]) if "sketch" in card.usable else None
        if {"mask", "init_image"} & card.usable:
            fields["init_image"], fields["mask"] = inpainting_from_editor(data[self.inpaint])
        fields = {k: v for k, v in fields.items() if k in card.usable} | {"model": card.name}
        fields["post"] = [{"name": name, "options": {k: data[c] for k, c in options.items() if data[c] not in (None, "")}}
                          for name, (toggle, options) in self.post.items() if data[toggle]]
        extra = [c.to_request(*(data[x] for x in c.components)) or {} for c in self.controls]
        return merge_request(fields, *extra)

    def for_model(self, name: str) -> dict[Any, Any]:
        """Updates when a model is picked: hide what it cannot use, show its defaults."""
        card = self.cards[name]
        updates: dict[Any, Any] = {self.summary: card.summary}
        for field, component in self.fields.items():
            value = {"value": card.defaults[field]} if field in card.defaults else {}
            updates[component] = gr.update(visible=field in card.usable, **value)
        updates[self.fields["class_label"]] = gr.update(choices=_class_choices(card), value=None,
                                                        visible="class_label" in card.usable)
        sizes = [_size_text(s) for s in card.sizes]
        updates[self.size] = gr.update(choices=sizes, value=sizes[0] if sizes else None, visible=len(sizes) > 1)
        height, width = card.sizes[0] if card.sizes else (64, 64)
        canvas = canvas_size(height, width)
        updates[self.sketch] = gr.update(visible="sketch" in card.usable, canvas_size=canvas)
        updates[self.inpaint] = gr.update(visible=bool({"mask", "init_image"} & card.usable), canvas_size=canvas)
        return updates

    def from_request(self, request: dict[str, Any]) -> dict[Any, Any]:
        """Updates that put a recipe's request into the form (and the model's visibility)."""
        updates = self.for_model(request["model"]) | {self.model: request["model"]}
        for field, component in self.fields.items():
            if request.get(field) is not None:
                updates[component] = {**updates[component], "value": request[field]}
        updates[self.random_seed], updates[self.seed] = False, request["seed"]
        if request.get("width") and request.get("height"):
            updates[self.size] = {**updates[self.size], "value": f"{request['width']}x{request['height']}"}
        if request.get("sketch"):
            sketch = to_rgb(open_image(request["sketch"], what="sketch"))
            updates[self.sketch] = {**updates[self.sketch], "value": {"background": sketch, "layers": [], "composite": sketch}}
        if request.get("init_image"):
            init = to_rgb(open_image(request["init_image"], what="init image"))
            layers = [_paint_layer(open_image(request["mask"], what="mask"), init.size)] if request.get("mask") else []
            painted = {"background": init, "layers": layers, "composite": init}
            updates[self.inpaint] = {**updates[self.inpaint], "value": painted}
        chosen = {spec["name"]: spec.get("options", {}) for spec in map(_post_dict, request.get("post", []))}
        for name, (toggle, options) in self.post.items():
            updates[toggle] = name in chosen
            for key, component in options.items():
                if key in chosen.get(name, {}):
                    updates[component] = chosen[name][key]
        return updates


def _post_dict(spec: Any) -> dict[str, Any]:
    return spec.model_dump() if isinstance(spec, PostSpec) else dict(spec)


def _paint_layer(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A mask (white = regenerate) as the painter's layer: paint where it is white."""
    alpha = mask.convert("L").resize(size, Image.NEAREST).point(lambda v: 255 if v >= 128 else 0)
    layer = Image.new("RGBA", size, (255, 0, 255, 0))
    layer.putalpha(alpha)
    return layer
