"""The safety classifiers toolkit ships (``register_safety_classifiers``).

* ``clip``: similarity of each image to each concept, measured by the generator's own CLIP
  model. A generator that has one exposes ``clip_image_text_similarity(images, texts)``
  (images ``(B, 3, H, W)`` in [-1, 1], T texts -> ``(B, T)`` cosine similarities); for any
  other model the classifier is skipped, and the recipe says so.
* ``shapes``: the shapes evaluator (``toolkit_plugins.datasets.shapes``) reads the objects in each
  image; a concept is a shapes description ("a red circle", "a large star at the top") and
  its score the share of the attributes it states that the image shows on one object
  (1.0: there is a red circle). Harmless, but real: it lets a policy block "red circles"
  on our shipped shapes models, which is how the actions are tested end to end.

A third, ``nudenet``, comes with the opt-in plugins/packages/toolkit-nudenet package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolkit.components import PostContext, SafetyClassifier, image_text_scorer
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    import torch


class ClipSimilarity(SafetyClassifier):
    """CLIP image-text similarity from the model's own CLIP (skipped for models without one)."""

    name = "clip"
    METHOD = "clip_image_text_similarity"

    def skip_reason(self, ctx: PostContext) -> str | None:
        scorer = image_text_scorer(ctx.generator)
        if scorer is None:
            return f"model '{ctx.model_name}' has no CLIP model ({self.METHOD})"
        domain = scorer.clip_trained_on
        if domain is not None:
            # A CLIP that has seen one dataset scores everything it has not seen alike.
            return (f"model '{ctx.model_name}' has a CLIP trained only on the '{domain}' dataset: its similarity "
                    "to the policy's concepts means nothing")
        return None

    def score(self, images: torch.Tensor, concepts: list[str], ctx: PostContext) -> torch.Tensor:
        similarity = ctx.generator.clip_image_text_similarity(images, list(concepts))  # (B, C)
        expected = (images.shape[0], len(concepts))
        if tuple(similarity.shape) != expected:
            raise RuntimeError(f"{type(ctx.generator).__name__}.{self.METHOD} returned "
                               f"{tuple(similarity.shape)}, expected {expected}")
        return similarity.float()


class ShapesConcepts(SafetyClassifier):
    """The shapes evaluator: does the image show the described shape(s)?"""

    name = "shapes"

    @classmethod
    def check_concepts(cls, concepts: list[str]) -> None:
        from toolkit_plugins.datasets.shapes import parse_caption

        for concept in concepts:
            try:
                parse_caption(concept)
            except ToolkitError as error:
                raise ValueError(str(error)) from None

    def __init__(self) -> None:
        self._evaluator: Any = None

    def score(self, images: torch.Tensor, concepts: list[str], ctx: PostContext) -> torch.Tensor:
        import torch
        from toolkit_plugins.datasets.shapes import ShapesEvaluator, parse_caption

        if self._evaluator is None:
            self._evaluator = ShapesEvaluator()
        wanted = [parse_caption(c) for c in concepts]
        scores = torch.zeros(images.shape[0], len(concepts))
        for i, image in enumerate(images):  # (3, H, W)
            detected = self._evaluator.detect(image)
            for j, objects in enumerate(wanted):
                scores[i, j] = _shown(objects, detected)
        return scores


def _shown(expected: list[Any], detected: list[Any]) -> float:
    """The share of the attributes ``expected`` objects state that distinct ``detected``
    objects have, under the assignment of one to the other that gets the most right."""
    import torch
    from scipy.optimize import linear_sum_assignment

    stated = sum(getattr(obj, a) is not None for obj in expected for a in _ATTRIBUTES) or 1
    if not detected:
        return 0.0
    def agree(obj: Any, det: Any) -> float:
        return float(sum(getattr(obj, a) is not None and getattr(obj, a) == getattr(det, a) for a in _ATTRIBUTES))

    agreement = torch.tensor([[agree(obj, det) for det in detected] for obj in expected])  # (expected, detected)
    rows, cols = linear_sum_assignment(agreement.numpy(), maximize=True)
    return float(agreement[rows, cols].sum()) / stated


_ATTRIBUTES = ("shape", "colour", "size", "position")
