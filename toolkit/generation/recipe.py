"""The recipe every output PNG carries: everything needed to make the image again.

It is stored as JSON in a PNG ``iTXt`` chunk named ``toolkit-recipe``; ``toolkit info``
prints it and ``toolkit generate --replay`` runs it.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from toolkit.errors import ImageInputError, RecipeError
from toolkit.generation.images import open_image, save_atomic

RECIPE_KEY = "toolkit-recipe"
RECIPE_FORMAT = "toolkit-recipe/1"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("toolkit", "torch", "diffusers", "numpy", "pillow"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_png(image: Image.Image, path: Path, recipe: dict[str, Any]) -> Path:
    """Save ``image`` with its recipe, atomically (temporary file, then rename), so an
    interrupted run never leaves a half-written PNG where a finished one was expected."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True), zip=True)
    info.add_text("Software", f"toolkit {recipe.get('versions', {}).get('toolkit', '')}".strip())
    return save_atomic(image, path, pnginfo=info)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe embedded in a PNG written by toolkit."""
    try:
        image = open_image(path, what="image")
    except ImageInputError as error:
        raise RecipeError(str(error)) from None
    text = getattr(image, "text", {}).get(RECIPE_KEY) if hasattr(image, "text") else None
    if text is None:
        raise RecipeError(f"{path} carries no toolkit recipe (was it made by toolkit, and saved as PNG without stripping metadata?)")
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecipeError(f"the recipe in {path} is not valid JSON ({error})") from None
    if recipe.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{path} has recipe format {recipe.get('format')!r}; this toolkit reads {RECIPE_FORMAT}")
    return recipe
