"""The signal layer of the toolkit watermark: hide a few hundred bits in the luma of an
image so that they survive JPEG, rescaling, blur, brightness changes and crops.

How the bits are laid out
-------------------------
The image is cut into 8x8 blocks (the JPEG grid). Ten low-to-mid frequency coefficients of
each block's DCT (``MARK_COEFFS``: frequencies of 0.09-0.2 cycles/pixel, which blur and
rescaling weaken but do not remove, and which JPEG quantises finely) are the *slots*. A tile
of 8x8 blocks (64x64 pixels) holds ``8 * 8 * 10 = 640`` slots; a key-seeded permutation
deals them out to the bits, each slot with a random sign (its *chip*). The tile repeats
over the whole image, so a bit has about 5 slots per tile and many more per image.

Reading a bit (the detector)
----------------------------
A bit's *soft value* is the weighted sum of chip * coefficient over its slots; its sign is
the bit. Two weights make the sum robust:

* per coefficient, ``1 / sigma_k`` with ``sigma_k`` the coefficient's RMS over the image,
  so a blur or rescale, which scales each frequency by its own gain, or a brightness
  change, which scales them all, leaves the soft values' signs alone;
* per block, ``lambda = 1 / (local activity + floor)`` from coefficients the mark never
  touches (``ACTIVITY_COEFFS``), so edges and texture, whose large coefficients are noise
  to the detector, count less than flat areas, where the mark stands out.

A crop moves the block grid and the tile. The detector computes the ten coefficients of the
8x8 window at *every* pixel offset (separable correlations), folds them modulo the tile,
and reads the soft values for all 64x64 alignments at once. Known *pilot* bits in the
layout pick the alignment: the right one agrees with (nearly) all of them. A crop that is
resized back to the original size also rescales the tile; the tile's period shows as a
peak in the image's autocorrelation, which gives the scale to undo.

Writing the bits (the embedder)
-------------------------------
The embedder knows the image, so it does not add a fixed pattern and hope: for each bit it
adds, along the bit's slots, just what makes the detector's soft value reach a margin
(informed embedding: a host that already agrees costs little, one that disagrees is
cancelled). One margin for all bits is chosen as the largest that fits the energy budget
the target PSNR allows. The embedder then plays the attacks it promises to survive (JPEG,
blur, half-size-and-back, brightness +-10 %, and 10 % crops at the corners and centre) on
its own output, measures each bit's margin as the detector would see it, and plans again
with those margins as constraints; bits that no budget can save are left to the
Reed-Solomon code. Only luma changes (the same amount is added to R, G and B).

The lattice mode, for small busy images
---------------------------------------
Informed spread spectrum pays to cancel a host that disagrees, and a photo squeezed into
64x64 is mostly edges: cancelling them costs several times the budget. The lattice mode
(dither modulation, Chen & Wornell 2001) reads the same soft values differently: a bit's
*normalised* soft value ``u = s / sqrt(sum of its slots' squared weights)`` is quantised
to the lattice ``LATTICE_STEP * (k + bit / 2 + dither)``, with a key-drawn dither per bit.
Moving ``u`` to the nearest point of the right lattice costs at most a quarter step
squared per bit, whatever the host, so a busy image carries the mark as cheaply as a flat
one. It survives JPEG (noise far below a quarter step) and brightness (the weights cancel
a gain), but not blur or rescaling, which move ``u`` by a share of the host. So the
embedder writes it only for images under ``LATTICE_MAX_SIDE`` where it survives more of
the rehearsed attacks than spread spectrum does (``__init__.py`` decides), and the
detector reads every alignment both ways.

Dips, for near-white images
---------------------------
Brightening by 10 % clips every channel at or above 232 to pure white, and the shapes
models draw on a background at 237-241: all that the mark had written there is gone, and a
pixel's change shows through only if it took the pixel below the clipping point. A mark
of the usual size (an RMS change of 3 levels at 38.5 dB) almost never does. So for such
images the embedder also tries a variant that keeps part of the spread-spectrum change in
the clipping area (``DIP_KEEP``) and spends the rest of the budget on a few deep *dips*:
the pixels where the mark wants to go down the most are taken just far enough below the
clipping point that the most of each dip survives per unit of cost (``dips``). The dips
follow the mark's own sign pattern, so the unchanged detector reads them, before and after
brightening. A dip feeds all ten slots of its block, some of them against their bit, so a
few rounds of rehearsing the brightening and choosing the dips again with the weakest bits
weighed up even the bits out (on the worst near-white image we have, bit errors after
brightening went from 6-9 of 104 to 0-1). ``__init__.py`` keeps a variant only where it
survives more of the rehearsed attacks than plain spread spectrum.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from scipy.ndimage import correlate1d

BLOCK = 8  # the DCT block, JPEG's grid
TILE_BLOCKS = 8  # a tile is 8 x 8 blocks
TILE = BLOCK * TILE_BLOCKS  # 64 pixels: the layout repeats with this period
# (row, column) frequencies of the 8x8 DCT that carry the mark: ~0.09-0.2 cycles/pixel.
MARK_COEFFS = ((1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0), (1, 3), (3, 1))
# Coefficients the mark never touches; their energy tells busy blocks from flat ones.
ACTIVITY_COEFFS = ((0, 4), (4, 0), (2, 3), (3, 2), (3, 3))
N_PILOTS = 32  # known bits that find the tile's alignment
MIN_SIDE = 64  # smaller images cannot hold the payload robustly
ACTIVITY_FLOOR = 0.25  # lambda = 1 / (activity + this * mean activity): how far flat areas outweigh busy ones
MAX_DETECT_SIDE = 1024  # the detector reads a central window at most this large: it holds 256 tiles
SEARCH_TOP = 3  # alignments decoded per scale, per reading (spread and lattice)
LATTICE_STEP = 48.0  # the lattice mode's step in u (coefficient units): ~39.5 dB at 64x64
LATTICE_MAX_SIDE = 128  # the embedder considers the lattice mode below this side
BRIGHTER = 1.1  # the brightening the dips are made to survive (and the one rehearsed)
DIPS_MIN_CLIPPED = 0.25  # the share of pixels brightening must clip before the dips are tried
DIP_KEEP = (0.7, 0.5, 0.3)  # shares of the spread-spectrum change kept in the clipping area, tried in order
DIP_DEPTHS = np.arange(2.0, 41.0)  # candidate dip depths, in levels
DIP_ROUNDS = 6  # times the dips are chosen again after a rehearsed brightening
DIP_REWEIGHT = 0.1  # how hard each round favours the bits it read weakest (an exponent: small is gentle)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601, JPEG's Y

# Attacks the embedder rehearses (its own PIL implementations, the usual library for them).
CROP_FRACTION = 0.1
CROP_ORIGINS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.5))  # where the kept window sits
CROP_THEN_JPEG = "crop+jpeg"  # the rehearsal that is planned for but only breaks ties when choosing a mode
REHEARSE_MAX_PIXELS = 800_000  # bigger images carry so many tiles that the plain plan suffices
# A rehearsed attack that leaves a bit less than this share of its push (a crop that took
# most of its slots) is left to the error correction: saving it would cost the others.
HELPABLE = 0.25


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II: ``(frequency, position)``."""
    u = np.arange(n)
    d = np.cos(np.pi * (2 * u[None, :] + 1) * u[:, None] / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


DCT = _dct_matrix()


@dataclass(frozen=True, eq=False)  # hashed by identity: make_layout caches one per key
class Layout:
    """Which bit and chip each slot of a tile carries, drawn from a seeded generator.

    Slot ``s`` is coefficient ``slot_coeff[s]`` of block ``(slot_row[s], slot_col[s])`` of
    the tile; every array has shape ``(TILE_BLOCKS**2 * len(MARK_COEFFS),)`` except
    ``pilots`` ``(N_PILOTS,)``, ``whitening`` ``(n_payload,)`` and ``dither`` ``(n_bits,)``.
    """

    n_bits: int  # payload bits + pilots; the pilots are the last N_PILOTS
    slot_bit: np.ndarray
    slot_chip: np.ndarray  # +-1
    slot_row: np.ndarray
    slot_col: np.ndarray
    slot_coeff: np.ndarray
    pilots: np.ndarray  # the pilot bits' values, 0/1
    whitening: np.ndarray  # (n_payload,) 0/1, XORed onto the coded bits
    dither: np.ndarray  # (n_bits,) in [0, 1): each bit's lattice offset, in steps

    @property
    def n_payload(self) -> int:
        return self.n_bits - N_PILOTS


@lru_cache(maxsize=4)
def make_layout(n_payload: int, key: str) -> Layout:
    """The layout for ``n_payload`` payload bits under ``key`` (any string)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    n_bits = n_payload + N_PILOTS
    n_slots = TILE_BLOCKS * TILE_BLOCKS * len(MARK_COEFFS)
    if n_slots < 3 * n_bits:
        raise ValueError(f"{n_bits} bits need at least {3 * n_bits} slots; a tile has {n_slots}")
    row, col, coeff = np.unravel_index(np.arange(n_slots), (TILE_BLOCKS, TILE_BLOCKS, len(MARK_COEFFS)))
    return Layout(
        n_bits=n_bits,
        slot_bit=rng.permutation(n_slots) % n_bits,  # every bit gets floor or ceil of n_slots / n_bits slots
        slot_chip=rng.choice(np.array([-1.0, 1.0]), size=n_slots),
        slot_row=row, slot_col=col, slot_coeff=coeff,
        pilots=rng.integers(0, 2, N_PILOTS).astype(np.uint8),
        whitening=rng.integers(0, 2, n_payload).astype(np.uint8),
        dither=rng.random(n_bits),  # drawn last: layouts made before the lattice mode are unchanged
    )


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) float32, weighted by ``LUMA_WEIGHTS``."""
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = LUMA_WEIGHTS
    return rgb[..., 0] * r + rgb[..., 1] * g + rgb[..., 2] * b


def window_coeffs(y: np.ndarray, coeffs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """DCT coefficients of the 8x8 window at every pixel offset.

    y: ``(H, W)`` luma. Returns ``(len(coeffs), H - 7, W - 7)``: entry ``[k, i, j]`` is
    coefficient ``coeffs[k]`` of the block whose top-left pixel is ``(i, j)``. The 2-D DCT
    basis is separable, so this is a row pass per column frequency and a column pass per
    coefficient.
    """
    h, w = y.shape
    out = np.empty((len(coeffs), h - BLOCK + 1, w - BLOCK + 1), np.float32)
    rows: dict[int, np.ndarray] = {}
    for k, (p, q) in enumerate(coeffs):
        if q not in rows:  # origin -4 aligns each output with the window's first pixel
            rows[q] = correlate1d(y, DCT[q], axis=1, mode="constant", origin=-BLOCK // 2)[:, : w - BLOCK + 1]
        out[k] = correlate1d(rows[q], DCT[p], axis=0, mode="constant", origin=-BLOCK // 2)[: h - BLOCK + 1]
    return out


def block_dct(y: np.ndarray) -> np.ndarray:
    """(8 r, 8 c) luma -> (r, c, 8, 8): the 2-D DCT of each whole block."""
    blocks = y.reshape(y.shape[0] // BLOCK, BLOCK, y.shape[1] // BLOCK, BLOCK).swapaxes(1, 2)  # (r, c, 8, 8)
    return DCT @ blocks @ DCT.T


@dataclass(frozen=True)
class Scales:
    """Image-wide statistics behind the detector's weights, from every 8x8 window of the
    (central, at most MAX_DETECT_SIDE square) image."""

    mark: np.ndarray  # (len(MARK_COEFFS),) RMS of each mark coefficient
    activity: np.ndarray  # (len(ACTIVITY_COEFFS),) RMS of each activity coefficient
    mean_energy: float  # mean of the normalised activity energy


def scales(y: np.ndarray, mark_coeffs: np.ndarray | None = None, activity: np.ndarray | None = None) -> Scales:
    """y: ``(H, W)`` luma (the window the detector reads); the window coefficients if already computed."""
    rms = lambda c: np.sqrt((c.astype(np.float64) ** 2).mean((1, 2))) + 0.5  # +0.5: a flat image has no scale
    mark_coeffs = window_coeffs(y, MARK_COEFFS) if mark_coeffs is None else mark_coeffs
    activity = window_coeffs(y, ACTIVITY_COEFFS) if activity is None else activity
    activity_rms = rms(activity)
    energy = _energy(activity, activity_rms)
    return Scales(rms(mark_coeffs), activity_rms, float(energy.mean()))


def _energy(activity: np.ndarray, activity_rms: np.ndarray) -> np.ndarray:
    """(A, ...) activity coefficients -> (...) their normalised mean square."""
    shape = (-1,) + (1,) * (activity.ndim - 1)
    return ((activity / activity_rms.reshape(shape).astype(activity.dtype)) ** 2).mean(0)


def _neighbourhood_mean(energy: np.ndarray, step: int) -> np.ndarray:
    """Mean of each entry and its 8 neighbours ``step`` apart (those that exist): a block's
    own texture and its surroundings' both hide the mark."""
    h, w = energy.shape
    padded = np.pad(energy.astype(np.float64), step, constant_values=np.nan)
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for dy in (-step, 0, step):
        for dx in (-step, 0, step):
            v = padded[step + dy: step + dy + h, step + dx: step + dx + w]
            seen = ~np.isnan(v)
            total += np.where(seen, v, 0)
            count += seen
    return total / count


def weights_from(energy_nearby: np.ndarray, s: Scales) -> np.ndarray:
    """(...) neighbourhood activity -> (K, ...) weights ``lambda / sigma_k``, with
    ``lambda = 1 / (activity + ACTIVITY_FLOOR * mean activity)``."""
    lam = 1.0 / (energy_nearby + ACTIVITY_FLOOR * s.mean_energy + 1e-6)
    return (lam[None] / s.mark.reshape((-1,) + (1,) * lam.ndim)).astype(np.float32)


# -- embedding ------------------------------------------------------------------------------


@dataclass
class EmbedResult:
    image: np.ndarray  # (H, W, 3) float64, whole numbers in [0, 255]
    psnr: float  # against the input rounded to whole numbers
    margin: float  # spread and dips: the common margin spread spectrum reached (detector units; 0 = none); lattice: the tolerance, a quarter step
    given_up: int  # payload bytes left to the error correction (-1: not even the host could be cancelled)
    mode: str = "spread"  # or "lattice", or "dips" (see the module doc)


def embed(rgb: np.ndarray, bits: np.ndarray, layout: Layout, *, psnr: float = 38.5, rehearse: bool | None = None) -> EmbedResult:
    """Hide ``bits`` in an image.

    rgb: ``(H, W, 3)`` floats in [0, 255], H and W at least ``MIN_SIDE``.
    bits: ``(layout.n_payload,)`` of 0/1; the pilots are added here.
    psnr: target PSNR in dB against the input; the result never goes below it.
    rehearse: play the attacks and plan again (default: for images up to ``REHEARSE_MAX_PIXELS``).
    """
    base = np.clip(np.round(np.asarray(rgb, np.float64)), 0, 255)
    height, width = base.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} to carry the mark")
    rehearse = height * width <= REHEARSE_MAX_PIXELS if rehearse is None else rehearse
    sign = _signs(bits, layout)
    budget = _budget(height, width, psnr)
    grid = _Grid(layout, height, width)
    host = grid.read(base)  # (rows, cols, K) chip * coefficient, unweighted
    attacks = rehearsals(height, width) if rehearse else {}
    host_seen = {name: grid.read_as_detector(attack(base), origin) for name, (attack, origin) in attacks.items()}

    out, constraints, scale = base, [], 1.0
    for round_ in range(3 if rehearse else 1):
        _, weights = grid.read_as_detector(out, (0, 0))
        n = grid.per_bit(weights**2)  # the soft value one unit of push per slot adds
        h = grid.per_bit(weights * host)  # the host's own soft values
        amplitude, margin, given_up = _plan(sign, h, n, constraints, budget * scale, layout.n_payload)
        delta = grid.to_pixels((sign * amplitude)[grid.bit] * grid.chip * weights)
        out, delta, amplitude, used = _apply(base, delta, amplitude, budget)
        scale *= budget / max(used, 1e-9)  # clipping changed the cost: plan the next round with that in mind
        out, delta = _top_up(base, out, delta, grid, sign, sign * h + n * amplitude, budget)
        if round_ == 2 or not rehearse:
            break
        constraints = []
        for name, (attack, origin) in attacks.items():
            seen, seen_weights = grid.read_as_detector(attack(out), origin)
            host_values, host_weights = host_seen[name]
            # The host as the detector weighs it after this attack, and what our push became.
            ratio = np.divide(seen_weights, host_weights, out=np.zeros_like(seen_weights), where=host_weights != 0)
            h_attacked = grid.per_bit(host_values * ratio)
            gain = sign * (grid.per_bit(seen) - h_attacked) / np.maximum(amplitude, 1e-9)
            constraints.append((np.clip(gain, 0.02 * n, 1.5 * n), h_attacked))
    return EmbedResult(out, _psnr(out, base), margin, given_up)


def embed_lattice(rgb: np.ndarray, bits: np.ndarray, layout: Layout, *, psnr: float = 38.5,
                  rounds: int = 4) -> EmbedResult:
    """Hide ``bits`` with the lattice mode (see the module doc); same arguments as ``embed``.

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
    budget = _budget(height, width, psnr)
    grid = _Grid(layout, height, width)
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
    return EmbedResult(out, _psnr(out, base), LATTICE_STEP / 4, given_up, "lattice")


def clipped_when_brightened(rgb: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of ``rgb`` ``(H, W, 3)`` in [0, 255] with a channel that
    brightening by ``BRIGHTER`` clips to 255."""
    return (BRIGHTER * np.asarray(rgb, np.float64)).max(-1) > 255.5


def dips(rgb: np.ndarray, bits: np.ndarray, layout: Layout, spread: EmbedResult, keep: float, *,
         psnr: float = 38.5) -> EmbedResult:
    """The dips variant (see the module doc) of a spread-spectrum result.

    rgb: ``(H, W, 3)`` the original, floats in [0, 255]; bits: ``(layout.n_payload,)`` of
    0/1, as given to ``embed``; spread: what ``embed`` made of them (its margin and bytes
    given up are passed on). In the area brightening clips, the mark's change is scaled by
    ``keep`` and the pixels it pushes down hardest, per unit of cost, are dipped as deep as
    pays off: as many of them as the PSNR budget allows. Then ``DIP_ROUNDS`` times: brighten,
    read, and choose the dips again with the bits that came out weakest weighed up.
    """
    base = np.clip(np.round(np.asarray(rgb, np.float64)), 0, 255)
    height, width = base.shape[:2]
    budget = _budget(height, width, psnr)
    grid = _Grid(layout, height, width)
    sign = _signs(bits, layout)
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
    return EmbedResult(out, _psnr(out, base), spread.margin, spread.given_up, "dips")


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


class _Grid:
    """The image's whole 8x8 blocks at the origin's grid, and the slot each coefficient is."""

    def __init__(self, layout: Layout, height: int, width: int):
        self.rows, self.cols = height // BLOCK, width // BLOCK
        self.height, self.width, self.n_bits = height, width, layout.n_bits
        k = len(MARK_COEFFS)
        tile_r = (np.arange(self.rows) % TILE_BLOCKS)[:, None, None]
        tile_c = (np.arange(self.cols) % TILE_BLOCKS)[None, :, None]
        slot = (tile_r * TILE_BLOCKS + tile_c) * k + np.arange(k)[None, None, :]  # matches make_layout's order
        self.bit, self.chip = layout.slot_bit[slot], layout.slot_chip[slot]  # (rows, cols, K)

    def per_bit(self, values: np.ndarray) -> np.ndarray:
        """(rows, cols, K) -> (n_bits,) sums over each bit's slots."""
        return np.bincount(self.bit.ravel(), values.ravel().astype(np.float64), minlength=self.n_bits)

    def read(self, rgb: np.ndarray) -> np.ndarray:
        """chip * coefficient of every slot: (rows, cols, K)."""
        full = block_dct(luma(rgb)[: self.rows * BLOCK, : self.cols * BLOCK].astype(np.float64))
        return self.chip * np.stack([full[:, :, p, q] for p, q in MARK_COEFFS], -1)

    def read_as_detector(self, rgb: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """What the detector sees of each slot in ``rgb``, an image whose top-left pixel is the
        original's ``origin``: (chip * weight * coefficient, weight), each (rows, cols, K),
        zero for slots outside it. Computed on the block grid, with the image-wide scales
        from the window the detector reads, so that it matches the detector exactly."""
        y = luma(rgb).astype(np.float64)
        s = scales(_central(y, MAX_DETECT_SIDE).astype(np.float32))  # as the detector computes them
        # The original's blocks inside rgb start at this phase of rgb's own pixel grid.
        first_r, first_c = -(-origin[0] // BLOCK), -(-origin[1] // BLOCK)
        top, left = first_r * BLOCK - origin[0], first_c * BLOCK - origin[1]
        n_r = min((y.shape[0] - top) // BLOCK, self.rows - first_r)
        n_c = min((y.shape[1] - left) // BLOCK, self.cols - first_c)
        values, seen_weights = (np.zeros((self.rows, self.cols, len(MARK_COEFFS))) for _ in range(2))
        if n_r <= 0 or n_c <= 0:
            return values, seen_weights
        full = block_dct(y[top: top + n_r * BLOCK, left: left + n_c * BLOCK])  # (n_r, n_c, 8, 8)
        coeffs = np.stack([full[:, :, p, q] for p, q in MARK_COEFFS])  # (K, n_r, n_c)
        activity = np.stack([full[:, :, p, q] for p, q in ACTIVITY_COEFFS])
        weights = weights_from(_neighbourhood_mean(_energy(activity, s.activity), 1), s)
        inside = (slice(first_r, first_r + n_r), slice(first_c, first_c + n_c))
        values[inside] = np.moveaxis(coeffs * weights, 0, -1)
        seen_weights[inside] = np.moveaxis(weights, 0, -1)
        return self.chip * values, seen_weights

    def to_pixels(self, coeffs: np.ndarray) -> np.ndarray:
        """(rows, cols, K) coefficient changes -> (H, W) luma change."""
        full = np.zeros((self.rows, self.cols, BLOCK, BLOCK))
        for k, (p, q) in enumerate(MARK_COEFFS):
            full[:, :, p, q] = coeffs[..., k]
        blocks = (DCT.T @ full @ DCT).swapaxes(1, 2).reshape(self.rows * BLOCK, self.cols * BLOCK)
        out = np.zeros((self.height, self.width))
        out[: blocks.shape[0], : blocks.shape[1]] = blocks
        return out


def _signs(bits: np.ndarray, layout: Layout) -> np.ndarray:
    """Payload bits ``(n_payload,)`` of 0/1 and the pilots -> ``(n_bits,)`` of +-1."""
    return np.concatenate([bits, layout.pilots]).astype(np.float64) * 2 - 1


def _budget(height: int, width: int, psnr: float) -> float:
    """The sum of squared errors per channel that keeps an image at ``psnr`` dB."""
    return height * width * 255.0**2 / 10 ** (psnr / 10)


def _psnr(out: np.ndarray, base: np.ndarray) -> float:
    mse = ((out - base) ** 2).mean()
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def _plan(sign: np.ndarray, h: np.ndarray, n: np.ndarray, constraints: list, budget: float,
          n_payload: int) -> tuple[np.ndarray, float, int]:
    """Each bit's push (per unit of weight, on every slot of the bit) for the largest common
    margin ``m`` whose cost fits ``budget``.

    A bit reaches soft value ``sign * (h + n * a) >= m * sqrt(n)``, and the same under each
    rehearsed attack ``(n_attacked, h_attacked)``; every slot carries at least ``m / (2 sqrt(n))``
    so no bit rests on its host alone. When that is too dear, the most expensive payload
    bytes (and pilots) get only that floor: the error correction repairs them.
    Returns (a, m, bytes given up).
    """
    n_bytes = n_payload // 8

    def need(m: float) -> np.ndarray:
        a = (m * np.sqrt(n) - sign * h) / n
        for n_att, h_att in constraints:
            worth_it = n_att > HELPABLE * n
            a = np.where(worth_it, np.maximum(a, (m * np.sqrt(n_att) - sign * h_att) / n_att), a)
        return np.maximum(a, 0.5 * m / np.sqrt(n))

    def cost(m: float, give_up: int) -> tuple[np.ndarray, float]:
        a, floor = need(m), 0.5 * m / np.sqrt(n)
        extra = n * (a**2 - floor**2)
        keep = np.ones_like(a, bool)
        if give_up:
            worst = np.argsort(extra[:n_payload].reshape(n_bytes, 8).sum(1))[::-1][:give_up]
            for byte in worst:
                keep[byte * 8: byte * 8 + 8] = False
            keep[n_payload + np.argsort(extra[n_payload:])[::-1][: 2 * give_up]] = False
        a = np.where(keep, a, floor)
        return a, float((n * a**2).sum())

    best = None
    for give_up in (0, 1, 2, 3, 4):
        if cost(0.0, give_up)[1] > budget:
            continue
        lo, hi = 0.0, 1.0
        while cost(hi, give_up)[1] <= budget and hi < 1e6:
            hi *= 2
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cost(mid, give_up)[1] <= budget else (lo, mid)
        best = (cost(lo, give_up)[0], lo, give_up)
        if lo >= 2.0:  # a comfortable margin: keep the error correction for the attacks
            break
    if best is None:  # the host outweighs the whole budget: do what it allows
        a, total = cost(0.0, 4)
        best = (a * np.sqrt(budget / total), 0.0, -1)
    return best


def _apply(base: np.ndarray, delta: np.ndarray, amplitude: np.ndarray, budget: float):
    """Add the luma change to R, G and B, round and clip; shrink it if clipping and
    rounding made it cost more than the budget. Returns (image, delta, amplitude, cost)."""
    out = np.clip(np.round(base + delta[..., None]), 0, 255)
    used = ((out - base) ** 2).sum() / 3
    if used > budget:
        shrink = np.sqrt(budget / used) * 0.995
        delta, amplitude = delta * shrink, amplitude * shrink
        out = np.clip(np.round(base + delta[..., None]), 0, 255)
    return out, delta, amplitude, used


def _top_up(base, out, delta, grid: _Grid, sign, target, budget, steps: int = 3):
    """Clipping at black and white and rounding lose part of the push: add back what each
    bit lacks of its planned soft value, while the budget lasts."""
    for _ in range(steps):
        values, weights = grid.read_as_detector(out, (0, 0))
        short = np.maximum(0.0, target - sign * grid.per_bit(values))
        n = grid.per_bit(weights**2)
        extra = grid.to_pixels((sign * short / np.maximum(n, 1e-12))[grid.bit] * grid.chip * weights)
        trial = np.clip(np.round(base + (delta + extra)[..., None]), 0, 255)
        if ((trial - base) ** 2).sum() / 3 > budget:
            break
        delta, out = delta + extra, trial
    return out, delta


def rehearsals(height: int, width: int) -> dict:
    """name -> (attack on a (H, W, 3) float image, (row, col) of its origin in the original)."""
    small = min(height, width) < 256  # where the issue sets only the JPEG 75 goal
    quality = 75 if small else 50
    attacks = {
        "jpeg": (lambda a: _jpeg(a, quality), (0, 0)),
        "blur": (lambda a: _pil(a, lambda im: im.filter(ImageFilter.GaussianBlur(1.0))), (0, 0)),
        "half": (lambda a: _pil(a, _half_and_back), (0, 0)),
        "brighter": (brighten, (0, 0)),
        "darker": (lambda a: _pil(a, lambda im: ImageEnhance.Brightness(im).enhance(0.9)), (0, 0)),
    }
    kept_h, kept_w = round(height * (1 - CROP_FRACTION)), round(width * (1 - CROP_FRACTION))
    for fy, fx in CROP_ORIGINS:
        top, left = round(fy * (height - kept_h)), round(fx * (width - kept_w))
        attacks[f"crop@{top},{left}"] = (lambda a, t=top, l=left: a[t: t + kept_h, l: l + kept_w], (top, left))
    if not small:
        # Not a promised attack, but what sharing a crop does: the centre crop is off the
        # 8-pixel grid, so JPEG's blocks straddle the mark's and quantise it harder than
        # either alone. Not below 256, where a crop alone often takes the mark (39 % kept).
        top, left = (height - kept_h) // 2, (width - kept_w) // 2
        attacks[CROP_THEN_JPEG] = (lambda a: _jpeg(a[top: top + kept_h, left: left + kept_w], quality), (top, left))
    return attacks


def brighten(a: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` -> the same brightened by ``BRIGHTER`` (Pillow's, clipped at 255)."""
    return _pil(a, lambda im: ImageEnhance.Brightness(im).enhance(BRIGHTER))


def _pil(a: np.ndarray, edit) -> np.ndarray:
    return np.asarray(edit(Image.fromarray(a.astype(np.uint8))), np.float64)


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float64)


def _half_and_back(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 2, im.height // 2), Image.BICUBIC).resize(im.size, Image.BICUBIC)


# -- detection -------------------------------------------------------------------------------


def candidates(rgb: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """Soft payload values at the most likely alignments, best first.

    rgb: ``(H, W, 3)``, any size. Returns up to ``4 * SEARCH_TOP`` arrays of shape
    ``(layout.n_payload,)``: ``SEARCH_TOP`` alignments of the image as it is read as spread
    spectrum and as many read as the lattice mode, then the same for the image rescaled by
    the tile period its autocorrelation shows, when that differs from 64 pixels (a crop
    resized back, a resize). Positive means 1.
    """
    rgb = _central(np.asarray(rgb)[..., :3], MAX_DETECT_SIDE)
    if min(rgb.shape[:2]) < 2 * BLOCK:
        return []
    found, period = _search(rgb, layout)
    if period is not None and abs(period / TILE - 1) > 0.015:
        scale = TILE / period
        im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
        rescaled = np.asarray(im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC))
        if min(rescaled.shape[:2]) >= 2 * BLOCK:
            found += _search(rescaled, layout)[0]
    return found


def _central(a: np.ndarray, side: int) -> np.ndarray:
    """The central window of an image, at most ``side`` pixels square."""
    h, w = a.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return a[top: top + side, left: left + side]


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


def _search(rgb: np.ndarray, layout: Layout) -> tuple[list[np.ndarray], float | None]:
    """The soft payload values at the SEARCH_TOP best alignments read as spread spectrum,
    then at the SEARCH_TOP best read as the lattice mode; and the tile period seen."""
    y = luma(rgb)
    coeffs, activity = window_coeffs(y, MARK_COEFFS), window_coeffs(y, ACTIVITY_COEFFS)
    s = scales(y, coeffs, activity)
    weights = weights_from(_neighbourhood_mean(_energy(activity, s.activity), BLOCK), s)
    coeffs *= weights
    period = _tile_period(coeffs)
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
    return found, period


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


def _tile_period(weighted: np.ndarray) -> float | None:
    """The tile period in pixels from the autocorrelation of the detector's weighted
    coefficient maps ``(K, h, w)`` (busy areas, which would hide it, weigh little), or None
    when no lag from 48 to 96 pixels stands out. Reads at most the central 512x512."""
    from scipy import fft

    lags = np.arange(48, 97)
    maps = _central(np.moveaxis(weighted, 0, -1), 512)  # (h, w, K)
    if min(maps.shape[:2]) < 2 * lags[0]:
        return None
    maps = maps - maps.mean((0, 1))
    # Zero padding by the largest lag keeps the circular correlation from wrapping around.
    shape = (maps.shape[0] + lags[-1] + 1, maps.shape[1] + lags[-1] + 1)
    spectrum = fft.rfft2(maps, s=shape, axes=(0, 1))
    auto = fft.irfft2((np.abs(spectrum) ** 2).sum(-1), s=shape)
    profile = auto[lags, 0] + auto[0, lags]  # the tile repeats along both axes
    best = int(np.argmax(profile))
    if profile[best] - np.median(profile) < 2.5 * profile.std() or best in (0, len(lags) - 1):
        return None
    left, mid, right = profile[best - 1: best + 2]  # a parabola through the peak: the period to a fraction of a pixel
    curvature = left - 2 * mid + right
    return float(lags[best] + (0.5 * (left - right) / curvature if curvature else 0.0))
