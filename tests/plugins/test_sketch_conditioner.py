"""The sketch conditioner reads what people hand it: every file format and image mode, any
size and aspect (letterboxed), dark on light or light on dark, photos and renderings
(traced), thick pens and filled areas (thinned, outlined); a blank page is no sketch."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageOps
from toolkit_plugins.conditioners.sketch import SketchConditioner
from toolkit_plugins.datasets.shapes import ShapesDataset

from toolkit.cli import cli
from toolkit.errors import ImageInputError, ToolkitWarning
from toolkit.eval.sketches import edge_f1, sketch_image, thick_sketch
from toolkit.generation.images import tensor_to_pil
from toolkit.generation.pipeline import generate

SCENES = 8


@pytest.fixture(scope="module")
def scenes() -> list[dict]:
    return [ShapesDataset("test", size=64, length=SCENES)[i] for i in range(SCENES)]


def encoded(image: Image.Image, size: tuple[int, int] = (64, 64), **fields) -> np.ndarray | None:
    """The conditioner's lines ``(H, W)`` for ``size`` = (H, W), or None."""
    out = SketchConditioner().encode(image, n=1, height=size[0], width=size[1], **fields)
    return None if out is None else out[0, 0].numpy()


def f1_against(lines: np.ndarray | None, sketch: torch.Tensor) -> float:
    return 0.0 if lines is None else edge_f1(lines >= 0.5, sketch[0].numpy() >= 0.5)["f1"]


def saved(image: Image.Image, fmt: str, **options) -> Image.Image:
    """The image written as ``fmt`` and read back, as a user's file would be."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue()))


def transparent(drawing: Image.Image, colour=(0, 0, 0)) -> Image.Image:
    """Strokes on a transparent canvas, as Gradio's sketchpad sends them."""
    alpha = ImageOps.invert(drawing.convert("L"))
    layer = Image.new("RGBA", drawing.size, (*colour, 0))
    layer.putalpha(alpha)
    return layer


def two_colours(drawing: Image.Image) -> Image.Image:
    """A palette image: index 0 white paper (made transparent when saved), 1 black ink."""
    image = Image.fromarray((np.asarray(drawing.convert("L")) < 128).astype(np.uint8), "P")
    image.putpalette([255, 255, 255, 0, 0, 0])
    return image


DRAWINGS = {
    "png L": lambda d: saved(d, "PNG"),
    "jpeg, 4x larger": lambda d: saved(d.resize((256, 256), Image.BICUBIC).convert("RGB"), "JPEG", quality=60),
    "webp": lambda d: saved(d.convert("RGB"), "WEBP", quality=50),
    "rgb": lambda d: d.convert("RGB"),
    "rgba, transparent paper": lambda d: transparent(d),
    "rgba, white strokes on transparent": lambda d: transparent(d, (255, 255, 255)),
    "la": lambda d: d.convert("LA"),
    "palette": lambda d: d.convert("P"),
    "palette with transparency": lambda d: saved(two_colours(d), "PNG", transparency=0),
    "1 bit": lambda d: d.convert("1"),
    "16 bit": lambda d: Image.fromarray(np.asarray(d, np.uint16) * 257),
    "float": lambda d: Image.fromarray(np.asarray(d, np.float32) / 255),
    "cmyk": lambda d: d.convert("CMYK"),
    "light on dark": lambda d: ImageOps.invert(d),
    "blue pen on cream": lambda d: ImageOps.colorize(d, (30, 40, 140), (250, 245, 230)),
    "much larger": lambda d: d.resize((2000, 2000), Image.BICUBIC),
    "5 px strokes": lambda d: sketch_image(thick_sketch(1 - torch.from_numpy(np.asarray(d, np.float32) / 255)[None])),
}


@pytest.mark.parametrize("kind", list(DRAWINGS))
def test_every_kind_of_drawing_gives_the_drawn_lines(scenes, kind):
    scores = [f1_against(encoded(DRAWINGS[kind](sketch_image(s["sketch"]))), s["sketch"]) for s in scenes]
    assert np.mean(scores) > 0.95 and min(scores) > 0.85, scores


def test_output_is_the_contract_shape_with_strokes_one(scenes):
    drawing = sketch_image(scenes[0]["sketch"])
    out = SketchConditioner().encode(drawing, n=3, height=64, width=64)
    assert out.shape == (3, 1, 64, 64) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1 and torch.equal(out[0], out[2])
    ink = np.asarray(drawing) < 128
    assert out[0, 0][torch.from_numpy(ink)].mean() > 0.8 and out[0, 0][torch.from_numpy(~ink)].mean() < 0.05


def circle(width: int, height: int, radius: int, line: int = 6) -> Image.Image:
    image = Image.new("L", (width, height), 255)
    cx, cy = width // 2, height // 2
    ImageDraw.Draw(image).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=0, width=line)
    return image


@pytest.mark.parametrize(("drawn", "model"), [((512, 256), (64, 64)), ((300, 600), (64, 64)), ((600, 200), (16, 24))])
def test_another_aspect_is_letterboxed_not_stretched(drawn, model):
    radius = min(drawn) // 2 - 8
    out = encoded(circle(*drawn, radius), model)
    assert out.shape == model
    rows, columns = np.nonzero(out >= 0.5)
    height, width = rows.max() - rows.min(), columns.max() - columns.min()
    assert abs(height - width) <= 1  # still a circle
    fit = min(model[0] / drawn[1], model[1] / drawn[0])
    assert abs(height - 2 * radius * fit) <= 2  # as large as it was drawn, relative to the page
    centre = ((rows.max() + rows.min()) / 2, (columns.max() + columns.min()) / 2)
    assert abs(centre[0] - (model[0] - 1) / 2) <= 1 and abs(centre[1] - (model[1] - 1) / 2) <= 1


def test_photos_and_renderings_are_traced(scenes):
    camera = Image.fromarray(skimage.data.camera())
    lines = encoded(camera)
    assert np.array_equal(lines, encoded(camera, sketch_from_photo=True))  # detected as a photo
    assert 0.02 < (lines >= 0.5).mean() < 0.3  # lines, not texture
    for s in scenes:
        rendering = tensor_to_pil(s["image"][None])[0]
        assert f1_against(encoded(rendering, sketch_from_photo=True), s["sketch"]) > 0.9
        assert f1_against(encoded(saved(rendering.resize((256, 256)), "JPEG", quality=70)), s["sketch"]) > 0.85


def test_a_drawing_traced_as_a_photo_keeps_its_lines(scenes):
    scores = [f1_against(encoded(sketch_image(s["sketch"]), sketch_from_photo=True), s["sketch"]) for s in scenes]
    assert np.mean(scores) > 0.95


def test_thick_pens_and_filled_areas_become_thin_lines():
    thick = circle(640, 640, 250, line=50)  # 5 px at 64x64
    lines = encoded(thick)
    assert 0 < (lines >= 0.5).sum() < 0.5 * (np.asarray(thick.resize((64, 64))) < 128).sum()
    filled = Image.new("L", (64, 64), 255)
    filled.paste(0, (16, 16, 48, 48))
    lines = encoded(filled)
    assert lines[20:44, 20:44].max() == 0  # the inside is empty...
    assert lines[16:48, 16].min() > 0.5 and lines[16, 16:48].min() > 0.5  # ...and the edge a line


@pytest.mark.parametrize("page", ["white", "black", "jpeg noise", "transparent", "faint"])
def test_a_blank_page_is_no_sketch_with_one_warning(page):
    pages = {
        "white": Image.new("RGB", (300, 200), "white"),
        "black": Image.new("L", (64, 64), 0),
        "jpeg noise": saved(Image.new("RGB", (256, 256), (250, 250, 250)), "JPEG", quality=20),
        "transparent": Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
        "faint": Image.new("L", (64, 64), 255),
    }
    ImageDraw.Draw(pages["faint"]).line((8, 8, 56, 56), fill=250)  # 2% grey: paper grain, not a line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert SketchConditioner().encode(pages[page], n=2, height=64, width=64) is None
    assert [w.category for w in caught] == [ToolkitWarning] and "generating as without a sketch" in str(caught[0].message)


def test_a_blank_sketch_generates_as_without_one(tiny_model, tmp_path):
    Image.new("RGB", (16, 16), "white").save(tmp_path / "blank.png")
    with pytest.warns(ToolkitWarning, match="no lines"):
        blank = generate(model="tinym", seed=3, sketch=str(tmp_path / "blank.png"))
    plain = generate(model="tinym", seed=3)
    assert np.array_equal(np.asarray(blank.images[0]), np.asarray(plain.images[0]))


def test_a_huge_sketch_is_one_line_not_a_hang(tiny_model, tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png", optimize=True)
    with pytest.raises(ImageInputError, match="megapixels"):
        SketchConditioner().encode(str(tmp_path / "huge.png"), n=1, height=64, width=64)
    result = CliRunner().invoke(cli, ["generate", "--model", "tinym", "--sketch", str(tmp_path / "huge.png"),
                                      "--out", str(tmp_path / "out")], obj={})
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and "megapixels" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 2


def test_fit_keeps_aspect_and_transparency_and_changes_nothing_encode_sees():
    drawing = transparent(circle(1000, 500, 200))
    fitted = SketchConditioner.fit(drawing, 64, 64)
    assert fitted.mode == "RGBA" and fitted.size == (256, 128)  # the working canvas: 4x the model's size
    assert SketchConditioner.fit(fitted, 64, 64).tobytes() == fitted.tobytes()
    assert np.array_equal(encoded(fitted), encoded(drawing))
    small = SketchConditioner.fit(Image.new("P", (10, 10)), 64, 64)
    assert small.mode == "RGB" and small.size == (256, 256)
