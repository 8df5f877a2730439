"""The `shapes` plugin: a procedural dataset of captioned shapes, and the evaluator that
scores an image against a shapes caption.

    scene.py      vocabulary, scenes, captions and the caption parser
    render.py     drawing a scene: image, sketch and per-object masks
    dataset.py    the ``shapes`` dataset, with a held-out split of unseen combinations
    evaluator.py  finds the objects in an image and checks them against a caption
"""

from toolkit import hookimpl

from .dataset import ShapesDataset, heldout_combinations
from .evaluator import DetectedObject, EvalResult, ShapesEvaluator
from .render import render
from .scene import COLOURS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject, caption, parse_caption, sample_scene

__all__ = [
    "ShapesDataset", "ShapesEvaluator", "EvalResult", "DetectedObject", "Scene", "ShapeObject",
    "caption", "parse_caption", "sample_scene", "render", "heldout_combinations",
    "COLOURS", "SHAPES", "SIZES", "POSITIONS",
]


@hookimpl
def register_datasets(register):
    register(ShapesDataset)
