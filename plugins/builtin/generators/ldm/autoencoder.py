"""Stage 2 of latent diffusion: the KL autoencoder (diffusers' ``AutoencoderKL``) that maps
images to the small latent the denoiser works in (``configs/ldm-shapes-autoencoder.yaml``).

It trains on its own, fits the latent scale at export, and exports a folder with ``vae/``
only. That folder loads (the ``ldm`` generator reads it) but cannot generate: a denoiser
trained on it (``stage: denoiser, autoencoder: FOLDER``) copies its ``vae/`` and does.
"""

from __future__ import annotations

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
    Trainable,
    TrainContext,
)
from toolkit.errors import ModelError
from toolkit.generation.model_folder import save_model_folder

from .config import UNET_WEIGHTS, LDMConfig, folder_config, half, load_part, read_model_folder
from .previews import FixedSamples

if TYPE_CHECKING:  # torch and diffusers are imported where a network is built, loaded or trained
    import torch
    from torch import nn

AUTOENCODER_ONLY = ("this folder holds only a trained autoencoder stage; train a denoiser on it "
                    "(stage: denoiser, autoencoder: FOLDER) to generate images")


def build_autoencoder(config: LDMConfig, size: int) -> nn.Module:
    """A fresh AutoencoderKL: images ``(B, 3, size, size)`` <-> latents ``(B, latent_channels,
    s, s)``, ``s = size / 2 ** (len(ae_channels) - 1)``."""
    from diffusers import AutoencoderKL

    levels = len(config.ae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=config.latent_channels, sample_size=size,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=config.ae_channels, layers_per_block=1, norm_num_groups=min(16, min(config.ae_channels)),
    )


class AutoencoderStage(Generator, ImageTextScorer, Trainable):
    """The trained autoencoder on its own: a model folder's ``vae/``, trained by ``toolkit
    train`` with ``stage: autoencoder``. It has no denoiser, so it generates nothing and has
    no CLIP; both say how to get a model that does."""

    name = "ldm"  # its folders are ldm model folders: the ldm generator loads them
    description = "the autoencoder stage of an ldm model (AutoencoderKL), trained and exported on its own"
    Config = LDMConfig
    ema_modules = ("vae",)

    def __init__(self, config: LDMConfig, *, vae: nn.Module, size: int):
        self.config, self.vae, self.size = config, vae.eval(), size
        self.checks: dict[str, float] = {}  # figures measured at export: the latent scale, reconstruction accuracy
        self.fixed: FixedSamples | None = None  # while training: the test images previews reconstruct

    # -- loading and saving ----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu", context: LoadContext | None = None) -> AutoencoderStage:
        from diffusers import AutoencoderKL

        folder = Path(folder)
        _, config, size = read_model_folder(folder)
        return cls(config, vae=load_part(AutoencoderKL, folder / "vae", "autoencoder").to(device), size=size)

    def save_pretrained(self, folder: Path) -> None:
        """``vae/`` in diffusers' layout, fp16 weights; the config accepts no conditioning."""
        save_model_folder(folder, folder_config(self.name, self.config, size=self.size, checks=self.checks, accepts=[]),
                          {"vae/" + UNET_WEIGHTS: half(self.vae)}, extra_files={"vae/config.json": self.vae.to_json_string()})

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        raise ModelError(AUTOENCODER_ONLY)

    @property
    def has_clip(self) -> bool:
        return False

    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        raise ModelError(AUTOENCODER_ONLY)

    # -- training ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: LDMConfig, *, dataset: Dataset | None = None,
                    context: LoadContext | None = None) -> AutoencoderStage:
        assert dataset is not None, "the trainer passes the training data"
        model = cls(config, vae=build_autoencoder(config, dataset.size), size=dataset.size)
        model.fixed = FixedSamples(dataset)
        return model

    def training_modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae.train()}

    def training_phases(self) -> list[Phase]:
        return [Phase("vae", ("vae",), self.loss)]

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Squared error on pixels and on their differences to the next pixel, plus a small
        KL to N(0, 1). Squared, not absolute: an absolute error pulls as hard on every
        barely-off background pixel as on a missing object, and on images that are mostly
        background the autoencoder then learns the background first and the objects late.
        The difference term weighs edges, where shapes differ. No perceptual or adversarial
        term: flat-coloured shapes need neither, and no pretrained LPIPS net exists offline.

        batch["image"]: ``(B, 3, H, W)`` in [-1, 1]."""
        import torch.nn.functional as F

        vae, x = ctx.modules["vae"], batch["image"]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        pixels = F.mse_loss(recon, x)
        edges = F.mse_loss(recon.diff(dim=-1), x.diff(dim=-1)) + F.mse_loss(recon.diff(dim=-2), x.diff(dim=-2))
        kl = posterior.kl().mean()  # summed over the latent, averaged over the batch
        loss = pixels + edges + self.config.kl_weight * kl
        return loss, {"loss": loss.item(), "mse": pixels.item(), "edges": edges.item(), "kl": kl.item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Reconstructions of fixed test images: ``(n, 3, H, W)`` in [-1, 1]."""
        assert self.fixed is not None, "previews are made while training"
        images = self.fixed.take(n)["images"]
        self.vae.eval()
        try:
            return self.vae(images.to(self.vae.device)).sample.clamp(-1, 1)
        finally:
            self.vae.train()

    def usage_hint(self, folder: Path) -> str:
        return f"a denoiser config (stage: denoiser) trains on it with autoencoder: {folder}"

    def prepare_export(self, dataset: Dataset) -> None:
        """Set the latent scale (1 / std of training latents, as Stable Diffusion's 0.18215
        came about) and, where the dataset can check images against captions (shapes can),
        print how often reconstructions of 200 test images are read with every attribute
        right: the ceiling for any denoiser on this autoencoder."""
        import numpy as np
        import torch

        from toolkit.train.data import evaluation_split

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
