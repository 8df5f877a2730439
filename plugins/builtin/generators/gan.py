"""The `gan` generator: a class-conditional DCGAN-style GAN.

* Generator and discriminator in the spirit of DCGAN (Radford et al. 2015,
  https://arxiv.org/abs/1511.06434): a stack of 2x up- (down-) sampling convolution blocks.
* Spectral normalisation in the discriminator (Miyato et al. 2018, https://arxiv.org/abs/1802.05957).
* Hinge loss (Lim & Ye 2017, https://arxiv.org/abs/1705.02894) or the non-saturating loss of
  Goodfellow et al. 2014 (https://arxiv.org/abs/1406.2661).
* Class conditioning through a projection discriminator (Miyato & Koyama 2018,
  https://arxiv.org/abs/1802.05637) and a class embedding concatenated to the latent.
* DiffAugment translation (Zhao et al. 2020, https://arxiv.org/abs/2006.10738): real and fake
  images are shifted alike before the discriminator sees them, so it cannot memorise a small
  dataset such as the 1437 training digits.
* Optional: an auxiliary classifier on the discriminator's features (AC-GAN, Odena et al.
  2017, https://arxiv.org/abs/1610.09585), trained on real images only, whose loss on the
  fakes pushes the generator to draw its class recognisably. Where the object is a small
  part of the image (shapes), the adversarial signal alone lets the generator drift to
  near-empty backgrounds; a fake must now show its class to score well.
* Optional: GroupNorm (Wu & He 2018, https://arxiv.org/abs/1803.08494) after each
  discriminator convolution past the first. Per image, so real and fake never share
  statistics. Where a small object sits on a large flat background (shapes), the plain
  spectral-norm discriminator learns the objects' outlines far more slowly than the
  generator learns to paint blobs: as a shape classifier, the same network reaches 52 %
  in 400 steps without it and 91 % with it.
* Optional against mode collapse: a minibatch standard-deviation feature in the
  discriminator (Karras et al. 2018, https://arxiv.org/abs/1710.10196), so it can tell a
  batch of near-identical fakes from varied real images; and the R1 gradient penalty on real
  images (Mescheder et al. 2018, https://arxiv.org/abs/1801.04406).
* Optional: class-conditional normalisation in the generator (de Vries et al. 2017,
  https://arxiv.org/abs/1707.00683; the generator of Miyato & Koyama 2018 and BigGAN):
  every GroupNorm takes its gain and bias from the class. Joined to the latent alone, the
  class reached shapes' generator too weakly to change what it draws.
* Truncation at sampling time (`--truncation`, Brock et al. 2018), from toolkit.families.latent.

Reads top to bottom: config, the generator (load, save, decode), training, hook. The
discriminator and DiffAugment are in gan_discriminator.py, the generator network is
``toolkit.families.conv_decoder.ConvDecoder`` (shared with the VAE): torch is imported where a
model is built or trained, not when the plugins load (docs/plugins.md, "Keep start-up fast").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import Conditioning, GenerateArgs, Phase, Trainable, TrainContext
from toolkit.families.latent import LatentGenerator
from toolkit.generation.model_folder import (
    load_weights,
    read_square_model_config,
    save_model_folder,
    square_model_config,
)

if TYPE_CHECKING:
    import torch
    from torch import nn


class GANConfig(BaseModel):
    """Hyper-parameters: the `model:` section of a training config."""

    model_config = ConfigDict(extra="forbid")

    latent_dim: int = Field(64, ge=2, le=4096, description="size of the latent vector z")
    class_dim: int = Field(32, ge=1, le=1024, description="size of the class embedding joined to z")
    class_norm: bool = Field(False, description="class-conditional GroupNorm gains and biases in the generator")
    channels: int = Field(32, ge=8, le=512, description="width at full resolution; each 2x smaller level doubles it")
    loss: Literal["hinge", "non_saturating"] = "hinge"
    spectral_norm: bool = Field(True, description="spectral normalisation of every discriminator layer")
    discriminator_norm: Literal["none", "group"] = Field("none", description="normalisation after each discriminator convolution past the first")
    diffaugment: float = Field(0.125, ge=0, lt=0.5, description="shift real and fake by up to this fraction of the size (0 = off)")
    minibatch_std: bool = Field(False, description="give the discriminator the batch's feature spread (Karras et al. 2018)")
    r1_gamma: float = Field(0.0, ge=0, description="weight of the R1 penalty on real images' gradients (0 = off)")
    aux_classifier: float = Field(0.0, ge=0, description="weight of the auxiliary class loss on fakes (AC-GAN; 0 = off)")
    lr_generator: float | None = Field(None, gt=0, description="default: train.lr")
    lr_discriminator: float | None = Field(None, gt=0, description="default: train.lr")
    betas: tuple[float, float] = Field((0.0, 0.9), description="Adam betas of both optimizers (SNGAN's)")
    default_truncation: float | None = Field(None, gt=0, description="truncation used when a request sets none")


# -- the generator -------------------------------------------------------------------------


class GANGenerator(LatentGenerator, Trainable):
    """Class-conditional GAN: spectral-norm projection discriminator, hinge loss, truncation."""

    name = "gan"
    description = "DCGAN-style GAN (hinge loss, spectral norm, projection discriminator, truncation)"
    accepts = frozenset({"class"})
    Config = GANConfig
    ema_modules = ("generator",)

    def __init__(self, config: GANConfig, *, num_classes: int, size: int, discriminator: bool = True):
        from torch import nn

        from toolkit.families.conv_decoder import ConvDecoder

        from .gan_discriminator import DiscriminatorNet

        self.config, self.num_classes, self.size, self.latent_dim = config, num_classes, size, config.latent_dim
        self.default_truncation = config.default_truncation
        self.generator = ConvDecoder(config.latent_dim, size, config.channels, num_classes=num_classes,
                                     class_dim=config.class_dim, activation=nn.ReLU, model="GAN",
                                     class_norm=config.class_norm).eval()
        # Only training needs the discriminator; a loaded model is the generator alone.
        self.discriminator = DiscriminatorNet(config, num_classes, size) if discriminator else None

    @classmethod
    def from_config(cls, config: GANConfig, *, dataset=None) -> GANGenerator:
        return cls(config, num_classes=len(dataset.class_names or []), size=dataset.size)

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu") -> GANGenerator:
        config, num_classes, size = read_square_model_config(folder, GANConfig)
        model = cls(config, num_classes=num_classes, size=size, discriminator=False)
        model.generator.load_state_dict({k: v.float() for k, v in load_weights(folder, device=device).items()})
        model.generator.to(device)
        return model

    def save_pretrained(self, folder: Path) -> None:
        """The generator only, in fp16 (samples are unchanged; half the size)."""
        config = square_model_config(self.name, self.config, num_classes=self.num_classes, size=self.size)
        save_model_folder(folder, config, {"model.safetensors": {k: v.half() for k, v in self.generator.state_dict().items()}})

    def decoder_module(self) -> nn.Module:
        return self.generator

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.generator(z, labels)

    # -- training ----------------------------------------------------------------------------

    def training_modules(self) -> dict[str, nn.Module]:
        assert self.discriminator is not None, "a GAN loaded with from_pretrained has no discriminator to train"
        return {"generator": self.generator.train(), "discriminator": self.discriminator.train()}

    def training_phases(self) -> list[Phase]:
        c = self.config
        return [Phase("discriminator", ("discriminator",), self.discriminator_loss, lr=c.lr_discriminator, betas=c.betas),
                Phase("generator", ("generator",), self.generator_loss, lr=c.lr_generator, betas=c.betas)]

    def _fakes(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        b = batch["image"].shape[0]
        labels = batch["class_label"] if self.num_classes else None
        z = torch.randn(b, self.latent_dim, device=ctx.device)
        return ctx.modules["generator"](z, labels), labels

    @property
    def _aux(self) -> bool:
        return bool(self.config.aux_classifier and self.num_classes)

    def _score(self, images: torch.Tensor, labels: torch.Tensor | None, ctx: TrainContext):
        """Scores ``(B,)``, or (scores, class logits ``(B, classes)``) with the auxiliary classifier."""
        if self.config.diffaugment:
            from .gan_discriminator import diff_augment

            images = diff_augment(images, self.config.diffaugment)
        return ctx.modules["discriminator"](images, labels, with_logits=self._aux)

    def discriminator_loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            fake, labels = self._fakes(batch, ctx)
        real = batch["image"].detach().requires_grad_(self.config.r1_gamma > 0)
        real_score, fake_score = self._score(real, labels, ctx), self._score(fake, labels, ctx)
        logs = {}
        if self._aux:  # the classifier learns from real images only, so fakes cannot teach it wrong classes
            (real_score, real_logits), (fake_score, _) = real_score, fake_score
            aux_loss = F.cross_entropy(real_logits, labels)
            logs["aux_real"] = aux_loss.item()
        if self.config.loss == "hinge":
            loss = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        else:
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        if self._aux:
            loss = loss + aux_loss
        logs |= {"score_real": real_score.mean().item(), "score_fake": fake_score.mean().item()}
        if self.config.r1_gamma > 0:
            (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)  # (B, 3, H, W)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            loss = loss + self.config.r1_gamma / 2 * r1
            logs["r1"] = r1.item()
        return loss, {"loss_d": loss.item(), **logs}

    def generator_loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        import torch.nn.functional as F

        fake, labels = self._fakes(batch, ctx)
        score = self._score(fake, labels, ctx)
        logs = {}
        if self._aux:
            score, logits = score
            aux_loss = F.cross_entropy(logits, labels)
            logs["aux_fake"] = aux_loss.item()
        loss = -score.mean() if self.config.loss == "hinge" else F.softplus(-score).mean()
        if self._aux:
            loss = loss + self.config.aux_classifier * aux_loss
        return loss, {"loss_g": loss.item(), **logs}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        self.generator.eval()
        try:
            labels = torch.arange(n) % self.num_classes if self.num_classes else None
            args = GenerateArgs(n=n, height=self.size, width=self.size, generator=generator, truncation=self.default_truncation)
            return self.generate(Conditioning(class_labels=labels), args)
        finally:
            self.generator.train()


@hookimpl
def register_generators(register):
    register(GANGenerator)
