"""``toolkit verify``: what an image file carries, read back by every post-processor that
can read something (a watermark decoder, a Content Credentials validator) plus the recipe.

A finding that is a dict with ``"state": "invalid"`` (a signature that does not validate, a
recipe that was altered) makes the file's status ``invalid``; a check that could not run
(its plugin failed) makes it ``error``; `toolkit verify` turns these into its exit status.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from toolkit.components import InspectContext, PostProcessor
from toolkit.errors import InvalidRequestError, NoRecipeError, RecipeError, ToolkitError
from toolkit.generation.images import open_image
from toolkit.generation.post import refuse_coerced_booleans
from toolkit.generation.recipe import read_recipe
from toolkit.host.loading import blame, get_registry
from toolkit.host.registry import Registry


def inspect_options(cls: type[PostProcessor], given: dict[str, Any], trust: Sequence[Path]) -> BaseModel:
    """``cls.InspectOptions`` from ``toolkit verify``'s options for it, with ``trust`` (CA
    certificate files) filling its ``trust`` field when it has one."""
    values = dict(given)
    if trust and "trust" in cls.InspectOptions.model_fields:
        values.setdefault("trust", [str(p) for p in trust])
    try:
        validated = cls.InspectOptions.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in error.errors())
        raise InvalidRequestError(f"verify options for '{cls.name}': {problems}") from None
    refuse_coerced_booleans(cls.name, given, validated)
    return validated


def verify_image(path: Path, registry: Registry | None = None, *, trust: Sequence[Path] = (),
                 options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"path": str, "found": {label: finding}, "status": "ok" | "invalid" | "error"}``; a
    finding is a string or JSON-able dict.

    Each registered post-processor's ``inspect`` contributes under its own name; one that
    fails (a ``ToolkitError``, or any error of its plugin) reports its error there instead
    of hiding the others' findings. ``trust``: CA
    certificate files (PEM) whose signers count as trusted, for every post-processor whose
    ``InspectOptions`` take ``trust``; ``options``: more inspect options, by post-processor.
    """
    registry = registry or get_registry()
    options = options or {}
    unknown = set(options) - set(registry.postprocessors)
    if unknown:
        raise InvalidRequestError(f"verify options for unknown post-processors {sorted(unknown)}; installed: "
                                  f"{', '.join(sorted(registry.postprocessors))}")
    contexts = {name: InspectContext(registry, inspect_options(entry.obj, options.get(name, {}), trust))
                for name, entry in registry.postprocessors.items()}
    image = open_image(path, what="image")
    found: dict[str, Any] = {}
    failed = False
    try:
        recipe = read_recipe(path)
        found["recipe"] = {"model": recipe["model"]["name"], "seed": recipe["seed"], "chain": recipe["chain"],
                           "created": recipe["created"], "prompt": recipe["request"]["prompt"]}
    except NoRecipeError:
        found["recipe"] = "none (no toolkit recipe in this file)"
    except RecipeError as error:
        found["recipe"] = {"state": "invalid", "problems": [str(error)]}
    for name, entry in sorted(registry.postprocessors.items()):
        try:
            with blame(entry.plugin, f"post-processor '{name}' (inspect)"):
                finding = entry.obj.inspect(path, image, contexts[name])
        except ToolkitError as error:
            finding, failed = f"could not check: {error}", True
        if finding is not None:
            found[name] = finding
    invalid = any(isinstance(f, dict) and f.get("state") == "invalid" for f in found.values())
    return {"path": str(path), "found": found, "status": "invalid" if invalid else "error" if failed else "ok"}
