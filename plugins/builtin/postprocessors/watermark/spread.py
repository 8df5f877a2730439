"""Informed spread-spectrum embedding, the watermark's default mode: for each bit, add along
its slots just what lifts the detector's soft value to a common margin, the largest the
PSNR budget allows; then rehearse the attacks on the result and plan again with what they
left. Also what the three embedders share: ``EmbedResult``, the budget, the PSNR.

docs/postprocessors.md ("Invisible watermark", "The design") explains the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attacks import rehearsals
from .layout import MIN_SIDE, Layout, signs
from .reading import Grid

REHEARSE_MAX_PIXELS = 800_000  # bigger images carry so many tiles that the plain plan suffices
# A rehearsed attack that leaves a bit less than this share of its push (a crop that took
# most of its slots) is left to the error correction: saving it would cost the others.
HELPABLE = 0.25


@dataclass
class EmbedResult:
    """What an embedder made of an image, and at what cost."""

    image: np.ndarray  # (H, W, 3) float64, whole numbers in [0, 255]
    psnr: float  # against the input rounded to whole numbers
    margin: float  # spread and dips: the common margin spread spectrum reached (detector units; 0 = none); lattice: the tolerance, a quarter step
    given_up: int  # payload bytes left to the error correction (-1: not even the host could be cancelled)
    mode: str = "spread"  # or "lattice" (lattice.py), or "dips" (dips.py)
    # The promised attacks (attacks.promised) the mark was rehearsed against and did not
    # survive; None where the embedder did not rehearse (128 px and up, not near white or
    # black, not mostly flat: the benchmark holds there).
    fragile: list[str] | None = None


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
    sign = signs(bits, layout)
    budget = psnr_budget(height, width, psnr)
    grid = Grid(layout, height, width)
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
    return EmbedResult(out, psnr_of(out, base), margin, given_up)


def psnr_budget(height: int, width: int, psnr: float) -> float:
    """The sum of squared errors per channel that keeps an image at ``psnr`` dB."""
    return height * width * 255.0**2 / 10 ** (psnr / 10)


def psnr_of(out: np.ndarray, base: np.ndarray) -> float:
    """The PSNR in dB of ``out`` against ``base``, both ``(H, W, 3)`` in [0, 255]."""
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


def _top_up(base, out, delta, grid: Grid, sign, target, budget, steps: int = 3):
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
