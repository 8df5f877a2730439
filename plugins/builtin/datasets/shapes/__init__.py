"""The `shapes` plugin: a procedural dataset of captioned shapes, and the evaluator that
scores an image against a shapes caption.

    scene.py      vocabulary, scenes, captions and the caption parser
    render.py     drawing a scene: image, sketch and per-object masks
    free.py       the free layout: one to four turned, overlapping objects anywhere
    sketches.py   free-layout sketches, clean or drawn the way people draw
    dataset.py    the ``shapes`` dataset, with a held-out split of unseen combinations
    evaluator.py  finds the objects in an image and checks them against a caption
    freefit.py    how the evaluator reads turned and partly hidden objects

The evaluator (scipy) is imported when it is first used, not when the plugin registers:
``from toolkit_plugins.datasets.shapes import ShapesEvaluator`` works as for every other name.
"""

from toolkit import hookimpl

from .dataset import ShapesDataset, heldout_combinations
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


_FROM_EVALUATOR = ("DetectedObject", "EvalResult", "ShapesEvaluator")


def __getattr__(name: str):
    if name in _FROM_EVALUATOR:
        from . import evaluator

        return getattr(evaluator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_datasets(register):
    register(ShapesDataset)
