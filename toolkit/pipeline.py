"""request -> conditioners -> generator (+ sampler) -> post-processors -> images.

``plan`` checks a request against the model's declared abilities without loading any
weights, so a request that cannot be served fails before any work. ``run`` executes a
plan; ``save`` writes the PNGs, each with its recipe. ``generate`` does all three steps
but saving, and is the Python API:

    >>> from toolkit import generate
    >>> result = generate(prompt="a large green triangle in the center", seed=1)
    >>> result.images[0].save("triangle.png")
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from .components import Conditioning, GenerateArgs, Generator, PostContext, Stage
from .errors import InvalidRequestError, RecipeError, UnsupportedRequestError
from .images import fit_to, open_image, pil_to_tensor, save_atomic, tensor_to_pil, to_data_url, to_rgb
from .plugins import get_registry
from .recipe import RECIPE_FORMAT, library_versions, read_recipe, write_png
from .registry import Registry
from .request import GenerationRequest, PostSpec, parse_request
from .store import ModelInfo, find_model, generator_class, list_models, load_generator

Progress = Callable[[int, int], None]


@dataclass
class PostStep:
    name: str
    stage: Stage
    processor: Any  # a PostProcessor instance
    options: BaseModel
    plugin: str


@dataclass
class Plan:
    """A request checked against its model, every default filled in."""

    request: GenerationRequest  # resolved: seed, size, steps, sampler and guidance set
    model: ModelInfo
    generator_cls: type[Generator]
    post: list[PostStep]
    registry: Registry

    @property
    def chain(self) -> list[str]:
        """Human-readable order of everything that runs, e.g. ["ddpm-digits (ddpm, ddim)", "sepia"]."""
        sampler = f", {self.request.sampler}" if self.request.sampler else ""
        return [f"{self.model.name} ({self.model.generator}{sampler})"] + [f"{p.name} [{p.stage.name.lower()}]" for p in self.post]


@dataclass
class GenerationResult:
    images: list[Image.Image]
    recipes: list[dict[str, Any]]
    plan: Plan
    post_records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        assert self.plan.request.seed is not None
        return self.plan.request.seed


# -- planning: cheap checks, no weights ----------------------------------------------------


def plan(request: GenerationRequest, registry: Registry | None = None) -> Plan:
    registry = registry or get_registry()
    model = find_model(request.model, registry)
    generator_cls = generator_class(model, registry)
    _check_conditioning(request, model, registry)
    height, width = _resolve_size(request, model, registry)
    updates: dict[str, Any] = {"model": request.model or model.name, "height": height, "width": width}
    updates.update(_resolve_sampling(request, model, generator_cls, registry))
    if request.class_label is not None and "num_classes" in model.config and request.class_label >= model.config["num_classes"]:
        raise InvalidRequestError(
            f"--class: model '{model.name}' has classes 0-{model.config['num_classes'] - 1} (got {request.class_label})"
        )
    if request.mask is not None and request.init_image is None:
        raise InvalidRequestError("--mask marks what to regenerate in --init-image; pass --init-image too")
    for field_name in ("sketch", "mask", "init_image"):  # record inputs at the size actually used
        value = getattr(request, field_name)
        if value is not None:
            image = fit_to(to_rgb(open_image(value, what=field_name)), width, height, what=field_name.replace("_", " "))
            updates[field_name] = to_data_url(image)
    updates["seed"] = request.seed if request.seed is not None else secrets.randbelow(2**31)
    resolved = parse_request(request.model_dump() | updates)
    return Plan(resolved, model, generator_cls, _plan_post(resolved, registry), registry)


def _models_accepting(kinds: set[str], registry: Registry) -> list[str]:
    return [m.name for m in list_models(registry) if kinds <= m.accepts]


def _check_conditioning(request: GenerationRequest, model: ModelInfo, registry: Registry) -> None:
    wanted = request.conditioning_kinds()
    if request.negative_prompt is not None:
        wanted.add("text")
    missing = wanted - model.accepts
    if missing:
        able = _models_accepting(wanted, registry)
        raise UnsupportedRequestError(
            f"model '{model.name}' ({model.generator}) does not accept {', '.join(sorted(missing))} "
            f"(it accepts: {', '.join(sorted(model.accepts)) or 'nothing'}); models that accept "
            f"{' + '.join(sorted(wanted))}: {', '.join(able) or 'none installed'}"
        )


def _resolve_size(request: GenerationRequest, model: ModelInfo, registry: Registry) -> tuple[int, int]:
    sizes = model.sizes
    if not sizes:
        raise UnsupportedRequestError(f"model '{model.name}' declares no sizes in its config.json; re-export it")
    default_h, default_w = sizes[0]
    height, width = request.height or default_h, request.width or default_w
    if (height, width) not in sizes:
        able = [m.name for m in list_models(registry) if (height, width) in m.sizes]
        raise UnsupportedRequestError(
            f"model '{model.name}' makes {', '.join(f'{w}x{h}' for h, w in sizes)} images, not {width}x{height}; "
            f"models that make {width}x{height}: {', '.join(able) or 'none installed'} (or upscale with --post)"
        )
    return height, width


def _resolve_sampling(request: GenerationRequest, model: ModelInfo, cls: type[Generator], registry: Registry) -> dict[str, Any]:
    resolved = _resolve_truncation(request, model, cls, registry)
    if not cls.uses_sampler:
        used = [flag for flag, value in (("--sampler", request.sampler), ("--steps", request.steps)) if value is not None]
        if used:
            able = [m.name for m in list_models(registry) if m.generator in {n for n, e in registry.generators.items() if e.obj.uses_sampler}]
            raise UnsupportedRequestError(
                f"{' and '.join(used)} apply to diffusion models; '{model.name}' ({model.generator}) samples in one "
                f"step. Diffusion models: {', '.join(able) or 'none installed'}"
            )
        return resolved
    sampler = request.sampler or model.config.get("default_sampler") or cls.default_sampler
    if sampler is not None:
        registry.get("samplers", sampler)  # unknown name -> clear error with suggestions
    return resolved | {
        "sampler": sampler,
        "steps": request.steps or model.config.get("default_steps") or cls.default_steps,
        "guidance_scale": request.guidance_scale
        if request.guidance_scale is not None
        else model.config.get("default_guidance_scale", cls.default_guidance_scale),
    }


def _resolve_truncation(request: GenerationRequest, model: ModelInfo, cls: type[Generator], registry: Registry) -> dict[str, Any]:
    if not cls.uses_truncation:
        if request.truncation is not None:
            able = [m.name for m in list_models(registry) if m.generator in {n for n, e in registry.generators.items() if e.obj.uses_truncation}]
            raise UnsupportedRequestError(
                f"--truncation applies to models that sample a latent (GAN, VAE); '{model.name}' ({model.generator}) "
                f"does not. Models that take it: {', '.join(able) or 'none installed'}"
            )
        return {}
    default = model.config.get("default_truncation", cls.default_truncation)
    return {"truncation": request.truncation if request.truncation is not None else default}


def _plan_post(request: GenerationRequest, registry: Registry) -> list[PostStep]:
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
        step.processor.check_request(request, step.options)
    return steps


# -- running ------------------------------------------------------------------------------


def encode_conditioning(plan: Plan, n: int) -> Conditioning:
    """Run each conditioner the request needs; text conditioners may load model weights."""
    request, cfg = plan.request, plan.model.config
    assert request.height is not None and request.width is not None
    size = {"n": n, "height": request.height, "width": request.width}
    chosen = cfg.get("conditioners", {})

    def encoder(kind: str) -> Any:
        cls = plan.registry.get("conditioners", chosen.get(kind, kind))
        return cls.load(plan.model.path, cfg)

    cond = Conditioning()
    if request.prompt is not None or request.negative_prompt is not None:
        text = encoder("text")
        cond.text = text.encode(request.prompt or "", **size)
        if request.negative_prompt is not None:
            cond.negative_text = text.encode(request.negative_prompt, **size)
    if request.class_label is not None:
        cond.class_labels = encoder("class").encode(request.class_label, **size)
    for kind in ("sketch", "mask", "init_image"):
        value = getattr(request, kind)
        if value is not None:
            setattr(cond, kind, encoder(kind).encode(open_image(value, what=kind), **size))
    return cond


def run(plan: Plan, *, device: str = "cpu", progress: Progress | None = None) -> GenerationResult:
    request = plan.request
    assert request.seed is not None and request.height is not None and request.width is not None
    model = load_generator(plan.model, plan.registry, device)
    sha = plan.model.sha256()
    cond = encode_conditioning(plan, request.n)
    sampler = plan.registry.get("samplers", request.sampler) if request.sampler else None
    args = GenerateArgs(
        n=request.n, height=request.height, width=request.width,
        generator=torch.Generator(device).manual_seed(request.seed),
        steps=request.steps, guidance_scale=request.guidance_scale,
        sampler=sampler, sampler_name=request.sampler, truncation=request.truncation, progress=progress,
    )
    with torch.inference_mode():
        images = model.generate(cond, args)
    expected = (request.n, 3, request.height, request.width)
    if tuple(images.shape) != expected:
        raise RuntimeError(f"generator '{plan.model.generator}' returned {tuple(images.shape)}, expected {expected}")

    ctx = PostContext(request=request, seed=request.seed, model_name=plan.model.name, model_sha256=sha, generator=model,
                      progress=progress)
    images, records = run_post(plan.post, images, ctx)
    pil = tensor_to_pil(images)
    base = _recipe_base(plan, sha, records)
    recipes = [{**base, "index": i} for i in range(len(pil))]
    return GenerationResult(pil, recipes, plan, records)


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


def _recipe_base(plan: Plan, sha: str, post_records: list[dict[str, Any]]) -> dict[str, Any]:
    reg, cfg = plan.registry, plan.model.config
    used = {reg.generators[plan.generator_cls.name].plugin}
    used |= {s.plugin for s in plan.post}
    if plan.request.sampler:
        used.add(reg.samplers[plan.request.sampler].plugin)
    for kind in plan.request.conditioning_kinds() | ({"text"} if plan.request.negative_prompt else set()):
        name = cfg.get("conditioners", {}).get(kind, kind)
        if name in reg.conditioners:
            used.add(reg.conditioners[name].plugin)
    plugins = {name: reg.plugins[name].version if name in reg.plugins else None for name in sorted(used)}
    return {
        "format": RECIPE_FORMAT,
        "request": plan.request.model_dump(mode="json"),
        "seed": plan.request.seed,
        "model": {"name": plan.model.name, "generator": plan.model.generator, "sha256": sha},
        "plugins": plugins,
        "postprocessors": post_records,
        "chain": plan.chain,
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def generate(request: GenerationRequest | dict[str, Any] | None = None, *, device: str = "cpu",
             progress: Progress | None = None, registry: Registry | None = None, **fields: Any) -> GenerationResult:
    """The Python API: ``generate(prompt=..., n=4, seed=0)`` or ``generate(GenerationRequest(...))``."""
    return run(plan(parse_request(request, **fields), registry), device=device, progress=progress)


# -- saving and replay ---------------------------------------------------------------------


def save(result: GenerationResult, out_dir: str | Path, *, prefix: str | None = None) -> list[Path]:
    """Write each image as a PNG with its recipe. Existing files are never overwritten."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = prefix or f"{result.plan.model.name}-{result.seed}"
    paths = []
    for image, recipe in zip(result.images, result.recipes):
        ctx = PostContext(result.plan.request, result.seed, result.plan.model.name, recipe["model"]["sha256"])
        paths.append(_write(image, free_path(out, f"{stem}-{recipe['index']:02d}"), recipe, result.plan.post, ctx))
    return paths


def _write(image: Image.Image, path: Path, recipe: dict[str, Any] | None, steps: list[PostStep], ctx: PostContext) -> Path:
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
    steps = _plan_post(request, registry)
    model = recipe["model"] if recipe else {"name": "unknown", "sha256": ""}
    ctx = PostContext(request=request, seed=recipe["seed"] if recipe else 0, model_name=model["name"],
                      model_sha256=model["sha256"], progress=progress)
    with torch.inference_mode():
        images, records = run_post(steps, pil_to_tensor(image), ctx)
    if recipe is not None:
        recipe = {**recipe, "postprocessors": recipe.get("postprocessors", []) + records,
                  "chain": recipe.get("chain", []) + [f"{s.name} [{s.stage.name.lower()}]" for s in steps]}
    path = free_path(Path(out_dir), f"{source.stem}-post")
    return _write(tensor_to_pil(images)[0], path, recipe, steps, ctx), records


def free_path(folder: Path, stem: str) -> Path:
    path, k = folder / f"{stem}.png", 1
    while path.exists():
        path, k = folder / f"{stem}-{k}.png", k + 1
    return path


def replay(png: str | Path, *, device: str = "cpu", progress: Progress | None = None,
           registry: Registry | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """Make a toolkit PNG again from its recipe; returns the image and the recipe."""
    recipe = read_recipe(png)
    request = parse_request(recipe["request"])
    planned = plan(request, registry)
    sha = planned.model.sha256()
    if sha != recipe["model"]["sha256"]:
        raise RecipeError(
            f"model '{planned.model.name}' has different weights now (sha256 {sha[:12]}...) than when {png} "
            f"was made ({recipe['model']['sha256'][:12]}...); install the original model to replay it"
        )
    result = run(planned, device=device, progress=progress)
    return result.images[recipe["index"]], recipe
