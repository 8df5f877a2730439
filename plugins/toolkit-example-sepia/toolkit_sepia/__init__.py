"""A sepia-tone post-processor: the smallest useful toolkit plugin, made to be copied."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import PostContext, PostProcessor, PostResult, Stage

# The classic sepia matrix: each output channel is a mix of the input's R, G and B.
SEPIA = torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


class SepiaOptions(BaseModel):
    """Options from `--post sepia:strength=0.5`; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    strength: float = Field(1.0, ge=0.0, le=1.0, description="0 = unchanged, 1 = full sepia")


class Sepia(PostProcessor):
    """Give images a warm, old-photo sepia tone."""

    name = "sepia"
    stage = Stage.EDIT  # a colour edit: after the safety check, before upscaling and watermarking
    Options = SepiaOptions

    def process(self, images: torch.Tensor, options: SepiaOptions, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in [-1, 1] -> the same shape, toned."""
        rgb = (images + 1) / 2  # [0, 1]
        toned = torch.einsum("oc,bchw->bohw", SEPIA.to(images), rgb).clamp(0, 1)
        mixed = torch.lerp(rgb, toned, options.strength)
        return PostResult(mixed * 2 - 1, {"strength": options.strength})


@hookimpl
def register_postprocessors(register):
    register(Sepia)
