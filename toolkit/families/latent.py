"""What GANs and VAEs share: images are decoded from a latent vector drawn from a normal prior.

``LatentGenerator`` turns a request into latents (seeded, optionally truncated) and class
labels, then calls the subclass's ``decode``. It also interpolates between two latents,
which is how ``toolkit interpolate`` walks from one seed (or, for a VAE, one image) to another.
The decoder network both families share is in conv_decoder.py; torch is imported where latents
are drawn or decoded, so that the generators defined on this class load without it.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import TYPE_CHECKING

from toolkit.components import Conditioning, GenerateArgs, Generator
from toolkit.errors import ConfigError, UnsupportedRequestError
from toolkit.generation.images import fit_to, pil_to_tensor, to_rgb

if TYPE_CHECKING:
    import torch
    from PIL import Image


def sample_latents(n: int, dim: int, generator: torch.Generator, truncation: float | None = None) -> torch.Tensor:
    """``(n, dim)`` standard normal latents; with ``truncation`` T every value lies in [-T, T].

    Truncating the prior trades variety for fidelity (the "truncation trick" of Brock et al.
    2018, https://arxiv.org/abs/1809.11096): samples come from where the model saw most data.
    """
    import torch

    z = torch.empty(n, dim, device=generator.device)
    if truncation is None:
        return z.normal_(generator=generator)
    return torch.nn.init.trunc_normal_(z, a=-truncation, b=truncation, generator=generator)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents ``(D,)`` at fractions ``t`` ``(S,)`` -> ``(S, D)``.

    High-dimensional normal samples live near a sphere; a straight line between two of them
    passes through the low-norm middle the decoder never saw, so we follow the arc instead
    (White 2016, https://arxiv.org/abs/1609.04468).
    """
    import torch

    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    angle = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if angle.abs() < 1e-4:  # nearly parallel: the arc is a line
        return torch.lerp(z0[None], z1[None], t[:, None])
    w0, w1 = torch.sin((1 - t) * angle) / math.sin(angle), torch.sin(t * angle) / math.sin(angle)
    return w0[:, None] * z0[None] + w1[:, None] * z1[None]


def pyramid_levels(size: int, model: str) -> int:
    """How many 2x steps lead from the 4x4 base to ``size`` x ``size`` images."""
    levels = round(math.log2(max(size, 1) / 4))
    if size < 8 or 4 * 2**levels != size:
        raise ConfigError(f"the {model} makes square images of 8, 16, 32, 64... pixels; data.size {size} is not one of them")
    return levels


class LatentGenerator(Generator):
    """A generator that decodes latents ``(B, latent_dim)`` (and class labels) into images."""

    uses_truncation = True
    latent_dim: int
    num_classes: int  # 0 = unconditional
    size: int  # square images of this side

    @abstractmethod
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z: ``(B, latent_dim)``; labels: ``(B,)`` int64 or None -> images ``(B, 3, H, W)`` in [-1, 1]."""

    @property
    def device(self) -> torch.device:
        return next(self.decoder_module().parameters()).device

    @abstractmethod
    def decoder_module(self) -> torch.nn.Module:
        """The network ``decode`` runs (its device is where latents go)."""

    def labels_for(self, cond: Conditioning, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """The request's class for every image, or a seeded random class per image when the
        model is class-conditional and the request names none."""
        import torch

        if not self.num_classes:
            return None
        if cond.class_labels is not None:
            return cond.class_labels.to(self.device)
        return torch.randint(0, self.num_classes, (n,), generator=generator, device=generator.device).to(self.device)

    def draw_latents(self, n: int, labels: torch.Tensor | None, generator: torch.Generator,
                     truncation: float | None = None) -> torch.Tensor:
        """``(n, latent_dim)`` latents from the model's prior (standard normal unless a
        subclass learned another); labels ``(n,)`` let a class-wise prior pick its part."""
        return sample_latents(n, self.latent_dim, generator, truncation)

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        labels = self.labels_for(cond, args.n, args.generator)
        z = self.draw_latents(args.n, labels, args.generator, args.truncation).to(self.device)
        return self.decode(z, labels).clamp(-1, 1)

    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images along the arc from latent ``z0`` to ``z1`` (both ``(latent_dim,)``):
        ``(steps, 3, H, W)`` in [-1, 1]. labels: ``(steps,)`` or None."""
        import torch

        path = slerp(z0.to(self.device), z1.to(self.device), torch.linspace(0, 1, steps, device=self.device))
        return self.decode(path, None if labels is None else labels.to(self.device)).clamp(-1, 1)


def latent_for(model: LatentGenerator, *, seed: int | None = None, image: Image.Image | None = None,
               label: torch.Tensor | None = None, truncation: float | None = None) -> torch.Tensor:
    """One end of an interpolation, ``(latent_dim,)``: the prior sample of ``seed``, or the
    posterior mean of ``image`` for models with an encoder (a VAE)."""
    import torch

    if image is None:
        return model.draw_latents(1, label, torch.Generator().manual_seed(seed or 0), truncation)[0].cpu()
    encode = getattr(model, "encode", None)
    if encode is None:
        raise UnsupportedRequestError(f"{model.name} models have no encoder, so they cannot start from an image; use seeds, or a VAE")
    picture = fit_to(to_rgb(image), model.size, model.size, what="image")
    with torch.no_grad():
        return encode(pil_to_tensor(picture), label)[0][0].cpu()
