"""The denoiser's networks: the UNet with cross-attention, its training schedule, the
classifier-free guidance around it, and fine-tuning from a trained one (``init_from``).
torch and diffusers are imported in the functions that build or run them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.components import TextEmbedding
from toolkit.errors import ConfigError
from toolkit.generation.model_folder import load_weights, read_config, verify_weights

from .config import ADAPTER_WEIGHTS, LDMConfig, load_part
from .text import adapt, without_padding

if TYPE_CHECKING:
    import torch
    from torch import nn

    from toolkit.families.diffusion import VPDenoiser

    from .text_adapter import TextAdapter


def build_unet(config: LDMConfig, latent_channels: int, latent_size: int, token_dim: int, num_classes: int) -> nn.Module:
    """A fresh UNet2DConditionModel: latents ``(B, latent_channels, latent_size, latent_size)``,
    cross-attention over tokens ``(B, L, token_dim)``, and class labels ``(B,)`` when ``num_classes``."""
    from diffusers import UNet2DConditionModel

    levels = range(len(config.unet_channels))
    cross = set(config.cross_attention_levels)
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if i in cross else "DownBlock2D" for i in levels),
        up_block_types=tuple("CrossAttnUpBlock2D" if i in cross else "UpBlock2D" for i in reversed(levels)),
        block_out_channels=config.unet_channels, layers_per_block=1, cross_attention_dim=token_dim,
        attention_head_dim=config.attention_heads,  # diffusers' legacy name: it is the number of heads
        norm_num_groups=min(16, min(config.unet_channels)),
        num_class_embeds=num_classes + 1 if num_classes else None,  # index num_classes = "no class"
    )


def alphas_cumprod(config: LDMConfig) -> torch.Tensor:
    """The training schedule's cumulative signal fractions ``(T,)``, float64."""
    import torch

    from toolkit.families.diffusion import beta_schedule

    return torch.cumprod(1 - beta_schedule(config.beta_schedule, config.num_train_timesteps), dim=0)


def scheduler_config(config: LDMConfig) -> dict[str, Any]:
    """The training schedule as a DDPMScheduler config (scheduler/ in the model folder)."""
    from diffusers import DDPMScheduler

    from toolkit.families.diffusion import beta_schedule

    betas = beta_schedule(config.beta_schedule, config.num_train_timesteps)
    scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, trained_betas=betas.tolist(),
                              prediction_type=config.prediction_type, clip_sample=False, timestep_spacing="trailing")
    return json.loads(scheduler.to_json_string())


@dataclass
class Control:
    """Sketch control for one sampling run: the ControlNet, the sketch ``(B, 1, H, W)`` in
    [0, 1] at image resolution, and how strongly its residuals are added (0 to 2)."""

    net: nn.Module
    sketch: torch.Tensor
    scale: float


def guided_denoiser(unet: nn.Module, config: LDMConfig, schedule: torch.Tensor, text: TextEmbedding,
                    uncond: TextEmbedding | None, labels: torch.Tensor | None, null_label: int, guidance_scale: float, *,
                    adapter: nn.Module | None = None, text_keys_once: bool = False, control: Control | None = None) -> VPDenoiser:
    """The UNet as a k-diffusion denoiser with classifier-free guidance: ``uncond`` (the
    empty or negative prompt, with class ``null_label``) is what the prompt is pushed away from.

    text, uncond: tokens ``(B, L, D)`` before the adapter; labels: ``(B,)`` or None;
    schedule: ``alphas_cumprod`` ``(T,)``. The denoiser maps ``(B, C, h, w)`` latents to the same.
    With ``control`` a ControlNet adds the sketch's residuals to the UNet at every call, for
    the prompt and the guidance target alike (as diffusers' ControlNet pipelines do).
    """
    import torch

    from toolkit.families.cross_attention import text_keys_kwargs
    from toolkit.families.diffusion import VPDenoiser

    null = None if labels is None else torch.full_like(labels, null_label)
    with torch.no_grad():  # once per sampling run, not per step
        text = adapt(text, adapter)
        uncond = None if uncond is None else adapt(uncond, adapter)

    once = text_keys_kwargs() if text_keys_once else None  # every call of this run passes the same tokens

    def call(x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, classes: torch.Tensor | None) -> torch.Tensor:
        residuals = {} if control is None else control_residuals(control, x_t, t, emb, classes)
        return unet(x_t, t, encoder_hidden_states=emb.tokens, encoder_attention_mask=emb.attention_mask,
                    class_labels=classes, cross_attention_kwargs=once, **residuals).sample

    guided = uncond is not None and guidance_scale != 1.0
    if guided:  # prompt and guidance target in one batch, joined once rather than at every step
        both = without_padding(TextEmbedding(
            torch.cat([text.tokens, uncond.tokens]), torch.cat([text.pooled, uncond.pooled]),
            None if text.attention_mask is None else torch.cat([text.attention_mask, uncond.attention_mask])))
        classes = None if labels is None else torch.cat([labels, null])
    else:
        text = without_padding(text)

    def network(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not guided:
            return call(x_t, t, text, labels)
        cond, free = call(torch.cat([x_t, x_t]), torch.cat([t, t]), both, classes).chunk(2)  # (B, C, h, w) each
        return free + guidance_scale * (cond - free)

    return VPDenoiser(network, schedule, config.prediction_type)


def control_residuals(control: Control, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding,
                      classes: torch.Tensor | None) -> dict[str, Any]:
    """The ControlNet's residuals for latents ``x_t`` ``(B', C, h, w)``, as the UNet's keyword
    arguments; the sketch is repeated when the batch holds the prompt and the guidance target."""
    sketch = control.sketch.repeat(x_t.shape[0] // control.sketch.shape[0], 1, 1, 1)  # (B', 1, H, W)
    down, mid = control.net(x_t, t, encoder_hidden_states=emb.tokens, controlnet_cond=sketch,
                            conditioning_scale=control.scale, class_labels=classes, return_dict=False)
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


def start_from(folder: Path, config: LDMConfig, unet: nn.Module, adapter: TextAdapter | None) -> None:
    """Load a trained ldm model's denoiser (and text adapter, if both have one) into freshly
    built networks of the same shape, to fine-tune it (say, after adding an adapter)."""
    from diffusers import UNet2DConditionModel

    saved = read_config(folder)
    if saved.get("generator") != "ldm" or saved.get("stage") != "denoiser":
        raise ConfigError(f"model.init_from: {folder} is not an ldm denoiser model folder")
    if saved.get("text_conditioner") != config.text_conditioner:
        raise ConfigError(f"model.init_from: {folder} was trained over '{saved.get('text_conditioner')}', "
                          f"this config uses '{config.text_conditioner}'; a denoiser only fits the text encoder it learned")
    verify_weights(folder)
    trained = load_part(UNet2DConditionModel, folder / "unet", "denoiser")
    try:
        unet.load_state_dict(trained.state_dict())
        if adapter is not None and saved.get("text_adapter_layers"):
            adapter.load_state_dict({k: v.float() for k, v in load_weights(folder, ADAPTER_WEIGHTS).items()})
    except RuntimeError as error:
        raise ConfigError(f"model.init_from: {folder} has networks of another shape than this config builds "
                          f"({str(error).splitlines()[0]}); use the same unet_channels, levels, heads and adapter layers") from None
