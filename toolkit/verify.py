"""``toolkit verify``: what an image file carries, read back by every post-processor that
can read something (a watermark decoder, a Content Credentials validator) plus the recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .errors import InvalidRequestError, RecipeError, ToolkitError
from .images import open_image
from .plugins import get_registry
from .recipe import read_recipe
from .registry import Registry

# CA certificates (PEM text) the user trusts for this check (`toolkit verify --trust`); a
# signature checker's ``inspect`` (the c2pa post-processor's) reads them with trust_anchors().
_TRUST: ContextVar[str | None] = ContextVar("toolkit_trust_anchors", default=None)


def trust_anchors() -> str | None:
    """The PEM certificates passed to ``verify_image(trust=...)``, concatenated, or None."""
    return _TRUST.get()


def read_trust(paths: Sequence[Path]) -> str | None:
    texts = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidRequestError(f"--trust {path}: cannot read it ({error})") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise InvalidRequestError(f"--trust {path}: not a PEM certificate; give a CA certificate such as the "
                                      "ca.pem `toolkit keys create` writes")
        texts.append(text)
    return "".join(texts) or None


def verify_image(path: Path, registry: Registry | None = None, *, trust: Sequence[Path] = ()) -> dict[str, Any]:
    """``{"path": str, "found": {label: finding}}``; a finding is a string or JSON-able dict.

    Each registered post-processor's ``inspect`` contributes under its own name; one that
    fails reports its error there instead of hiding the others' findings. ``trust``: CA
    certificate files (PEM) whose signers count as trusted (see ``trust_anchors``).
    """
    registry = registry or get_registry()
    token = _TRUST.set(read_trust(trust))
    try:
        return _verify(path, registry)
    finally:
        _TRUST.reset(token)


def _verify(path: Path, registry: Registry) -> dict[str, Any]:
    image = open_image(path, what="image")
    found: dict[str, Any] = {}
    try:
        recipe = read_recipe(path)
        found["recipe"] = {"model": recipe["model"]["name"], "seed": recipe["seed"], "chain": recipe.get("chain"),
                           "created": recipe.get("created"), "prompt": recipe["request"].get("prompt")}
    except RecipeError:
        found["recipe"] = "none (no toolkit recipe in this file)"
    for name, entry in sorted(registry.postprocessors.items()):
        try:
            finding = entry.obj.inspect(path, image)
        except ToolkitError as error:
            finding = f"could not check: {error}"
        if finding is not None:
            found[name] = finding
    return {"path": str(path), "found": found}
