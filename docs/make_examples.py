"""Write the example inputs in examples/: sketches to draw from and an inpainting pair.

    python docs/make_examples.py

Sketches are drawn by the shapes dataset's sketch renderer (free layout, sketches.py) at
256x256, dark lines on white, from scenes laid out here by hand, with the renderer's
hand-drawn variation from a fixed seed, so re-running the script gives the same files.
The inpainting pair is a free-layout render and a mask over one of its objects (white =
redraw).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from toolkit_plugins.datasets.shapes.free import FreeObject, FreeScene, free_coverage, render_free
from toolkit_plugins.datasets.shapes.sketches import draw_sketch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZE = 256
# name -> (objects, seed): each seed, picked by eye, draws every object with the look the
# file is named for (the hand-drawn one wobbles and leaves a gap).
SKETCHES = {
    "circle-and-star": ((FreeObject("circle", "red", 0.3, 0.55, 0.16),
                         FreeObject("star", "yellow", 0.75, 0.22, 0.09, 10.0)), 3),
    "two-squares": ((FreeObject("square", "blue", 0.3, 0.7, 0.15, -8.0),
                     FreeObject("square", "orange", 0.72, 0.3, 0.085, 10.0)), 7),
    "hand-drawn-triangle-and-circle": ((FreeObject("triangle", "green", 0.52, 0.56, 0.17, 0.0),
                                        FreeObject("circle", "purple", 0.2, 0.2, 0.09)), 8),
}
INPAINT = (FreeObject("square", "blue", 0.28, 0.5, 0.15, 0.0), FreeObject("circle", "yellow", 0.75, 0.5, 0.09))
MASK_PAD = 0.04  # the mask's margin around the object, in image sides


def sketch_png(objects: tuple[FreeObject, ...], seed: int) -> Image.Image:
    """The objects drawn by hand at SIZE x SIZE: dark lines on white, greyscale."""
    ink, drawn = draw_sketch(FreeScene(objects, (1.0,) * len(objects)), SIZE, np.random.default_rng(seed))
    if not all(drawn):
        raise RuntimeError(f"seed {seed} leaves an object out of the sketch: pick another")
    return Image.fromarray(np.round((1 - ink) * 255).astype(np.uint8), "L")


def inpaint_pair() -> tuple[Image.Image, Image.Image]:
    """The init image (RGB) and a mask (greyscale, white = redraw) over its second object."""
    image = Image.fromarray(render_free(FreeScene(INPAINT, (1.0, 1.0)), SIZE))
    rows, cols = np.nonzero(free_coverage(INPAINT[1], SIZE) > 0)
    pad = round(MASK_PAD * SIZE)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[max(rows.min() - pad, 0): rows.max() + pad + 1, max(cols.min() - pad, 0): cols.max() + pad + 1] = 255
    return image, Image.fromarray(mask, "L")


def main() -> None:
    (EXAMPLES / "sketches").mkdir(parents=True, exist_ok=True)
    (EXAMPLES / "inpaint").mkdir(parents=True, exist_ok=True)
    written = []
    for name, (objects, seed) in SKETCHES.items():
        written.append(EXAMPLES / "sketches" / f"{name}.png")
        sketch_png(objects, seed).save(written[-1], optimize=True)
    image, mask = inpaint_pair()
    for picture, name in ((image, "init.png"), (mask, "mask.png")):
        written.append(EXAMPLES / "inpaint" / name)
        picture.save(written[-1], optimize=True)
    for path in written:
        print(f"{path.relative_to(EXAMPLES.parent)}  {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
