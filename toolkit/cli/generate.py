"""`toolkit generate`, `toolkit post`, `toolkit info` and `toolkit verify`: making images and
reading back what a file carries."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from toolkit.cli.root import CommandContext, cli, console, out, progress_bar
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
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out", show_default=True, help="Folder for the PNGs (never overwritten).")
@click.option("--replay", type=click.Path(dir_okay=False), help="Make a toolkit PNG again from the recipe inside it.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.pass_obj
def generate(obj: CommandContext, out_dir: str, replay: str | None, device: str, **fields: Any) -> None:
    """Generate images; each PNG carries its full recipe.

    \b
    Examples:
      toolkit generate --prompt "a large green triangle in the center" --n 4
      toolkit generate --model ddpm-digits --class 7 --n 16 --sampler ddim --steps 20
      toolkit generate --model gan-digits --class 3 --post upscale-lanczos:scale=4
      toolkit generate --replay out/ddpm-digits-42-00.png
    """
    from toolkit.generation import pipeline

    if replay:
        _replay(Path(replay), Path(out_dir), device, obj)
        return
    fields["post"] = [PostSpec.parse(p) for p in fields.get("post") or ()]
    request = pipeline.parse_request({k: v for k, v in fields.items() if v is not None and v != []})
    plan = pipeline.plan(request, obj.registry)
    console.print(f"chain: {' -> '.join(plan.chain)}   seed: {plan.request.seed}", highlight=False, markup=False)
    with progress_bar() as bar:
        task = bar.add_task(f"generating {plan.request.n} image(s)", total=None)
        result = pipeline.run(plan, device=device, progress=lambda done, total: bar.update(task, completed=done, total=total))
    for record in result.post_records:
        if record["record"]:
            console.print(f"{record['name']}: {json.dumps(record['record'])}", highlight=False, markup=False)
    for path in pipeline.save(result, out_dir):
        out.print(str(path), highlight=False, markup=False, soft_wrap=True)


@cli.command("post")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--post", "post", multiple=True, required=True, metavar="NAME[:k=v,...]",
              help="Post-processor to run, in chain order (repeat the flag); see `toolkit plugins`.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out", show_default=True,
              help="Folder for the results (sources are never touched, nothing is overwritten).")
@click.pass_obj
def post_cmd(obj: CommandContext, images: tuple[str, ...], post: tuple[str, ...], out_dir: str) -> None:
    """Run post-processors on existing image files: upscale a photo, watermark or sign a
    PNG made earlier. A toolkit PNG keeps its recipe, with the new steps added.

    \b
    Examples:
      toolkit post photo.jpg --post upscale-realesrgan:scale=4
      toolkit post out/*.png --post watermark --post c2pa --out signed/
    """
    from toolkit.generation.post import postprocess_file

    specs = [PostSpec.parse(p) for p in post]
    with progress_bar() as bar:
        for source in images:
            task = bar.add_task(f"post-processing {Path(source).name}", total=None)
            path, records = postprocess_file(source, specs, out_dir, registry=obj.registry,
                                                      progress=lambda d, t, task=task: bar.update(task, completed=d, total=t))
            bar.update(task, visible=False)
            for record in records:
                if record["record"]:
                    console.print(f"{record['name']}: {json.dumps(record['record'])}", highlight=False, markup=False)
            out.print(str(path), highlight=False, markup=False, soft_wrap=True)


def _replay(png: Path, out_dir: Path, device: str, obj: CommandContext) -> None:
    import numpy as np

    from toolkit.generation import pipeline
    from toolkit.generation.images import open_image
    from toolkit.generation.post import free_path
    from toolkit.generation.recipe import write_png

    with progress_bar() as bar:
        task = bar.add_task(f"replaying {png.name}", total=None)
        image, recipe = pipeline.replay(png, device=device, registry=obj.registry, progress=lambda d, t: bar.update(task, completed=d, total=t))
    target = free_path(out_dir, f"{png.stem}-replay")
    write_png(image, target, recipe)
    same = np.array_equal(np.asarray(open_image(png).convert("RGB")), np.asarray(image))
    console.print(f"identical to the original: {'yes' if same else 'NO (different machine or library versions?)'}")
    out.print(str(target), highlight=False, markup=False, soft_wrap=True)


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
    image file, not only toolkit's PNGs.

    \b
    Examples:
      toolkit verify out/*.png
      toolkit verify photo.jpg --json
      toolkit verify --trust ca.pem out/*.png   # the CA `toolkit keys create` printed
    """
    from toolkit.generation.verify import verify_image

    options = {spec.name: spec.options for spec in map(PostSpec.parse, checks)}
    reports = [verify_image(Path(path), obj.registry, trust=[Path(t) for t in trust], options=options) for path in images]
    if as_json:
        out.print_json(json.dumps(reports))
        return
    for report in reports:
        out.print(f"[bold]{escape(report['path'])}[/]")
        for key, value in report["found"].items():
            text = value if isinstance(value, str) else json.dumps(value)
            out.print(f"  {key}: {escape(text)}", soft_wrap=True)


