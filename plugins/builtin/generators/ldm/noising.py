"""One training batch as the latent denoiser sees it: the frozen autoencoder's latents noised
at a random timestep, and what the UNet is to predict. ``LDMGenerator.loss`` and the
ControlNet stage (which trains beside a frozen denoiser) both start from it."""

from __future__ import annotations

from dataclasses import dataclass
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
    with torch.no_grad():
        latents = model.vae.encode(images).latent_dist.sample() * model.scaling_factor  # (B, C, h, w)
        drop = torch.rand(b).tolist()
        text = model.text.embed_prompts(["" if d < text_dropout else c for d, c in zip(drop, batch["caption"])])
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
