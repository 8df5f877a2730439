"""Stage 4 of latent diffusion: the sketch ControlNet, trained over a finished ldm model whose
autoencoder, text encoder and denoiser all stay frozen (``stage: controlnet, base: FOLDER``).

Captions are dropped at ``text_dropout`` (set it high, about one half), so the ControlNet
learns to draw a sketch's objects with and without a prompt. The export is the base model's
folder with ``controlnet/`` added: the same model, which now also accepts a sketch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.components import Conditioning, Dataset, GenerateArgs, LoadContext, Phase, Trainable, TrainContext
from toolkit.errors import ConfigError

from .config import LDMConfig
from .controlnet import build_controlnet
from .denoiser import LDMGenerator
from .noising import EncodeCache
from .previews import FixedSamples
from .text import without_padding
from .unet import Control, control_residuals


class ControlNetStage(Trainable):
    """Trains a ControlNet that steers a trained ldm model with sketches."""

    Config = LDMConfig
    ema_modules = ("controlnet",)
    data_record = "sketch_dataset"  # `toolkit eval --sketches` draws its scenes from this record

    def __init__(self, config: LDMConfig, base: LDMGenerator, controlnet: nn.Module, fixed: FixedSamples):
        self.config, self.base, self.controlnet, self.fixed = config, base, controlnet, fixed
        base.controlnet = controlnet  # the base generates (previews) and exports with it

    @classmethod
    def from_config(cls, config: LDMConfig, *, dataset: Dataset | None = None,
                    context: LoadContext | None = None) -> ControlNetStage:
        assert dataset is not None, "the trainer passes the training data"
        if not config.base:
            raise ConfigError("stage: controlnet needs model.base: the folder of a trained ldm model to steer")
        if "sketch" not in dataset[0]:
            raise ConfigError(f"dataset '{dataset.name}' draws no sketches to train a sketch ControlNet on")
        base = LDMGenerator.from_pretrained(Path(config.base), context=context or LoadContext.installed())
        if not isinstance(base, LDMGenerator):
            raise ConfigError(f"model.base: {config.base} holds an autoencoder stage; give a trained ldm model")
        if base.size != dataset.size:
            raise ConfigError(f"model.base makes {base.size}x{base.size} images but data.size is {dataset.size}")
        for network in (base.unet, base.vae) + ((base.text_adapter,) if base.text_adapter is not None else ()):
            network.requires_grad_(False)
        downsamplings = len(base.vae.config.block_out_channels) - 1
        controlnet = build_controlnet(base.unet, config, downsamplings)
        if config.encode_cache:
            base.encode_cache = EncodeCache(config.encode_cache)
        return cls(config, base, controlnet, FixedSamples(dataset))

    def training_modules(self) -> dict[str, nn.Module]:
        return {"controlnet": self.controlnet.train()}

    def training_phases(self) -> list[Phase]:
        return [Phase("controlnet", ("controlnet",), self.loss)]

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """The base denoiser's loss with the ControlNet's residuals added; only the ControlNet
        learns. batch: the denoiser's, plus ``"sketch"`` ``(B, 1, H, W)`` in [0, 1]."""
        base = self.base
        x = base.noised_batch(batch, ctx.device, self.config.text_dropout)
        base.unet.to(ctx.device)
        with torch.no_grad():  # the frozen adapter; padding trimmed as sampling trims it
            text = without_padding(base.adapt(x.text, base.text_adapter))
        control = Control(ctx.modules["controlnet"], batch["sketch"], 1.0)
        residuals = control_residuals(control, x.x_t, x.t, text, x.labels)
        pred = base.unet(x.x_t, x.t, encoder_hidden_states=text.tokens, encoder_attention_mask=text.attention_mask,
                         class_labels=x.labels, **residuals).sample
        loss = F.mse_loss(pred, x.target)
        return loss, {"loss": loss.item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The base model drawing fixed test sketches with their captions: ``(n, 3, H, W)`` in [-1, 1]."""
        fixed = self.fixed.take(n)
        self.controlnet.eval()
        try:
            cond = Conditioning(text=self.base.text.embed_prompts(fixed["captions"]), sketch=fixed["sketches"])
            args = GenerateArgs(n=len(fixed["captions"]), height=self.base.size, width=self.base.size,
                                generator=generator, steps=self.config.default_steps,
                                guidance_scale=self.base.config.default_guidance_scale,
                                sampler=self.base.registry.get("samplers", self.base.config.default_sampler))
            return self.base.generate(cond, args)
        finally:
            self.controlnet.train()

    def save_pretrained(self, folder: Path) -> None:
        """The base model's folder with ``controlnet/``: it accepts sketches from now on."""
        self.base.save_pretrained(folder)

    def usage_hint(self, folder: Path) -> str:
        caption = self.fixed.take(1)["captions"][0]
        return f'try: toolkit generate --model {folder} --prompt "{caption}" --sketch examples/sketches/circle-and-star.png'
