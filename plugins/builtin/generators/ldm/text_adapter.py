"""The text adapter: self-attention layers over the frozen text encoder's token states,
trained with the denoiser (``text_adapter_layers``); text.py builds it when a model has one."""

from __future__ import annotations

import torch
from torch import nn


class TextAdapter(nn.Module):
    """Token states ``(B, T, D)`` (+ attention mask ``(B, T)``, 1 = real token) -> ``(B, T, D)``:
    pre-norm transformer layers with bidirectional self-attention, added to the input.

    Why: cross-attention can only bind an attribute to a place if some token holds both. A
    causal encoder (CLIP) reads "a red circle on the left and a blue square at the bottom"
    left to right, so "blue" and "square" are encoded before "at the bottom" exists, and the
    last token blurs both objects; a bidirectional encoder (MiniLM) mixes the objects too
    (docs/text-to-image.md gives the probes). Layers trained with the denoiser can learn the
    binding the frozen encoder lacks. The output projection starts at zero, so an adapter
    added to a trained denoiser (``init_from``) starts as the identity.
    """

    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        padding = None if attention_mask is None else attention_mask == 0
        return tokens + self.out(self.norm(self.blocks(tokens, src_key_padding_mask=padding)))
