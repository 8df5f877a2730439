"""The one request schema behind the CLI, the Python API, the web app and its HTTP API.

Field descriptions double as ``--help`` text and web-form labels; ``json_schema_extra``
says which CLI flag a field gets (``flag``) and which conditioning kind it carries
(``kind``), so nothing is declared twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from toolkit.errors import InvalidRequestError
from toolkit.generation.images import open_image, to_data_url

MAX_SEED = 2**63 - 1


class PostSpec(BaseModel):
    """One post-processor to run and its options (validated by the post-processor)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered post-processor name, see `toolkit plugins`")
    options: dict[str, Any] = Field(default_factory=dict, description="the post-processor's options")

    @classmethod
    def parse(cls, text: str) -> PostSpec:
        """Parse the CLI form ``NAME`` or ``NAME:key=value,key=value``; a key given twice is refused."""
        name, _, rest = text.partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InvalidRequestError(
                    f"cannot read post-processor option '{item}' in '{text}'; write --post NAME:key=value,key=value"
                )
            if key.strip() in options:
                raise InvalidRequestError(f"option '{key.strip()}' is given twice in '{text}'; give it once")
            options[key.strip()] = _scalar(value.strip())
        if not name.strip():
            raise InvalidRequestError(f"--post '{text}' names no post-processor; write --post NAME:key=value")
        return cls(name=name.strip(), options=options)


def _scalar(value: str) -> Any:
    """'4' -> 4, '0.5' -> 0.5, 'true' -> True, anything else stays a string (so do '1e999',
    'NaN' and 'Infinity', which are no numbers an option can use)."""
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return value
    return parsed


def _image_field(kind: str, description: str, flag: str) -> Any:
    return Field(None, description=description, json_schema_extra={"kind": kind, "flag": flag, "image": True})


class GenerationRequest(BaseModel):
    """What to generate. Every entry point builds one of these and hands it to the pipeline."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str | None = Field(
        None, description="model name (see `toolkit models`) or path to a model folder; default: `model` in "
        "config.toml (`toolkit config`), else the installed model marked default",
        json_schema_extra={"flag": "--model"},
    )
    prompt: str | None = Field(
        None, max_length=2000, description="what the image should show",
        json_schema_extra={"kind": "text", "flag": "--prompt"},
    )
    negative_prompt: str | None = Field(
        None, max_length=2000, description="what the image should not show (guidance models only)",
        json_schema_extra={"flag": "--negative-prompt"},
    )
    class_label: int | None = Field(
        None, ge=0, le=100_000, description="class index to generate, e.g. a digit 0-9",
        json_schema_extra={"kind": "class", "flag": "--class"},
    )
    sketch: str | None = _image_field("sketch", "sketch image: dark lines on white, the model's size or aspect", "--sketch")
    mask: str | None = _image_field("mask", "inpainting mask: white = regenerate, black = keep (needs an init image)", "--mask")
    init_image: str | None = _image_field("init_image", "starting image for inpainting or image-to-image", "--init-image")
    sketch_scale: float | None = Field(
        None, ge=0.0, le=2.0, description="how strongly the image follows the sketch, 0 to 2 (0 = as without a sketch); default 1",
        json_schema_extra={"flag": "--sketch-scale"},
    )
    sketch_from_photo: bool = Field(
        False, description="the sketch is a photo or a rendering: trace its edges into lines first (detected when not set)",
        json_schema_extra={"flag": "--sketch-from-photo"},
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="random seed; default: a fresh one, recorded in each PNG",
        json_schema_extra={"flag": "--seed"},
    )
    n: int = Field(1, ge=1, le=64, description="number of images", json_schema_extra={"flag": "--n"})
    steps: int | None = Field(
        None, ge=1, le=1000, description="denoising steps (diffusion models); default: the model's",
        json_schema_extra={"flag": "--steps"},
    )
    guidance_scale: float | None = Field(
        None, ge=0.0, le=50.0, description="classifier-free guidance scale; default: the model's",
        json_schema_extra={"flag": "--guidance"},
    )
    sampler: str | None = Field(
        None, description="diffusion sampler (see `toolkit plugins`); default: the model's",
        json_schema_extra={"flag": "--sampler"},
    )
    truncation: float | None = Field(
        None, gt=0.0, le=10.0,
        description="GAN/VAE: draw the latent from a normal truncated at +-T; lower = cleaner but less varied; default: the model's",
        json_schema_extra={"flag": "--truncation"},
    )
    width: int | None = Field(None, ge=8, le=4096, description="image width; default: the model's", json_schema_extra={"flag": "--width"})
    height: int | None = Field(None, ge=8, le=4096, description="image height; default: the model's", json_schema_extra={"flag": "--height"})
    post: list[PostSpec] = Field(
        default_factory=list,
        description="post-processors in chain order, each NAME or NAME:key=value,key=value",
        json_schema_extra={"flag": "--post"},
    )

    @field_validator("sketch", "mask", "init_image", mode="before")
    @classmethod
    def _image_to_data_url(cls, value: Any, info: Any) -> str | None:
        """Paths, bytes and PIL images become lossless PNG data URLs, so a request (and
        the recipe inside each PNG) carries its input images and replays without them."""
        if value is None or (isinstance(value, str) and value.startswith("data:image/png;base64,")):
            return value
        if isinstance(value, (str, Path, bytes, Image.Image)):
            return to_data_url(open_image(value, what=info.field_name.replace("_", " ")))
        raise ValueError("expected a file path, PNG/JPEG bytes or a PIL image")

    @field_validator("prompt", "negative_prompt", "model", "sampler", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    def conditioning_kinds(self) -> set[str]:
        """The conditioning kinds this request uses (``prompt`` -> "text", ...)."""
        kinds = set()
        for name, field in type(self).model_fields.items():
            kind = (field.json_schema_extra or {}).get("kind")
            if kind and getattr(self, name) is not None:
                kinds.add(kind)
        return kinds


def parse_request(data: dict[str, Any] | GenerationRequest | None = None, **fields: Any) -> GenerationRequest:
    """Build a request, turning validation errors into one readable ``InvalidRequestError``."""
    if isinstance(data, GenerationRequest):
        data = data.model_dump()
    merged = {**(data or {}), **fields}
    try:
        return GenerationRequest.model_validate(merged)
    except ValidationError as error:
        raise InvalidRequestError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, with the CLI flag a user would type."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(p) for p in problem["loc"]) or "request"
        field = GenerationRequest.model_fields.get(str(problem["loc"][0])) if problem["loc"] else None
        flag = (field.json_schema_extra or {}).get("flag") if field else None
        message = problem["msg"].removeprefix("Value error, ")
        got = problem.get("input")
        shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) and len(repr(got)) < 60 else ""
        parts.append(f"{flag or location}: {message}{shown}")
    return "invalid request: " + "; ".join(parts)
