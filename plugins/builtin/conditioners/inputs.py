"""Built-in conditioners for the request inputs that need no learned encoder:
class labels, sketches, inpainting masks and init images.

Text conditioners carry weights and live with the models that use them.
"""

from __future__ import annotations

import torch
from PIL import Image

from toolkit import hookimpl
from toolkit.components import Conditioner
from toolkit.generation.images import fit_to, pil_to_tensor, to_rgb


class ClassConditioner(Conditioner):
    """A class index, repeated for the batch: ``(n,)`` int64."""

    name = "class"
    kind = "class"

    def encode(self, value: int, *, n: int, height: int, width: int) -> torch.Tensor:
        return torch.full((n,), int(value), dtype=torch.int64)


def _grey(image: Image.Image, height: int, width: int, what: str) -> torch.Tensor:
    """A PIL image -> ``(1, 1, height, width)`` grey level in [0, 1] (1 = white)."""
    image = fit_to(to_rgb(image), width, height, what=what, resample=Image.BILINEAR)
    return (pil_to_tensor(image).mean(dim=1, keepdim=True) + 1) / 2


class SketchConditioner(Conditioner):
    """A drawing of dark lines on white paper -> ``(n, 1, H, W)`` in [0, 1], 1 = stroke.

    Inverted so that "no sketch here" is zero, the natural default for a network input.
    """

    name = "sketch"
    kind = "sketch"

    def encode(self, value: Image.Image, *, n: int, height: int, width: int) -> torch.Tensor:
        return (1 - _grey(value, height, width, "sketch")).expand(n, -1, -1, -1).contiguous()


class MaskConditioner(Conditioner):
    """An inpainting mask, white = regenerate -> ``(n, 1, H, W)`` in {0, 1}, 1 = regenerate."""

    name = "mask"
    kind = "mask"

    def encode(self, value: Image.Image, *, n: int, height: int, width: int) -> torch.Tensor:
        # Nearest-neighbour keeps the mask binary when it is resized.
        image = fit_to(to_rgb(value), width, height, what="mask", resample=Image.NEAREST)
        grey = (pil_to_tensor(image).mean(dim=1, keepdim=True) + 1) / 2
        return (grey > 0.5).float().expand(n, -1, -1, -1).contiguous()


class InitImageConditioner(Conditioner):
    """A starting image -> ``(n, 3, H, W)`` in [-1, 1]."""

    name = "init_image"
    kind = "init_image"

    def encode(self, value: Image.Image, *, n: int, height: int, width: int) -> torch.Tensor:
        image = fit_to(to_rgb(value), width, height, what="init image")
        return pil_to_tensor(image).expand(n, -1, -1, -1).contiguous()


@hookimpl
def register_conditioners(register):
    register(ClassConditioner)
    register(SketchConditioner)
    register(MaskConditioner)
    register(InitImageConditioner)
