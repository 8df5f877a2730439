"""The protocols every plugin component implements: generators, conditioners,
samplers, post-processors and datasets.

The core only ever talks to these classes; it never imports a concrete model.

Conventions shared by every component:

* Images cross plugin boundaries as float tensors of shape ``(batch, 3, height, width)``
  with values in ``[-1, 1]``. Conversion to and from PIL happens at the edges only
  (``toolkit.generation.images``).
* Sketches are ``(batch, 1, height, width)`` floats in ``[0, 1]`` where 1 is a stroke;
  masks are ``(batch, 1, height, width)`` floats in ``[0, 1]`` where 1 means "regenerate"
  (grey blends).
* Randomness comes from the ``torch.Generator`` the pipeline passes in, never from the
  global RNG, so that a recipe's seed reproduces an image bit for bit.

Each kind lives in a module of its own; everything public is importable from here.
"""

from __future__ import annotations

from typing import Any

from .conditioner import Conditioner, TextConditioner
from .conditioning import CONDITIONING_KINDS, Conditioning, TextEmbedding
from .dataset import Dataset, build_dataset
from .generator import GenerateArgs, Generator, ImageTextScorer, LoadContext, image_text_scorer
from .postprocessor import InspectContext, NoOptions, PostContext, PostProcessor, PostResult, Stage
from .safety import SafetyClassifier
from .sampler import Denoiser, Sampler
from .trainable import LossFn, Phase, Trainable, TrainContext

__all__ = [
    "CONDITIONING_KINDS", "Conditioner", "Conditioning", "Dataset", "Denoiser", "GenerateArgs", "Generator",
    "ImageTextScorer", "InspectContext", "LoadContext", "LossFn", "NoOptions", "Phase", "PostContext", "PostProcessor",
    "PostResult", "SafetyClassifier", "Sampler", "Stage", "TextConditioner", "TextEmbedding", "TrainContext", "Trainable",
    "build_dataset", "describe", "image_text_scorer",
]


def describe(component: Any) -> str:
    """One-line description of a registered component, for listings."""
    return (getattr(component, "description", "") or (component.__doc__ or "").strip().split("\n")[0]).strip()

