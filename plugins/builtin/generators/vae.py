"""The `vae` generator: a class-conditional convolutional variational autoencoder.

* VAE of Kingma & Welling 2013 (https://arxiv.org/abs/1312.6114), conditioned on the class in
  both encoder and decoder (Sohn et al. 2015, https://papers.nips.cc/paper/5775).
* KL weight β of Higgins et al. 2017 (https://openreview.net/forum?id=Sy2fzU9gl): β = 1 is
  the plain ELBO; larger β gives a smoother latent space and blurrier samples.
* Reconstruction is a Gaussian likelihood with a fixed standard deviation ``recon_std``:
  the smaller it is, the more the model cares about pixels relative to the prior.
* ``prior: gmm`` samples from a Gaussian mixture fitted, per class, to the training images'
  latent codes after training ("ex-post density estimation", Ghosh et al. 2020,
  https://arxiv.org/abs/1903.12436) instead of N(0, I): the codes of a sharp VAE do not
  fill the standard normal, and prior samples from the gaps decode to blends.

Besides sampling, the generator encodes images, decodes latents and interpolates
between two images or two seeds (``toolkit interpolate``).

Reads top to bottom: config, the generator (load, save, encode/decode, prior), training,
hook. The encoder is in vae_networks.py, the decoder is ``toolkit.families.conv_decoder.ConvDecoder``
(shared with the GAN): torch is imported where a model is built or run, not when the plugins
load (docs/plugins.md, "Keep start-up fast").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import Conditioning, GenerateArgs, Phase, Trainable, TrainContext
from toolkit.families.latent import LatentGenerator, sample_latents
from toolkit.generation.model_folder import (
    load_weights,
    read_square_model_config,
    save_model_folder,
    square_model_config,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

PRIOR_FILE = "prior.safetensors"


class VAEConfig(BaseModel):
    """Hyper-parameters: the `model:` section of a training config."""

    model_config = ConfigDict(extra="forbid")

    latent_dim: int = Field(32, ge=1, le=4096, description="size of the latent vector z")
    class_dim: int = Field(16, ge=1, le=1024, description="size of the class embedding given to encoder and decoder")
    channels: int = Field(32, ge=8, le=512, description="width at full resolution; each 2x smaller level doubles it")
    beta: float = Field(1.0, ge=0, description="weight of the KL term (beta-VAE); 1 = the plain ELBO")
    recon_std: float = Field(0.1, gt=0, description="std of the Gaussian pixel likelihood, images in [-1, 1]")
    prior: Literal["normal", "gmm"] = Field("normal", description="sample N(0, I), or a per-class mixture fitted after training")
    prior_components: int = Field(10, ge=1, le=256, description="mixture components per class (prior: gmm)")
    default_truncation: float | None = Field(None, gt=0, description="truncation used when a request sets none")


# -- the generator -------------------------------------------------------------------------


class VAEGenerator(LatentGenerator, Trainable):
    """Class-conditional VAE with a β-weighted KL; encodes, decodes and interpolates."""

    name = "vae"
    description = "convolutional beta-VAE, class-conditional; encode/decode and interpolation"
    accepts = frozenset({"class"})
    Config = VAEConfig
    ema_modules = ("vae",)

    def __init__(self, config: VAEConfig, *, num_classes: int, size: int):
        from .vae_networks import VAENet

        self.config, self.num_classes, self.size, self.latent_dim = config, num_classes, size, config.latent_dim
        self.default_truncation = config.default_truncation
        self.net = VAENet(config, num_classes, size).eval()
        # prior: gmm: per class (one "class" when unconditional) K weights (C, K), means
        # (C, K, D) and Cholesky factors (C, K, D, D); filled by prepare_export or loading.
        self.mixture: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_config(cls, config: VAEConfig, *, dataset=None) -> VAEGenerator:
        return cls(config, num_classes=len(dataset.class_names or []), size=dataset.size)

    @classmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu") -> VAEGenerator:
        config, num_classes, size = read_square_model_config(folder, VAEConfig)
        model = cls(config, num_classes=num_classes, size=size)
        model.net.load_state_dict({k: v.float() for k, v in load_weights(folder, device=device).items()})
        model.net.to(device)
        if config.prior == "gmm":
            model.mixture = load_weights(folder, PRIOR_FILE, device=device)
        return model

    def save_pretrained(self, folder: Path) -> None:
        """Encoder and decoder in fp16 (the encoder serves encode and image interpolation)."""
        config = square_model_config(self.name, self.config, num_classes=self.num_classes, size=self.size)
        weights = {"model.safetensors": {k: v.half() for k, v in self.net.state_dict().items()}}
        if self.mixture is not None:
            weights[PRIOR_FILE] = self.mixture  # fp32: a few KB, and Cholesky factors want the precision
        save_model_folder(folder, config, weights)

    def decoder_module(self) -> nn.Module:
        return self.net.decoder

    def draw_latents(self, n: int, labels: torch.Tensor | None, generator: torch.Generator,
                     truncation: float | None = None) -> torch.Tensor:
        """``(n, latent_dim)``: from N(0, I), or from the fitted mixture of each label's class."""
        import torch

        if self.mixture is None:
            return sample_latents(n, self.latent_dim, generator, truncation)
        rows = labels.cpu() if labels is not None else torch.zeros(n, dtype=torch.long)
        weights = self.mixture["weights"].cpu()[rows]  # (n, K)
        component = torch.multinomial(weights, 1, generator=torch.Generator().manual_seed(
            int(torch.randint(2**62, (1,), generator=generator, device=generator.device))))[:, 0]  # (n,)
        noise = sample_latents(n, self.latent_dim, generator, truncation).cpu()  # (n, D)
        means = self.mixture["means"].cpu()[rows, component]  # (n, D)
        tril = self.mixture["scale_tril"].cpu()[rows, component]  # (n, D, D)
        return means + (tril @ noise[:, :, None])[:, :, 0]

    def prepare_export(self, dataset) -> None:
        """prior: gmm: encode the training images and fit each class's mixture to their codes."""
        if self.config.prior != "gmm":
            return
        import numpy as np
        import torch
        from sklearn.mixture import GaussianMixture
        from torch.utils.data import DataLoader

        codes, classes = [], []
        self.net.eval()
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=256, collate_fn=_images_and_labels):
                labels = batch[1] if self.num_classes else None
                codes.append(self.encode(batch[0], labels)[0].cpu())
                classes.append(batch[1])
        z, y = torch.cat(codes).double().numpy(), torch.cat(classes).numpy()
        parts = {"weights": [], "means": [], "scale_tril": []}
        for c in range(max(self.num_classes, 1)):
            rows = z[y == c] if self.num_classes else z
            gmm = GaussianMixture(min(self.config.prior_components, len(rows)), covariance_type="full",
                                  reg_covar=1e-4, random_state=0).fit(rows)
            parts["weights"].append(gmm.weights_)
            parts["means"].append(gmm.means_)
            parts["scale_tril"].append(np.linalg.cholesky(gmm.covariances_))
        self.mixture = {k: torch.tensor(np.stack(v), dtype=torch.float32) for k, v in parts.items()}

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net.decoder(z, labels)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """images ``(B, 3, S, S)`` in [-1, 1], labels ``(B,)`` -> posterior mean and
        log-variance, each ``(B, latent_dim)``. The mean is the image's latent code."""
        if self.num_classes and labels is None:
            raise ValueError("this VAE is class-conditional: pass the class of each image to encode it")
        return self.net.encoder(images.to(self.device), None if labels is None else labels.to(self.device))

    # -- training ----------------------------------------------------------------------------

    def training_modules(self) -> dict[str, nn.Module]:
        return {"vae": self.net.train()}

    def training_phases(self) -> list[Phase]:
        return [Phase("vae", ("vae",), self.loss)]

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO per image: Gaussian reconstruction + β·KL(q(z|x) || N(0, I))."""
        import torch
        import torch.nn.functional as F

        x = batch["image"]  # (B, 3, S, S)
        labels = batch["class_label"] if self.num_classes else None
        net = ctx.modules["vae"]
        mean, logvar = net.encoder(x, labels)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)  # reparameterisation trick
        recon = net.decoder(z, labels)
        recon_nll = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1) / (2 * self.config.recon_std**2)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        loss = (recon_nll + self.config.beta * kl).mean()
        return loss, {"loss": loss.item(), "kl": kl.mean().item(), "mse": F.mse_loss(recon, x).item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        self.net.eval()
        try:
            labels = torch.arange(n) % self.num_classes if self.num_classes else None
            args = GenerateArgs(n=n, height=self.size, width=self.size, generator=generator, truncation=self.default_truncation)
            return self.generate(Conditioning(class_labels=labels), args)
        finally:
            self.net.train()


def _images_and_labels(samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Only what the prior fit needs: images ``(B, 3, S, S)`` and labels ``(B,)`` (0 when unlabelled)."""
    import torch

    return torch.stack([s["image"] for s in samples]), torch.tensor([s.get("class_label", 0) for s in samples])


@hookimpl
def register_generators(register):
    register(VAEGenerator)
