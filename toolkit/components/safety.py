"""The safety-classifier protocol: image scores for the safety post-processor's policy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from .postprocessor import PostContext

if TYPE_CHECKING:
    import torch


class SafetyClassifier(ABC):
    """Scores images for the ``safety`` post-processor: how strongly each image shows each
    concept a safety policy names (a text description for a CLIP model, a detector's
    label, a dataset's own caption reader). The policy sets the thresholds and the actions.

    The class is instantiated once per process and reused, so load weights lazily in
    ``score`` and keep them on the instance.
    """

    name: ClassVar[str]  # what a policy's image rule names: ``classifier: NAME``
    description: ClassVar[str] = ""
    # A fixed vocabulary (a detector's labels) that policies must pick concepts from;
    # None accepts any text (checked by ``check_concepts``).
    concepts: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this classifier cannot run here at all (a missing library), or None."""
        return None

    @classmethod
    def check_concepts(cls, concepts: list[str]) -> None:
        """Called when a policy loads: raise ``ValueError`` saying which concept this
        classifier cannot score and what it can. Default: refuse anything outside ``concepts``."""
        if cls.concepts is not None:
            unknown = [c for c in concepts if c not in cls.concepts]
            if unknown:
                raise ValueError(f"unknown concepts {unknown}; it scores: {', '.join(cls.concepts)}")

    def skip_reason(self, ctx: PostContext) -> str | None:
        """Why this classifier cannot score these images (the model has no CLIP), or None.
        A skipped classifier is recorded in the recipe, never silently ignored."""
        return None

    @abstractmethod
    def score(self, images: torch.Tensor, concepts: list[str], ctx: PostContext) -> torch.Tensor:
        """images: ``(batch, 3, H, W)`` in ``[-1, 1]``; concepts: C names from the policy.

        Returns ``(batch, C)`` float scores, higher = the concept is more present (a
        probability, a similarity); the policy's threshold decides what counts.
        """
