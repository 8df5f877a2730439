"""The `shapes` plugin: a procedural dataset of captioned shapes, and the evaluator that
scores an image against a shapes caption.

    scene.py      vocabulary, scenes, captions and the caption parser
    render.py     drawing a scene: image, sketch and per-object masks
    free.py       the free layout: one to four turned, overlapping objects anywhere
    sketches.py   free-layout sketches, clean or drawn the way people draw
    dataset.py    the ``shapes`` dataset, with a held-out split of unseen combinations
    evaluator.py  finds the objects in an image and checks them against a caption
    freefit.py    how the evaluator reads turned and partly hidden objects
"""

from toolkit import hookimpl

from .dataset import ShapesDataset, heldout_combinations
from .evaluator import DetectedObject, EvalResult, ShapesEvaluator
from .free import FreeObject, FreeScene, render_free, sample_free_scene
from .render import render
from .scene import COLOURS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject, caption, parse_caption, sample_scene
from .sketches import draw_sketch

__all__ = [
    "ShapesDataset", "ShapesEvaluator", "EvalResult", "DetectedObject", "Scene", "ShapeObject",
    "caption", "parse_caption", "sample_scene", "render", "heldout_combinations",
    "FreeObject", "FreeScene", "sample_free_scene", "render_free", "draw_sketch",
    "COLOURS", "SHAPES", "SIZES", "POSITIONS",
]


@hookimpl
def register_datasets(register):
    register(ShapesDataset)
