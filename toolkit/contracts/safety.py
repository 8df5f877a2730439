"""The safety-classifier contract (``toolkit.components.SafetyClassifier``): what the
``safety`` post-processor relies on when a policy's image rule names a classifier."""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Sequence
from typing import Any

import torch

from toolkit.components import PostContext, SafetyClassifier
from toolkit.generation.request import GenerationRequest
from toolkit.host.registry import Registry

from .expect import expect, expect_tensor
from .postprocessors import sample_images


def check_safety_classifier(cls: type[SafetyClassifier], registry: Registry, concepts: list[str], *,
                            refused: Sequence[str] = (), generator: Any = None, batch: int = 2, height: int = 32,
                            width: int = 32) -> torch.Tensor | None:
    """``concepts``: concepts it must accept; ``refused``: ones it must refuse (with the
    ``ValueError`` a policy turns into one line); ``generator``: what ``PostContext.generator``
    holds (some classifiers use the model's own CLIP). Checks the declaration, then
    ``score`` on a ``(batch, 3, height, width)`` batch in [-1, 1] unless ``skip_reason``
    gives a reason. Returns the ``(batch, len(concepts))`` scores, or None when skipped."""
    expect(pyinspect.isclass(cls) and issubclass(cls, SafetyClassifier), f"{cls!r} is not a SafetyClassifier subclass")
    what = f"safety classifier '{getattr(cls, 'name', cls.__name__)}'"
    expect(isinstance(getattr(cls, "name", None), str) and bool(cls.name), f"{what}: no 'name'")
    expect(cls.concepts is None or (isinstance(cls.concepts, tuple) and all(isinstance(c, str) for c in cls.concepts)),
           f"{what}: concepts must be None or a tuple of names, not {cls.concepts!r}")
    reason = cls.unavailable()
    expect(reason is None or (isinstance(reason, str) and bool(reason)),
           f"{what}: unavailable() must return None or a non-empty reason, got {reason!r}")
    try:
        cls.check_concepts(list(concepts))
    except ValueError as error:
        raise AssertionError(f"{what}: check_concepts refused {list(concepts)}: {error}") from None
    for concept in [*refused, *(["not one of its concepts"] if cls.concepts is not None else [])]:
        try:
            cls.check_concepts([concept])
        except ValueError as error:
            expect(bool(str(error)), f"{what}: check_concepts refused {concept!r} without saying why")
        else:
            raise AssertionError(f"{what}: check_concepts accepted {concept!r}; it must raise ValueError")
    if reason is not None:
        return None
    classifier = cls()
    ctx = PostContext(request=GenerationRequest(), seed=0, model_name="contract-test", model_sha256="0" * 64,
                      generator=generator, registry=registry)
    skip = classifier.skip_reason(ctx)
    expect(skip is None or (isinstance(skip, str) and bool(skip)),
           f"{what}: skip_reason must return None or a non-empty reason, got {skip!r}")
    if skip is not None:
        return None
    with torch.inference_mode():  # as the safety post-processor calls it
        scores = classifier.score(sample_images(batch, height, width), list(concepts), ctx)
    return expect_tensor(scores, f"{what}: score", (batch, len(concepts)))
