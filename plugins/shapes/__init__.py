"""The `shapes` plugin: a procedural dataset of captioned shapes, and the evaluator that
checks whether an image matches a shapes caption.

    scene.py      vocabulary, scenes, captions and their parser
    render.py     drawing a scene: image, sketch, per-object masks
    dataset.py    the dataset plugin, with a held-out split of unseen combinations
    evaluator.py  finds objects in an image and scores it against a caption
"""

from toolkit import hookimpl

from .dataset import ShapesDataset, heldout_combinations
from .evaluator import EvalResult, ShapesEvaluator
from .scene import COLOURS, POSITIONS, SHAPES, SIZES, ShapeObject, caption, parse_caption

__all__ = ["ShapesDataset", "ShapesEvaluator", "EvalResult", "ShapeObject", "caption", "parse_caption",
           "heldout_combinations", "COLOURS", "SHAPES", "SIZES", "POSITIONS"]


@hookimpl
def register_datasets(register):
    register(ShapesDataset)
