"""One training batch as the latent denoiser sees it: the frozen autoencoder's latents noised
at a random timestep, and what the UNet is to predict. ``LDMGenerator.loss`` and the
ControlNet stage (which trains beside a frozen denoiser) both start from it.

Both encoders are frozen, so on a dataset with few distinct images and captions (emoji: 3,720
images, four captions each) a step need not encode the same image again: ``EncodeCache``
keeps what they gave (``encode_cache`` in the config says how many; 0 encodes every batch).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.components import TextEmbedding

if TYPE_CHECKING:
    import torch

    from .denoiser import LDMGenerator


@dataclass
class NoisedBatch:
    """What one denoiser training step works on."""

    x_t: torch.Tensor  # (B, C, h, w) noised latents
    t: torch.Tensor  # (B,) timesteps
    text: TextEmbedding  # the prompts, before the text adapter
    labels: torch.Tensor | None  # (B,) classes, num_classes where dropped
    target: torch.Tensor  # (B, C, h, w) v or noise


@dataclass
class EncodeCache:
    """What the frozen autoencoder and text encoder gave for up to ``size`` images and as many
    captions: an image's posterior (mean and std, so each step still samples its own latent)
    and a caption's token states. Images are keyed by a hash of their pixels, so the cache
    needs nothing from the dataset; once full it keeps what it has and encodes the rest."""

    size: int
    posteriors: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    texts: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    texts_stack: bool = True  # False once a batch showed the text encoder's token count varies

    def latents(self, vae, images: torch.Tensor) -> torch.Tensor:
        """Unscaled latents sampled from each image's posterior: images ``(B, 3, H, W)`` ->
        ``(B, C, h, w)``."""
        import torch

        keys = [hashlib.blake2b(image.cpu().numpy().tobytes(), digest_size=16).digest() for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self.posteriors]
        if missing:
            dist = vae.encode(images[missing]).latent_dist
            found = {i: (dist.mean[j], dist.std[j]) for j, i in enumerate(missing)}
            for i, posterior in found.items():
                if len(self.posteriors) < self.size:
                    self.posteriors[keys[i]] = posterior
        else:
            found = {}
        mean, std = (torch.stack([(found[i] if i in found else self.posteriors[key])[part] for i, key in enumerate(keys)])
                     for part in (0, 1))
        return mean + std * torch.randn_like(mean)

    def embed(self, text, captions: list[str]) -> TextEmbedding:
        """``text.embed_prompts(captions)``, row by row from the cache where it can. A
        conditioner whose token count depends on the batch is encoded whole every time."""
        import torch

        if not self.texts_stack:
            return text.embed_prompts(captions)
        missing = list(dict.fromkeys(c for c in captions if c not in self.texts))
        if missing:
            fresh = text.embed_prompts(missing)
            mask = fresh.attention_mask
            rows = {c: (fresh.tokens[j], fresh.pooled[j], None if mask is None else mask[j]) for j, c in enumerate(missing)}
        else:
            rows = {}
        chosen = [rows[c] if c in rows else self.texts[c] for c in captions]
        if len({row[0].shape for row in chosen}) > 1:
            self.texts_stack = False  # a batch-dependent length: rows of different batches do not stack
            self.texts.clear()
            return text.embed_prompts(captions)
        for c, row in rows.items():
            if len(self.texts) < self.size:
                self.texts[c] = row
        masks = [row[2] for row in chosen]
        return TextEmbedding(torch.stack([row[0] for row in chosen]), torch.stack([row[1] for row in chosen]),
                             None if masks[0] is None else torch.stack(masks))


def noised_batch(model: LDMGenerator, batch: dict, device: torch.device, text_dropout: float) -> NoisedBatch:
    """``batch`` through ``model``'s frozen autoencoder and text encoder, noised at a random
    timestep, with captions (and class labels) dropped at ``text_dropout`` for guidance, and
    the v (or noise) to predict.

    batch: ``"image"`` ``(B, 3, H, W)`` in [-1, 1], ``"caption"`` B strings, ``"class_label"`` ``(B,)``."""
    import torch

    images = batch["image"]
    b = images.shape[0]
    model.vae.to(device)  # frozen, so the trainer does not place it
    model.text.to(device)
    cache = model.encode_cache
    with torch.no_grad():
        drop = torch.rand(b).tolist()
        captions = ["" if d < text_dropout else c for d, c in zip(drop, batch["caption"])]
        if cache is None:
            latents = model.vae.encode(images).latent_dist.sample()
            text = model.text.embed_prompts(captions)
        else:
            latents = cache.latents(model.vae, images)
            text = cache.embed(model.text, captions)
        latents = latents * model.scaling_factor  # (B, C, h, w)
    labels = None
    if model.num_classes:
        labels = batch["class_label"]
        dropped = torch.rand(b, device=labels.device) < text_dropout
        labels = torch.where(dropped, torch.full_like(labels, model.num_classes), labels)
    t = torch.randint(0, model.config.num_train_timesteps, (b,), device=latents.device)
    a = model.alphas_cumprod.to(latents.device)[t].float().reshape(b, 1, 1, 1)
    noise = torch.randn_like(latents)
    x_t = a.sqrt() * latents + (1 - a).sqrt() * noise
    target = noise if model.config.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * latents
    return NoisedBatch(x_t, t, text, labels, target)
