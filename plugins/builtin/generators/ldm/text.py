"""The prompt side of the denoiser: the text conditioner it cross-attends to, the optional
text adapter trained with it (the network is in text_adapter.py), and the copy of the text
encoder an exported folder carries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.components import LoadContext, TextConditioner, TextEmbedding
from toolkit.errors import ConfigError
from toolkit.host.registry import Registry

from .config import LDMConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .text_adapter import TextAdapter


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


def build_text_adapter(config: LDMConfig, token_dim: int) -> TextAdapter | None:
    """The config's adapter over tokens of width ``token_dim``, or None (``text_adapter_layers: 0``)."""
    if not config.text_adapter_layers:
        return None
    if token_dim % config.attention_heads:
        raise ConfigError(f"text_adapter_layers: the text encoder's width {token_dim} does not split into "
                          f"attention_heads={config.attention_heads}; pick heads that divide it")
    from .text_adapter import TextAdapter

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
    from safetensors.torch import load_file

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
