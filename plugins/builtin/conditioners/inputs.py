"""Built-in conditioners for the request inputs that need no learned encoder:
class labels, sketches, inpainting masks and init images.

Text conditioners carry weights and live with the models that use them. numpy and torch are
imported by the methods that encode, not when the plugins load.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from PIL import Image

from toolkit import hookimpl
from toolkit.components import Conditioner
from toolkit.errors import ToolkitWarning
from toolkit.generation.images import fit_to, pil_to_tensor, to_rgb

from .sketch import SketchConditioner  # the sketch conditioner has a module of its own

if TYPE_CHECKING:
    import torch


class ClassConditioner(Conditioner):
    """A class index, repeated for the batch: ``(n,)`` int64."""

    name = "class"
    kind = "class"

    def encode(self, value: int, *, n: int, height: int, width: int) -> torch.Tensor:
        import torch

        return torch.full((n,), int(value), dtype=torch.int64)


class MaskConditioner(Conditioner):
    """An inpainting mask -> ``(n, 1, H, W)`` float32 in [0, 1], 1 = redraw (white), 0 = keep.

    Any mode: the grey level is the mask, and transparent pixels count as black (keep), so an
    editor's brush layer on a transparent canvas works as it is. Grey is a soft mask: the
    result blends the redrawn and the original pixels there. Levels within ``SNAP`` of black
    or white count as black or white, so JPEG noise in a black area changes no pixel.
    """

    name = "mask"
    kind = "mask"
    SNAP = 8  # of 255: above the noise JPEG leaves in flat areas, below any deliberate grey

    @classmethod
    def fit(cls, image: Image.Image, width: int, height: int) -> Image.Image:
        """The mask as a greyscale ("L") image of ``width`` x ``height``: resized by area
        averaging (PIL's BOX filter) when it has another size of the same aspect ratio, with
        a warning, so a pixel half under the brush is half redrawn and a pixel wholly
        outside it stays exactly black; another aspect ratio is refused (stretching would
        move what the user marked)."""
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            black = Image.new("RGBA", image.size, (0, 0, 0, 255))
            image = Image.alpha_composite(black, image.convert("RGBA"))
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit greyscale: PIL's convert would clip, not scale
            import numpy as np

            image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
        grey = image.convert("L")
        if grey.size == (width, height):
            return grey
        fitted = fit_to(grey, width, height, what="mask", resample=Image.BOX)
        warnings.warn(ToolkitWarning(f"the mask is {grey.width}x{grey.height}; resized to {width}x{height}, the image "
                                     "size, by area averaging (pixels along its edge blend)"), stacklevel=2)
        return fitted

    def encode(self, value: Image.Image, *, n: int, height: int, width: int) -> torch.Tensor:
        import numpy as np
        import torch

        levels = np.asarray(self.fit(value, width, height))  # (H, W) uint8
        mask = np.where(levels <= self.SNAP, 0.0, np.where(levels >= 255 - self.SNAP, 1.0, levels / 255.0))
        return torch.from_numpy(mask.astype(np.float32))[None, None].expand(n, -1, -1, -1).contiguous()


class InitImageConditioner(Conditioner):
    """The image to inpaint -> ``(n, 3, H, W)`` in [-1, 1] (transparency composited onto
    white)."""

    name = "init_image"
    kind = "init_image"

    @classmethod
    def fit(cls, image: Image.Image, width: int, height: int) -> Image.Image:
        """The image as RGB at ``width`` x ``height``: resized (bicubic) when it has another
        size of the same aspect ratio, with a warning, since the output then keeps the
        resized pixels; another aspect ratio is refused."""
        rgb = to_rgb(image)
        if rgb.size == (width, height):
            return rgb
        fitted = fit_to(rgb, width, height, what="init image")
        warnings.warn(ToolkitWarning(f"the init image is {rgb.width}x{rgb.height}; resized to {width}x{height}, the "
                                     "size the model makes"), stacklevel=2)
        return fitted

    def encode(self, value: Image.Image, *, n: int, height: int, width: int) -> torch.Tensor:
        return pil_to_tensor(self.fit(value, width, height)).expand(n, -1, -1, -1).contiguous()


@hookimpl
def register_conditioners(register):
    register(ClassConditioner)
    register(SketchConditioner)
    register(MaskConditioner)
    register(InitImageConditioner)
