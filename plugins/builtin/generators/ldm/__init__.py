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
2. the autoencoder: ``configs/ldm-shapes-autoencoder.yaml`` (``stage: autoencoder``,
   ``AutoencoderStage``);
3. the denoiser: ``configs/ldm-shapes.yaml`` (``stage: denoiser``, ``LDMGenerator``) names
   the other two and exports the model folder, in diffusers' layout plus the text encoder::

    ldm-shapes/
      config.json            ours: generator, accepts, sizes, text_encoder spec, defaults
      unet/                  UNet2DConditionModel.from_pretrained reads it
      vae/                   AutoencoderKL.from_pretrained reads it
      scheduler/             DDPMScheduler.from_pretrained reads it (the training schedule)
      text_encoder/          the CLIP (open_clip's layout) or a transformers encoder
      text_adapter/          only with text_adapter_layers > 0: model.safetensors

The modules: ``config`` (the ``model:`` section and the folder's config.json),
``autoencoder`` (stage 2), ``denoiser`` (stage 3: the generator and its training), ``unet``
(the UNet, its schedule and guidance), ``text`` (text conditioner, adapter, encoder copy) and
``text_adapter`` (the adapter's network), ``controlnet`` and ``controlnet_stage`` (stage 4,
sketch control), ``previews`` (the fixed inputs of training previews). torch and diffusers
are imported where a network is built, loaded or run, not when this plugin registers.
"""

from __future__ import annotations

from toolkit import hookimpl

from .autoencoder import AutoencoderStage
from .config import LDMConfig
from .denoiser import LDMGenerator

__all__ = ["AutoencoderStage", "LDMConfig", "LDMGenerator"]


@hookimpl
def register_generators(register):
    register(LDMGenerator)
