"""Every registered safety classifier passes the checks of ``toolkit.contracts``: its
declaration, the concepts it accepts and refuses, and ``(batch, concepts)`` scores, or a
reason to skip, from a ``PostContext``. The checks themselves catch a broken classifier."""

from __future__ import annotations

import pytest
import toolkit_tiny
import torch

from toolkit.components import ImageTextScorer, SafetyClassifier
from toolkit.contracts import check_safety_classifier
from toolkit.host.loading import plugins_with_extra


class StandInClip(ImageTextScorer):
    """A generator's CLIP, as the ``clip`` classifier reads it: similarity = how red an
    image is, for texts that mention red."""

    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        redness = ((images[:, 0] - images[:, 1:].mean(dim=1)) / 2).clamp(min=0).amax(dim=(1, 2))  # (B,)
        return torch.stack([redness if "red" in t else torch.zeros_like(redness) for t in texts], dim=1)  # (B, T)


# What each classifier is checked with: concepts it must accept, ones it must refuse, and the
# generator in its PostContext. A classifier with a fixed vocabulary needs no entry.
SETUP = {
    "clip": {"concepts": ["a red picture", "a blue picture"], "generator": StandInClip()},
    "shapes": {"concepts": ["a red circle", "a large blue star"], "refused": ["a purple elephant"]},
}
# Classifiers whose contract is checked in another file, with where and why. None yet.
TESTED_ELSEWHERE: dict[str, str] = {}


def names() -> list[str]:
    """The safety classifiers the ``registry`` fixture holds, known at collection time."""
    _, registry = plugins_with_extra([("tiny", toolkit_tiny)])
    return sorted(set(registry.safety_classifiers) - set(TESTED_ELSEWHERE))


def test_every_registered_safety_classifier_is_checked(registry):
    assert set(registry.safety_classifiers) == set(names()) | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize("name", names())
def test_safety_classifier_contract(name, registry):
    cls = registry.get("safety_classifiers", name)
    setup = SETUP.get(name) or {"concepts": list((cls.concepts or ())[:2])}
    assert setup["concepts"], f"safety classifier '{name}' takes any concept: say which to check it with in SETUP"
    scores = check_safety_classifier(cls, registry, **setup)
    assert scores is not None or cls.unavailable(), f"safety classifier '{name}' skipped the contract's images"


class Transposed(SafetyClassifier):
    """Returns (concepts, batch) instead of (batch, concepts)."""

    name = "transposed"
    concepts = ("a", "b", "c")

    def score(self, images, concepts, ctx):
        return torch.zeros(len(concepts), images.shape[0])


def test_the_checks_catch_a_broken_classifier(registry):
    with pytest.raises(AssertionError, match=r"score: expected shape \(2, 3\), got \(3, 2\)"):
        check_safety_classifier(Transposed, registry, ["a", "b", "c"])
    with pytest.raises(AssertionError, match=r"check_concepts refused \['d'\]: unknown concepts"):
        check_safety_classifier(Transposed, registry, ["d"])
