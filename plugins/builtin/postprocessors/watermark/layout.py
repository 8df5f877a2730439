"""The watermark's layout: which DCT coefficient of which 8x8 block of a 64x64 tile
carries which bit, with which sign.

A key-seeded ``Layout`` deals a tile's slots out to the payload bits and the pilots; the
tile repeats over the whole image. docs/postprocessors.md ("Invisible watermark", "The
design") explains the layout and why these coefficients.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BLOCK = 8  # the DCT block, JPEG's grid
TILE_BLOCKS = 8  # a tile is 8 x 8 blocks
TILE = BLOCK * TILE_BLOCKS  # 64 pixels: the layout repeats with this period
# (row, column) frequencies of the 8x8 DCT that carry the mark: ~0.09-0.2 cycles/pixel.
MARK_COEFFS = ((1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0), (1, 3), (3, 1))
N_PILOTS = 32  # known bits that find the tile's alignment
MIN_SIDE = 64  # smaller images cannot hold the payload robustly


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
        # Drawn last, so that the arrays above stay those of layouts without a dither:
        # marks written with them still read.
        dither=rng.random(n_bits),
    )


def signs(bits: np.ndarray, layout: Layout) -> np.ndarray:
    """Payload bits ``(n_payload,)`` of 0/1 and the pilots -> ``(n_bits,)`` of +-1."""
    return np.concatenate([bits, layout.pilots]).astype(np.float64) * 2 - 1
