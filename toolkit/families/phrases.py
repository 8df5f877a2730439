"""Prompts encoded phrase by phrase: a mixin that text conditioners opt into.

In one pass over "a red circle ... and a blue star ..." no token holds "blue" together with
"star" and its place (a causal CLIP reads left to right; an encoder's pooled meaning mixes
both objects), so the denoiser cannot tell which colour goes where. Encoded apart, every
phrase carries one whole object. This is the idea of Feng et al. 2022, "Training-Free
Structured Diffusion Guidance" (https://arxiv.org/abs/2212.05032), applied in training as well.
"""

from __future__ import annotations

from toolkit.components.conditioning import TextEmbedding

# Where a prompt is cut into phrases.
PHRASE_SEPARATOR = " and "


def split_phrases(text: str, slots: int) -> list[str]:
    """At most ``slots`` phrases; the last one keeps any further separators."""
    return text.split(PHRASE_SEPARATOR, slots - 1)


class PhraseSlots:
    """Mixin for a ``TextConditioner``: encode each " and "-joined phrase of a prompt alone.

    ``phrase_slots`` (a model's ``text_phrases``; 1 = the whole prompt at once) is set by
    whoever loads the conditioner for a model.
    """

    phrase_slots: int = 1

    def embed_prompts(self, texts: list[str]) -> TextEmbedding:
        """B prompts -> tokens ``(B, S * L, D)``, pooled ``(B, D')``, mask ``(B, S * L)``, with
        S = ``phrase_slots``.

        Each phrase is encoded alone and their token states are laid side by side; unused
        slots are masked out. The pooled vector is the mean over a prompt's phrases.
        """
        import torch

        slots = self.phrase_slots
        if slots <= 1:
            return self.embed(texts)
        phrases = [split_phrases(text, slots) for text in texts]
        flat = [p for parts in phrases for p in parts + [""] * (slots - len(parts))]
        emb = self.embed(flat)  # (B * S, L, D), prompt-major
        b, (length, dim) = len(texts), emb.tokens.shape[1:]
        used = torch.tensor([[i < len(parts) for i in range(slots)] for parts in phrases], device=emb.tokens.device)
        mask = emb.attention_mask if emb.attention_mask is not None else torch.ones(b * slots, length, device=used.device)
        mask = mask.reshape(b, slots, length) * used[..., None]  # (B, S, L)
        pooled = (emb.pooled.reshape(b, slots, -1) * used[..., None]).sum(1) / used.sum(1, keepdim=True)
        return TextEmbedding(emb.tokens.reshape(b, slots * length, dim), pooled, mask.reshape(b, slots * length).long())
