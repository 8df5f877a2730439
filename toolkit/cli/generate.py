"""`toolkit generate`, `toolkit post`, `toolkit info` and `toolkit verify`: making images and
reading back what a file carries."""

from __future__ import annotations

import json
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from toolkit.cli.params import DEVICE, OutputPath, output_folder
from toolkit.cli.root import CommandContext, cli, console, out, progress_bar
from toolkit.errors import InvalidRequestError, RecipeError
from toolkit.generation.request import GenerationRequest, PostSpec


def _base_type(annotation: Any) -> type:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def request_options(func: Any) -> Any:
    """Add one CLI option per ``GenerationRequest`` field (help text = field description)."""
    for name, field in reversed(list(GenerationRequest.model_fields.items())):
        extra = field.json_schema_extra or {}
        flags = [extra["flag"]] + (["-n"] if name == "n" else [])
        if name == "post":
            option = click.option(*flags, name, multiple=True, metavar="NAME[:k=v,...]", help=field.description)
        elif extra.get("image"):
            option = click.option(*flags, name, type=str, metavar="FILE", help=field.description)
        elif _base_type(field.annotation) is bool:
            option = click.option(*flags, name, is_flag=True, default=None, help=field.description)
        else:
            option = click.option(*flags, name, type=_base_type(field.annotation), default=None, help=field.description)
        func = option(func)
    return func


@cli.command()
@request_options
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Folder for the PNGs (never overwritten). [default: `out` in config.toml, else out]")
@click.option("--replay", type=click.Path(dir_okay=False),
              help="Make a toolkit PNG again from the recipe inside it (only --out and --device apply); "
                   "exits 1 if the image differs.")
@click.option("--device", type=DEVICE, default=None,
              help="torch device, e.g. cuda. [default: `device` in config.toml, else cpu]")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (paths, seed, model, request, post-processors' records, timings) "
                   "instead of the paths.")
@click.pass_obj
def generate(obj: CommandContext, out_dir: str | None, replay: str | None, device: str | None, as_json: bool,
             **fields: Any) -> None:
    """Generate images; each PNG carries its full recipe.

    \b
    Examples:
      toolkit generate --prompt "a large green triangle in the center" --n 4
      toolkit generate --model ddpm-digits --class 7 --n 16 --sampler ddim --steps 20
      toolkit generate --model gan-digits --class 3 --post upscale-lanczos:scale=4
      toolkit generate --replay out/ddpm-digits-class-7-42-00.png
      toolkit generate --class 3 --json | jq -r '.images[].path'

    \b
    Exit status: 0 done; 1 an error (one line says what to do; nothing half-written);
    2 a command line that cannot be read; 3 the images were written but a post-processor
    could not do all it was asked (a watermark that does not read back: the line says which;
    with --json, after the JSON, whose "shortfalls" list it too).
    """
    from toolkit.generation import pipeline
    from toolkit.generation.device import resolve_device

    started = time.perf_counter()
    out_dir = output_folder(out_dir, "out")  # flag, config.toml, default: `toolkit config` shows which
    device = resolve_device(device)

    if replay:
        given = [GenerationRequest.model_fields[name].json_schema_extra["flag"]  # type: ignore[index]
                 for name, value in fields.items() if value is not None and value != ()]
        if given:
            raise InvalidRequestError(f"--replay makes exactly the image its recipe describes, so {', '.join(given)} "
                                      "cannot change it; leave them out (only --out and --device apply)")
        _replay(Path(replay), Path(out_dir), device, obj, as_json)
        return
    fields["post"] = [PostSpec.parse(p) for p in fields.get("post") or ()]
    request = pipeline.parse_request({k: v for k, v in fields.items() if v is not None and v != []})
    plan = pipeline.plan(request, obj.registry)
    planned = time.perf_counter()
    console.print(f"chain: {' -> '.join(plan.chain)}   seed: {plan.request.seed}", highlight=False, markup=False)
    with progress_bar() as bar:
        task = bar.add_task(f"generating {plan.request.n} image(s)", total=None)
        result = pipeline.run(plan, device=device, progress=lambda done, total: bar.update(task, completed=done, total=total))
    ran = time.perf_counter()
    for record in result.post_records:
        if record["record"]:
            console.print(f"{record['name']}: {json.dumps(record['record'])}", highlight=False, markup=False)
    paths = pipeline.save(result, out_dir)
    if as_json:
        seconds = {"plan": planned - started, "generate": ran - planned, "save": time.perf_counter() - ran,
                   "total": time.perf_counter() - started}
        out.print_json(json.dumps(_generation_json(result, paths, fields, device, seconds)))
    else:
        for path in paths:
            out.print(str(path), highlight=False, markup=False, soft_wrap=True)
    _exit_if_short(result.post_records)


def _generation_json(result: Any, paths: list[Path], fields: dict[str, Any], device: str,
                     seconds: dict[str, float]) -> dict[str, Any]:
    """What `generate --json` prints. The request is the resolved one (seed, size, sampler,
    steps filled in), with input images named by the files given, not embedded."""
    import torch

    from toolkit.generation.post import shortfalls

    request = result.plan.request.model_dump(mode="json")
    request.update({key: fields[key] for key in ("sketch", "mask", "init_image") if request.get(key)})
    return {"model": result.plan.model.name, "seed": result.seed, "chain": result.plan.chain, "request": request,
            "images": [{"path": str(path), "index": recipe["index"]} for path, recipe in zip(paths, result.recipes)],
            "post": result.post_records, "shortfalls": shortfalls(result.post_records), "device": device,
            "threads": torch.get_num_threads(), "seconds": _rounded(seconds)}


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 3) for name, value in seconds.items()}


@cli.command("post")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--post", "post", multiple=True, required=True, metavar="NAME[:k=v,...]",
              help="Post-processor to run, in chain order (repeat the flag); see `toolkit plugins`.")
@click.option("--out", "out_dir", type=OutputPath(folder=True), default="out", show_default=True,
              help="Folder for the results (sources are never touched, nothing is overwritten).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (each file's source, path and post-processors' records, timings) "
                   "instead of the paths.")
@click.pass_obj
def post_cmd(obj: CommandContext, images: tuple[str, ...], post: tuple[str, ...], out_dir: str, as_json: bool) -> None:
    """Run post-processors on existing image files: upscale a photo, watermark or sign a
    PNG made earlier. A toolkit PNG keeps its recipe, with the new steps added.

    \b
    Examples:
      toolkit post photo.jpg --post upscale-realesrgan:scale=4
      toolkit post out/*.png --post watermark --post c2pa --out signed/

    \b
    Exit status: as `toolkit generate`'s; 3: every file was written, but a post-processor
    could not do all it was asked for one of them (a watermark that does not read back).
    """
    from toolkit.generation.post import postprocess_file, shortfalls

    started = time.perf_counter()
    specs = [PostSpec.parse(p) for p in post]
    short: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    with progress_bar() as bar:
        for source in images:
            task = bar.add_task(f"post-processing {Path(source).name}", total=None)
            began = time.perf_counter()
            path, records = postprocess_file(source, specs, out_dir, registry=obj.registry,
                                                      progress=lambda d, t, task=task: bar.update(task, completed=d, total=t))
            bar.update(task, visible=False)
            for record in records:
                if record["record"]:
                    console.print(f"{record['name']}: {json.dumps(record['record'])}", highlight=False, markup=False)
            if as_json:
                done.append({"source": source, "path": str(path), "post": records, "shortfalls": shortfalls(records),
                             "seconds": round(time.perf_counter() - began, 3)})
            else:
                out.print(str(path), highlight=False, markup=False, soft_wrap=True)
            short += records
    if as_json:
        out.print_json(json.dumps({"images": done, "shortfalls": shortfalls(short),
                                   "seconds": _rounded({"total": time.perf_counter() - started})}))
    _exit_if_short(short)


SHORTFALL_STATUS = 3  # the images were written, but a post-processor could not do all it was asked


def _exit_if_short(records: list[dict[str, Any]]) -> None:
    """Say each post-processor's shortfall and exit with ``SHORTFALL_STATUS`` if there is one."""
    from toolkit.generation.post import shortfalls

    lines = shortfalls(records)
    for line in lines:
        console.print(f"[bold yellow]Incomplete:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if lines:
        sys.exit(SHORTFALL_STATUS)


def _replay(png: Path, out_dir: Path, device: str, obj: CommandContext, as_json: bool) -> None:
    import numpy as np

    from toolkit.generation import pipeline
    from toolkit.generation.images import open_image, save_new
    from toolkit.generation.recipe import recipe_pnginfo

    with progress_bar() as bar:
        task = bar.add_task(f"replaying {png.name}", total=None)
        image, recipe = pipeline.replay(png, device=device, registry=obj.registry, progress=lambda d, t: bar.update(task, completed=d, total=t))
    target = save_new(image, out_dir, f"{png.stem}-replay", pnginfo=recipe_pnginfo(recipe))
    same = np.array_equal(np.asarray(open_image(png).convert("RGB")), np.asarray(image))
    console.print(f"identical to the original: {'yes' if same else 'NO'}")
    if as_json:
        out.print_json(json.dumps({"source": str(png), "path": str(target), "identical": same,
                                   "model": recipe["model"]["name"], "seed": recipe["seed"], "index": recipe["index"]}))
    else:
        out.print(str(target), highlight=False, markup=False, soft_wrap=True)
    if not same:
        raise RecipeError(f"the replay ({target}) differs from {png}: {_why_different(recipe)}")


def _why_different(recipe: dict[str, Any]) -> str:
    """What differs from when the image was made, as far as the recipe recorded it."""
    import torch

    from toolkit.generation.recipe import library_versions

    threads = recipe.get("threads")
    if threads and threads != torch.get_num_threads():
        return (f"{threads} torch threads then, {torch.get_num_threads()} now, which can move a pixel by one level; "
                f"replay with `toolkit --threads {threads} generate --replay ...`")
    now = library_versions()
    changed = [f"{name} {then} then, {now.get(name, 'not installed')} now"
               for name, then in sorted(recipe["versions"].items()) if now.get(name) != then]
    if changed:
        return "other library versions (" + "; ".join(changed) + ")"
    return ("the same library versions, so another CPU or GPU (or --device), or a plugin whose output is not "
            "deterministic")


@cli.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the raw recipe, input images included.")
def info(image: str, as_json: bool) -> None:
    """Print the recipe a toolkit PNG carries: request, seed, model and its sha256, plugins, versions."""
    from toolkit.generation.recipe import read_recipe

    recipe = read_recipe(image)
    if not as_json:
        request = recipe["request"]
        for key in ("sketch", "mask", "init_image"):
            if request.get(key):
                request[key] = f"<PNG, {len(request[key]) * 3 // 4 // 1024} kB embedded; --json shows it>"
    out.print_json(json.dumps(recipe))


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--trust", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="CA.pem",
              help="Trust signers this CA certificate issued (repeatable), e.g. `toolkit keys create`'s ca.pem.")
@click.option("--check", "checks", multiple=True, metavar="NAME:k=v,...",
              help="An option for one post-processor's check (repeatable), e.g. a key it reads marks with.")
@click.pass_obj
def verify(obj: CommandContext, images: tuple[str, ...], as_json: bool, trust: tuple[str, ...], checks: tuple[str, ...]) -> None:
    """Say what each image carries: an invisible watermark's payload (or none), the toolkit
    recipe if present, and its Content Credentials and whether they validate.

    Every installed post-processor that can read something back is asked (see `toolkit
    plugins`), so a plugin's own watermark or signature shows up here too. Works on any
    image file, not only toolkit's PNGs. A watermark without Content Credentials gets a
    note that they may have been stripped.

    \b
    Exit status, for scripts (over several files, the first that applies):
      2  something is invalid: Content Credentials that do not validate, an altered recipe
      3  a mark the file's recipe says was applied is missing (a watermark, credentials)
      1  a file could not be read, or a check could not run (the others are still reported)
      0  every file was read, nothing is invalid and nothing expected is missing
    --json gives each file's findings, "status", "missing" and "notes".

    \b
    Examples:
      toolkit verify out/*.png
      toolkit verify photo.jpg --json
      toolkit verify --trust ca.pem out/*.png   # the CA `toolkit keys create` printed
    """
    from toolkit.cli.root import print_error
    from toolkit.errors import ToolkitError
    from toolkit.generation.verify import exit_status, verify_image

    options: dict[str, dict[str, Any]] = {}
    for spec in map(PostSpec.parse, checks):
        twice = sorted(set(options.get(spec.name, {})) & set(spec.options))
        if twice:
            raise InvalidRequestError(f"--check gives {spec.name}'s {', '.join(twice)} more than once")
        options.setdefault(spec.name, {}).update(spec.options)
    reports = []
    for path in images:
        try:
            reports.append(verify_image(Path(path), obj.registry, trust=[Path(t) for t in trust], options=options))
        except InvalidRequestError:
            raise  # the options, not this file: the same for every file
        except ToolkitError as error:
            print_error(error)
            reports.append({"path": path, "error": str(error), "status": "error"})
    if as_json:
        out.print_json(json.dumps(reports))
    else:
        for report in (r for r in reports if "found" in r):
            out.print(f"[bold]{escape(report['path'])}[/]")
            for key, value in report["found"].items():
                text = value if isinstance(value, str) else json.dumps(value)
                out.print(f"  {key}: {escape(text)}", soft_wrap=True)
            for why in report.get("missing", {}).values():
                out.print(f"  missing: {escape(why)}", soft_wrap=True)
            for note in report.get("notes", []):
                out.print(f"  note: {escape(note)}", soft_wrap=True)
    for report in (r for r in reports if "found" in r and r["status"] != "ok"):  # one line each, for scripts
        invalid = [k for k, v in report["found"].items() if isinstance(v, dict) and v.get("state") == "invalid"]
        failed = [k for k, v in report["found"].items() if isinstance(v, str) and v.startswith("could not check")]
        missing = list(report.get("missing", {}))
        print_error(f"{report['path']}: " + "; ".join(f"{what}: {', '.join(names)}" for what, names in
                                                      (("invalid", invalid), ("missing", missing),
                                                       ("could not check", failed)) if names))
    status = exit_status(reports)
    if status:
        sys.exit(status)


