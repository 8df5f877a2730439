"""The detector: soft payload values from any image, marked or not, cropped or rescaled.

It computes the mark's coefficients at every pixel offset, weighs them, folds them modulo
the tile and reads all 64x64 alignments at once; the pilot bits pick the best few, each
read as spread spectrum and as the lattice mode. A rescale (a crop resized back) shows as
the tile's period in the autocorrelation of the weighted maps: the detector undoes it and
searches again. The decoder (payload.py) decides whether any candidate is a payload.

docs/postprocessors.md ("Invisible watermark", "The design") explains the search.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image

from .lattice import lattice_soft, normalised
from .layout import BLOCK, MARK_COEFFS, TILE, Layout
from .reading import (
    ACTIVITY_COEFFS,
    MAX_DETECT_SIDE,
    activity_energy,
    central,
    luma,
    neighbourhood_mean,
    scales,
    weights_from,
    window_coeffs,
)

SEARCH_TOP = 3  # alignments decoded per scale, per reading (spread and lattice)
# Tile periods the rescale search looks for: 64 pixels rescaled by 0.625 to 1.75 (the
# promise is 0.7 to 1.6; a peak at either end of the range cannot be told from a slope).
PERIOD_LAGS = np.arange(40, 113)
MAX_PERIODS = 3  # rescaled searches at most, after the search at the image's own scale
WHITEN = 4  # the period search divides each power-spectrum bin by the mean of the 9x9 around it


def candidates(rgb: np.ndarray, layout: Layout) -> Iterator[np.ndarray]:
    """Soft payload values at the most likely alignments, best first, computed as they are
    asked for (the decoder usually stops at the first scale).

    rgb: ``(H, W, 3)``, any size. Yields arrays of shape ``(layout.n_payload,)``:
    ``SEARCH_TOP`` alignments of the image as it is, read as spread spectrum, and as many
    read as the lattice mode; then the same for the image rescaled by each tile period its
    autocorrelation shows that differs from 64 pixels (a resize, a crop resized back), at
    most ``MAX_PERIODS`` of them. Positive means 1.
    """
    rgb = central(np.asarray(rgb)[..., :3], MAX_DETECT_SIDE)
    if min(rgb.shape[:2]) < 2 * BLOCK:
        return
    first = _search(rgb, layout)
    yield from first.found
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    for period in first.periods:
        if abs(period / TILE - 1) > 0.015:
            yield from _search_rescaled(image, TILE / period, layout)


def _search_rescaled(image: Image.Image, scale: float, layout: Layout) -> list[np.ndarray]:
    """``_search``'s soft values for ``image`` resized by ``scale`` (bicubic)."""
    rescaled = np.asarray(image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC))
    return _search(rescaled, layout, periods=False).found if min(rescaled.shape[:2]) >= 2 * BLOCK else []


@lru_cache(maxsize=4)
def _gather(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays reading every slot at every one of the TILE x TILE alignments from the
    folded coefficient maps, with slots sorted by bit so that sums per bit are contiguous."""
    order = np.argsort(layout.slot_bit, kind="stable")
    starts = np.searchsorted(layout.slot_bit[order], np.arange(layout.n_bits))
    oy, ox = np.divmod(np.arange(TILE * TILE), TILE)
    rows = (oy[:, None] + BLOCK * layout.slot_row[order][None, :]) % TILE  # (TILE*TILE, slots)
    cols = (ox[:, None] + BLOCK * layout.slot_col[order][None, :]) % TILE
    return order, starts, rows, cols


class Search(NamedTuple):
    """What one search of an image found."""

    found: list[np.ndarray]  # soft payload values (n_payload,): SEARCH_TOP spread alignments, then SEARCH_TOP lattice ones
    periods: list[float]  # tile periods the autocorrelation shows (when asked for)


def _search(rgb: np.ndarray, layout: Layout, periods: bool = True) -> Search:
    """The soft payload values at the SEARCH_TOP best alignments read as spread spectrum,
    then at the SEARCH_TOP best read as the lattice mode; and the tile periods seen (when
    ``periods``)."""
    y = luma(rgb)
    coeffs, activity = window_coeffs(y, MARK_COEFFS), window_coeffs(y, ACTIVITY_COEFFS)
    s = scales(y, coeffs, activity)
    weights = weights_from(neighbourhood_mean(activity_energy(activity, s.activity), BLOCK), s)
    coeffs *= weights
    seen = _tile_periods(coeffs) if periods else []
    order, starts, rows, cols = _gather(layout)
    slot_coeff, chip = layout.slot_coeff[order][None, :], layout.slot_chip[order].astype(np.float32)
    folded_values, folded_weights = _fold(coeffs), _fold(weights**2)

    def per_bit(folded: np.ndarray, alignments: np.ndarray, first_bit: int = 0, chips: bool = False) -> np.ndarray:
        """(len(alignments), n_bits - first_bit) sums over each bit's slots."""
        first = starts[first_bit]
        values = folded[slot_coeff[:, first:], rows[alignments, first:], cols[alignments, first:]]
        return np.add.reduceat(values * chip[first:] if chips else values, starts[first_bit:] - first, axis=1)

    every = np.arange(TILE * TILE)
    p = layout.n_payload
    expected = layout.pilots * 2.0 - 1
    soft = per_bit(folded_values, every, chips=True)  # (TILE*TILE, n_bits)
    spread = _pick(soft[:, p:] * expected)
    # The lattice mode: normalise by each bit's weights, for the pilots everywhere and the
    # payload only where the pilots agree (the cost of the search is the gathering).
    pilots = lattice_soft(normalised(soft[:, p:], per_bit(folded_weights, every, p)), layout.dither[p:])
    lattice = np.array(_pick(pilots * expected), int)
    u = normalised(soft[lattice], per_bit(folded_weights, lattice))
    found = [soft[a, :p].astype(np.float64) for a in spread]
    found += list(lattice_soft(u[:, :p].astype(np.float64), layout.dither[:p]))
    return Search(found, seen)


def _fold(maps: np.ndarray) -> np.ndarray:
    """(K, h, w) -> (K, TILE, TILE): the sum of the maps modulo the tile, where every
    alignment's blocks land on their slot's position."""
    k, h, w = maps.shape
    folded = np.zeros((k, -(-h // TILE) * TILE, -(-w // TILE) * TILE), np.float32)
    folded[:, :h, :w] = maps
    return folded.reshape(k, folded.shape[1] // TILE, TILE, folded.shape[2] // TILE, TILE).sum((1, 3))


def _pick(agreement: np.ndarray) -> list[int]:
    """(TILE*TILE, N_PILOTS) pilot agreement (positive = right) -> the SEARCH_TOP best
    alignments: by the count of agreeing pilots, ties broken by their summed strength (the
    weights are the same at every alignment, so sums compare; one pixel off, the right
    alignment's neighbours often agree too, but more weakly)."""
    picked: list[int] = []
    for a in np.lexsort((agreement.sum(1), (agreement > 0).sum(1)))[::-1]:
        ay, ax = divmod(int(a), TILE)
        # Neighbouring offsets read nearly the same values: take distinct alignments.
        if all(_circular(ay - py) + _circular(ax - px) > 2 for py, px in (divmod(b, TILE) for b in picked)):
            picked.append(int(a))
        if len(picked) == SEARCH_TOP:
            break
    return picked


def _circular(d: int) -> int:
    """Distance between two offsets modulo the tile."""
    return min(d % TILE, -d % TILE)


def _tile_periods(weighted: np.ndarray) -> list[float]:
    """Tile periods in pixels, most likely first, from the autocorrelation of the detector's
    weighted coefficient maps ``(K, h, w)`` (busy areas, which would hide the tile, weigh
    little). Reads at most the central 512x512.

    The tile is periodic, so its spectrum is a comb of sharp lines while an image's is
    smooth: dividing the power spectrum by its local mean (``WHITEN`` bins each way) before
    going back to lags makes the tile's period stand out of textures and of the slow fall of
    the image's own autocorrelation. The tile repeats along both axes, so the first
    candidate comes from both together; but an image that repeats along one axis (lines of
    text, a ruled page) can outshine the mark there, so the strongest peak of each axis
    alone is a candidate too. At most ``MAX_PERIODS``, each a lag in ``PERIOD_LAGS`` that
    stands out of its profile."""
    from scipy import fft
    from scipy.ndimage import uniform_filter

    lags = PERIOD_LAGS
    maps = central(np.moveaxis(weighted, 0, -1), 512)  # (h, w, K)
    if min(maps.shape[:2]) < 2 * lags[0]:
        return []
    maps = maps - maps.mean((0, 1))
    # Zero padding by the largest lag keeps the circular correlation from wrapping around.
    shape = (maps.shape[0] + lags[-1] + 1, maps.shape[1] + lags[-1] + 1)
    power = (np.abs(fft.rfft2(maps, s=shape, axes=(0, 1))) ** 2).sum(-1)  # (rows, cols // 2 + 1)
    # Rows hold positive then negative frequencies: wrap them so the local mean sees both.
    wrapped = np.concatenate([power[-WHITEN:], power, power[:WHITEN]])
    local = uniform_filter(wrapped, 2 * WHITEN + 1, mode="nearest")[WHITEN:-WHITEN]
    auto = fft.irfft2(power / (local + 1e-12 * local.max() + 1e-30), s=shape)
    periods: list[float] = []
    for profile in (auto[lags, 0] + auto[0, lags], auto[lags, 0], auto[0, lags]):
        period = _peak(profile)
        if period is not None and all(abs(period / p - 1) > 0.015 for p in periods):
            periods.append(period)
    return periods[:MAX_PERIODS]


def _peak(profile: np.ndarray) -> float | None:
    """The period (a lag of ``PERIOD_LAGS``, to a fraction of a pixel) at the highest peak of
    an autocorrelation ``profile`` ``(len(PERIOD_LAGS),)``, or None when none stands out."""
    lags = PERIOD_LAGS
    height = profile - np.median(profile)
    best = int(np.argmax(height))
    if height[best] < 2.5 * profile.std() or best in (0, len(lags) - 1):
        return None
    # A shrunk tile repeats at twice its period too, sometimes a little more strongly: the
    # period is the shorter lag when it has a peak nearly as high.
    half = int(round(lags[best] / 2 - lags[0]))
    if 1 <= half < len(lags) - 1 and height[half - 1: half + 2].max() >= 0.6 * height[best]:
        shorter = half - 1 + int(np.argmax(height[half - 1: half + 2]))
        if 0 < shorter < len(lags) - 1:  # an end of the range is a slope, not a peak
            best = shorter
    left, mid, right = profile[best - 1: best + 2]  # a parabola through the peak: the period to a fraction of a pixel
    curvature = left - 2 * mid + right
    return float(lags[best] + (0.5 * (left - right) / curvature if curvature else 0.0))
