"""Inpainting for every diffusion generator: redraw where the mask is white, keep the rest.

Two steps that fit every sampler, and an optional third that needs one following its sigmas:

1. **Known-region replacement** while sampling. Samplers call a denoiser ``D(x, sigma) ->
   x_0`` (k-diffusion's convention, ``toolkit.families.diffusion``); ``KnownRegionDenoiser``
   wraps it so that where the mask is 0 its estimate of x_0 is the init image (pixels for a
   pixel-space model, the VAE's latents for a latent one). The idea is RePaint's (Lugmayr et
   al. 2022, https://arxiv.org/abs/2201.09865): the model never draws the known region, it
   only sees it, at the current noise level, and draws the rest to fit.

   Sampling starts from ``KnownRegionDenoiser.start(noise)``: the init image plus the
   noise where the mask is 0. The known region of ``x`` is then *not* re-noised with fresh
   noise at every step, as RePaint does: every sampler here steps as ``x_next = D +
   (sigma_next / sigma) (x - D)`` or a combination of past estimates whose weights sum to
   one (DDIM, Euler, DPM-Solver++, UniPC; the ancestral sampler adds fresh noise of the
   right size itself). With ``D`` the init image there, the known part of ``x`` stays
   ``init + sigma * noise``, a correctly noised copy at every level, with no extra random
   draws: the seed's noise is the same as without a mask.

2. **Resampling** (optional, ``sample_resampled``): RePaint's jumps back in time. A model
   that decides where things go from the starting noise (a class-conditional one, say)
   otherwise often draws them where the mask keeps the init image, and leaves the masked
   part empty; going back and forth over each stretch of the schedule lets it settle on the
   masked part. It calls the sampler on segments of the schedule, so it needs a sampler
   that follows the sigmas it is given, and costs about ``1 + resample`` times the steps.

3. **A final composite in pixel space**: ``mask * fill + (1 - mask) * init``. Where the
   mask is exactly 0 that is the init image exactly, so the output PNG's pixels equal the
   input's (an 8-bit input decodes to ``k / 127.5 - 1``, which ``tensor_to_pil`` rounds
   back to ``k``); where the mask is grey (a feathered brush) the two blend.

   ``fill`` is the generated image made seamless (``seamless_fill``, Pérez et al. 2003,
   "Poisson Image Editing"): inside the mask it keeps the generated image's gradients, and
   at the mask's border it meets the init image's pixels. Without it a latent model's
   decoder, which gives a flat background back a few levels off (its reconstruction
   error), leaves that offset as a step along the border. A pixel model's sample already
   equals the init image outside the mask (its estimate there is the init image itself),
   so for it the fill changes nothing.

Edge cases: an all-black mask leaves nothing to redraw (the init image comes back, with a
warning); an all-white mask is plain generation, guided by nothing (generators skip the
resampling then: the image is the one made without a mask); an init image without a mask is
refused (white marks what to redraw).

A generator uses it in a few lines::

    inpaint = inpainting_inputs(cond, args.n, args.height, args.width)
    if inpaint is not None and inpaint.keeps_everything:
        return inpaint.init_image.clone()
    ...
    if inpaint is not None:  # known: the init image in the denoiser's space, (n, C, h, w)
        denoiser = inpaint.guide(denoiser, known)
        x = denoiser.start(x)  # x: the starting noise, scaled by sigmas[0]
    images = ...  # sample (sample_resampled, or the sampler) and decode, (n, 3, H, W)
    return images if inpaint is None else inpaint.composite(images)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.sparse import linalg as splinalg

from toolkit.components import Conditioning
from toolkit.errors import InvalidRequestError, ToolkitWarning


class KnownRegionDenoiser:
    """A denoiser whose x_0 estimate is ``known`` wherever ``mask`` is 0.

    ``known``: ``(n, C, h, w)`` in the denoiser's space; ``mask``: ``(n, 1, h, w)`` in [0, 1],
    1 = redraw. Any other attribute (the training schedule the diffusers samplers read) is
    the wrapped denoiser's.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor], known: torch.Tensor, mask: torch.Tensor):
        if known.shape[-2:] != mask.shape[-2:] or known.shape[0] != mask.shape[0]:
            raise ValueError(f"known {tuple(known.shape)} and mask {tuple(mask.shape)} must share batch and size")
        self.denoiser, self.known, self.mask = denoiser, known, mask

    def __getattr__(self, name: str) -> Any:
        if name in ("denoiser", "known", "mask"):  # not yet set: no recursion while unpickling
            raise AttributeError(name)
        return getattr(self.denoiser, name)

    def start(self, noise: torch.Tensor) -> torch.Tensor:
        """Where sampling starts: ``noise`` ``(n, C, h, w)``, already scaled by the first sigma,
        plus ``known`` where the mask keeps it (blended where it is grey)."""
        return noise + (1 - self.mask) * self.known.to(noise.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        """x: ``(n, C, h, w)`` at noise level sigma ``(n,)`` -> denoised, same shape as x."""
        denoised = self.denoiser(x, sigma, **extra_args)
        # The products, not torch.lerp: exactly `known` where the mask is 0 and exactly the
        # model's estimate where it is 1.
        return self.mask * denoised + (1 - self.mask) * self.known.to(denoised.dtype)


@dataclass(frozen=True)
class Inpainting:
    """A request's inpainting inputs at the image size.

    mask: ``(n, 1, H, W)`` float in [0, 1], 1 = redraw. init_image: ``(n, 3, H, W)`` in [-1, 1].
    """

    mask: torch.Tensor
    init_image: torch.Tensor

    @property
    def keeps_everything(self) -> bool:
        """An all-black mask: there is nothing to redraw."""
        return not bool((self.mask > 0).any())

    @property
    def redraws_everything(self) -> bool:
        """An all-white mask: plain generation, nothing known to resample towards."""
        return bool((self.mask >= 1).all())

    def mask_at(self, height: int, width: int) -> torch.Tensor:
        """The mask on a coarser grid, ``(n, 1, height, width)``, for a latent model: each cell
        takes the largest value over the pixels it covers, so every cell under a pixel to
        redraw is redrawn (the pixel composite keeps the rest exactly)."""
        if self.mask.shape[-2:] == (height, width):
            return self.mask
        return F.adaptive_max_pool2d(self.mask, (height, width))

    def guide(self, denoiser: Callable[..., torch.Tensor], known: torch.Tensor) -> KnownRegionDenoiser:
        """``denoiser`` with known-region replacement: ``known`` ``(n, C, h, w)`` is the init
        image in the denoiser's space (the pixels themselves, or their latents), and the mask
        is brought to ``(h, w)`` with ``mask_at``."""
        mask = self.mask_at(*known.shape[-2:]).to(device=known.device, dtype=known.dtype)
        return KnownRegionDenoiser(denoiser, known, mask)

    def composite(self, generated: torch.Tensor) -> torch.Tensor:
        """``generated`` ``(n, 3, H, W)`` in [-1, 1] -> made seamless with the init image
        (``seamless_fill``), then the init image's pixels wherever the mask is 0, blended
        where it is grey."""
        init = self.init_image.to(generated)
        fill = seamless_fill(generated, init, self.mask.to(generated) > 0).clamp(-1, 1)
        mask = self.mask.to(generated)
        return mask * fill + (1 - mask) * init


# How strongly each redrawn pixel is also held to the generated value: small enough that
# the border's values carry through, and it keeps a region that touches no kept pixel (an
# all-white mask) at the generated image instead of leaving the system without a solution.
ANCHOR = 1e-3


def seamless_fill(generated: torch.Tensor, init: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Poisson blending (Pérez et al. 2003): per image and channel, the values ``f`` over
    ``region`` whose discrete Laplacian is the generated image's, with the init image's
    values at the pixels just outside the region as the boundary (4-neighbours; the image's
    own edges are free). Outside the region the result is ``generated`` unchanged.

    generated, init: ``(n, C, H, W)``; region: ``(n, 1, H, W)`` bool, True = redrawn.
    Returns ``(n, C, H, W)``, like ``generated``.
    """
    out = generated.detach().cpu().double().numpy().copy()
    known = init.detach().cpu().double().numpy()
    inside = region.detach().cpu().numpy()[:, 0]
    for b in range(out.shape[0]):
        if inside[b].any() and not inside[b].all():
            out[b] = _poisson(out[b], known[b], inside[b])
    return torch.from_numpy(out).to(device=generated.device, dtype=generated.dtype)


def _poisson(g: np.ndarray, known: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """One image: g, known ``(C, H, W)``, inside ``(H, W)`` bool -> g with ``inside`` solved."""
    height, width = inside.shape
    index = -np.ones((height, width), dtype=np.int64)
    rows, cols = np.nonzero(inside)
    index[rows, cols] = np.arange(len(rows))
    channels = g.shape[0]
    diagonal = np.full(len(rows), ANCHOR)
    rhs = ANCHOR * g[:, rows, cols]  # (C, K)
    off_r, off_c = [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = rows + dr, cols + dc
        on_image = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        p, r, c = np.nonzero(on_image)[0], r[on_image], c[on_image]
        diagonal[p] += 1
        rhs[:, p] += g[:, rows[p], cols[p]] - g[:, r, c]  # the generated image's gradient
        neighbour = index[r, c]
        free = neighbour >= 0
        off_r.append(p[free])
        off_c.append(neighbour[free])
        rhs[:, p[~free]] += known[:, r[~free], c[~free]]  # the border: the kept pixels
    off_r, off_c = np.concatenate(off_r), np.concatenate(off_c)
    size = len(rows)
    matrix = sparse.csc_matrix((np.concatenate([diagonal, -np.ones(len(off_r))]),
                                (np.concatenate([np.arange(size), off_r]), np.concatenate([np.arange(size), off_c]))),
                               shape=(size, size))
    solve = splinalg.factorized(matrix)
    filled = g.copy()
    for channel in range(channels):
        filled[channel, rows, cols] = solve(rhs[channel])
    return filled


def sample_resampled(sampler: Callable[..., torch.Tensor], model: Callable[..., torch.Tensor], x: torch.Tensor,
                     sigmas: torch.Tensor, *, resample: int, jump: int, generator: torch.Generator,
                     progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """RePaint's resampling (Lugmayr et al. 2022) around a sampler: the schedule is walked in
    segments of ``jump`` steps; each segment is sampled, noised back to its start
    (``x + sqrt(s_start^2 - s_end^2) z``) and sampled again, ``resample`` times, before the
    next (the last segment once). With a ``KnownRegionDenoiser`` as ``model``, each round
    lets the redrawn region settle on what the known region has become, which replacement
    alone cannot: a model that places objects where the starting noise suggests otherwise
    leaves the mask empty. Costs about ``1 + resample`` times the steps.

    The sampler must follow the sigmas it is given, segment by segment (k-diffusion's
    samplers do; adapters that choose their own steps from the count do not).
    x: ``(n, C, h, w)`` at ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> the sample at ``sigmas[-1]``.
    """
    steps = len(sigmas) - 1
    starts = list(range(0, steps, jump))
    total = sum(min(jump, steps - k) * (1 if k + jump >= steps else 1 + resample) for k in starts)
    done = 0

    def count(_: dict) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for k in starts:
        segment = sigmas[k:k + jump + 1]
        rounds = 1 if k + jump >= steps else 1 + resample
        start = x
        for round_ in range(rounds):
            x = sampler(model, start, segment, callback=count, generator=generator)
            if round_ < rounds - 1:
                noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x)
                start = x + (segment[0] ** 2 - segment[-1] ** 2).sqrt() * noise
    return x


def inpainting_inputs(cond: Conditioning, n: int, height: int, width: int) -> Inpainting | None:
    """The conditioning's mask and init image, checked against the batch ``n`` and the image
    size; None when the request has neither (plain generation).

    Raises ``InvalidRequestError`` for an init image without a mask; warns
    (``ToolkitWarning``) for an all-black mask, which leaves the init image unchanged.
    """
    if cond.mask is None and cond.init_image is None:
        return None
    if cond.mask is None:
        raise InvalidRequestError("--init-image needs a --mask here: white marks what to redraw "
                                  "(an all-white mask redraws everything)")
    if cond.init_image is None:
        raise InvalidRequestError("--mask marks what to redraw in --init-image; pass --init-image too")
    for name, tensor, channels in (("mask", cond.mask, 1), ("init image", cond.init_image, 3)):
        if tuple(tensor.shape) != (n, channels, height, width):
            raise ValueError(f"the {name} conditioner gave {tuple(tensor.shape)}, expected {(n, channels, height, width)}")
    inpaint = Inpainting(cond.mask.float().clamp(0, 1), cond.init_image.float())
    if inpaint.keeps_everything:
        warnings.warn(ToolkitWarning("the mask is all black, so nothing is redrawn: the output is the init image"),
                      stacklevel=2)
    return inpaint
