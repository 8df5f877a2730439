"""The `diffusers` generator: any local diffusers text-to-image pipeline folder.

``toolkit generate --model ./my-sd-folder --prompt "..."`` runs a Stable Diffusion 1.x / 2.x
or SDXL folder (what ``pipeline.save_pretrained`` writes: model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/, and for SDXL text_encoder_2/ and tokenizer_2/)
through the same request schema, shared samplers and post-processors as our own models.
Nothing is downloaded: the folder is read with ``local_files_only``.

The pipeline's own ``encode_prompt`` encodes the prompt (the ``diffusers-text``
conditioner); its UNet is driven by our samplers through ``VPDenoiser`` on the pipeline
scheduler's training schedule, and its VAE decodes. The pipeline's scheduler itself is
not used: ``--sampler`` picks any registered sampler, as for every diffusion model.
torch and diffusers are imported where a pipeline is loaded or run, not when the plugins load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import hookimpl
from toolkit.components import Conditioning, GenerateArgs, Generator, LoadContext, TextConditioner, TextEmbedding
from toolkit.errors import ModelError

if TYPE_CHECKING:
    import torch

INDEX = "model_index.json"
# The pipelines whose prompt encoding and UNet call this generator knows.
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")


class DiffusersLoadError(ModelError):
    """A diffusers folder this generator cannot read."""


def read_index(folder: Path) -> dict[str, Any] | None:
    """The folder's model_index.json, or None when it has none."""
    path = Path(folder) / INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise DiffusersLoadError(f"{path} is not valid JSON ({type(error).__name__}: {error})") from None
    if not isinstance(index, dict):
        raise DiffusersLoadError(f"{path} must hold a JSON object")
    return index


def load_pipeline(folder: str, device: str = "cpu") -> Any:
    """The diffusers pipeline in ``folder``, loaded offline (safety checker left out: the
    toolkit's own safety post-processor is opt-in)."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    for library in (diffusers_logging, hf_logging):  # per-component load bars: noise on every generate
        library.disable_progress_bar()
    index = read_index(Path(folder)) or {}
    if index.get("_class_name") not in PIPELINES:
        raise DiffusersLoadError(f"{folder} holds a {index.get('_class_name')}; this generator runs {', '.join(PIPELINES)}")
    try:
        pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True, dtype=torch.float32,
                                                 use_safetensors=True,  # never a pickle (model_folder.refuse_pickle_weights)
                                                 safety_checker=None, requires_safety_checker=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DiffusersLoadError(f"cannot load the diffusers pipeline in {folder}: {error}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def native_size(pipe: Any) -> int:
    """The side the UNet was trained at: sample_size latents times the VAE's downscale."""
    return int(pipe.unet.config.sample_size) * pipe.vae_scale_factor


def folder_config(folder: Path) -> dict[str, Any] | None:
    """What our model store needs to know about a diffusers folder (it has no config.json
    of ours), read from the JSON files only, no weights: accepts, sizes, defaults."""
    index = read_index(folder)
    if index is None or index.get("_class_name") not in PIPELINES:
        return None
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        native = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except OSError as error:
        raise DiffusersLoadError(f"{folder} is an incomplete diffusers folder: cannot read {error.filename} "
                                 f"({error.strerror}); copy the whole pipeline folder") from None
    except (ValueError, KeyError, TypeError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise DiffusersLoadError(f"{folder}: unet/config.json or vae/config.json is not a diffusers config "
                                 f"({type(error).__name__}: {error}); copy the whole pipeline folder") from None
    sides = [native] + [s for s in (256, 512, 768, 1024) if s != native and s <= 2 * native and s % 64 == 0]
    return {"generator": "diffusers", "accepts": ["init_image", "mask", "text"], "sizes": [[s, s] for s in sides],
            "conditioners": {"text": "diffusers-text"}, "pipeline": index["_class_name"],
            "default_sampler": "dpmpp-2m", "default_steps": 25, "default_guidance_scale": 7.5}


class DiffusersTextConditioner(TextConditioner):
    """A prompt through the pipeline's own text encoder(s): ``pipe.encode_prompt``."""

    name = "diffusers-text"
    description = "the text encoder(s) of a diffusers pipeline folder (CLIP for SD 1.x/2.x, two for SDXL)"

    def __init__(self, pipe: Any):
        self.pipe = pipe
        self.model = pipe.text_encoder

    @classmethod
    def load(cls, model_folder: Path | None, config: dict[str, Any]) -> DiffusersTextConditioner:
        return cls(load_pipeline(str(model_folder)))

    @property
    def token_dim(self) -> int:
        return int(self.pipe.unet.config.cross_attention_dim)

    def embed(self, texts: list[str]) -> TextEmbedding:
        """Prompts -> tokens ``(B, 77, D)``; pooled ``(B, D')`` (SDXL's pooled projection, or
        the mean token for SD 1.x/2.x, which condition on tokens only)."""
        import torch

        with torch.no_grad():
            out = self.pipe.encode_prompt(list(texts), device=self.pipe.device, num_images_per_prompt=1,
                                          do_classifier_free_guidance=False)
        tokens = out[0]
        pooled = out[2] if len(out) > 2 and out[2] is not None else tokens.mean(1)
        return TextEmbedding(tokens, pooled, None)


class DiffusersGenerator(Generator):
    """A local Stable Diffusion (1.x, 2.x, XL) pipeline folder, driven by our samplers."""

    name = "diffusers"
    description = "any local diffusers Stable Diffusion 1.x/2.x/XL pipeline folder (--model ./folder)"
    accepts = frozenset({"text", "init_image", "mask"})
    uses_sampler = True
    default_sampler, default_steps, default_guidance_scale = "dpmpp-2m", 25, 7.5

    def __init__(self, pipe: Any):
        from toolkit.families.cross_attention import reuse_text_keys

        self.pipe = pipe
        scheduler = pipe.scheduler
        self.alphas_cumprod = scheduler.alphas_cumprod.double()
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        self.is_xl = type(pipe).__name__ == "StableDiffusionXLPipeline"
        self.text_keys_once = reuse_text_keys(pipe.unet)  # the prompt's keys projected once per sampling run

    @classmethod
    def foreign_config(cls, folder: Path) -> dict[str, Any] | None:
        return folder_config(folder)

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu", context: LoadContext | None = None) -> DiffusersGenerator:
        """The pipeline the text conditioner already loaded for this model when the caller
        passes it (the pipeline does), so the folder is read once."""
        text = context.conditioners.get("text") if context is not None else None
        if isinstance(text, DiffusersTextConditioner):
            return cls(text.pipe.to(device))
        return cls(load_pipeline(str(folder), device))

    def save_pretrained(self, folder: Path) -> None:
        self.pipe.save_pretrained(folder, safe_serialization=True)

    def _empty(self, n: int) -> TextEmbedding:
        """What guidance compares against when there is no negative prompt: the empty prompt,
        or zeros where the pipeline says so (SDXL's force_zeros_for_empty_prompt)."""
        import torch

        emb = DiffusersTextConditioner(self.pipe).embed([""])
        if self.pipe.config.get("force_zeros_for_empty_prompt", False):
            emb = TextEmbedding(torch.zeros_like(emb.tokens), torch.zeros_like(emb.pooled), None)
        return TextEmbedding(emb.tokens.expand(n, -1, -1), emb.pooled.expand(n, -1), None)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(n, 3, H, W)`` in [-1, 1] -> the VAE's latents ``(n, C, H / f, W / f)``, scaled
        as the UNet sees them (the mode of the VAE's posterior: no noise drawn)."""
        vae = self.pipe.vae
        return vae.encode(images.to(self.pipe.device, vae.dtype)).latent_dist.mode() * vae.config.scaling_factor

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        """Images from noise, or, with a mask and an init image, the init image redrawn where
        the mask is white: known-region replacement on the init image's latents (the mask
        max-pooled to the latent grid), then a composite in pixels that keeps every other
        pixel exactly (``toolkit.families.inpainting``)."""
        import torch

        from toolkit.families.cross_attention import text_keys_kwargs
        from toolkit.families.diffusion import VPDenoiser
        from toolkit.families.inpainting import inpainting_inputs

        inpaint = inpainting_inputs(cond, args.n, args.height, args.width)
        if inpaint is not None and inpaint.keeps_everything:
            return inpaint.init_image.clone()
        pipe, n = self.pipe, args.n
        empty = self._empty(n) if cond.text is None or cond.negative_text is None else None
        text = cond.text if cond.text is not None else empty
        uncond = cond.negative_text if cond.negative_text is not None else empty
        scale = args.guidance_scale if args.guidance_scale is not None else self.default_guidance_scale
        device = pipe.device
        tokens = torch.cat([text.tokens, uncond.tokens]).to(device)
        extra: dict[str, Any] = {}
        if self.is_xl:
            # SDXL also conditions on the pooled text and on (original size, crop, target size).
            size = (args.height, args.width)
            ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=tokens.dtype,
                                         text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
            extra = {"text_embeds": torch.cat([text.pooled, uncond.pooled]).to(device), "time_ids": ids.repeat(2 * n, 1).to(device)}

        once = text_keys_kwargs() if self.text_keys_once else None

        def network(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = pipe.unet(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=tokens,
                            added_cond_kwargs=extra or None, cross_attention_kwargs=once).sample
            cond_out, free = out.chunk(2)
            return free + scale * (cond_out - free)

        denoiser = VPDenoiser(network, self.alphas_cumprod, self.prediction_type)
        if inpaint is not None:
            denoiser = inpaint.guide(denoiser, self.encode_image(inpaint.init_image))
        sigmas = denoiser.get_sigmas(args.steps or self.default_steps).to(device)
        f = pipe.vae_scale_factor
        shape = (n, pipe.unet.config.in_channels, args.height // f, args.width // f)
        x = torch.randn(shape, generator=args.generator, device=args.generator.device).to(device) * sigmas[0]
        if inpaint is not None:
            x = denoiser.start(x)
        total = len(sigmas) - 1
        callback = (lambda info: args.progress(info["i"] + 1, total)) if args.progress else None
        assert args.sampler is not None, "the pipeline resolves a sampler for every diffusion model"
        latents = args.sampler(denoiser, x, sigmas, callback=callback, generator=args.generator)
        images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
        return images if inpaint is None else inpaint.composite(images)


@hookimpl
def register_generators(register):
    register(DiffusersGenerator)


@hookimpl
def register_conditioners(register):
    register(DiffusersTextConditioner)
