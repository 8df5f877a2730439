"""`toolkit eval` and `toolkit eval-classifier`, with the tables that render their reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from toolkit.cli.params import DEVICE, OutputPath
from toolkit.cli.root import CommandContext, cli, console, out, parse_options, progress_bar
from toolkit.host.registry import Registry


@cli.command("eval")
@click.option("--model", required=True, help="Model name (see `toolkit models`) or model folder.")
@click.option("--n-per-class", default=100, show_default=True, type=click.IntRange(1),
              help="Images per class (an unconditional model makes this x the number of classes).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the whole generated set.")
@click.option("--out", "out_file", type=OutputPath(folder=False), help="JSON report; default eval/<model>.json.")
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
@click.option("--prompts", metavar="FILE|NAME", callback=lambda ctx, param, value: _text_file_or_name(value),
              help="Text-to-image models: a JSON Lines prompt file to score, GenEval-style, or the name of a prompt "
                   "set the model's dataset ships (default for models that take only text: the dataset's default set).")
@click.option("--images-per-prompt", default=2, show_default=True, type=click.IntRange(1), help="With --prompts.")
@click.option("--sketches", type=click.IntRange(1), is_flag=False, flag_value=200, metavar="[N]",
              help="Sketch models: edge F1 and prompt checks on N held-out scenes (200 if N is left out), with and "
                   "without the sketch (docs/sketches.md).")
@click.option("--sketch-style", "sketch_styles", multiple=True, metavar="STYLE",
              help="With --sketches: also sketch the scenes another way: inverted, thick, wobbly, photo, or a "
                   "style the dataset draws (its sketch_style option). Repeatable.")
@click.option("--inpainting", type=click.IntRange(1), is_flag=False, flag_value=100, metavar="[N]",
              help="Inpainting models: redraw the masked object of N held-out scenes (100 if N is left out); the "
                   "largest change outside the mask, the prompt checks inside it, the seam (docs/inpainting.md).")
@click.option("--feather", type=click.IntRange(0, 32), default=0, show_default=True,
              help="With --inpainting: blend each mask's edge outwards over this many pixels.")
@click.option("--split", default="test", show_default=True,
              help="With --sketches or --inpainting: the split to draw scenes from.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document, {\"path\": the report file, \"report\": the report}, instead of the "
                   "table (which goes to stderr).")
@click.pass_obj
def eval_cmd(obj: CommandContext, model: str, n_per_class: int, seed: int, out_file: str | None, dataset: str | None, size: int | None,
             options: tuple[str, ...], classifier: str | None, sampler: str | None, steps: int | None,
             guidance: float | None, truncation: float | None, prompts: str | None, images_per_prompt: int,
             sketches: int | None, sketch_styles: tuple[str, ...], inpainting: int | None, feather: int, split: str,
             device: str, as_json: bool) -> None:
    """Score a model on a fixed, seeded set of generated images; print the figures and write them as JSON.

    A small classifier trained on the model's dataset (found by the dataset, size and
    options its config.json records) measures class accuracy, FID in its own feature
    space (NOT Inception-FID: no Inception weights are available offline), precision,
    recall, coverage and per-class diversity; each is shown beside the same figure for
    real data, to judge the scale. Models whose dataset checks images itself also get
    those checks.

    \b
    Examples:
      toolkit eval --model ddpm-digits
      toolkit eval --model ddpm-digits --n-per-class 20 --steps 10 --out quick.json
      toolkit eval --model ddpm-digits --json | jq .report.class_accuracy
      toolkit eval --model ./my-model --dataset digits --size 16
      toolkit eval-classifier train --dataset digits --size 16    (when no classifier fits)
      toolkit eval --model ldm-shapes --prompts shapes-paraphrases
      toolkit eval --model ldm-emoji --prompts emoji-paraphrases --images-per-prompt 4
      toolkit eval --model ldm-shapes --sketches --sketch-style thick --sketch-style photo
      toolkit eval --model ldm-shapes --inpainting 100 --feather 3

    Text-to-image models are scored on a prompt file instead, GenEval-style: the model's
    dataset checks each image against its prompt (object, colour, position, binding, ...),
    and a CLIP gives a CLIP score.
    """
    from toolkit.eval.models import evaluate_model, save_report

    if inpainting is not None:
        from toolkit.eval.inpainting import evaluate_inpainting

        with progress_bar() as bar:
            report = evaluate_inpainting(model, inpainting, seed, split=split, feather=feather, sampler=sampler,
                                         steps=steps, guidance_scale=guidance, device=device, registry=obj.registry,
                                         progress=bar)
        suffix = f"-feather{feather}" if feather else ""
        target = save_report(report, out_file or Path("eval") / f"{report['model']}-inpainting{suffix}.json")
        _show(inpainting_eval_table(report), report, target, as_json)
        return

    if sketches is not None or sketch_styles:
        from toolkit.eval.sketches import evaluate_sketches

        with progress_bar() as bar:
            report = evaluate_sketches(model, sketches or 200, seed, styles=sketch_styles, split=split, dataset=dataset,
                                       size=size, options=parse_options(options) if options else None, sampler=sampler,
                                       steps=steps, guidance_scale=guidance, device=device, registry=obj.registry,
                                       progress=bar)
        target = save_report(report, out_file or Path("eval") / f"{report['model']}-sketches.json")
        _show(sketch_eval_table(report), report, target, as_json)
        return

    if prompts or _takes_only_text(model, obj.registry):
        from toolkit.eval.prompts import evaluate_prompts

        with progress_bar() as bar:
            report = evaluate_prompts(model, prompts, images_per_prompt=images_per_prompt, seed=seed,
                                      dataset=dataset, sampler=sampler, steps=steps, guidance_scale=guidance,
                                      device=device, registry=obj.registry, progress=bar)
        name = f"{report['model']}-{Path(report['prompts']).stem}"
        target = save_report(report, out_file or Path("eval") / f"{name}.json")
        _show(prompt_eval_table(report), report, target, as_json)
        return

    with progress_bar() as bar:
        report = evaluate_model(model, n_per_class, seed, dataset=dataset, size=size,
                                options=parse_options(options) if options else None, classifier=classifier,
                                sampler=sampler, steps=steps, guidance_scale=guidance, truncation=truncation,
                                device=device, registry=obj.registry, progress=bar)
    target = save_report(report, out_file or Path("eval") / f"{report['model']}.json")
    _show(eval_table(report), report, target, as_json)


def _show(table: Table, report: dict[str, Any], target: Path, as_json: bool) -> None:
    """The table and the report's path on stdout; with --json, the table on stderr and one
    JSON document on stdout."""
    if as_json:
        console.print(table)
        out.print_json(json.dumps({"path": str(target), "report": report}))
    else:
        out.print(table)
        out.print(str(target), highlight=False, markup=False, soft_wrap=True)


def _text_file_or_name(value: str | None) -> str | None:
    """--prompts: a prompt set's name, or a file of UTF-8 text (JSON Lines); an image or other
    binary file is refused here, in one line, before any model loads."""
    path = Path(value) if value else None
    if path is not None and path.is_file():
        try:
            with open(path, encoding="utf-8") as f:
                f.read(1 << 20)
        except UnicodeDecodeError:
            raise click.BadParameter(f"{value} is not a text file; give a JSON Lines file, one "
                                     '{"prompt": "..."} per line, or the name of a prompt set') from None
        except OSError as error:
            raise click.BadParameter(f"cannot read {value} ({error.strerror})") from None
    return value


def _takes_only_text(model: str, registry: Registry) -> bool:
    from toolkit.generation.store import find_model

    accepts = find_model(model, registry).accepts
    return "text" in accepts and "class" not in accepts


def prompt_eval_table(report: dict[str, Any]) -> Table:
    """Per prompt group: the share of images right on each check."""
    r = report
    checks = r.get("checks") or ("shape", "colour", "size", "position", "count", "binding", "all_correct")
    columns = (*checks, "clip_score", "present_without_negative", "present_with_negative")
    shown = [c for c in columns if any(c in g for g in r["groups"].values())]
    notes = [r["clip_score_note"]] if r["clip_score_note"] else []
    if r.get("fid_classifier") is not None:
        notes.append(f"FID (classifier features) {r['fid_classifier']:.2f} against the real training images, "
                     f"{r['fid_classifier_real_baseline']:.2f} for the prompts' own real images")
    if r.get("seed_spread") is not None:
        notes.append(f"seeds of one prompt: {r['seed_spread']:.2f} of the distance between two different real images "
                     f"apart, {r['seed_pixel_difference']:.1f} levels per pixel")
    table = Table(title=f"{r['model']} on {Path(r['prompts']).name}: {r['images_per_prompt']} images per prompt, "
                        f"{r['sampler']} {r['steps']} steps, guidance {r['guidance_scale']}, {r['seconds']:.0f} s",
                  caption="\n".join(notes))
    table.add_column("group")
    table.add_column("prompts", justify="right")
    labels = {"position": "pos.", "all_correct": "all right", "clip_score": "CLIP", "present_without_negative": "named, no neg.",
              "present_with_negative": "named, neg.", "base_top1": "top-1", "base_top5": "top-5", "skin_tone": "skin tone"}
    for column in shown:
        table.add_column(labels.get(column, column), justify="right")
    for name, g in r["groups"].items():
        cells = ["-" if c not in g else (f"{g[c]:.1f}" if c == "clip_score" else f"{100 * g[c]:.1f}%") for c in shown]
        table.add_row(name, str(g["prompts"]), *cells)
    return table


def inpainting_eval_table(report: dict[str, Any]) -> Table:
    """Outside-mask difference, the seam, and each inside-mask check beside the un-edited images'."""
    r = report
    table = Table(title=f"{r['model']} inpainting {r['n']} {r['dataset']['split']} scenes, feather {r['feather']}, "
                        f"{r['sampler']} {r['steps']} steps, guidance {r['guidance_scale']}, {r['seconds']:.0f} s",
                  caption="outside: the largest 8-bit change where the mask is black (must be 0); seam: mean "
                          "absolute step across the mask's border, over the same on the un-edited images")
    table.add_column("figure")
    table.add_column("result", justify="right")
    table.add_column("un-edited", justify="right")
    table.add_row("outside max difference", str(r["outside_max_difference"]), "0")
    ratio = "-" if r["seam_ratio"] is None else f"{r['seam_ratio']:.2f}x"
    table.add_row("seam", f"{r['seam']:.2f} ({ratio})", f"{r['seam_unedited']:.2f}")
    for key, value in r.items():
        if isinstance(value, float) and not key.endswith("_unedited") and f"{key}_unedited" in r and key != "seam":
            table.add_row(key.removeprefix("prompt_"), f"{100 * value:.1f}%", f"{100 * r[f'{key}_unedited']:.1f}%")
    return table


def sketch_eval_table(report: dict[str, Any]) -> Table:
    """Per way of asking (prompt + sketch, the prompt alone, ...): edge F1 and the share of
    images passing each prompt check; warnings the generation gave below."""
    r = report
    sampling = f", {r['sampler']} {r['steps']} steps, guidance {r['guidance_scale']}" if r["sampler"] else ""
    table = Table(title=f"{r['model']}: {r['n']} {r['dataset']['split']} scenes, seed {r['seed']}{sampling}, "
                        f"{r['seconds']:.0f} s",
                  caption=f"edge F1: Canny edges against the strokes of {r['edge_f1']['reference']}, within "
                          f"{r['edge_f1']['tolerance_px']:g} px; precision and recall in the JSON report")
    checks = r["prompt_checks"]
    labels = {"position": "pos.", "all_correct": "all right"}
    table.add_column("asked with")
    for column in ("images", "edge F1", *(labels.get(c, c) for c in checks)):
        table.add_column(column, justify="right")
    for name, v in r["variants"].items():
        table.add_row(escape(name), str(v["images"]), f"{v['f1']:.3f}",
                      *("-" if c not in v else f"{100 * v[c]:.1f}%" for c in checks))
    for name, v in r["variants"].items():
        for message, count in v["warnings"].items():
            table.add_row(escape(f"{name}: {count} x {message}"), *[""] * (2 + len(checks)))
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
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(1), help="Optimizer steps.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(2, 4096), help="Images per step.")
@click.option("--width", default=16, show_default=True, type=click.IntRange(4, 256), help="Channels of the first conv block.")
@click.option("--features", default=64, show_default=True, type=click.IntRange(8, 2048),
              help="Size of the feature layer FID and the other metrics are measured in.")
@click.option("--blocks", default=3, show_default=True, type=click.IntRange(1, 6),
              help="Conv blocks, each after the first at half the resolution (5 for 64x64 emoji).")
@click.option("--augment/--shift-only", default=False, show_default=True,
              help="Train on zoomed, shifted, blurred, relit and noised images, not shifted only "
                   "(for data with one image per class).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of weights and batch order.")
@click.option("--out", "out_dir", type=OutputPath(folder=True),
              help="Folder to write; default $TOOLKIT_HOME/eval_classifiers/<dataset>-<size>[-option=value...], "
                   "where `toolkit eval` looks first.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.pass_obj
def eval_classifier_train(obj: CommandContext, dataset: str, size: int, options: tuple[str, ...], steps: int,
                          batch_size: int, width: int,
                          features: int, blocks: int, augment: bool, seed: int, out_dir: str | None, device: str) -> None:
    """Train the classifier `toolkit eval` uses for one dataset at one size; prints its test accuracy.

    \b
    Examples:
      toolkit eval-classifier train --dataset digits --size 16
      toolkit eval-classifier train --dataset shapes --size 32 -o max_objects=1
      toolkit eval-classifier train --dataset imagefolder --size 64 -o root=./photos --steps 3000
      toolkit eval-classifier train --dataset emoji --size 64 --width 24 --features 256 --blocks 5 --augment --steps 3000 --batch-size 64
    """
    from toolkit.eval.classifier import load_classifier, train_classifier

    with progress_bar() as bar:
        folder = train_classifier(dataset, size, parse_options(options), out=out_dir, steps=steps,
                                  batch_size=batch_size, width=width,
                                  feature_dim=features, blocks=blocks, augmentations=augment, seed=seed,
                                  registry=obj.registry, device=device, progress=bar)
    accuracy = load_classifier(folder).test_accuracy
    console.print(f"test accuracy {100 * accuracy:.1f}% on the held-out '{dataset}' test split", highlight=False)
    out.print(str(folder), highlight=False, markup=False, soft_wrap=True)


@eval_classifier.command("list")
@click.pass_obj
def eval_classifier_list(obj: CommandContext) -> None:
    """List the classifiers `toolkit eval` can use, in the order it looks at them."""
    from toolkit.eval.classifier import list_classifiers, user_classifiers_dir

    table = Table(title=f"evaluation classifiers (user folder: {user_classifiers_dir()})")
    for column in ("name", "dataset", "size", "options", "test accuracy", "source", "path"):
        table.add_column(column, overflow="fold")
    for folder, config, source in list_classifiers(obj.registry):
        d = config["dataset"]
        table.add_row(folder.name, d["name"], f"{d['size']}x{d['size']}", json.dumps(d.get("options", {})),
                      f"{100 * config['test_accuracy']:.1f}%", source, str(folder))
    out.print(table)


