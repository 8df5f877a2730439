"""The post-processing chain: planned from a request (options validated, stage order
checked, each step's ``check_request`` asked before any model loads), run on images, and
its file-level work (signing) done once each PNG is written. ``toolkit post`` runs the same
chain on existing files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from toolkit.components import PostContext, Stage
from toolkit.errors import InvalidRequestError, RecipeError, UnsupportedRequestError
from toolkit.generation.images import open_image, pil_to_tensor, save_atomic, tensor_to_pil, to_rgb
from toolkit.generation.recipe import read_recipe, write_png
from toolkit.generation.request import GenerationRequest, PostSpec
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry

Progress = Callable[[int, int], None]


@dataclass
class PostStep:
    name: str
    stage: Stage
    processor: Any  # a PostProcessor instance
    options: BaseModel
    plugin: str


def plan_post(request: GenerationRequest, registry: Registry) -> list[PostStep]:
    steps = []
    for spec in request.post:
        cls = registry.get("postprocessors", spec.name)
        try:
            options = cls.Options.model_validate(spec.options)
        except ValidationError as error:
            takes = ", ".join(cls.Options.model_fields) or "no options"
            problems = "; ".join(
                f"unknown option '{e['loc'][0]}' (it takes: {takes})" if e["type"] == "extra_forbidden"
                else f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InvalidRequestError(f"post-processor '{spec.name}': {problems}") from None
        reason = cls.unavailable()
        if reason:
            raise UnsupportedRequestError(f"post-processor '{spec.name}' cannot run here: {reason}")
        steps.append(PostStep(spec.name, cls.stage, cls(), options, registry.postprocessors[spec.name].plugin))
    for before, after in zip(steps, steps[1:]):
        if after.stage < before.stage:
            order = " -> ".join(s.name for s in sorted(steps, key=lambda s: s.stage))
            raise InvalidRequestError(
                f"'{after.name}' ({after.stage.name.lower()}) cannot run after '{before.name}' "
                f"({before.stage.name.lower()}): the chain runs safety -> edit -> upscale -> watermark -> sign; "
                f"list them as {order}"
            )
    for step in steps:
        step.processor.check_request(request, step.options, registry)
    return steps


def run_post(steps: list[PostStep], images: torch.Tensor, ctx: PostContext) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Run post-processors in order on images ``(B, 3, H, W)`` in [-1, 1]; returns the
    final images (sizes may change) and one recipe record per step."""
    records = []
    for step in steps:
        out = step.processor.process(images, step.options, ctx)
        images = out.images
        records.append({"name": step.name, "stage": step.stage.name.lower(), "options": step.options.model_dump(mode="json"),
                        "record": out.record})
    return images, records


def write_output(image: Image.Image, path: Path, recipe: dict[str, Any] | None, steps: list[PostStep], ctx: PostContext) -> Path:
    if recipe is None:
        save_atomic(image, path)
    else:
        write_png(image, path, recipe)
    for step in steps:  # file-level work, e.g. signing; each rewrites the file atomically
        step.processor.after_save(path, step.options, ctx)
    return path


def postprocess_file(source: str | Path, post: list[PostSpec], out_dir: str | Path, *, registry: Registry | None = None,
                     progress: Progress | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Run a post-processing chain on an existing image file (``toolkit post``): upscale or
    watermark a photo, or sign a toolkit PNG made earlier. Writes a new PNG in
    ``out_dir`` (the source is never touched) and returns it with the steps' records.

    A toolkit PNG keeps its recipe, with the new steps appended to its chain and records;
    any other image gets no recipe (there is nothing to replay)."""
    registry = registry or get_registry()
    source = Path(source)
    image = to_rgb(open_image(source, what="image"))
    try:
        recipe: dict[str, Any] | None = read_recipe(source)
    except RecipeError:
        recipe = None
    # A request that describes the file, for post-processors' checks (output size, prompt).
    # Not validated: a photo may be larger than anything we generate.
    known = recipe["request"] if recipe else {}
    request = GenerationRequest.model_construct(**{**GenerationRequest().model_dump(), **known, "n": 1,
                                                   "width": image.width, "height": image.height, "post": post})
    steps = plan_post(request, registry)
    model = recipe["model"] if recipe else {"name": "unknown", "sha256": ""}
    ctx = PostContext(request=request, seed=recipe["seed"] if recipe else 0, model_name=model["name"],
                      model_sha256=model["sha256"], progress=progress, registry=registry)
    with torch.inference_mode():
        images, records = run_post(steps, pil_to_tensor(image), ctx)
    if recipe is not None:
        recipe = {**recipe, "postprocessors": recipe.get("postprocessors", []) + records,
                  "chain": recipe.get("chain", []) + [f"{s.name} [{s.stage.name.lower()}]" for s in steps]}
    path = free_path(Path(out_dir), f"{source.stem}-post")
    return write_output(tensor_to_pil(images)[0], path, recipe, steps, ctx), records


def free_path(folder: Path, stem: str) -> Path:
    path, k = folder / f"{stem}.png", 1
    while path.exists():
        path, k = folder / f"{stem}-{k}.png", k + 1
    return path


