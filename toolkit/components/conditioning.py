"""What generators are conditioned on: the conditioning kinds and their encoded tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The kinds of conditioning a request can carry. A generator declares the subset it accepts.
CONDITIONING_KINDS = ("text", "class", "sketch", "mask", "init_image")


@dataclass
class TextEmbedding:
    """What a text conditioner gives a generator.

    tokens: ``(batch, sequence, dim)`` per-token embeddings for cross-attention.
    pooled: ``(batch, dim)`` one vector per prompt.
    attention_mask: ``(batch, sequence)`` 1 for real tokens, 0 for padding.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor
    attention_mask: torch.Tensor | None = None


@dataclass
class Conditioning:
    """Everything a generator is conditioned on, already encoded as tensors.

    Fields the request did not set are ``None``; a generator only ever sees kinds it
    declared in ``Generator.accepts`` (the pipeline refuses the rest before any work).
    """

    text: TextEmbedding | None = None  # the prompt
    negative_text: TextEmbedding | None = None  # the negative prompt, for guidance
    class_labels: torch.Tensor | None = None  # (batch,) int64
    sketch: torch.Tensor | None = None  # (batch, 1, H, W) in [0, 1], 1 = stroke
    mask: torch.Tensor | None = None  # (batch, 1, H, W) float32 in [0, 1], 1 = redraw, grey = blend
    init_image: torch.Tensor | None = None  # (batch, 3, H, W) in [-1, 1]
    extra: dict[str, Any] = field(default_factory=dict)  # plugin-specific conditioning

