"""The `model:` section of an ldm training config, and the model folder it becomes.

One ``LDMConfig`` covers every trainable stage: ``stage`` says which one a run trains
(``autoencoder.AutoencoderStage``, ``denoiser.LDMGenerator`` or ``controlnet.ControlNetStage``), and the exported folder's
config.json holds the same fields, so a folder is read back into the config that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit.errors import ModelError
from toolkit.generation.model_folder import read_config, verify_weights

if TYPE_CHECKING:
    import torch
    from torch import nn

UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"  # diffusers' file name, in unet/ and vae/
ADAPTER_WEIGHTS = "text_adapter/model.safetensors"


class LDMConfig(BaseModel):
    """Hyper-parameters: the `model:` section of a training config (both stages)."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["autoencoder", "denoiser", "controlnet"] = Field("denoiser", description="which network this run trains")
    # -- autoencoder (stage 2 of docs/text-to-image.md) --
    ae_channels: tuple[int, ...] = Field((32, 64, 64), description="autoencoder widths; each level after the first halves the side")
    latent_channels: int = Field(4, ge=1)
    kl_weight: float = Field(1e-6, ge=0, description="weight of the KL term: a small one keeps the latent near N(0, 1) without blurring")
    # -- denoiser (stage 3) --
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
    encode_cache: int = Field(0, ge=0, description="training images and captions whose frozen encodings are kept "
                              "rather than computed again each time (a dataset of a few thousand images fits whole; "
                              "0 = encode every batch)")
    # -- sketch control (stage 4: a ControlNet over a trained denoiser) --
    base: str | None = Field(None, description="controlnet stage: folder of the trained ldm model it steers (kept frozen)")
    controlnet_embedding_channels: tuple[int, ...] = Field(
        (16, 32, 64), description="widths of the ControlNet's sketch encoder; each after the first halves the side, "
        "so there must be one more than the autoencoder's downsamplings")
    default_sampler: str = "dpmpp-2m"
    default_steps: int = Field(20, ge=1)
    default_guidance_scale: float = Field(4.0, ge=0)


def folder_stage(folder: Path) -> str:
    """Which stage a model folder holds (folders from before stages were named hold a denoiser)."""
    return str(read_config(folder).get("stage", "denoiser"))


def read_model_folder(folder: Path) -> tuple[dict[str, Any], LDMConfig, int]:
    """A model folder's config.json, its weights checked against their recorded sha256:
    (the whole config, the ``LDMConfig`` part of it, the image side)."""
    saved = read_config(folder)
    verify_weights(folder)
    config = LDMConfig.model_validate({k: v for k, v in saved.items() if k in LDMConfig.model_fields})
    return saved, config, int(saved["sizes"][0][0])


def folder_config(name: str, config: LDMConfig, *, size: int, checks: dict[str, Any], accepts: list[str],
                  num_classes: int = 0, **fields: Any) -> dict[str, Any]:
    """The config.json of an exported stage: what the model store reads (generator, accepts,
    sizes, conditioners), the ``LDMConfig`` (with ``fields`` replacing some of it) and the
    figures measured at export."""
    return {
        "generator": name, "accepts": accepts, "sizes": [[size, size]], "num_classes": num_classes,
        "conditioners": {"text": config.text_conditioner}, **config.model_dump(mode="json"), **fields, "checks": checks,
    }


def load_part(cls: Any, folder: Path, what: str) -> nn.Module:
    """One diffusers network of a model folder (``vae/``, ``unet/``), in float32 for eval."""
    import torch

    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} has no config.json: the {what} is missing from this model folder")
    return cls.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()


def half(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights in fp16, as model folders store them."""
    return {k: v.half() for k, v in module.state_dict().items()}  # save_model_folder makes them contiguous
