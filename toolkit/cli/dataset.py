"""`toolkit dataset`: list the registered datasets and look at their samples (contact sheets:
image, sketch and mask side by side, caption below)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import click
from PIL import Image, ImageDraw, ImageFont

from toolkit.cli.params import OutputPath
from toolkit.cli.root import CommandContext, cli, out, parse_options, progress_bar
from toolkit.components import Dataset, build_dataset
from toolkit.generation.files import refuse_existing
from toolkit.generation.images import save_output, tensor_to_pil

if TYPE_CHECKING:
    import torch


@cli.group()
def dataset() -> None:
    """Look at the dataset plugins."""


@dataset.command("list")
@click.pass_obj
def dataset_list(obj: CommandContext) -> None:
    """List the registered datasets."""
    for name, entry in sorted(obj.registry.datasets.items()):
        out.print(f"{name:14} {entry.description}  [dim](plugin {entry.plugin})[/]")


@dataset.command("preview")
@click.argument("name")
@click.option("--out", "out_file", type=OutputPath(folder=False), default="preview.png", show_default=True, help="PNG to write.")
@click.option("--n", "-n", default=16, show_default=True, type=click.IntRange(1, 256), help="Number of samples.")
@click.option("--split", default="train", show_default=True, help="Dataset split.")
@click.option("--size", type=click.IntRange(8, 1024), default=None, help="Image size; default: the dataset's.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Dataset seed.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option, e.g. root=./photos.")
@click.option("--overwrite", is_flag=True, help="Replace the --out file if it exists.")
@click.pass_obj
def dataset_preview_cmd(obj: CommandContext, name: str, out_file: str, n: int, split: str, size: int | None, seed: int,
                        options: tuple[str, ...], overwrite: bool) -> None:
    """Save a grid of samples with their captions, sketches and masks.

    \b
    Examples:
      toolkit dataset preview shapes --out shapes.png
      toolkit dataset preview imagefolder -o root=./photos --out mine.png
    """
    refuse_existing(out_file, overwrite=overwrite)
    data = build_dataset(obj.registry, name, split=split, size=size, seed=seed, options=parse_options(options))
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"rendering {name}", total=n)
        grid = dataset_preview(data, n=n, progress=lambda d, t: bar.update(task, completed=d, total=t))
    target = save_output(grid, out_file, overwrite=overwrite)
    out.print(str(target), highlight=False, markup=False, soft_wrap=True)


def _panel(tensor: torch.Tensor, kind: str) -> Image.Image:
    """One sample field -> RGB PIL. image: ``(3,H,W)`` in [-1,1]; sketch: ``(1,H,W)`` 1 = stroke
    (drawn dark on white, as a person draws); mask: ``(1,H,W)`` 1 = regenerate (white)."""
    if kind == "image":
        return tensor_to_pil(tensor[None])[0]
    grey = 1 - tensor if kind == "sketch" else tensor
    return tensor_to_pil((grey * 2 - 1).expand(3, -1, -1)[None])[0]


def dataset_preview(dataset: Dataset, n: int = 16, columns: int = 4, scale: int = 2,
                    progress: Any = None) -> Image.Image:
    """A grid of the first ``n`` samples, each with its sketch, mask and caption if present."""
    n = min(n, len(dataset))
    font = ImageFont.load_default(size=11)
    cells = []
    for i in range(n):
        sample = dataset[i]
        panels = [_panel(sample[k], k) for k in ("image", "sketch", "mask") if sample.get(k) is not None]
        w, h = panels[0].width * scale, panels[0].height * scale
        label = sample.get("caption") or (f"class {sample['class_label']}" if "class_label" in sample else "")
        lines = textwrap.wrap(label, width=max(12, (w * len(panels)) // 6))[:4]
        cell = Image.new("RGB", (w * len(panels) + 2 * (len(panels) - 1), h + 4 + 13 * len(lines)), "white")
        for j, panel in enumerate(panels):
            cell.paste(panel.resize((w, h), Image.NEAREST), (j * (w + 2), 0))
        draw = ImageDraw.Draw(cell)
        for k, line in enumerate(lines):
            draw.text((2, h + 2 + 13 * k), line, fill=(20, 20, 20), font=font)
        cells.append(cell)
        if progress is not None:
            progress(i + 1, n)
    cw, ch = max(c.width for c in cells), max(c.height for c in cells)
    rows = (len(cells) + columns - 1) // columns
    pad = 8
    grid = Image.new("RGB", (columns * (cw + pad) + pad, rows * (ch + pad) + pad), (235, 235, 235))
    for i, cell in enumerate(cells):
        grid.paste(cell, (pad + (i % columns) * (cw + pad), pad + (i // columns) * (ch + pad)))
    return grid
