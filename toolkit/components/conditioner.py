"""The conditioner protocol: one kind of request input encoded into tensors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from toolkit.generation.images import fit_to, to_rgb

from .conditioning import TextEmbedding

if TYPE_CHECKING:
    import torch
    from PIL import Image


class Conditioner(ABC):
    """Encodes one kind of request input (prompt, class, sketch, mask) into tensors.

    A model's config names the conditioner for each kind it accepts (``"conditioners":
    {"text": "text-clip"}``); otherwise the registered conditioner named like the kind is
    used. Conditioners that need weights (a text encoder) load them from the model folder.
    """

    name: ClassVar[str]  # registry name, e.g. "sketch" or "text-clip"
    kind: ClassVar[str]  # one of CONDITIONING_KINDS
    description: ClassVar[str] = ""
    # Request fields besides the value that ``encode`` takes as keyword arguments (the sketch
    # conditioner reads ``sketch_from_photo``).
    request_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def load(cls, model_folder: Path | None, config: dict[str, Any]) -> Conditioner:
        """Build the conditioner for one model. Default: no weights, no settings."""
        return cls()

    @classmethod
    def fit(cls, image: Image.Image, width: int, height: int) -> Image.Image:
        """An input image (image kinds only) as the request and its recipe keep it for a
        ``width`` x ``height`` model, before ``encode``. Default: RGB at that size, another
        aspect ratio refused. A sketch conditioner letterboxes instead, say."""
        return fit_to(to_rgb(image), width, height, what=cls.kind.replace("_", " "))

    @abstractmethod
    def encode(self, value: Any, *, n: int, height: int, width: int) -> Any:
        """Turn one request value into what ``Conditioning`` holds for this kind,
        repeated for a batch of ``n`` (see the field comments of ``Conditioning``)."""


class TextConditioner(Conditioner):
    """A prompt encoder with weights (a CLIP text tower, a transformers encoder).

    Generators that denoise in latent space call ``embed`` directly as well: for the empty
    prompt that classifier-free guidance compares against, and on each training batch.
    """

    kind = "text"
    @abstractmethod
    def embed(self, texts: list[str]) -> TextEmbedding:
        """B prompts -> tokens ``(B, L, D)``, pooled ``(B, D')``, attention mask ``(B, L)``."""

    def embed_prompts(self, texts: list[str]) -> TextEmbedding:
        """B prompts -> what a generator conditions on: tokens ``(B, L', D)``, pooled ``(B, D')``,
        mask ``(B, L')``. Default: ``embed``. A conditioner that encodes parts of a prompt
        apart overrides it (``toolkit.families.phrases.PhraseSlots``)."""
        return self.embed(texts)

    @property
    @abstractmethod
    def token_dim(self) -> int:
        """D, the size of each token state: a cross-attention layer's ``cross_attention_dim``."""

    def to(self, device: torch.device | str) -> TextConditioner:
        """Move the encoder's weights (kept in ``self.model``) to ``device``."""
        self.model.to(device)
        return self

    def encode(self, value: str, *, n: int, height: int, width: int) -> TextEmbedding:
        one = self.embed_prompts([value])
        mask = None if one.attention_mask is None else one.attention_mask.expand(n, -1)
        return TextEmbedding(one.tokens.expand(n, -1, -1), one.pooled.expand(n, -1), mask)
