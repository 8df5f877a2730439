"""Write docs/images/sketch-inputs.png: drawings of every kind the sketch conditioner reads,
each above the line map a 64x64 model receives from it; or measure how close those line
maps are to the clean sketch.

    python docs/make_sketch_inputs_figure.py              # the picture, a few seconds
    python docs/make_sketch_inputs_figure.py --measure 200   # the table in docs/sketches.md, ~2 min

Columns: one scene of the shapes test split (``ShapesDataset("test", size=64)``, sample 1)
sketched as a clean PNG, as an 8x larger JPEG at quality 40, as strokes on a
transparent canvas (Gradio's sketchpad; shown on a checkerboard), light on dark, with a blue
pen on cream paper, with a 5 px pen, as filled black shapes, in a 2:1 canvas, as the scene's
own rendering (traced), and scikit-image's camera photo (traced); last a blank page, which
is no sketch. Inputs are shown fitted into their cell; outputs are 1 = black, at 2x, nearest.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageOps
from toolkit_plugins.conditioners.sketch import SketchConditioner
from toolkit_plugins.datasets.shapes import ShapesDataset

from toolkit.errors import ToolkitWarning
from toolkit.eval.sketches import edge_f1, sketch_f1, sketch_image, thick_sketch
from toolkit.generation.images import tensor_to_pil

OUT = Path(__file__).parent / "images" / "sketch-inputs.png"
CELL = 128
# Not measured against the scene's sketch: the scene letterboxed at half the size, another picture, no sketch.
NOT_COMPARED = ("2:1 canvas", "photo", "blank page")
SIZE = 64  # the model's side


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def transparent(drawing: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", drawing.size, (0, 0, 0, 0))
    layer.putalpha(ImageOps.invert(drawing))
    return layer


def filled(sample: dict) -> Image.Image:
    """The scene's objects as solid black shapes on white (from the rendering's non-background pixels)."""
    image = np.asarray(tensor_to_pil(sample["image"][None])[0], dtype=np.int16)
    ink = np.abs(image - image[0, 0]).max(axis=2) > 40
    return Image.fromarray(np.where(ink, 0, 255).astype(np.uint8), "L")


def inputs(sample: dict) -> list[tuple[str, Image.Image]]:
    """Every kind of drawing of one sample's scene (the last two are not of the scene)."""
    clean = sketch_image(sample["sketch"])
    wide = Image.new("L", (2 * SIZE, SIZE), 255)
    wide.paste(clean, (SIZE // 2, 0))
    return [
        ("PNG, clean", clean),
        ("JPEG, 8x larger, q=40", jpeg(clean.resize((8 * SIZE, 8 * SIZE), Image.BICUBIC), 40)),
        ("RGBA, transparent", transparent(clean)),
        ("light on dark", ImageOps.invert(clean)),
        ("blue pen, cream", ImageOps.colorize(clean, (30, 40, 140), (250, 245, 230))),
        ("5 px pen", sketch_image(thick_sketch(sample["sketch"]))),
        ("filled shapes", filled(sample)),
        ("2:1 canvas", wide),
        ("rendering", tensor_to_pil(sample["image"][None])[0]),
        ("photo", Image.fromarray(skimage.data.camera())),
        ("blank page", Image.new("RGB", (SIZE, SIZE), "white")),
    ]


def shown(image: Image.Image) -> Image.Image:
    """An input fitted into a CELL x CELL cell, transparency over a checkerboard."""
    scale = CELL / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST)
    board = (np.indices((CELL, CELL)) // 8).sum(axis=0) % 2
    cell = Image.fromarray(np.where(board, 205, 235).astype(np.uint8)).convert("RGBA")
    offset = ((CELL - image.width) // 2, (CELL - image.height) // 2)
    cell.alpha_composite(image.convert("RGBA"), offset)
    return cell.convert("RGB")


def output(image: Image.Image) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToolkitWarning)  # the blank page's, expected
        lines = SketchConditioner().encode(image, n=1, height=SIZE, width=SIZE)
    if lines is None:
        cell = Image.new("RGB", (CELL, CELL), "white")
        ImageDraw.Draw(cell).text((10, CELL // 2 - 6), "None: no sketch", fill="black")
        return cell
    grey = np.round(255 * (1 - lines[0, 0].numpy())).astype(np.uint8)
    return Image.fromarray(grey).resize((CELL, CELL), Image.NEAREST).convert("RGB")


def figure() -> None:
    columns = inputs(ShapesDataset("test", size=SIZE, length=2)[1])
    pad, label = 6, 16
    sheet = Image.new("RGB", (pad + len(columns) * (CELL + pad), label + 2 * (CELL + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (name, image) in enumerate(columns):
        left = pad + c * (CELL + pad)
        draw.text((left, 2), name, fill="black")
        sheet.paste(shown(image), (left, label))
        sheet.paste(output(image), (left, label + CELL + pad))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT)
    print(OUT)


def measure(scenes: int) -> None:
    """Per kind of drawing, edge F1 between the conditioner's lines and the clean sketch over
    ``scenes`` test scenes, then the edge F1 of each scene's rendering against its own
    sketch and against another scene's: mean and the worst scene (a markdown table)."""
    data = ShapesDataset("test", size=SIZE, length=scenes)
    scores: dict[str, list[float]] = {}
    for index in range(scenes):
        sample = data[index]
        reference = sample["sketch"][0].numpy() >= 0.5
        for name, image in inputs(sample):
            if name in NOT_COMPARED:
                continue
            for label, photo in ((name, False), (f"{name}, --sketch-from-photo", True)):
                if photo and name != "rendering":
                    continue
                lines = SketchConditioner().encode(image, n=1, height=SIZE, width=SIZE, sketch_from_photo=photo)
                f1 = 0.0 if lines is None else edge_f1(lines[0, 0].numpy() >= 0.5, reference)["f1"]
                scores.setdefault(label, []).append(f1)
    # The metric itself, on the scenes' renderings scored as generated images are.
    for name, pick in (("rendering vs its own sketch", 0), ("rendering vs the next scene's sketch", 1)):
        scores[name] = [sketch_f1(data[i]["image"], data[(i + pick) % scenes]["sketch"])["f1"] for i in range(scenes)]
    print(f"| ({scenes} test scenes, {SIZE}x{SIZE}) | edge F1, mean | worst scene |")
    print("| --- | --- | --- |")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} | {min(values):.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", type=int, metavar="SCENES", help="print the table instead of drawing the picture")
    arguments = parser.parse_args()
    measure(arguments.measure) if arguments.measure else figure()
