"""The ``sketch`` conditioner: whatever drawing a person hands over -> the line map a model
was trained on, ``(n, 1, H, W)`` float32 in [0, 1], 1 = stroke (docs/sketches.md).

How a drawing, a photo or a rendering becomes lines is in sketch_lines.py (numpy, scipy and
scikit-image), imported when a sketch is encoded, not when the plugins load.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from toolkit.components import Conditioner
from toolkit.errors import ToolkitWarning
from toolkit.generation.images import open_image

if TYPE_CHECKING:
    import torch
    from PIL import Image


class SketchConditioner(Conditioner):
    """A drawing (any PIL image) -> ``(n, 1, H, W)`` float32 in [0, 1], 1 = stroke, or None
    for a blank one. Paper is 0, so "no sketch here" is the network's natural zero."""

    name = "sketch"
    kind = "sketch"
    description = "any drawing, photo or rendering -> line map; letterboxed, polarity and photos detected"
    request_fields = ("sketch_from_photo",)

    def encode(self, value: Any, *, n: int, height: int, width: int,
               sketch_from_photo: bool = False) -> torch.Tensor | None:
        import torch

        from .sketch_lines import sketch_lines

        lines = sketch_lines(open_image(value, what="sketch"), height, width, from_photo=sketch_from_photo)
        if lines is None:
            warnings.warn(ToolkitWarning("the sketch has no lines (blank, or too faint to read); generating as "
                                         "without a sketch"), stacklevel=2)
            return None
        return torch.from_numpy(lines)[None, None].expand(n, -1, -1, -1).contiguous()

    @classmethod
    def fit(cls, image: Image.Image, width: int, height: int) -> Image.Image:
        """The sketch as worth keeping in a request or recipe for a ``width x height`` model:
        8-bit L, RGB or RGBA, its aspect ratio and transparency kept, resized to fit the
        working canvas (small: at most ``sketch_lines.WORK_SCALE`` times the model's size).
        ``encode`` gives the same for the result as for the image itself, and ``fit`` leaves
        the result as it is."""
        from .sketch_lines import fit_canvas, normalise_mode

        return fit_canvas(normalise_mode(image), height, width)
