"""Whose mark it is: the key that seeds the watermark's layout.

The layout (which slot carries which bit, with which sign) is drawn from a key. With the
public key, the default, any copy of toolkit reads the mark, and anyone can write one: a
payload read with it is a claim, not proof. ``toolkit keys create`` also makes a key of
your own (``watermark.key`` beside the signing key, 256 random bits): marks written with
``--post watermark:key=own`` read only for those who hold it, and nobody without it can
write one that reads as yours.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ToolkitError
from toolkit.generation.files import write_atomic
from toolkit.generation.store import toolkit_home

PUBLIC = "toolkit-watermark-v1"  # the public key: seeds the layout every copy of toolkit reads
KEY_FILE = "watermark.key"  # what `toolkit keys create` writes beside the signing key
_HEADER = "toolkit-watermark-key-v1"
_LINE = re.compile(rf"{_HEADER} ([0-9a-f]{{64}})")


class WatermarkKeyError(ToolkitError):
    """A watermark key that is missing, unreadable or malformed."""


@dataclass(frozen=True)
class WatermarkKey:
    """A key's seed and how it is shown: ``public``, ``own`` or the key file's path."""

    label: str
    seed: str  # what make_layout draws the layout from

    @property
    def fingerprint(self) -> str:
        """16 hex digits that name the key without revealing it (empty for the public key)."""
        return "" if self.seed == PUBLIC else hashlib.sha256(f"fingerprint:{self.seed}".encode()).hexdigest()[:16]

    def describe(self) -> dict[str, str]:
        """The key as the recipe and `toolkit verify` show it."""
        return {"key": self.label} | ({"key_fingerprint": self.fingerprint} if self.fingerprint else {})


PUBLIC_KEY = WatermarkKey("public", PUBLIC)


def own_key_path() -> Path:
    """Where `toolkit keys create` puts the watermark key, and ``key=own`` reads it."""
    return toolkit_home() / "keys" / KEY_FILE


def load_key(spec: str) -> WatermarkKey:
    """``public``, ``own`` ($TOOLKIT_HOME/keys/watermark.key) or the path of a key file."""
    if spec == "public":
        return PUBLIC_KEY
    path = own_key_path() if spec == "own" else Path(spec).expanduser()
    if not path.is_file():
        make = "run `toolkit keys create`" if spec == "own" else "give the path of a file `toolkit keys create` wrote"
        raise WatermarkKeyError(f"watermark: no key at {path}; {make}, or use key=public (anyone can read and write it)")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise WatermarkKeyError(f"watermark: cannot read the key {path} ({getattr(error, 'strerror', None) or error})") from None
    found = _LINE.fullmatch(text)
    if found is None:
        raise WatermarkKeyError(f"watermark: {path} is not a watermark key (`toolkit keys create` writes one: "
                                f"a line '{_HEADER}' and 64 hex digits)")
    return WatermarkKey("own" if spec == "own" else str(path), f"{PUBLIC}:{found.group(1)}")


def reading_keys(extra: str | None = None) -> list[WatermarkKey]:
    """The keys `toolkit verify` reads with: the public one, your own if there is one, and
    ``extra`` (a key file) if given."""
    keys = [PUBLIC_KEY]
    if own_key_path().is_file():
        keys.append(load_key("own"))
    if extra is not None:
        given = load_key(extra)
        if all(given.seed != k.seed for k in keys):
            keys.append(given)
    return keys


def create_key(folder: Path, *, force: bool = False) -> Path:
    """Write a new random watermark key to ``folder/watermark.key`` (mode 0600); refuses to
    replace one unless ``force``, since marks written with the old key then read as none."""
    path = folder / KEY_FILE
    if path.exists() and not force:
        raise WatermarkKeyError(f"{path} already exists; pass --force to replace it (marks written with it "
                                "will no longer read)")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, f"{_HEADER} {secrets.token_hex(32)}\n".encode(), permissions=0o600)
    except OSError as error:
        raise WatermarkKeyError(f"cannot write the watermark key to {folder} ({error.strerror or error})") from None
    return path
