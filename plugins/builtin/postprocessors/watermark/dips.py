"""Dips, for near-white images. Brightening by 10 % clips every channel near white to 255
and erases what the mark wrote there, unless a pixel was taken below the clipping point.
The dips variant keeps part of the spread-spectrum change in the area that clips and spends
the rest of the budget on a few deep dips where the mark wants to go down most; they follow
the mark's own signs, so the unchanged detector reads them before and after brightening.

docs/postprocessors.md ("Invisible watermark", "The design") explains the choice of dips.
"""

from __future__ import annotations

import numpy as np

from .attacks import BRIGHTER, brighten
from .layout import Layout, signs
from .reading import LUMA_WEIGHTS, Grid
from .spread import EmbedResult, psnr_budget, psnr_of

DIPS_MIN_CLIPPED = 0.25  # the share of pixels brightening must clip before the dips are tried
DIP_KEEP = (0.7, 0.5, 0.3)  # shares of the spread-spectrum change kept in the clipping area, tried in order
DIP_DEPTHS = np.arange(2.0, 41.0)  # candidate dip depths, in levels
DIP_ROUNDS = 6  # times the dips are chosen again after a rehearsed brightening
DIP_REWEIGHT = 0.1  # how hard each round favours the bits it read weakest (an exponent: small is gentle)


def clipped_when_brightened(rgb: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of ``rgb`` ``(H, W, 3)`` in [0, 255] with a channel that
    brightening by ``BRIGHTER`` clips to 255."""
    return (BRIGHTER * np.asarray(rgb, np.float64)).max(-1) > 255.5


def embed_dips(rgb: np.ndarray, bits: np.ndarray, layout: Layout, spread: EmbedResult, keep: float, *,
              psnr: float = 38.5) -> EmbedResult:
    """The dips variant of a spread-spectrum result.

    rgb: ``(H, W, 3)`` the original, floats in [0, 255]; bits: ``(layout.n_payload,)`` of
    0/1, as given to ``spread.embed``; spread: what it made of them (its margin and bytes
    given up are passed on). In the area brightening clips, the mark's change is scaled by
    ``keep`` and the pixels it pushes down hardest, per unit of cost, are dipped as deep as
    pays off: as many of them as the PSNR budget allows. Then ``DIP_ROUNDS`` times: brighten,
    read, and choose the dips again with the bits that came out weakest weighed up.
    """
    base = np.clip(np.round(np.asarray(rgb, np.float64)), 0, 255)
    height, width = base.shape[:2]
    budget = psnr_budget(height, width, psnr)
    grid = Grid(layout, height, width)
    sign = signs(bits, layout)
    delta = (spread.image - base).mean(-1)  # the mark changes luma only
    clipped = clipped_when_brightened(base)
    # What a dip of depth d leaves in the brightened luma (channels that stay under 255),
    # per unit of cost d^2; each pixel takes its best depth.
    over = BRIGHTER * base - 255.5  # (H, W, 3): how far brightening pushes each channel past white
    best, depth = np.zeros((height, width)), np.zeros((height, width))
    for d in DIP_DEPTHS:
        per_cost = np.maximum(0.0, BRIGHTER * d - over) @ np.asarray(LUMA_WEIGHTS) / d**2  # (H, W)
        better = per_cost > best
        best, depth = np.where(better, per_cost, best), np.where(better, d, depth)
    kept = np.where(clipped, keep * delta, delta).ravel()

    def with_dips(order: np.ndarray, k: int) -> np.ndarray:
        change = kept.copy()
        change[order[:k]] = -depth.ravel()[order[:k]]
        return np.clip(np.round(base + change.reshape(height, width)[..., None]), 0, 255)

    wanted, weight = delta, np.ones_like(sign)  # where the mark wants to go down; each bit's weight
    for round_ in range(DIP_ROUNDS + 1):
        candidates = clipped & (wanted < 0) & (best > 0)
        order = np.argsort(np.where(candidates, wanted * best, np.inf), axis=None)[: int(candidates.sum())]
        lo, hi = 0, len(order)  # the most dips the budget allows (rounding and clipping included)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ((with_dips(order, mid) - base) ** 2).sum() / 3 <= budget else (lo, mid - 1)
        out = with_dips(order, lo)
        if round_ == DIP_ROUNDS:
            break
        # Each dip feeds the ten slots of its block, some against their bit, so bits end up
        # unevenly strong; the reading after brightening says which to favour next time.
        seen, _ = grid.read_as_detector(brighten(out), (0, 0))
        margin = sign * grid.per_bit(seen)
        margin /= max(np.abs(margin).mean(), 1e-9)
        weight *= np.clip(1.0 / np.maximum(margin, 0.2), 0.5, 3.0) ** DIP_REWEIGHT
        weight /= weight.mean()
        wanted = grid.to_pixels((sign * weight)[grid.bit] * grid.chip)
    return EmbedResult(out, psnr_of(out, base), spread.margin, spread.given_up, "dips")

