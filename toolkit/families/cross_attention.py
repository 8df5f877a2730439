"""Cross-attention that projects the prompt to keys and values once per sampling run.

A text-conditioned diffusers UNet projects the same prompt tokens to keys and values in every
cross-attention layer at every sampling step, though neither the tokens nor the weights change
between steps. ``TextKeysOnce`` computes them at the first step and reuses them at the others,
in a dict the sampling run owns and hands to the UNet as ``cross_attention_kwargs``; the images
are bit-identical (tests/test_cross_attention.py). Used by the ``ldm`` and ``diffusers``
generators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # diffusers is imported when a UNet is, not when the plugins load: it is slow to import
    from diffusers.models.attention_processor import Attention


class TextKeysOnce:
    """diffusers' ``AttnProcessor2_0``, except that a cross-attention call given ``text_keys``
    (a dict kept for one sampling run, whose calls all pass the same prompt tokens) takes the
    layer's keys and values from it, computing them on the first call.

    Self-attention, calls without ``text_keys``, and layers with extra norms go to
    ``AttnProcessor2_0`` unchanged."""

    def __init__(self) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.plain = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 text_keys: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """hidden_states ``(B, N, C)``; encoder_hidden_states ``(B, L, D)``; attention_mask the
        additive ``(B, 1, L)`` the UNet makes of ``encoder_attention_mask``. Returns ``(B, N, C)``."""
        if (text_keys is None or encoder_hidden_states is None or hidden_states.ndim != 3 or attn.spatial_norm is not None
                or attn.group_norm is not None or attn.norm_q is not None or attn.norm_k is not None):
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch, heads = hidden_states.shape[0], attn.heads
        if id(attn) not in text_keys:
            tokens = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            key, value = attn.to_k(tokens), attn.to_v(tokens)
            text_keys[id(attn)] = (key.view(batch, -1, heads, key.shape[-1] // heads).transpose(1, 2),
                                   value.view(batch, -1, heads, value.shape[-1] // heads).transpose(1, 2))
        key, value = text_keys[id(attn)]
        if attention_mask is not None:
            if attention_mask.shape[:2] == (batch, 1):  # one mask row per prompt: broadcast it over the heads
                attention_mask = attention_mask.unsqueeze(1)
            else:
                attention_mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
                attention_mask = attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        query = attn.to_q(hidden_states).view(batch, -1, heads, key.shape[-1]).transpose(1, 2)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(batch, -1, heads * key.shape[-1])))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def reuse_text_keys(unet: torch.nn.Module) -> bool:
    """Give each of the UNet's attention layers that runs diffusers' default processor a
    ``TextKeysOnce`` (a custom processor, such as an IP-Adapter's, is left alone). True when
    every layer has one, so that passing ``cross_attention_kwargs=text_keys_kwargs()`` is safe."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    layers = [m for m in unet.modules() if isinstance(m, Attention)]
    for layer in layers:
        if type(layer.processor) is AttnProcessor2_0:
            layer.set_processor(TextKeysOnce())
    return bool(layers) and all(isinstance(layer.processor, TextKeysOnce) for layer in layers)


def text_keys_kwargs() -> dict[str, Any]:
    """A fresh cache for one sampling run: every UNet call given it must pass the same tokens."""
    return {"text_keys": {}}
