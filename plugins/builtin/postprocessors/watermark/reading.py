"""How the watermark is read: luma, the 8x8 DCT coefficients at the block grid or at
every pixel offset, and the detector's weights (per coefficient its image-wide RMS, per
block its neighbourhood's activity). ``Grid`` reads a whole image's slots exactly as the
detector weighs them and turns coefficient changes back into pixels, for the embedders.

docs/postprocessors.md ("Invisible watermark", "The design") explains the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import BLOCK, MARK_COEFFS, TILE_BLOCKS, Layout

# Coefficients the mark never touches; their energy tells busy blocks from flat ones.
ACTIVITY_COEFFS = ((0, 4), (4, 0), (2, 3), (3, 2), (3, 3))
ACTIVITY_FLOOR = 0.25  # lambda = 1 / (activity + this * mean activity): how far flat areas outweigh busy ones
MAX_DETECT_SIDE = 1024  # the detector reads a central window at most this large: it holds 256 tiles
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601, JPEG's Y


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II: ``(frequency, position)``."""
    u = np.arange(n)
    d = np.cos(np.pi * (2 * u[None, :] + 1) * u[:, None] / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


DCT = _dct_matrix()


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
    from scipy.ndimage import correlate1d  # here, not when the plugins load: scipy is slow to import

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
    energy = activity_energy(activity, activity_rms)
    return Scales(rms(mark_coeffs), activity_rms, float(energy.mean()))


def activity_energy(activity: np.ndarray, activity_rms: np.ndarray) -> np.ndarray:
    """(A, ...) activity coefficients -> (...) their normalised mean square."""
    shape = (-1,) + (1,) * (activity.ndim - 1)
    return ((activity / activity_rms.reshape(shape).astype(activity.dtype)) ** 2).mean(0)


def neighbourhood_mean(energy: np.ndarray, step: int) -> np.ndarray:
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


def central(a: np.ndarray, side: int) -> np.ndarray:
    """The central window of an image ``(H, W, ...)``, at most ``side`` pixels square."""
    h, w = a.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return a[top: top + side, left: left + side]


class Grid:
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
        s = scales(central(y, MAX_DETECT_SIDE).astype(np.float32))  # as the detector computes them
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
        weights = weights_from(neighbourhood_mean(activity_energy(activity, s.activity), 1), s)
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

