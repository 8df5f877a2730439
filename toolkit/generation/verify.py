"""``toolkit verify``: what an image file carries, read back by every post-processor that
can read something (a watermark decoder, a Content Credentials validator) plus the recipe.

A finding that is a dict with ``"state": "invalid"`` (a signature that does not validate, a
recipe that was altered) makes the file's status ``invalid``; a mark the file's own record
says was applied but that is not there (the recipe lists a watermark step, no watermark
reads back) makes it ``missing``; a check that could not run (its plugin failed) makes it
``error``; `toolkit verify` turns these into its exit status (``EXIT_STATUS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from toolkit.components import InspectContext, PostProcessor, Stage
from toolkit.errors import InvalidRequestError, NoRecipeError, RecipeError, ToolkitError
from toolkit.generation.images import open_image
from toolkit.generation.post import refuse_coerced_booleans
from toolkit.generation.recipe import read_post_log, read_recipe
from toolkit.host.loading import blame, get_registry
from toolkit.host.registry import Registry

# `toolkit verify`'s exit status for a file's status; over several files the most serious
# wins, in this order: invalid, missing, error.
EXIT_STATUS = {"ok": 0, "error": 1, "invalid": 2, "missing": 3}
SEVERITY = ("ok", "error", "missing", "invalid")  # least to most serious
STRIPPED = ("a watermark but no Content Credentials: if the image was signed, its credentials may have been "
            "stripped (re-encoding or an upload that drops metadata removes them; the watermark survives)")


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
    """``{"path": str, "found": {label: finding}, "status": "ok" | "invalid" | "missing" |
    "error"}``, with ``"missing": {name: why}`` and ``"notes": [line]`` when there are any;
    a finding is a string or JSON-able dict.

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
    applied: list[str] | None = None  # the post-processors the file's record says ran; None: no record
    try:
        recipe = read_recipe(path)
        found["recipe"] = {"model": recipe["model"]["name"], "seed": recipe["seed"], "chain": recipe["chain"],
                           "created": recipe["created"], "prompt": recipe["request"]["prompt"]}
        applied = [r["name"] for r in recipe["postprocessors"]]
    except NoRecipeError:
        found["recipe"] = "none (no toolkit recipe in this file)"
        try:  # what `toolkit post` recorded in a file it made from a photo
            log = read_post_log(path)
            found["post"] = {"chain": log["chain"], "created": log["created"]}
            applied = [r["name"] for r in log["postprocessors"]]
        except NoRecipeError:
            pass
        except RecipeError as error:
            found["post"] = {"state": "invalid", "problems": [str(error)]}
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
    report: dict[str, Any] = {"path": str(path), "found": found}
    # A step the record names whose check reads "none" now: the mark was removed, or the file rebuilt.
    missing = {name: f"the file's record says {name} ran, but {name} finds nothing: {found[name]}"
               for name in dict.fromkeys(applied or []) if _none(found.get(name))}
    if missing:
        report["missing"] = missing
    notes = _notes(found, registry, applied)
    if notes:
        report["notes"] = notes
    invalid = any(isinstance(f, dict) and f.get("state") == "invalid" for f in found.values())
    report["status"] = "invalid" if invalid else "missing" if missing else "error" if failed else "ok"
    return report


def exit_status(reports: Sequence[dict[str, Any]]) -> int:
    """`toolkit verify`'s exit status for these reports: the most serious file's."""
    return EXIT_STATUS[max((r["status"] for r in reports), key=SEVERITY.index, default="ok")]


def _none(finding: Any) -> bool:
    return isinstance(finding, str) and finding.startswith("none")


def _notes(found: dict[str, Any], registry: Registry, applied: list[str] | None) -> list[str]:
    """What a reader should know that no single check says: a watermark without Content
    Credentials, unless the file's record shows it was never signed."""
    def findings(stage: Stage) -> list[Any]:
        return [found[name] for name, entry in registry.postprocessors.items()
                if entry.obj.stage == stage and name in found]

    marked = any(isinstance(f, dict) and "payload" in f for f in findings(Stage.WATERMARK))
    signers = findings(Stage.SIGN)
    unsigned = bool(signers) and all(_none(f) for f in signers)
    never_signed = applied is not None and not any(
        registry.postprocessors[name].obj.stage == Stage.SIGN for name in applied if name in registry.postprocessors)
    if marked and unsigned and not never_signed:
        return [STRIPPED]
    return []
