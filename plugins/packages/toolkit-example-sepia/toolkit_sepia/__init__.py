"""A sepia-tone post-processor: the smallest useful toolkit plugin, made to be copied.

The entry point in pyproject.toml names this module; toolkit imports it and calls the
``@hookimpl`` functions below. That is the whole plugin.

toolkit imports every plugin each time any command starts, so this module imports only
light things; torch is imported in ``process``, where the work is (docs/plugins.md, "Keep
start-up fast").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import PostContext, PostProcessor, PostResult, Stage

if TYPE_CHECKING:
    import torch

# The classic sepia matrix: output channel (row) = a mix of the input's R, G and B (columns).
SEPIA = (
    (0.393, 0.769, 0.189),
    (0.349, 0.686, 0.168),
    (0.272, 0.534, 0.131),
)


class SepiaOptions(BaseModel):
    """Options from ``--post sepia:strength=0.5``. Unknown keys are refused, so a typo is
    an error instead of being silently ignored."""

    model_config = ConfigDict(extra="forbid")

    strength: float = Field(1.0, ge=0, le=1, description="0 leaves the image unchanged, 1 is full sepia")


class Sepia(PostProcessor):
    """Give images a warm, old-photo sepia tone."""

    name = "sepia"
    stage = Stage.EDIT  # a colour edit: after the safety check, before upscaling and watermarking
    Options = SepiaOptions

    def process(self, images: torch.Tensor, options: SepiaOptions, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in [-1, 1] -> toned images of the same shape and range."""
        import torch

        rgb = (images + 1) / 2  # the matrix is defined on [0, 1] colours
        matrix = torch.tensor(SEPIA, dtype=images.dtype, device=images.device)
        toned = torch.einsum("oc,bchw->bohw", matrix, rgb).clamp(0, 1)
        blended = torch.lerp(rgb, toned, options.strength)
        # The record is written into each PNG's recipe beside the options: say what was done.
        return PostResult(blended * 2 - 1, record={"strength": options.strength})


@hookimpl
def register_postprocessors(register):
    register(Sepia)


@hookimpl
def register_web_controls(register):
    """A slider in the web app's "Plugin options" (`toolkit app`); 0 leaves sepia off."""

    def build():
        import gradio as gr  # imported here: only the web app needs it

        about = SepiaOptions.model_fields["strength"].description
        strength = gr.Slider(0, 1, value=0, step=0.05, label="Sepia strength", info=f"{about}; 0 = off")

        def to_request(value):
            return {"post": [{"name": "sepia", "options": {"strength": value}}]} if value else {}

        return [strength], to_request

    register("Sepia", build)
