"""Gradio controls made from field specs, the two drawing surfaces (the sketchpad and the
mask painter) and what their values become in a request, and plugins' own controls
(``register_web_controls``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
import pluggy
from PIL import Image

from toolkit.errors import ImageInputError
from toolkit.generation.images import check_pixel_count, to_rgb
from toolkit.host.registry import Registry
from toolkit_apps.form import FieldSpec

log = logging.getLogger(__name__)

# A slider for ranges a thumb can cover; wider ones (seeds) get a number box.
SLIDER_SPAN = 1000
# Drawing surfaces are shown at this many pixels on their longer side, whatever the model's size.
CANVAS = 256


def _range_text(spec: FieldSpec) -> str:
    """`` (1 to 1000)`` after the help text; nothing for open or huge ranges (a seed's)."""
    if spec.minimum is None or spec.maximum is None or spec.maximum > 1e6:
        return ""
    return f" ({spec.minimum} to {spec.maximum})"


def control(spec: FieldSpec, *, value: Any = None, slider: bool = True, visible: bool = True,
            **kwargs: Any) -> gr.components.Component:
    """The Gradio control for one field: a checkbox, a choice, a slider or a number box, or a
    text box; labelled by the field's name, explained by its description.

    Range checks stay with the schema, so a number out of range gets the same message from
    the request as from the CLI."""
    common = dict(label=kwargs.pop("label", spec.label), info=spec.description + _range_text(spec), visible=visible, **kwargs)
    if spec.type is bool:
        return gr.Checkbox(value=bool(value if value is not None else spec.default), **common)
    if spec.choices is not None:  # "" stands for None: "the default", left out of the request
        choices = [(str(c), c) for c in spec.choices] + ([] if spec.default is not None else [("default", "")])
        start = value if value is not None else spec.default
        return gr.Dropdown(choices=choices, value="" if start is None else start, **common)
    if spec.type in (int, float):
        bounded = spec.minimum is not None and spec.maximum is not None and spec.maximum - spec.minimum <= SLIDER_SPAN
        start = value if value is not None else spec.default
        if slider and bounded and start is not None:
            step = 1 if spec.type is int else (0.01 if spec.maximum - spec.minimum <= 2 else 0.1)
            return gr.Slider(spec.minimum, spec.maximum, value=start, step=step, **common)
        if start is None:
            # A number box shows and sends 0 when empty; text can be empty, which the
            # request reads as "the default", and pydantic parses what is typed.
            return gr.Textbox(value="", placeholder="empty: the default", **common)
        return gr.Number(value=start, precision=0 if spec.type is int else None, **common)
    return gr.Textbox(value=value if value is not None else spec.default, lines=2 if spec.kind == "text" else 1, **common)


# -- drawing surfaces ----------------------------------------------------------------------


def canvas_size(height: int, width: int) -> tuple[int, int]:
    """``(width, height)`` of a drawing surface with the model's aspect ratio."""
    scale = CANVAS / max(height, width)
    return round(width * scale), round(height * scale)


def sketchpad(height: int, width: int, **kwargs: Any) -> gr.ImageEditor:
    """Black strokes on white paper, or an uploaded drawing; PNG, so no stroke is blurred.
    Uploads are fitted to the canvas, so the brush is the same size on every image."""
    return gr.Sketchpad(type="pil", image_mode="RGBA", format="png", canvas_size=canvas_size(height, width), fixed_canvas=True,
                        sources=("upload", "clipboard"), brush=gr.Brush(colors=["#000000"], default_size=6,
                                                                       color_mode="fixed"), **kwargs)


def mask_painter(height: int, width: int, **kwargs: Any) -> gr.ImageEditor:
    """An uploaded init image with one paint layer over it: what is painted is regenerated."""
    return gr.ImageEditor(type="pil", image_mode="RGBA", format="png", canvas_size=canvas_size(height, width),
                          fixed_canvas=True, sources=("upload", "clipboard"), layers=False, transforms=(),
                          brush=gr.Brush(colors=["#ff00ff"], default_size=12, color_mode="fixed"),
                          eraser=gr.Eraser(default_size=12), **kwargs)


def _painted(layer: Image.Image) -> bool:
    return layer.mode == "RGBA" and layer.getchannel("A").getbbox() is not None


def _blank(image: Image.Image) -> bool:
    """Nothing on it: uniformly white once composited onto white paper."""
    return to_rgb(image).convert("L").getextrema() == (255, 255)


def sketch_from_editor(value: dict[str, Any] | None) -> Image.Image | None:
    """The sketch a user drew or uploaded, composited onto white; None when the pad is empty."""
    composite = (value or {}).get("composite")
    if composite is None:
        return None
    check_pixel_count(composite.width, composite.height, "sketch")
    return None if _blank(composite) else to_rgb(composite)


def inpainting_from_editor(value: dict[str, Any] | None) -> tuple[Image.Image | None, Image.Image | None]:
    """(init image, mask) from the mask painter: the uploaded image, and white wherever the
    paint layer has paint (the brush adds, the eraser takes away); None for what is missing."""
    if not value:
        return None, None
    background = value.get("background")
    layers = [layer for layer in value.get("layers") or [] if _painted(layer)]
    if background is None or background.getchannel("A").getextrema()[1] == 0:
        if layers:
            raise ImageInputError("the mask is painted over nothing: upload an init image first, then paint on it")
        return None, None
    check_pixel_count(background.width, background.height, "init image")
    init = to_rgb(background)
    if not layers:
        return init, None
    mask = Image.new("L", init.size, 0)
    for layer in layers:
        alpha = layer.getchannel("A").resize(init.size, Image.NEAREST)
        mask.paste(255, mask=alpha.point(lambda a: 255 if a else 0))
    return init, mask


# -- plugins' controls ------------------------------------------------------------------------


@dataclass
class PluginControls:
    """What one plugin added through ``register_web_controls``: its label, the components its
    ``build()`` made and the function turning their values into request fields."""

    plugin: str
    label: str
    components: list[gr.components.Component]
    to_request: Callable[..., dict[str, Any]]


def plugin_controls(pm: pluggy.PluginManager, registry: Registry) -> tuple[list[PluginControls], list[str]]:
    """Call every plugin's ``register_web_controls`` and each ``build()`` it registered (inside
    the current Blocks context). Returns the controls and a line per plugin that failed.

    Not ``call_each``: a failure here must not drop the plugin's generators or
    post-processors from the registry the app serves; it only leaves out its controls."""
    controls: list[PluginControls] = []
    failures: list[str] = []
    for impl in pm.hook.register_web_controls.get_hookimpls():
        info = registry.plugins.get(impl.plugin_name)
        if info is not None and not info.ok:
            continue
        registered: list[tuple[str, Callable[[], Any]]] = []
        try:
            impl.function(register=lambda label, build, into=registered: into.append((str(label), build)))
        except Exception as error:  # noqa: BLE001 - a plugin's bug leaves out its controls, nothing more
            failures.append(_failure(impl.plugin_name, error))
            continue
        for label, build in registered:
            with gr.Group() as group:
                gr.Markdown(f"**{label}**")
                try:
                    components, to_request = build()
                except Exception as error:  # noqa: BLE001
                    group.visible = False  # hide whatever it made before failing
                    failures.append(_failure(impl.plugin_name, error))
                    continue
            controls.append(PluginControls(impl.plugin_name, label, list(components), to_request))
    return controls, failures


def _failure(plugin: str, error: Exception) -> str:
    log.warning("plugin %s: register_web_controls failed: %s", plugin, error)
    return f"plugin '{plugin}': its controls failed ({type(error).__name__}: {error})"
