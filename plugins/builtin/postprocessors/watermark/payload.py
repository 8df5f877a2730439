"""The watermark's payload: 40 bits with a meaning, protected by a Reed-Solomon code.

Layout (5 bytes, big-endian): the top 4 bits say what the other 36 are.

====  ================  ==========================================================
kind  name              the 36 bits
====  ================  ==========================================================
1     model+time        16 bits: the first 16 bits of the model's weights SHA-256
                        (0 when there is none: a photo marked with ``toolkit post``);
                        20 bits: hours since 2024-01-01 00:00 UTC
                        (good until the year 2143)
2     text              the first 36 bits of SHA-256 of a UTF-8 string of yours
3     number            a number of yours, 0 <= n < 2**36
====  ================  ==========================================================

Error correction: Reed-Solomon over GF(256) from ``reedsolo``, 5 data + 8 parity bytes
(104 coded bits). The decoder accepts a word only if a codeword lies within 4 byte errors
of it, or within 3 errors after erasing its 2 least reliable bytes, and only if the kind is
one of the three above. Anything else is "no watermark".

Why a random image almost never passes: over the random choice of the key, the bits read
from an unmarked image are uniform (each bit's sign comes from its own random chips, and in
the lattice mode its coset from its own random dither), so a decoding attempt accepts with
probability ``#codewords * (ball volume) / #words``:
``V(13, 4) / 256**8 = 1.6e-7`` without erasures and ``V(11, 3) / 256**6 = 9.7e-6`` with 2,
where ``V(n, e) = sum_{i <= e} C(n, i) 255**i``; the kind check keeps 3/16 of those. The
detector makes at most 24 attempts per image (3 alignments read as spread spectrum and 3 as
the lattice mode, at the image's own scale and at up to 3 rescales), so the false-positive
rate is at most ``24 * (1.6e-7 + 9.7e-6) * 3/16 = 4.5e-5`` (``FALSE_POSITIVE_BOUND``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from math import comb

import numpy as np
from reedsolo import ReedSolomonError, RSCodec

DATA_BYTES = 5
PARITY_BYTES = 8
CODE_BYTES = DATA_BYTES + PARITY_BYTES
CODED_BITS = 8 * CODE_BYTES  # 104
# (bytes erased, most byte errors then accepted): 2 * errors + erasures <= PARITY_BYTES.
POLICY = ((0, 4), (2, 3))
ATTEMPTS_PER_IMAGE = 24  # detector.SEARCH_TOP alignments x 2 readings, at the image's scale and up to detector.MAX_PERIODS rescales
KINDS = {1: "model+time", 2: "text", 3: "number"}
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

_codec = RSCodec(PARITY_BYTES)


def _ball(n: int, e: int) -> int:
    return sum(comb(n, i) * 255**i for i in range(e + 1))


# Probability that one decoding attempt accepts a uniformly random word (see the module doc).
FALSE_ACCEPT_PER_ATTEMPT = sum(_ball(CODE_BYTES - f, e) / 256.0 ** (PARITY_BYTES - f) for f, e in POLICY)
FALSE_POSITIVE_BOUND = ATTEMPTS_PER_IMAGE * FALSE_ACCEPT_PER_ATTEMPT * len(KINDS) / 16


def model_time(model_sha256: str, when: datetime) -> bytes:
    """Kind 1: the model's weights hash (hex) and a time, to the hour."""
    model_id = int(model_sha256[:4], 16) if model_sha256 else 0
    hours = int((when - EPOCH).total_seconds() // 3600)
    if not 0 <= hours < 2**20:
        raise ValueError(f"{when} is outside the payload's range (2024 to 2143)")
    return _pack(1, model_id << 20 | hours)


def text(value: str) -> bytes:
    """Kind 2: a hash of a string (the string itself cannot be read back, only checked)."""
    return _pack(2, int.from_bytes(hashlib.sha256(value.encode()).digest(), "big") >> (256 - 36))


def number(value: int) -> bytes:
    """Kind 3: a number below 2**36."""
    if not 0 <= value < 2**36:
        raise ValueError(f"number must be in 0..{2**36 - 1}")
    return _pack(3, value)


def _pack(kind: int, value: int) -> bytes:
    return (kind << 36 | value).to_bytes(DATA_BYTES, "big")


def describe(payload: bytes) -> dict:
    """What a decoded payload says, as JSON-able fields (``kind`` and ``meaning`` always)."""
    raw = int.from_bytes(payload, "big")
    kind, value = raw >> 36, raw & (2**36 - 1)
    if kind == 1:
        model_id, hours = value >> 20, value & (2**20 - 1)
        when = EPOCH + timedelta(hours=hours)
        hour = f"between {when:%Y-%m-%d %H}:00 and {when:%H}:59 UTC"
        # Model id 0: an existing image marked with `toolkit post` (or, 1 in 65536, a model whose hash starts 0000).
        maker = f"made by the model whose weights' SHA-256 starts {model_id:04x}" if model_id else "marked with no model named"
        return {"kind": KINDS[1], "model_sha256_prefix": f"{model_id:04x}", "created_hour_utc": when.strftime("%Y-%m-%dT%H:00Z"),
                "meaning": f"{maker}, {hour}"}
    if kind == 2:
        return {"kind": KINDS[2], "text_sha256_prefix": f"{value:09x}",
                "meaning": f"a text whose SHA-256 starts with {value:09x} (36 bits)"}
    return {"kind": KINDS[3], "number": value, "meaning": f"the number {value}"}


def encode(payload: bytes, whitening: np.ndarray) -> np.ndarray:
    """5 payload bytes -> (104,) coded bits, 0/1, XORed with the key's ``whitening`` bits
    (so that a blank or uniform image, whose bits all read alike, reads as no codeword)."""
    assert len(payload) == DATA_BYTES
    return np.unpackbits(np.frombuffer(bytes(_codec.encode(payload)), np.uint8)) ^ whitening


def decode(soft: np.ndarray, whitening: np.ndarray, *, any_kind: bool = False) -> bytes | None:
    """(104,) soft bits (positive means 1, magnitude = confidence) -> the payload, or None.

    Never returns a payload unless it passes the acceptance rule in the module doc
    (``any_kind``: skip the kind check, to measure the code's own acceptance rate)."""
    word = np.packbits((soft > 0) ^ whitening.astype(bool)).astype(np.uint8)
    reliability = np.abs(soft).reshape(CODE_BYTES, 8).min(1)  # a byte is as sure as its weakest bit
    for n_erased, max_errors in POLICY:
        erased = sorted(np.argsort(reliability, kind="stable")[:n_erased].tolist())
        try:
            message = bytes(_codec.decode(bytearray(word.tobytes()), erase_pos=erased or None)[0])
        except ReedSolomonError:
            continue
        if len(message) != DATA_BYTES:
            continue
        # Our own check of the acceptance rule; the library may "correct" past its radius.
        codeword = np.frombuffer(bytes(_codec.encode(message)), np.uint8)
        kept = np.ones(CODE_BYTES, bool)
        kept[erased] = False
        if int((codeword[kept] != word[kept]).sum()) <= max_errors and (any_kind or message[0] >> 4 in KINDS):
            return message
    return None
