"""The generator protocol: a trained image model loaded from a model folder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .conditioning import Conditioning
from .sampler import Sampler

if TYPE_CHECKING:
    import torch

    from toolkit.host.registry import Registry

    from .conditioner import Conditioner


@dataclass
class GenerateArgs:
    """Sampling settings a generator receives, resolved from the request."""

    n: int  # number of images
    height: int
    width: int
    generator: torch.Generator  # the only source of randomness
    steps: int | None = None  # denoising steps (diffusion models)
    guidance_scale: float | None = None  # classifier-free guidance
    sampler: Sampler | None = None  # a resolved sampler function (diffusion models)
    sampler_name: str | None = None
    truncation: float | None = None  # latent truncation (GAN, VAE); None = the plain prior
    sketch_scale: float = 1.0  # strength of sketch control, 0 to 2 (0 = as without the sketch)
    progress: Callable[[int, int], None] | None = None  # progress(done, total)


@dataclass
class LoadContext:
    """What a generator may need besides its own folder, handed over by whoever loads it
    (the pipeline, the trainer, ``toolkit eval``), so that no plugin reaches for a global.

    registry: the components this run uses (samplers, conditioners, models).
    conditioners: conditioners already loaded for this model, by kind (``"text"``): the
    pipeline loads each once and the generator uses the same object (for the empty
    prompt of classifier-free guidance, say) instead of loading its own.
    """

    registry: Registry
    conditioners: dict[str, Conditioner] = field(default_factory=dict)

    @classmethod
    def installed(cls) -> LoadContext:
        """The context of a plain ``from_pretrained(folder)`` call: the installed plugins."""
        from toolkit.host.loading import get_registry

        return cls(get_registry())


class Generator(ABC):
    """A trained image model: loads from a model folder and turns conditioning into images.

    Subclasses set the class attributes and implement ``from_pretrained`` / ``save_pretrained``
    and ``generate``. A model folder is ``config.json`` (with ``"generator": name``) plus
    safetensors weights; ``toolkit.generation.store`` reads and writes both.
    """

    name: ClassVar[str]  # registry name, e.g. "ddpm"
    description: ClassVar[str] = ""
    # Conditioning kinds this generator family can use at all. A model narrows it through
    # the "accepts" list in its config.json (a model trained without classes takes none).
    accepts: ClassVar[frozenset[str]] = frozenset()
    uses_sampler: ClassVar[bool] = False  # True for diffusion models: --sampler/--steps apply
    uses_truncation: ClassVar[bool] = False  # True for latent-variable models: --truncation applies
    default_sampler: ClassVar[str | None] = None
    default_steps: ClassVar[int | None] = None
    default_guidance_scale: ClassVar[float | None] = None
    default_truncation: ClassVar[float | None] = None

    @classmethod
    def claims(cls, folder: Path, config: dict[str, Any]) -> bool:
        """Whether this generator loads the model folder. Overridden by generators that
        read foreign layouts (a diffusers pipeline folder, say)."""
        return config.get("generator") == cls.name

    @classmethod
    def foreign_config(cls, folder: Path) -> dict[str, Any] | None:
        """For a folder without our config.json: the config this generator reads from the
        folder's own files (a diffusers pipeline's model_index.json), or None."""
        return None

    @classmethod
    @abstractmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu", context: LoadContext | None = None) -> Generator:
        """Load a model folder written by ``save_pretrained``. ``context`` None means the
        installed plugins (``LoadContext.installed()``); generators that need nothing from
        it may leave the argument out of their signature."""

    @abstractmethod
    def save_pretrained(self, folder: Path) -> None:
        """Write the model folder (use ``toolkit.generation.model_folder.save_model_folder``)."""

    @abstractmethod
    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        """Make ``args.n`` images.

        Returns a float tensor of shape ``(args.n, 3, args.height, args.width)`` in ``[-1, 1]``.
        """



class ImageTextScorer(ABC):
    """Optional protocol for a generator with a CLIP of its own: it scores images against
    texts. The safety filter's clip classifier and ``toolkit eval --prompts``' CLIP score
    use it through ``image_text_scorer``.
    """

    # The one dataset the CLIP was trained on, when it knows nothing else (its similarity to
    # anything outside that domain means nothing), or None for a general CLIP.
    clip_trained_on: str | None = None

    @property
    def has_clip(self) -> bool:
        """Whether this model carries the CLIP (a family whose models may or may not have
        one, such as ldm over MiniLM, overrides it)."""
        return True

    @abstractmethod
    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """images ``(B, 3, H, W)`` in [-1, 1], T texts -> cosine similarities ``(B, T)``."""


def image_text_scorer(generator: Any) -> ImageTextScorer | None:
    """The generator as an ``ImageTextScorer`` when it declares the protocol and has a CLIP."""
    return generator if isinstance(generator, ImageTextScorer) and generator.has_clip else None
