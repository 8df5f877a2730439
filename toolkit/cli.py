"""The ``toolkit`` command.

Every user mistake is a ``ToolkitError``: printed on one line, exit status 1; a traceback
only with ``toolkit --debug``. The ``generate`` flags are built from ``GenerationRequest``,
so the CLI, the Python API and the web app share one schema.
"""

from __future__ import annotations

import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text
from rich.table import Table

from .errors import InvalidRequestError, ToolkitError
from .request import GenerationRequest, PostSpec

console = Console(stderr=True)
out = Console()


class RateColumn(ProgressColumn):
    """Items per second, e.g. "12.3 it/s"."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s", style="progress.data.speed")


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=transient,
        disable=not console.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    return os.environ.get("TOOLKIT_PROGRESS") == "1"


def print_error(error: Exception) -> None:
    console.print(f"[bold red]Error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


class ToolkitGroup(click.Group):
    """Turns ToolkitErrors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ToolkitError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            print_error(error)
            sys.exit(1)


@click.group(cls=ToolkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="toolkit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """toolkit: generate images with GANs, VAEs, DDPMs and latent diffusion, conditioned on
    text, class labels, sketches and masks, extended by plugins.

    \b
    Start here:
      toolkit models                      the models you can use
      toolkit generate --prompt "..."     make images (see toolkit generate --help)
      toolkit plugins                     what is installed, and what is broken
      toolkit dataset preview shapes      look at a dataset
      toolkit eval --model ddpm-digits    score a model against its dataset
    """
    ctx.ensure_object(dict)["debug"] = debug


# -- generate ------------------------------------------------------------------------------


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
        else:
            kind = _base_type(field.annotation)
            option = click.option(*flags, name, type=kind, default=None, help=field.description)
        func = option(func)
    return func


@cli.command()
@request_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out", show_default=True, help="Folder for the PNGs (never overwritten).")
@click.option("--replay", type=click.Path(dir_okay=False), help="Make a toolkit PNG again from the recipe inside it.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
def generate(out_dir: str, replay: str | None, device: str, **fields: Any) -> None:
    """Generate images; each PNG carries its full recipe.

    \b
    Examples:
      toolkit generate --prompt "a large green triangle in the center" --n 4
      toolkit generate --model ddpm-digits --class 7 --n 16 --sampler ddim --steps 20
      toolkit generate --model gan-digits --class 3 --post upscale-lanczos:scale=4
      toolkit generate --replay out/ddpm-digits-42-00.png
    """
    from . import pipeline
    from .plugins import get_registry

    if replay:
        _replay(Path(replay), Path(out_dir), device)
        return
    fields["post"] = [PostSpec.parse(p) for p in fields.get("post") or ()]
    request = pipeline.parse_request({k: v for k, v in fields.items() if v is not None and v != []})
    plan = pipeline.plan(request, get_registry())
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
def post_cmd(images: tuple[str, ...], post: tuple[str, ...], out_dir: str) -> None:
    """Run post-processors on existing image files: upscale a photo, watermark or sign a
    PNG made earlier. A toolkit PNG keeps its recipe, with the new steps added.

    \b
    Examples:
      toolkit post photo.jpg --post upscale-realesrgan:scale=4
      toolkit post out/*.png --post watermark --post c2pa --out signed/
    """
    from . import pipeline

    specs = [PostSpec.parse(p) for p in post]
    with progress_bar() as bar:
        for source in images:
            task = bar.add_task(f"post-processing {Path(source).name}", total=None)
            path, records = pipeline.postprocess_file(source, specs, out_dir,
                                                      progress=lambda d, t, task=task: bar.update(task, completed=d, total=t))
            bar.update(task, visible=False)
            for record in records:
                if record["record"]:
                    console.print(f"{record['name']}: {json.dumps(record['record'])}", highlight=False, markup=False)
            out.print(str(path), highlight=False, markup=False, soft_wrap=True)


def _replay(png: Path, out_dir: Path, device: str) -> None:
    import numpy as np

    from . import pipeline
    from .images import open_image
    from .recipe import write_png

    with progress_bar() as bar:
        task = bar.add_task(f"replaying {png.name}", total=None)
        image, recipe = pipeline.replay(png, device=device, progress=lambda d, t: bar.update(task, completed=d, total=t))
    target = pipeline.free_path(out_dir, f"{png.stem}-replay")
    write_png(image, target, recipe)
    same = np.array_equal(np.asarray(open_image(png).convert("RGB")), np.asarray(image))
    console.print(f"identical to the original: {'yes' if same else 'NO (different machine or library versions?)'}")
    out.print(str(target), highlight=False, markup=False, soft_wrap=True)


# -- plugins and models --------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List installed plugins, what each registered, and any that are broken."""
    from .plugins import get_registry
    from .registry import KINDS

    registry = get_registry()
    rows = []
    for info in sorted(registry.plugins.values(), key=lambda p: p.name):
        components = {}
        for kind in KINDS:
            names = [n for n, e in getattr(registry, kind).items() if e.plugin == info.name]
            if names:
                components[kind] = names
        stages = {n: e.obj.stage.name.lower() for n, e in registry.postprocessors.items() if e.plugin == info.name}
        unavailable = {n: r for n, e in registry.postprocessors.items() if e.plugin == info.name and (r := e.obj.unavailable())}
        rows.append({"name": info.name, "package": info.package, "version": info.version, "status": "ok" if info.ok else "broken",
                     "error": info.error, "hooks": info.hooks, "components": components, "stages": stages,
                     "unavailable": unavailable})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="toolkit plugins")
    for column in ("plugin", "package", "status", "registers"):
        table.add_column(column, overflow="fold")
    for row in rows:
        parts = []
        for kind, names in row["components"].items():
            shown = [f"{n} [{row['stages'][n]}]" if n in row["stages"] else n for n in names]
            shown = [f"{s} (unavailable: {row['unavailable'][n]})" if n in row["unavailable"] else s for s, n in zip(shown, names)]
            parts.append(f"{kind}: {', '.join(shown)}")
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]broken[/]: {escape(row['error'])}"
        table.add_row(row["name"], f"{row['package'] or '-'} {row['version'] or ''}", status, escape("\n".join(parts)))
    out.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool) -> None:
    """List the models you can pass to --model: shipped ones and those in $TOOLKIT_HOME/models."""
    from .plugins import get_registry
    from .store import list_models, user_models_dir

    infos = list_models(get_registry())
    rows = [{"name": m.name, "generator": m.generator, "accepts": sorted(m.accepts), "sizes": [f"{w}x{h}" for h, w in m.sizes],
             "size_mb": round(m.size_bytes / 1e6, 2), "source": m.source, "default": bool(m.config.get("default")),
             "path": str(m.path), "error": m.config.get("error")} for m in infos]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"toolkit models (user folder: {user_models_dir()})")
    for column in ("name", "generator", "accepts", "sizes", "on disk", "source"):
        table.add_column(column)
    for r in rows:
        name = r["name"] + (" (default)" if r["default"] else "")
        table.add_row(name, r["generator"], ", ".join(r["accepts"]) or "-", ", ".join(r["sizes"]), f"{r['size_mb']} MB", r["source"])
    out.print(table if rows else "no models installed yet; train one with `toolkit train` or copy a model folder into the user folder")


@cli.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the raw recipe, input images included.")
def info(image: str, as_json: bool) -> None:
    """Print the recipe a toolkit PNG carries: request, seed, model and its sha256, plugins, versions."""
    from .recipe import read_recipe

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
def verify(images: tuple[str, ...], as_json: bool, trust: tuple[str, ...]) -> None:
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
    from .verify import verify_image

    reports = [verify_image(Path(path), trust=[Path(t) for t in trust]) for path in images]
    if as_json:
        out.print_json(json.dumps(reports))
        return
    for report in reports:
        out.print(f"[bold]{escape(report['path'])}[/]")
        for key, value in report["found"].items():
            text = value if isinstance(value, str) else json.dumps(value)
            out.print(f"  {key}: {escape(text)}", soft_wrap=True)


# -- datasets ------------------------------------------------------------------------------


@cli.group()
def dataset() -> None:
    """Look at the dataset plugins."""


@dataset.command("list")
def dataset_list() -> None:
    """List the registered datasets."""
    from .plugins import get_registry

    for name, entry in sorted(get_registry().datasets.items()):
        out.print(f"{name:14} {entry.description}  [dim](plugin {entry.plugin})[/]")


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("root=data", "size=3")`` -> ``{"root": "data", "size": 3}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidRequestError(f"option '{pair}' must be key=value")
        options[key] = PostSpec.parse(f"x:{key}={value}").options[key]
    return options


def build_dataset(name: str, split: str, size: int | None, seed: int, options: dict[str, Any]) -> Any:
    from .plugins import get_registry

    cls = get_registry().get("datasets", name)
    if split not in cls.splits:
        raise InvalidRequestError(f"dataset '{name}' has splits {', '.join(cls.splits)}, not '{split}'")
    kwargs = {"split": split, "seed": seed, **options}
    if size is not None:
        kwargs["size"] = size
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise InvalidRequestError(f"dataset '{name}': {error}") from None


@dataset.command("preview")
@click.argument("name")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="preview.png", show_default=True, help="PNG to write.")
@click.option("--n", "-n", default=16, show_default=True, type=click.IntRange(1, 256), help="Number of samples.")
@click.option("--split", default="train", show_default=True, help="Dataset split.")
@click.option("--size", type=click.IntRange(8, 1024), default=None, help="Image size; default: the dataset's.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Dataset seed.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option, e.g. root=./photos.")
def dataset_preview_cmd(name: str, out_file: str, n: int, split: str, size: int | None, seed: int, options: tuple[str, ...]) -> None:
    """Save a grid of samples with their captions, sketches and masks.

    \b
    Examples:
      toolkit dataset preview shapes --out shapes.png
      toolkit dataset preview imagefolder -o root=./photos --out mine.png
    """
    from .images import save_atomic
    from .preview import dataset_preview

    data = build_dataset(name, split, size, seed, parse_options(options))
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"rendering {name}", total=n)
        grid = dataset_preview(data, n=n, progress=lambda d, t: bar.update(task, completed=d, total=t))
    target = save_atomic(grid, out_file)
    out.print(str(target), highlight=False, markup=False, soft_wrap=True)


# -- training ------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--resume", metavar="latest|PATH", help="Continue from the run's newest checkpoint, or from a checkpoint folder.")
@click.option("--stop-after", type=click.IntRange(1), help="Leave after N steps with a checkpoint (for jobs with a time limit).")
def train(config: str, overrides: tuple[str, ...], resume: str | None, stop_after: int | None) -> None:
    """Train a generator from a YAML config; exports a model folder `--model NAME` loads.

    \b
    Examples:
      toolkit train configs/ddpm-digits.yaml
      toolkit train configs/ddpm-digits.yaml train.steps=200 output.dir=runs/try
      toolkit train configs/ddpm-digits.yaml --resume latest
      accelerate launch --num_processes 2 -m toolkit train configs/ddpm-digits.yaml
      torchrun --nproc_per_node 2 -m toolkit train configs/ddpm-digits.yaml
    """
    from .train_config import load_train_config
    from .trainer import Trainer

    cfg = load_train_config(config, overrides)
    try:
        with progress_bar() as bar:
            trainer = Trainer(cfg, progress=bar if _is_main_process() else None)
            exported = trainer.train(resume=resume, stop_after=stop_after)
    except KeyboardInterrupt:
        console.print(f"interrupted; the checkpoints in {cfg.output.dir}/checkpoints are intact: continue with --resume latest")
        sys.exit(130)
    if exported is not None:
        hint = trainer.model.usage_hint(exported)
        out.print(f"exported model '{cfg.name}' to {exported}; {hint}", highlight=False, markup=False, soft_wrap=True)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


# -- evaluation ----------------------------------------------------------------------------


@cli.command("eval")
@click.option("--model", required=True, help="Model name (see `toolkit models`) or model folder.")
@click.option("--n-per-class", default=100, show_default=True, type=click.IntRange(1),
              help="Images per class (an unconditional model makes this x the number of classes).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the whole generated set.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="JSON report; default eval/<model>.json.")
@click.option("--dataset", help="Dataset to compare with, for models whose config.json does not record one.")
@click.option("--size", type=click.IntRange(8, 1024), help="Image size of that dataset (and of the classifier).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. max_objects=1.")
@click.option("--classifier", type=click.Path(file_okay=False),
              help="Classifier folder to use instead of the one found for the dataset.")
@click.option("--sampler", help="Diffusion models: sampler; default the model's, as in `toolkit generate`.")
@click.option("--steps", type=click.IntRange(1, 1000), help="Diffusion models: denoising steps; default the model's.")
@click.option("--guidance", type=click.FloatRange(0, 50), help="Diffusion models: guidance scale; default the model's.")
@click.option("--truncation", type=click.FloatRange(0, 10, min_open=True), help="GAN/VAE: latent truncation; default the model's.")
@click.option("--prompts", type=click.Path(dir_okay=False),
              help="Text-to-image models: a JSON Lines prompt file to score, GenEval-style (default for "
                   "models that take only text: configs/prompts/shapes-heldout.jsonl).")
@click.option("--images-per-prompt", default=2, show_default=True, type=click.IntRange(1), help="With --prompts.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
def eval_cmd(model: str, n_per_class: int, seed: int, out_file: str | None, dataset: str | None, size: int | None,
             options: tuple[str, ...], classifier: str | None, sampler: str | None, steps: int | None,
             guidance: float | None, truncation: float | None, prompts: str | None, images_per_prompt: int,
             device: str) -> None:
    """Score a model on a fixed, seeded set of generated images; print the figures and write them as JSON.

    A small classifier trained on the model's dataset (found by the dataset, size and
    options its config.json records) measures class accuracy, FID in its own feature
    space (NOT Inception-FID: no Inception weights are available offline), precision,
    recall, coverage and per-class diversity; each is shown beside the same figure for
    real data, to judge the scale. Shapes models also get the shapes evaluator's checks.

    \b
    Examples:
      toolkit eval --model ddpm-digits
      toolkit eval --model ddpm-digits --n-per-class 20 --steps 10 --out quick.json
      toolkit eval --model ./my-model --dataset digits --size 16
      toolkit eval-classifier train --dataset digits --size 16    (when no classifier fits)
      toolkit eval --model ldm-shapes --prompts configs/prompts/shapes-paraphrases.jsonl

    Text-to-image models are scored on a prompt file instead: the shapes evaluator checks
    shape, colour, size, position, count and binding per image, GenEval-style, and our CLIP
    gives a CLIP score.
    """
    from .evaluation import evaluate_model, save_report

    if prompts or _takes_only_text(model):
        from .prompt_eval import DEFAULT_PROMPTS, evaluate_prompts

        with progress_bar() as bar:
            report = evaluate_prompts(model, prompts or DEFAULT_PROMPTS, images_per_prompt=images_per_prompt, seed=seed,
                                      dataset=dataset, sampler=sampler, steps=steps, guidance_scale=guidance,
                                      device=device, progress=bar)
        out.print(prompt_eval_table(report))
        name = f"{report['model']}-{Path(report['prompts']).stem}"
        target = save_report(report, out_file or Path("eval") / f"{name}.json")
        out.print(str(target), highlight=False, markup=False, soft_wrap=True)
        return

    with progress_bar() as bar:
        report = evaluate_model(model, n_per_class, seed, dataset=dataset, size=size,
                                options=parse_options(options) if options else None, classifier=classifier,
                                sampler=sampler, steps=steps, guidance_scale=guidance, truncation=truncation,
                                device=device, progress=bar)
    out.print(eval_table(report))
    target = save_report(report, out_file or Path("eval") / f"{report['model']}.json")
    out.print(str(target), highlight=False, markup=False, soft_wrap=True)


def _takes_only_text(model: str) -> bool:
    from .plugins import get_registry
    from .store import find_model

    accepts = find_model(model, get_registry()).accepts
    return "text" in accepts and "class" not in accepts


def prompt_eval_table(report: dict[str, Any]) -> Table:
    """Per prompt group: the share of images right on each check."""
    r = report
    columns = ("shape", "colour", "size", "position", "count", "binding", "all_correct", "clip_score",
               "present_without_negative", "present_with_negative")
    shown = [c for c in columns if any(c in g for g in r["groups"].values())]
    table = Table(title=f"{r['model']} on {Path(r['prompts']).name}: {r['images_per_prompt']} images per prompt, "
                        f"{r['sampler']} {r['steps']} steps, guidance {r['guidance_scale']}, {r['seconds']:.0f} s",
                  caption=r["clip_score_note"] or "")
    table.add_column("group")
    table.add_column("prompts", justify="right")
    labels = {"position": "pos.", "all_correct": "all right", "clip_score": "CLIP", "present_without_negative": "named, no neg.",
              "present_with_negative": "named, neg."}
    for column in shown:
        table.add_column(labels.get(column, column), justify="right")
    for name, g in r["groups"].items():
        cells = ["-" if c not in g else (f"{g[c]:.1f}" if c == "clip_score" else f"{100 * g[c]:.1f}%") for c in shown]
        table.add_row(name, str(g["prompts"]), *cells)
    return table


def eval_table(report: dict[str, Any]) -> Table:
    """The report's figures, each beside the same figure for real data."""

    def fmt(value: Any, percent: bool = False) -> str:
        if value is None:
            return "-"
        return f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    r = report
    sampling = f", {r['sampler']} {r['steps']} steps, guidance {r['guidance_scale']}" if r["sampler"] else ""
    table = Table(title=f"{r['model']}: {r['n']} images, seed {r['seed']}{sampling}, {r['seconds']:.0f} s",
                  caption=f"FID: {r['fid_note']}")
    for column in ("figure", "generated", "real data"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row("class accuracy (real: classifier on the test split)", fmt(r["class_accuracy"], True),
                  fmt(r["classifier_test_accuracy"], True))
    table.add_row("FID, classifier features (lower is better)", fmt(r["fid_classifier"]),
                  fmt(r["fid_classifier_real_baseline"]))
    for key in ("precision", "recall", "coverage"):
        table.add_row(f"{key} (k={r['k']})", fmt(r[key], True), fmt(r[f"{key}_real_baseline"], True))
    table.add_row("diversity, mean over classes (1 = as varied as real)", fmt(r["diversity"]),
                  fmt(r["diversity_real_baseline"]))
    if r["diversity_per_class"]:
        per_class = "  ".join(f"{name}:{value:.2f}" for name, value in r["diversity_per_class"].items())
        table.add_row(escape(f"  per class {per_class}"), "", "")
    for key in ("shape_accuracy", "objects_detected_one"):
        if key in r:
            table.add_row(key.replace("_", " "), fmt(r[key], True), fmt(r.get(f"{key}_real"), True))
    return table


@cli.group("eval-classifier")
def eval_classifier() -> None:
    """The small classifiers `toolkit eval` measures models with (one per dataset and size).

    \b
    `toolkit eval --model NAME` needs a classifier trained on the model's dataset, at its
    size and with its options. Shipped ones cover the shipped models; train one for your
    own data with `toolkit eval-classifier train` (a few minutes on a CPU). Those in
    $TOOLKIT_HOME/eval_classifiers are used before shipped ones.
    """


@eval_classifier.command("train")
@click.option("--dataset", required=True, help="Registered dataset name (see `toolkit dataset list`).")
@click.option("--size", required=True, type=click.IntRange(8, 1024), help="Image size, as the models were trained.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. max_objects=1.")
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(1),
              help="Optimizer steps (batches of 128).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of weights and batch order.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder to write; default $TOOLKIT_HOME/eval_classifiers/<dataset>-<size>, "
                   "where `toolkit eval` looks first.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
def eval_classifier_train(dataset: str, size: int, options: tuple[str, ...], steps: int, seed: int, out_dir: str | None,
                          device: str) -> None:
    """Train the classifier `toolkit eval` uses for one dataset at one size; prints its test accuracy.

    \b
    Examples:
      toolkit eval-classifier train --dataset digits --size 16
      toolkit eval-classifier train --dataset shapes --size 32 -o max_objects=1
      toolkit eval-classifier train --dataset imagefolder --size 64 -o root=./photos --steps 3000
    """
    from .evaluation import load_classifier, train_classifier

    with progress_bar() as bar:
        folder = train_classifier(dataset, size, parse_options(options), out=out_dir, steps=steps, seed=seed,
                                  device=device, progress=bar)
    accuracy = load_classifier(folder).test_accuracy
    console.print(f"test accuracy {100 * accuracy:.1f}% on the held-out '{dataset}' test split", highlight=False)
    out.print(str(folder), highlight=False, markup=False, soft_wrap=True)


@eval_classifier.command("list")
def eval_classifier_list() -> None:
    """List the classifiers `toolkit eval` can use, in the order it looks at them."""
    from .evaluation import list_classifiers, user_classifiers_dir

    table = Table(title=f"evaluation classifiers (user folder: {user_classifiers_dir()})")
    for column in ("name", "dataset", "size", "options", "test accuracy", "source", "path"):
        table.add_column(column, overflow="fold")
    for folder, config, source in list_classifiers():
        d = config["dataset"]
        table.add_row(folder.name, d["name"], f"{d['size']}x{d['size']}", json.dumps(d.get("options", {})),
                      f"{100 * config['test_accuracy']:.1f}%", source, str(folder))
    out.print(table)


# -- plugin commands and entry point --------------------------------------------------------


def _add_plugin_commands() -> None:
    from .plugins import call_each, get_plugin_manager, get_registry

    call_each(get_plugin_manager(), get_registry(), "register_commands", cli=cli)


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        _add_plugin_commands()
    except ToolkitError as error:  # strict plugin mode
        if debug:
            raise
        print_error(error)
        sys.exit(1)
    cli(obj={"debug": debug})


if __name__ == "__main__":
    main()
