"""The conditioner contract (``toolkit.components.Conditioner``): what ``encode`` gives for
each kind, as ``toolkit.components.Conditioning`` documents it.

    class       an int                  -> (n,) int64
    sketch      a PIL drawing           -> (n, 1, H, W) float in [0, 1], 1 = stroke
    mask        a PIL mask              -> (n, 1, H, W) float in [0, 1], 1 = redraw (white), grey = blend
    init_image  a PIL image             -> (n, 3, H, W) float in [-1, 1]
    text        a prompt                -> TextEmbedding: tokens (n, L, D), pooled (n, D'), mask (n, L) or None
"""

from __future__ import annotations

import inspect as pyinspect
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from toolkit.components import CONDITIONING_KINDS, Conditioner, TextConditioner, TextEmbedding
from toolkit.errors import ToolkitWarning

from .expect import expect, expect_tensor, expect_toolkit_error

PROMPTS = ("a red circle and a blue star", "a small green triangle")


def check_conditioner(cls: type[Conditioner], *, folder: Path | None = None, config: dict[str, Any] | None = None,
                      n: int = 2, height: int = 16, width: int = 24) -> Conditioner:
    """Load the conditioner as the pipeline does (``cls.load(folder, config)``: a model
    folder and its config.json for conditioners with weights, None and {} for the rest),
    then check what it encodes for its kind. Returns the loaded conditioner."""
    expect(pyinspect.isclass(cls) and issubclass(cls, Conditioner), f"{cls!r} is not a Conditioner subclass")
    what = f"conditioner '{getattr(cls, 'name', cls.__name__)}'"
    expect(isinstance(getattr(cls, "name", None), str) and bool(cls.name), f"{what}: no 'name'")
    kind = getattr(cls, "kind", None)
    expect(kind in CONDITIONING_KINDS, f"{what}: kind {kind!r} is not one of {CONDITIONING_KINDS}")
    conditioner = cls.load(folder, dict(config or {}))
    expect(isinstance(conditioner, cls), f"{what}: load returned {type(conditioner).__name__}, not a {cls.__name__}")
    CHECKS[kind](conditioner, n=n, height=height, width=width)
    return conditioner


def check_class_conditioner(conditioner: Conditioner, *, n: int, height: int, width: int) -> None:
    """A class index -> ``(n,)`` int64, that index in every row."""
    for label in (0, 3):
        out = expect_tensor(conditioner.encode(label, n=n, height=height, width=width),
                            f"{_name(conditioner)}: encode({label})", (n,), dtype=torch.int64)
        expect(bool((out == label).all()), f"{_name(conditioner)}: encode({label}) gave {out.tolist()}")


def drawing(width: int, height: int, *, ink: int = 0, paper: int = 255, mode: str = "RGB") -> Image.Image:
    """A ``width`` x ``height`` PIL image: ``paper`` grey with a filled ``ink`` box over the
    middle half (rows and columns from 1/4 to 3/4)."""
    image = Image.new("L", (width, height), paper)
    image.paste(ink, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return image.convert(mode)


def _box(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Values inside the box of ``drawing`` (away from its edges, which resizing blurs)
    and outside it, of ``t`` ``(n, C, H, W)``."""
    h, w = t.shape[-2:]
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[h // 4 + 1:3 * h // 4 - 1, w // 4 + 1:3 * w // 4 - 1] = True
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[h // 4 - 1:3 * h // 4 + 1, w // 4 - 1:3 * w // 4 + 1] = False
    return t[..., inside], t[..., outside]


def _check_image_kind(conditioner: Conditioner, *, n: int, height: int, width: int, channels: int, low: float,
                      high: float, ink: int, paper: int) -> None:
    """Shared by sketch, mask and init_image: the shape and range for inputs of several PIL
    modes, at the model's size and at twice it (resized); the box drawn in ``ink`` reads as
    ``low`` and the ``paper`` around it as ``high`` or the other way round; an input of
    another aspect ratio is refused with a ToolkitError."""
    name = _name(conditioner)
    for mode in ("RGB", "L", "RGBA", "P"):
        for scale in (1, 2):
            image = drawing(width * scale, height * scale, ink=ink, paper=paper, mode=mode)
            what = f"{name}: encode({mode} {image.width}x{image.height}) for {width}x{height}"
            out = expect_tensor(conditioner.encode(image, n=n, height=height, width=width), what,
                                (n, channels, height, width), low=low, high=high)
            expect(bool((out == out[:1]).all()), f"{what}: the {n} rows differ; one input is repeated for the batch")
            inside, outside = _box(out)
            expect(abs(float(inside.mean()) - float(outside.mean())) > 0.5 * (high - low),
                   f"{what}: the box drawn in grey {ink} on grey {paper} does not stand out "
                   f"(inside {float(inside.mean()):.3f}, outside {float(outside.mean()):.3f})")
    wrong = drawing(width * 2, height, ink=ink, paper=paper)
    expect_toolkit_error(lambda: conditioner.encode(wrong, n=n, height=height, width=width),
                         f"{name}: encode of a {wrong.width}x{wrong.height} image for {width}x{height}")


def outline(width: int, height: int, *, ink: int = 0, paper: int = 255, mode: str = "RGB") -> Image.Image:
    """A ``width`` x ``height`` PIL image: ``paper`` grey with the edge of the middle half
    (rows and columns from 1/4 to 3/4) traced in ``ink``, a line 1/16 of the shorter side wide."""
    image = Image.new("L", (width, height), paper)
    line = max(1, min(width, height) // 16)
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, 3 * width // 4 - 1, 3 * height // 4 - 1),
                                    outline=ink, width=line)
    return image.convert(mode)


def check_sketch_conditioner(conditioner: Conditioner, *, n: int, height: int, width: int) -> None:
    """Any drawing -> ``(n, 1, H, W)`` in [0, 1] with 1 = stroke: a rectangle's edge traced
    dark on light or light on dark, in several PIL modes, at the model's size and at twice
    it, reads as strokes along the edge and 0 well inside and outside it; a drawing of
    another aspect ratio is letterboxed (its margins 0, nothing stretched); a blank page is
    no sketch: None, with one ``ToolkitWarning``."""
    name = _name(conditioner)
    for ink, paper in ((0, 255), (255, 0)):
        for mode in ("RGB", "L", "P"):
            for scale in (1, 2):
                image = outline(width * scale, height * scale, ink=ink, paper=paper, mode=mode)
                what = f"{name}: encode({mode} {image.width}x{image.height}, ink {ink} on {paper}) for {width}x{height}"
                out = expect_tensor(conditioner.encode(image, n=n, height=height, width=width), what,
                                    (n, 1, height, width), low=0, high=1)
                expect(bool((out == out[:1]).all()), f"{what}: the {n} rows differ; one input is repeated for the batch")
                _check_outline(out[0, 0], width // 4, height // 4, 3 * width // 4, 3 * height // 4, what)
    wide = outline(width * 2, height)  # letterboxed into the middle half of the rows
    what = f"{name}: encode of a {wide.width}x{wide.height} drawing for {width}x{height}"
    out = expect_tensor(conditioner.encode(wide, n=n, height=height, width=width), what, (n, 1, height, width),
                        low=0, high=1)[0, 0]
    margin = height // 4
    expect(float(out[:margin - 1].max()) == 0 and float(out[height - margin + 1:].max()) == 0,
           f"{what}: the margins above and below the drawing are not empty (stretched, not letterboxed?)")
    _check_outline(out, width // 4, margin + height // 8, 3 * width // 4, margin + 3 * height // 8, what)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blank = conditioner.encode(Image.new("RGB", (width, height), "white"), n=n, height=height, width=width)
    expect(blank is None, f"{name}: encode of a blank page gave {type(blank).__name__}, not None (no sketch)")
    expect([w.category for w in caught] == [ToolkitWarning],
           f"{name}: encode of a blank page warned {[w.category.__name__ for w in caught]}, not one ToolkitWarning")


def _check_outline(lines: torch.Tensor, left: int, top: int, right: int, bottom: int, what: str) -> None:
    """``lines`` ``(H, W)`` hold the edge of a rectangle from (left, top) to (right, bottom),
    exclusive, traced inwards as ``outline`` draws it: strokes along the edge, nothing two
    pixels or more outside the traced band."""
    line = max(1, min(lines.shape) // 16)
    near = torch.zeros(lines.shape, dtype=torch.bool)
    near[max(top - 2, 0):bottom + 2, max(left - 2, 0):right + 2] = True
    near[top + line + 2:bottom - line - 2, left + line + 2:right - line - 2] = False
    on_edge = lines[top:bottom, left].mean() + lines[top:bottom, right - 1].mean()
    expect(float(on_edge) / 2 > 0.5, f"{what}: the traced edge does not read as strokes (mean {float(on_edge) / 2:.3f})")
    expect(float(lines[~near].max()) < 0.1, f"{what}: strokes away from the drawn edge (max {float(lines[~near].max()):.3f})")


def check_mask_conditioner(conditioner: Conditioner, *, n: int, height: int, width: int) -> None:
    """White = redraw -> ``(n, 1, H, W)`` in [0, 1] with 1 = redraw and black exactly 0 (grey
    may blend: soft masks are allowed)."""
    _check_image_kind(conditioner, n=n, height=height, width=width, channels=1, low=0, high=1, ink=255, paper=0)
    out = conditioner.encode(drawing(width, height, ink=255, paper=0), n=n, height=height, width=width)
    inside, outside = _box(out)
    expect(bool((inside == 1).all() and (outside == 0).all()),
           f"{_name(conditioner)}: white must be 1 (regenerate) and black 0 (keep)")


def check_init_image_conditioner(conditioner: Conditioner, *, n: int, height: int, width: int) -> None:
    """A picture -> ``(n, 3, H, W)`` in [-1, 1], white near 1 and black near -1."""
    _check_image_kind(conditioner, n=n, height=height, width=width, channels=3, low=-1, high=1, ink=0, paper=255)
    out = conditioner.encode(drawing(width, height), n=n, height=height, width=width)
    inside, outside = _box(out)
    expect(float(inside.mean()) < -0.9 and float(outside.mean()) > 0.9,
           f"{_name(conditioner)}: black must be near -1 and white near 1")


def check_text_conditioner(conditioner: Conditioner, *, n: int, height: int, width: int) -> None:
    """A prompt -> ``TextEmbedding``: tokens ``(n, L, D)``, pooled ``(n, D')``, mask ``(n, L)``
    in {0, 1} or None; the same prompt gives the same tensors, another prompt others, and
    the empty prompt (what classifier-free guidance compares against) works too. A
    ``TextConditioner`` also batches prompts in ``embed`` and ``embed_prompts``."""
    name = _name(conditioner)
    first = _embedding(conditioner.encode(PROMPTS[0], n=n, height=height, width=width), f"{name}: encode", n)
    again = conditioner.encode(PROMPTS[0], n=n, height=height, width=width)
    expect(torch.equal(first.tokens, again.tokens) and torch.equal(first.pooled, again.pooled),
           f"{name}: the same prompt encoded twice differs")
    expect(bool((first.tokens == first.tokens[:1]).all()), f"{name}: encode's {n} rows differ; one prompt is repeated")
    other = _embedding(conditioner.encode(PROMPTS[1], n=n, height=height, width=width), f"{name}: encode", n)
    expect(first.tokens.shape != other.tokens.shape or not torch.equal(first.tokens, other.tokens),
           f"{name}: two different prompts give the same tokens")
    _embedding(conditioner.encode("", n=n, height=height, width=width), f"{name}: encode('')", n)
    if isinstance(conditioner, TextConditioner):
        batch = _embedding(conditioner.embed(list(PROMPTS)), f"{name}: embed", len(PROMPTS))
        expect(batch.tokens.shape[-1] == conditioner.token_dim,
               f"{name}: token_dim is {conditioner.token_dim} but tokens are {batch.tokens.shape[-1]} wide")
        _embedding(conditioner.embed_prompts(list(PROMPTS)), f"{name}: embed_prompts", len(PROMPTS))


def _embedding(emb: Any, what: str, n: int) -> TextEmbedding:
    expect(isinstance(emb, TextEmbedding), f"{what}: returned {type(emb).__name__}, not a TextEmbedding")
    tokens = expect_tensor(emb.tokens, f"{what}: tokens", (n, None, None))
    expect_tensor(emb.pooled, f"{what}: pooled", (n, None))
    if emb.attention_mask is not None:
        mask = emb.attention_mask
        expect_tensor(mask.float() if isinstance(mask, torch.Tensor) else mask, f"{what}: attention_mask",
                      (n, tokens.shape[1]), low=0, high=1)
        expect(bool(((mask == 0) | (mask == 1)).all()), f"{what}: attention_mask holds values other than 0 and 1")
        expect(bool((mask.sum(dim=1) > 0).all()), f"{what}: attention_mask hides every token of some row")
    return emb


def _name(conditioner: Conditioner) -> str:
    return f"conditioner '{type(conditioner).name}'"


CHECKS = {
    "class": check_class_conditioner,
    "sketch": check_sketch_conditioner,
    "mask": check_mask_conditioner,
    "init_image": check_init_image_conditioner,
    "text": check_text_conditioner,
}
