"""The recipe every output PNG carries: everything needed to make the image again.

It is stored as JSON in a PNG ``iTXt`` chunk named ``toolkit-recipe``; ``toolkit info``
prints it and ``toolkit generate --replay`` runs it. A file is anyone's to edit, so
``read_recipe`` checks every recipe against one schema (``Recipe``) before anything uses it.

An image `toolkit post` made from a file without a recipe (a photo) carries a ``PostLog``
instead, in a ``toolkit-post`` chunk: the steps that ran and their records, nothing to replay.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from PIL import PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from toolkit import DISTRIBUTION
from toolkit.errors import ImageInputError, NoRecipeError, RecipeError
from toolkit.generation.images import open_image
from toolkit.generation.request import MAX_SEED, GenerationRequest, PostSpec

RECIPE_KEY = "toolkit-recipe"
RECIPE_FORMAT = "toolkit-recipe/1"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("toolkit", "torch", "diffusers", "numpy", "pillow"):
        try:
            versions[package] = version(DISTRIBUTION if package == "toolkit" else package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def recipe_pnginfo(recipe: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """The PNG chunks that carry ``recipe``: pass as ``pnginfo=`` to ``Image.save``. Beside
    the recipe, the ``parameters`` summary other tools read (``a1111_parameters``)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True), zip=True)
    info.add_text("Software", f"toolkit {recipe.get('versions', {}).get('toolkit', '')}".strip())
    info.add_text(PARAMETERS_KEY, a1111_parameters(recipe))  # tEXt as the web UI writes it (iTXt past Latin-1)
    return info


PARAMETERS_KEY = "parameters"  # the chunk AUTOMATIC1111's web UI writes
# Our samplers under the names that web UI gives the same method.
A1111_SAMPLERS = {"ddim": "DDIM", "ddpm": "DDPM", "dpmpp-2m": "DPM++ 2M", "euler": "Euler", "unipc": "UniPC"}


def a1111_parameters(recipe: dict[str, Any]) -> str:
    """The recipe as the ``parameters`` text AUTOMATIC1111's web UI writes, which Civitai,
    ComfyUI, InvokeAI and exiftool show: the prompt, a ``Negative prompt:`` line, then one
    line of ``Key: value`` pairs. A summary for those tools; the recipe beside it is what
    `toolkit generate --replay` reads."""
    request, model = recipe.get("request", {}), recipe.get("model", {})
    pairs = {
        "Steps": request.get("steps"),
        "Sampler": A1111_SAMPLERS.get(request.get("sampler"), request.get("sampler")),
        "CFG scale": request.get("guidance_scale"),
        "Seed": recipe.get("seed"),
        "Batch pos": recipe.get("index") if request.get("n", 1) > 1 else None,
        "Size": f"{request['width']}x{request['height']}" if request.get("width") and request.get("height") else None,
        "Model hash": model.get("sha256", "")[:10] or None,  # the web UI's short hash: the weights' SHA-256, 10 hex characters
        "Model": model.get("name"),
        "Class": request.get("class_label"),
        "Truncation": request.get("truncation"),
        "Sketch scale": request.get("sketch_scale") if request.get("sketch") else None,
        "Postprocessors": ", ".join(r["name"] for r in recipe.get("postprocessors", [])) or None,
        "Version": f"toolkit {recipe.get('versions', {}).get('toolkit', '')}".strip(),
    }
    lines = [request.get("prompt") or ""]
    if request.get("negative_prompt"):
        lines.append(f"Negative prompt: {request['negative_prompt']}")

    def quote(value: Any) -> str:
        # Commas and colons separate the pairs: a value holding one is quoted, as the web UI does.
        return json.dumps(value) if any(c in str(value) for c in ",:\n") else str(value)

    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines)


class RecipeModel(BaseModel):
    """The model that made the image: its name, generator and the sha256 of its weights."""

    model_config = ConfigDict(extra="allow")

    name: str
    generator: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class PostRecord(BaseModel):
    """One post-processor that ran: its stage, options and what it reported."""

    model_config = ConfigDict(extra="allow")

    name: str
    stage: str
    options: dict[str, Any] = Field(default_factory=dict)
    record: dict[str, Any] = Field(default_factory=dict)


class Recipe(BaseModel):
    """What a recipe holds. ``request`` is a full ``GenerationRequest`` (input images as PNG
    data URLs only: a recipe never names a file to read); ``index`` picks the image among the
    request's ``n``; ``post_runs`` are the chains `toolkit post` ran on the file afterwards,
    one list per run, which replay runs again."""

    model_config = ConfigDict(extra="allow")

    format: Literal["toolkit-recipe/1"]
    request: GenerationRequest
    seed: StrictInt = Field(ge=0, le=MAX_SEED)
    index: StrictInt = Field(ge=0)
    model: RecipeModel
    plugins: dict[str, str | None] = Field(default_factory=dict)
    postprocessors: list[PostRecord] = Field(default_factory=list)
    chain: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    threads: StrictInt | None = Field(None, ge=1)  # torch's CPU threads; older recipes lack it
    created: str | None = None
    post_runs: list[list[PostSpec]] = Field(default_factory=list)

    @field_validator("request", mode="before")
    @classmethod
    def _images_are_embedded(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in ("sketch", "mask", "init_image"):
                image = value.get(key)
                if image is not None and not (isinstance(image, str) and image.startswith("data:image/png;base64,")):
                    raise ValueError(f"{key} must be an embedded PNG (a data URL), not a file name or other value")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.index >= self.request.n:
            raise ValueError(f"index {self.index} is past the request's {self.request.n} image(s)")
        if self.request.seed != self.seed:
            raise ValueError(f"seed {self.seed} differs from the request's seed {self.request.seed}")
        return self


def _png_text(path: str | Path, key: str) -> str | None:
    """The text chunk ``key`` of the image at ``path`` (None when it has none); an image that
    cannot be read is a ``RecipeError``."""
    try:
        image = open_image(path, what="image")
    except ImageInputError as error:
        raise RecipeError(str(error)) from None
    return (image.text if hasattr(image, "text") else image.info).get(key)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe embedded in a PNG written by toolkit, checked against ``Recipe``.

    Raises ``NoRecipeError`` for an image without one, ``RecipeError`` for one that is not
    valid (altered, or written by another toolkit version), each in one line."""
    text = _png_text(path, RECIPE_KEY)
    if text is None:
        raise NoRecipeError(f"{path} carries no toolkit recipe (was it made by toolkit, and saved as PNG without "
                            "stripping metadata?)")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise RecipeError(f"the recipe in {path} is not valid JSON ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"the recipe in {path} is a JSON {type(data).__name__}, not an object; the file was altered")
    if data.get("format") != RECIPE_FORMAT:
        shown = repr(data.get("format"))[:60]
        raise RecipeError(f"{path} has recipe format {shown}; this toolkit reads {RECIPE_FORMAT}")
    try:
        return Recipe.model_validate(data).model_dump(mode="json")
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'recipe'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in error.errors()[:3])
        raise RecipeError(f"the recipe in {path} is not valid, so the file was altered or made by another toolkit "
                          f"version: {problems}") from None


# -- what `toolkit post` leaves in a file without a recipe ----------------------------------------

POST_KEY = "toolkit-post"
POST_FORMAT = "toolkit-post/1"


class PostLog(BaseModel):
    """What `toolkit post` writes into an output made from an image without a recipe (a
    photo): every step that ran on it and its record, so a safety check or a watermark
    leaves the same trace there as in a recipe. Nothing in it can be replayed: no model
    made the image."""

    model_config = ConfigDict(extra="allow")

    format: Literal["toolkit-post/1"]
    postprocessors: list[PostRecord] = Field(default_factory=list)
    chain: list[str] = Field(default_factory=list)
    created: str | None = None


def post_log_pnginfo(log: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """The PNG chunk that carries a ``PostLog``: pass as ``pnginfo=`` to ``Image.save``."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(POST_KEY, json.dumps(log, sort_keys=True), zip=True)
    return info


def read_post_log(path: str | Path) -> dict[str, Any]:
    """The ``PostLog`` `toolkit post` wrote into ``path``, checked. Raises ``NoRecipeError``
    when there is none, ``RecipeError`` when it is not valid (the file was altered)."""
    text = _png_text(path, POST_KEY)
    if text is None:
        raise NoRecipeError(f"{path} carries no record of `toolkit post`")
    try:
        return PostLog.model_validate(json.loads(text)).model_dump(mode="json")
    except (json.JSONDecodeError, RecursionError, ValidationError) as error:
        raise RecipeError(f"the `toolkit post` record in {path} is not valid, so the file was altered: "
                          f"{str(error).splitlines()[0]}") from None


def file_post_records(path: str | Path) -> list[tuple[dict[str, Any], int]]:
    """Every post-processor record ``path`` carries, oldest first, each with the index of
    this file's image among the images that step processed: a generation's steps saw the
    whole batch (the recipe's ``index``), each `toolkit post` run one image (0).

    Read from the recipe, or for a file without one from its ``PostLog``. Raises
    ``NoRecipeError`` when it carries neither, ``RecipeError`` when the one it has is not valid."""
    try:
        recipe = read_recipe(path)
    except NoRecipeError:
        return [(record, 0) for record in read_post_log(path)["postprocessors"]]
    generated = len(recipe["request"]["post"])  # the first records are the generation's own chain
    return [(record, recipe["index"] if k < generated else 0) for k, record in enumerate(recipe["postprocessors"])]
