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

from toolkit.components import Conditioning, GenerateArgs, Generator, PostContext
from toolkit.errors import InvalidRequestError, ModelError, RecipeError, ToolkitError, UnsupportedRequestError
from toolkit.generation.device import resolve_device
from toolkit.generation.files import file_subject
from toolkit.generation.images import open_image, tensor_to_pil, to_data_url
from toolkit.generation.post import PostStep, plan_post, postprocess_image, run_post, write_output
from toolkit.generation.recipe import RECIPE_FORMAT, library_versions, read_recipe
from toolkit.generation.request import GenerationRequest, PostSpec, parse_request
from toolkit.generation.store import (
    LoadedModel,
    ModelInfo,
    conditioner_name,
    find_model,
    generator_class,
    list_models,
    load_model,
)
from toolkit.generation.threads import choose_once
from toolkit.host.loading import blame, get_registry
from toolkit.host.registry import Registry

Progress = Callable[[int, int], None]


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
        """Human-readable order of everything that runs, e.g. ["my-model (ddpm, ddim)", "sepia [edit]"]."""
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

    def save(self, out_dir: str | Path, *, prefix: str | None = None) -> list[Path]:
        """Write the images as `toolkit generate` does: PNGs carrying their recipe (so
        `toolkit generate --replay` makes them again) and the post-processors' file-level
        work (a signature), never over an existing file. ``images[i].save(...)`` keeps only
        the pixels."""
        return save(self, out_dir, prefix=prefix)


# -- planning: cheap checks, no weights ----------------------------------------------------


def plan(request: GenerationRequest, registry: Registry | None = None) -> Plan:
    registry = registry or get_registry()
    model = find_model(request.model, registry)
    generator_cls = generator_class(model, registry)
    _check_hyperparameters(model, generator_cls)
    _check_conditioning(request, model, registry)
    height, width = _resolve_size(request, model, registry)
    # No --model: the default (config.toml's `model` or the folder marked default), recorded by name, or by
    # path when config.toml names a folder, so that a replay finds the same one
    chosen = str(model.path) if model.source == "path" else model.name
    updates: dict[str, Any] = {"model": request.model or chosen, "height": height, "width": width}
    updates.update(_resolve_sampling(request, model, generator_cls, registry))
    if request.class_label is not None and "num_classes" in model.config and request.class_label >= model.config["num_classes"]:
        raise InvalidRequestError(
            f"--class: model '{model.name}' has classes 0-{model.config['num_classes'] - 1} (got {request.class_label})"
        )
    if request.mask is not None and request.init_image is None:
        raise InvalidRequestError("--mask marks what to regenerate in --init-image; pass --init-image too")
    if request.init_image is not None and request.mask is None:
        raise InvalidRequestError("--init-image needs a --mask: white marks what to redraw (an all-white mask redraws everything)")
    for kind in ("sketch", "mask", "init_image"):  # recorded as the model's conditioner reads them
        value = getattr(request, kind)
        if value is not None:
            conditioner = registry.get("conditioners", conditioner_name(model.config, kind))
            updates[kind] = to_data_url(conditioner.fit(open_image(value, what=kind.replace("_", " ")), width, height))
    updates["seed"] = request.seed if request.seed is not None else secrets.randbelow(2**31)
    resolved = parse_request(request.model_dump() | updates)
    return Plan(resolved, model, generator_cls, plan_post(resolved, registry), registry)


def _check_hyperparameters(model: ModelInfo, cls: type[Generator]) -> None:
    """The model's config.json against its generator's ``Config`` (its types and bounds),
    before anything is built from it: a tampered ``latent_dim: 1e7`` is refused here rather
    than allocating tens of gigabytes. Generators without a ``Config`` check their own."""
    config_cls = getattr(cls, "Config", None)
    if not (isinstance(config_cls, type) and issubclass(config_cls, BaseModel)):
        return
    try:
        config_cls.model_validate({k: v for k, v in model.config.items() if k in config_cls.model_fields})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise ModelError(f"model '{model.name}' ({model.path}) has values its generator refuses ({problems}); "
                         "restore the model folder or re-export it") from None


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


# -- running ------------------------------------------------------------------------------


def encode_conditioning(plan: Plan, model: LoadedModel, n: int) -> Conditioning:
    """Encode each input the request carries with the model's conditioners, for a batch of ``n``."""
    request = plan.request
    assert request.height is not None and request.width is not None
    size = {"n": n, "height": request.height, "width": request.width}
    cond = Conditioning()
    if request.prompt is not None or request.negative_prompt is not None:
        text = model.conditioner("text")
        cond.text = text.encode(request.prompt or "", **size)
        if request.negative_prompt is not None:
            cond.negative_text = text.encode(request.negative_prompt, **size)
    if request.class_label is not None:
        cond.class_labels = model.conditioner("class").encode(request.class_label, **size)
    for kind in ("sketch", "mask", "init_image"):
        value = getattr(request, kind)
        if value is not None:
            conditioner = model.conditioner(kind)
            extra = {name: getattr(request, name) for name in conditioner.request_fields}
            setattr(cond, kind, conditioner.encode(open_image(value, what=kind), **size, **extra))
    return cond


def run(plan: Plan, *, device: str | None = None, progress: Progress | None = None) -> GenerationResult:
    """Generate what ``plan`` says on ``device`` (None: ``device`` in config.toml, else the CPU)."""
    request = plan.request
    assert request.seed is not None and request.height is not None and request.width is not None
    device = resolve_device(device, flag="device=")
    choose_once()  # the Python API's first generation; the CLI chose as it started
    plugin = plan.registry.generators[plan.generator_cls.name].plugin
    with blame(plugin, f"loading model '{plan.model.name}'"):
        model = load_model(plan.model, plan.registry, device)
    sha = plan.model.sha256()
    cond = encode_conditioning(plan, model, request.n)
    sampler = plan.registry.get("samplers", request.sampler) if request.sampler else None
    args = GenerateArgs(
        n=request.n, height=request.height, width=request.width,
        generator=torch.Generator(device).manual_seed(request.seed),
        steps=request.steps, guidance_scale=request.guidance_scale,
        sampler=sampler, sampler_name=request.sampler, truncation=request.truncation, progress=progress,
        sketch_scale=1.0 if request.sketch_scale is None else request.sketch_scale,
    )
    with torch.inference_mode(), blame(plugin, f"generator '{plan.model.generator}'"):
        images = model.generator.generate(cond, args)
    expected = (request.n, 3, request.height, request.width)
    if tuple(images.shape) != expected:
        raise RuntimeError(f"generator '{plan.model.generator}' returned {tuple(images.shape)}, expected {expected}")

    ctx = PostContext(request=request, seed=request.seed, model_name=plan.model.name, model_sha256=sha,
                      generator=model.generator, progress=progress, registry=plan.registry)
    images, records = run_post(plan.post, images, ctx)
    pil = tensor_to_pil(images)
    base = _recipe_base(plan, sha, records)
    recipes = [{**base, "index": i} for i in range(len(pil))]
    return GenerationResult(pil, recipes, plan, records)


def _recipe_base(plan: Plan, sha: str, post_records: list[dict[str, Any]]) -> dict[str, Any]:
    reg, cfg = plan.registry, plan.model.config
    used = {reg.generators[plan.generator_cls.name].plugin}
    used |= {s.plugin for s in plan.post}
    if plan.request.sampler:
        used.add(reg.samplers[plan.request.sampler].plugin)
    for kind in plan.request.conditioning_kinds() | ({"text"} if plan.request.negative_prompt else set()):
        name = conditioner_name(cfg, kind)
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
        "threads": torch.get_num_threads(),  # another count can move a pixel by one level
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def generate(request: GenerationRequest | dict[str, Any] | None = None, *, device: str | None = None,
             progress: Progress | None = None, registry: Registry | None = None, **fields: Any) -> GenerationResult:
    """The Python API: ``generate(prompt=..., n=4, seed=0)`` or ``generate(GenerationRequest(...))``.
    What the call leaves out comes from $TOOLKIT_HOME/config.toml where it sets it (``model``,
    ``device``, ``threads``: ``toolkit config`` shows them), else the built-in defaults."""
    return run(plan(parse_request(request, **fields), registry), device=device, progress=progress)


# -- saving and replay ---------------------------------------------------------------------


def save(result: GenerationResult, out_dir: str | Path, *, prefix: str | None = None) -> list[Path]:
    """Write each image as a PNG with its recipe, named MODEL-SUBJECT-SEED-INDEX.png
    (``file_subject``; ``prefix`` replaces all but the index). Existing files are never
    overwritten."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subject = file_subject(result.plan.request, result.plan.model.config)
    stem = prefix or "-".join(part for part in (result.plan.model.name, subject, str(result.seed)) if part)
    paths = []
    for image, recipe in zip(result.images, result.recipes):
        ctx = PostContext(result.plan.request, result.seed, result.plan.model.name, recipe["model"]["sha256"],
                          registry=result.plan.registry)
        paths.append(write_output(image, out, f"{stem}-{recipe['index']:02d}", recipe, result.plan.post, ctx))
    return paths


def replay(png: str | Path, *, device: str | None = None, progress: Progress | None = None,
           registry: Registry | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """Make a toolkit PNG again from its recipe: the generation, then each chain `toolkit
    post` ran on it since (the recipe's ``post_runs``); returns the image and the recipe.
    A file whose later changes cannot be made again is refused, saying why."""
    recipe = read_recipe(png)
    registry = registry or get_registry()
    unrecorded = recipe["postprocessors"][len(recipe["request"]["post"]) + sum(map(len, recipe["post_runs"])):]
    if unrecorded:
        raise RecipeError(
            f"{png} was changed by `toolkit post` ({', '.join(r['name'] for r in unrecorded)}) with a toolkit that did "
            "not record how to do it again; replay the file it was made from"
        )
    device = resolve_device(device, flag="device=")
    request = parse_request(recipe["request"])
    planned = plan(request, registry)
    sha = planned.model.sha256()
    if sha != recipe["model"]["sha256"]:
        raise RecipeError(
            f"model '{planned.model.name}' has different weights now (sha256 {sha[:12]}...) than when {png} "
            f"was made ({recipe['model']['sha256'][:12]}...); install the original model to replay it"
        )
    result = run(planned, device=device, progress=progress)
    image = result.images[recipe["index"]]
    for chain in recipe["post_runs"]:
        specs = [PostSpec.model_validate(step) for step in chain]
        try:
            images, *_ = postprocess_image(image, recipe, specs, registry=registry, progress=progress)
        except ToolkitError as error:
            raise RecipeError(f"{png} was post-processed after it was made ({', '.join(s.name for s in specs)}), "
                              f"and that cannot run again here: {error}") from None
        image = tensor_to_pil(images)[0]
    return image, recipe
