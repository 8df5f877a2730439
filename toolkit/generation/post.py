"""The post-processing chain: planned from a request (options validated, stage order
checked, each step's ``check_request`` asked before any model loads), run on images, and
its file-level work (signing) done once each PNG is written. ``toolkit post`` runs the same
chain on existing files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from toolkit.components import PostContext, Stage
from toolkit.errors import InvalidRequestError, NoRecipeError, UnsupportedRequestError
from toolkit.generation.images import open_image, pil_to_tensor, save_new, tensor_to_pil, to_rgb
from toolkit.generation.recipe import POST_FORMAT, post_log_pnginfo, read_post_log, read_recipe, recipe_pnginfo
from toolkit.generation.request import GenerationRequest, PostSpec
from toolkit.host.loading import blame, get_registry
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
        plugin = registry.postprocessors[spec.name].plugin
        try:
            options = cls.Options.model_validate(spec.options)
        except ValidationError as error:
            takes = ", ".join(cls.Options.model_fields) or "no options"
            problems = "; ".join(
                f"unknown option '{e['loc'][0]}' (it takes: {takes})" if e["type"] == "extra_forbidden"
                else f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InvalidRequestError(f"post-processor '{spec.name}': {problems}") from None
        refuse_coerced_booleans(spec.name, spec.options, options)
        with blame(plugin, f"post-processor '{spec.name}'"):
            reason = cls.unavailable()
            if reason:
                raise UnsupportedRequestError(f"post-processor '{spec.name}' cannot run here: {reason}")
            steps.append(PostStep(spec.name, cls.stage, cls(), options, plugin))
    for before, after in zip(steps, steps[1:]):
        if after.stage < before.stage:
            order = " -> ".join(s.name for s in sorted(steps, key=lambda s: s.stage))
            raise InvalidRequestError(
                f"'{after.name}' ({after.stage.name.lower()}) cannot run after '{before.name}' "
                f"({before.stage.name.lower()}): the chain runs safety -> edit -> upscale -> watermark -> sign; "
                f"list them as {order}"
            )
    for step in steps:
        with blame(step.plugin, f"post-processor '{step.name}' (check_request)"):
            step.processor.check_request(request, step.options, registry)
    return steps


def refuse_coerced_booleans(name: str, given: dict[str, Any], options: BaseModel) -> None:
    """pydantic reads ``true`` as 1 for a number field (``upscale-lanczos:scale=true`` would
    upscale 1x): a true/false the user gave must stay a true/false, or it is refused."""
    for key, value in given.items():
        if isinstance(value, bool) and not isinstance(getattr(options, key, None), bool):
            raise InvalidRequestError(f"post-processor '{name}': {key} takes a number or a name, not "
                                      f"{str(value).lower()}")


def run_post(steps: list[PostStep], images: torch.Tensor, ctx: PostContext) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Run post-processors in order on images ``(B, 3, H, W)`` in [-1, 1]; returns the
    final images (sizes may change) and one recipe record per step."""
    records = []
    for step in steps:
        with blame(step.plugin, f"post-processor '{step.name}' (process)"):
            out = step.processor.process(images, step.options, ctx)
        images = out.images
        records.append({"name": step.name, "stage": step.stage.name.lower(), "options": step.options.model_dump(mode="json"),
                        "record": out.record, **({"shortfall": out.shortfall} if out.shortfall else {})})
    return images, records


def shortfalls(records: list[dict[str, Any]]) -> list[str]:
    """The ``PostResult.shortfall`` lines of a run's step records (``run_post``), each
    prefixed with its step's name."""
    return [f"{r['name']}: {r['shortfall']}" for r in records if r.get("shortfall")]


def write_output(image: Image.Image, folder: Path, stem: str, recipe: dict[str, Any] | None, steps: list[PostStep],
                 ctx: PostContext, *, log: dict[str, Any] | None = None) -> Path:
    """Save a new PNG (with ``recipe``, if any, else with ``log``, a ``recipe.PostLog``,
    if any) as ``folder/STEM.png``, or ``STEM-1.png``...: the first free name, claimed
    atomically (``images.save_new``), so runs writing into one folder at once never
    overwrite each other's files. Then the steps' file-level work."""
    pnginfo = recipe_pnginfo(recipe) if recipe is not None else post_log_pnginfo(log) if log is not None else None
    path = save_new(image, folder, stem, **({} if pnginfo is None else {"pnginfo": pnginfo}))
    for step in steps:  # file-level work, e.g. signing; each rewrites the file atomically
        with blame(step.plugin, f"post-processor '{step.name}' (after_save)"):
            step.processor.after_save(path, step.options, ctx)
    return path


def postprocess_image(
    image: Image.Image, recipe: dict[str, Any] | None, post: list[PostSpec], *, registry: Registry,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, list[dict[str, Any]], list[PostStep], PostContext]:
    """Run ``post`` on one RGB image, with ``recipe`` (a toolkit PNG's, or None) describing
    it: what `toolkit post` does before writing, and what replay repeats for each of a
    recipe's ``post_runs``. Returns images ``(1, 3, H, W)`` in [-1, 1], the steps' records,
    the steps and their context (for ``write_output``)."""
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
    return images, records, steps, ctx


def postprocess_file(source: str | Path, post: list[PostSpec], out_dir: str | Path, *, registry: Registry | None = None,
                     progress: Progress | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Run a post-processing chain on an existing image file (``toolkit post``): upscale or
    watermark a photo, or sign a toolkit PNG made earlier. Writes a new PNG in
    ``out_dir`` (the source is never touched) and returns it with the steps' records.

    A toolkit PNG keeps its recipe, with the new steps appended to its chain and records and
    the chain itself to its ``post_runs`` (so replay can run it again); any other image gets
    no recipe (there is nothing to replay) but a ``toolkit-post`` record of the steps
    (``recipe.PostLog``), added to the one an earlier run wrote, so that what a safety check
    found stays with the file. A recipe or record that is not valid is refused."""
    registry = registry or get_registry()
    source = Path(source)
    image = to_rgb(open_image(source, what="image"))
    log: dict[str, Any] | None = None
    try:
        recipe: dict[str, Any] | None = read_recipe(source)
    except NoRecipeError:
        recipe = None
        try:
            log = read_post_log(source)
        except NoRecipeError:
            log = {"format": POST_FORMAT, "postprocessors": [], "chain": []}
    images, records, steps, ctx = postprocess_image(image, recipe, post, registry=registry, progress=progress)
    chain = [f"{s.name} [{s.stage.name.lower()}]" for s in steps]
    if recipe is not None:
        ran = [{"name": s.name, "options": s.options.model_dump(mode="json")} for s in steps]
        recipe = {**recipe, "postprocessors": recipe["postprocessors"] + records,
                  "post_runs": recipe["post_runs"] + [ran], "chain": recipe["chain"] + chain}
    else:
        log = {**log, "postprocessors": log["postprocessors"] + records, "chain": log["chain"] + chain,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return write_output(tensor_to_pil(images)[0], Path(out_dir), f"{source.stem}-post", recipe, steps, ctx,
                        log=log), records


