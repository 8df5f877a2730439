"""The lattice mode (dither modulation, Chen & Wornell 2001), for small busy images: each
bit's normalised soft value ``u`` is moved to the nearest point of the lattice
``LATTICE_STEP * (k + bit / 2 + dither)``. That costs at most a quarter step squared per
bit whatever the host, so a photo squeezed into 64x64, mostly edges that spread spectrum
would have to cancel, carries the mark as cheaply as a flat one. It survives JPEG and
brightness, not blur or rescaling. The detector reads every alignment both ways.

docs/postprocessors.md ("Invisible watermark", "The design") has the whole argument.
"""

from __future__ import annotations

import numpy as np

from .layout import MIN_SIDE, Layout
from .reading import Grid
from .spread import EmbedResult, psnr_budget, psnr_of

LATTICE_STEP = 48.0  # the lattice mode's step in u (coefficient units); a bit costs at most a quarter step squared
LATTICE_MAX_SIDE = 128  # the embedder considers the lattice mode below this side


def embed_lattice(rgb: np.ndarray, bits: np.ndarray, layout: Layout, *, psnr: float = 38.5,
                  rounds: int = 4) -> EmbedResult:
    """Hide ``bits`` with the lattice mode; same arguments as ``spread.embed``.

    Each round reads the normalised soft values as the detector would and moves each to the
    nearest point of its bit's lattice; later rounds correct what rounding, clipping and the
    mark's own effect on the image-wide scales moved. When that costs more than the PSNR
    allows, the dearest payload bytes are left where they are, for the error correction.
    """
    base = np.clip(np.round(np.asarray(rgb, np.float64)), 0, 255)
    height, width = base.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} to carry the mark")
    wanted = np.concatenate([bits, layout.pilots]).astype(np.float64)  # (n_bits,) 0/1
    budget = psnr_budget(height, width, psnr)
    grid = Grid(layout, height, width)
    out, delta, keep, given_up = base, np.zeros((height, width)), np.ones(layout.n_bits, bool), 0
    for round_ in range(rounds):
        values, weights = grid.read_as_detector(out, (0, 0))
        weight_sq = grid.per_bit(weights**2)
        u = normalised(grid.per_bit(values), weight_sq)
        move = lattice_point(u, wanted, layout.dither) - u  # (n_bits,)
        if round_ == 0:  # the plan: which bytes the budget can carry
            cost = move**2  # pushing a / sqrt(weight_sq) along the slots' weights moves u by a at this cost
            n_bytes = layout.n_payload // 8
            for _ in range(4):
                if cost[keep].sum() <= 0.9 * budget:
                    break
                byte = int(np.argmax(np.where(keep[: 8 * n_bytes].reshape(n_bytes, 8).all(1),
                                              cost[: 8 * n_bytes].reshape(n_bytes, 8).sum(1), -1)))
                keep[8 * byte: 8 * byte + 8] = False
                given_up += 1
        move = np.where(keep, move, 0.0)
        delta = delta + grid.to_pixels(normalised(move, weight_sq)[grid.bit] * grid.chip * weights)
        out = np.clip(np.round(base + delta[..., None]), 0, 255)
    used = ((out - base) ** 2).sum() / 3
    if used > budget:  # the PSNR is a promise: shrink (the error correction copes with what breaks)
        delta *= np.sqrt(budget / used) * 0.995
        out = np.clip(np.round(base + delta[..., None]), 0, 255)
    return EmbedResult(out, psnr_of(out, base), LATTICE_STEP / 4, given_up, "lattice")


def normalised(soft: np.ndarray, weight_sq: np.ndarray) -> np.ndarray:
    """The lattice mode's ``u``: soft values ``(..., n)`` divided by the root of the summed
    squared weights of each bit's slots ``(..., n)``. The embedder and the detector both
    compute it here, so they quantise the same number."""
    return soft / np.sqrt(np.maximum(weight_sq, 1e-12))


def lattice_point(u: np.ndarray, bits: np.ndarray, dither: np.ndarray) -> np.ndarray:
    """The point of each bit's lattice ``LATTICE_STEP * (k + bit / 2 + dither)`` nearest to
    ``u``; all arrays ``(n,)``."""
    offset = bits / 2 + dither
    return LATTICE_STEP * (np.round(u / LATTICE_STEP - offset) + offset)


def lattice_soft(u: np.ndarray, dither: np.ndarray) -> np.ndarray:
    """Normalised soft values ``(..., n)`` -> soft bits in [-1, 1]: +1 on the lattice of 1,
    -1 on that of 0, 0 half way (so the magnitude is the confidence, as for spread spectrum)."""
    return -np.cos(2 * np.pi * (u / LATTICE_STEP - dither))

