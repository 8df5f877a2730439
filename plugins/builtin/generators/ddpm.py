"""The `ddpm` generator: a denoising diffusion model with our own UNet.

Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (https://arxiv.org/abs/2006.11239),
with the cosine schedule of Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672),
v-prediction of Salimans & Ho 2022 (https://arxiv.org/abs/2202.00512) as an option, and
classifier-free guidance of Ho & Salimans 2022 (https://arxiv.org/abs/2207.12598) for
class labels. Sampling goes through the shared samplers (`--sampler ddim --steps 20`).

Reads top to bottom: config, the generator (load, save, generate), training (loss and
preview), and the hook that registers it. The UNet is in ddpm_unet.py: torch is imported
where a model is built or run, not when the plugins load (docs/plugins.md, "Keep start-up fast").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import Conditioning, GenerateArgs, Generator, LoadContext, Phase, Trainable, TrainContext
from toolkit.generation.model_folder import (
    load_weights,
    read_square_model_config,
    save_model_folder,
    square_model_config,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from toolkit.families.diffusion import VPDenoiser

# Inpainting: the samplers that follow any sigmas they are given, so they can resample (the
# diffusers adapters pick their own steps), and RePaint's rounds per tenth of the schedule.
# A class-conditional model chooses where its object goes from the starting noise, so without
# resampling it mostly leaves the mask empty (docs/inpainting.md).
RESAMPLING_SAMPLERS = ("ddpm", "ddim")
INPAINT_RESAMPLE = 4


class DDPMConfig(BaseModel):
    """Hyper-parameters: the `model:` section of a training config."""

    model_config = ConfigDict(extra="forbid")

    channels: int = Field(64, ge=8, le=1024, description="width of the first UNet level")
    channel_mults: tuple[Annotated[int, Field(ge=1, le=16)], ...] = Field(
        (1, 2, 2), min_length=1, max_length=8, description="width multiplier per level; each level halves the resolution")
    attention_levels: tuple[Annotated[int, Field(ge=0, le=7)], ...] = Field(
        (2,), max_length=8, description="levels (0 = full resolution) with self-attention")
    layers_per_level: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.0, ge=0, lt=1)
    num_train_timesteps: int = Field(1000, ge=10, le=10_000)
    beta_schedule: Literal["linear", "cosine"] = "cosine"
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    class_dropout: float = Field(0.1, ge=0, le=1, description="labels dropped in training, for classifier-free guidance")
    clip_sample: bool = Field(True, description="clip each denoised estimate to [-1, 1] while sampling (Ho et al. 2020)")
    default_sampler: str = "ddim"
    default_steps: int = Field(20, ge=1, le=1000)
    default_guidance_scale: float = Field(2.0, ge=0, le=50)


# -- the generator ------------------------------------------------------------------------


class DDPMGenerator(Generator, Trainable):
    """Denoising diffusion with our UNet; class-conditional with classifier-free guidance."""

    name = "ddpm"
    description = "denoising diffusion (Ho et al. 2020), our UNet, class labels with classifier-free guidance"
    accepts = frozenset({"class", "init_image", "mask"})
    uses_sampler = True
    Config = DDPMConfig
    ema_modules = ("unet",)
    # Used when a model's config.json names no defaults of its own (see toolkit.generation.pipeline).
    default_sampler, default_steps, default_guidance_scale = "ddim", 20, 2.0

    def __init__(self, config: DDPMConfig, *, num_classes: int, size: int):
        import torch

        from toolkit.families.diffusion import beta_schedule

        from .ddpm_unet import UNet

        self.config, self.num_classes, self.size = config, num_classes, size
        # oneDNN's CPU convolutions run faster on channels-last weights (docs/results.md, Speed).
        self.unet = UNet(config, num_classes).to(memory_format=torch.channels_last).eval()
        betas = beta_schedule(config.beta_schedule, config.num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)  # (T,) float64

    @classmethod
    def from_config(cls, config: DDPMConfig, *, dataset=None, context: LoadContext | None = None) -> DDPMGenerator:
        model = cls(config, num_classes=len(dataset.class_names or []), size=dataset.size)
        # The training preview samples as `toolkit generate` would by default.
        model.preview_sampler = (context or LoadContext.installed()).registry.get("samplers", config.default_sampler)
        return model

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu", context: LoadContext | None = None) -> DDPMGenerator:
        config, num_classes, size = read_square_model_config(folder, DDPMConfig)
        model = cls(config, num_classes=num_classes, size=size)
        model.preview_sampler = (context or LoadContext.installed()).registry.get("samplers", config.default_sampler)
        weights = load_weights(folder, device=device)
        model.unet.load_state_dict({k: v.float() for k, v in weights.items()})
        model.unet.to(device)
        return model

    def save_pretrained(self, folder: Path) -> None:
        """fp16 weights: sampling quality is unchanged and the folder is half the size."""
        config = square_model_config(self.name, self.config, num_classes=self.num_classes, size=self.size)
        config["accepts"] = sorted({*config["accepts"], "init_image", "mask"})  # every ddpm model can inpaint
        weights = {k: v.half() for k, v in self.unet.state_dict().items()}
        save_model_folder(folder, config, {"model.safetensors": weights})

    def denoiser(self, unet: nn.Module, labels: torch.Tensor | None, guidance_scale: float) -> VPDenoiser:
        """The UNet as a k-diffusion denoiser, with classifier-free guidance when labels are given."""
        import torch

        from toolkit.families.diffusion import VPDenoiser

        def network(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if labels is None or guidance_scale == 1.0:
                return unet(x_t, t, labels)
            null = torch.full_like(labels, self.num_classes)
            cond, uncond = unet(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            return uncond + guidance_scale * (cond - uncond)

        return VPDenoiser(network, self.alphas_cumprod, self.config.prediction_type, 1.0 if self.config.clip_sample else None)

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        """Images from noise, or, with a mask and an init image, the init image redrawn where
        the mask is white (``toolkit.families.inpainting``: known-region replacement on the
        pixels, RePaint's resampling with the samplers that allow it, then a composite that
        keeps every other pixel exactly)."""
        import torch

        from toolkit.families.inpainting import inpainting_inputs, sample_resampled

        inpaint = inpainting_inputs(cond, args.n, args.height, args.width)
        if inpaint is not None and inpaint.keeps_everything:
            return inpaint.init_image.clone()
        device = next(self.unet.parameters()).device
        labels = cond.class_labels.to(device) if cond.class_labels is not None else None
        denoiser = self.denoiser(self.unet, labels, args.guidance_scale if args.guidance_scale is not None else 1.0)
        if inpaint is not None:
            denoiser = inpaint.guide(denoiser, inpaint.init_image.to(device))
        sigmas = denoiser.get_sigmas(args.steps or self.config.default_steps).to(device)
        x = torch.randn(args.n, 3, args.height, args.width, generator=args.generator, device=args.generator.device).to(device) * sigmas[0]
        if inpaint is not None:
            x = denoiser.start(x)
        total = len(sigmas) - 1
        callback = (lambda info: args.progress(info["i"] + 1, total)) if args.progress else None
        sampler = args.sampler
        assert sampler is not None, "the pipeline resolves a sampler for every diffusion model"
        if inpaint is not None and not inpaint.redraws_everything and args.sampler_name in RESAMPLING_SAMPLERS:
            images = sample_resampled(sampler, denoiser, x, sigmas, resample=INPAINT_RESAMPLE, jump=max(1, total // 10),
                                      generator=args.generator, progress=args.progress)
        else:
            images = sampler(denoiser, x, sigmas, callback=callback, generator=args.generator)
        images = images.clamp(-1, 1)
        return images if inpaint is None else inpaint.composite(images)

    # -- training ---------------------------------------------------------------------------

    def training_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet.train()}

    def training_phases(self) -> list[Phase]:
        return [Phase("unet", ("unet",), self.loss)]

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error of the predicted noise (or v) at a random timestep."""
        import torch
        import torch.nn.functional as F

        x0 = batch["image"]  # (B, 3, H, W) in [-1, 1]
        b = x0.shape[0]
        t = torch.randint(0, self.config.num_train_timesteps, (b,), device=x0.device)
        a = self.alphas_cumprod.to(x0.device)[t].float().reshape(b, 1, 1, 1)
        noise = torch.randn_like(x0)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        labels = batch.get("class_label") if self.num_classes else None
        if labels is not None:
            dropped = torch.rand(b, device=x0.device) < self.config.class_dropout
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        target = noise if self.config.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0
        loss = F.mse_loss(ctx.modules["unet"](x_t, t.float(), labels), target)
        return loss, {"loss": loss.item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        self.unet.eval()
        try:
            labels = torch.arange(n) % self.num_classes if self.num_classes else None
            args = GenerateArgs(n=n, height=self.size, width=self.size, generator=generator, steps=self.config.default_steps,
                                guidance_scale=self.config.default_guidance_scale,
                                sampler=self.preview_sampler)
            return self.generate(Conditioning(class_labels=labels), args)
        finally:
            self.unet.train()


@hookimpl
def register_generators(register):
    register(DDPMGenerator)
