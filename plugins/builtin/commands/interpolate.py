"""The `toolkit interpolate` command: walk a GAN's or VAE's latent space from one seed (or,
with a VAE, one image) to another and write the frames as one strip.

A built-in on the `register_commands` hook, exactly as a third-party plugin would add a command.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from toolkit import hookimpl
from toolkit.cli.params import OutputPath
from toolkit.generation.request import MAX_SEED


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--model", required=True, help="A GAN or VAE model (see `toolkit models`).")
    @click.option("--class", "class_label", type=click.IntRange(0), help="Class of every frame; default: a random one.")
    @click.option("--from-seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Latent of the first frame.")
    @click.option("--to-seed", type=click.IntRange(0, MAX_SEED), default=1, show_default=True, help="Latent of the last frame.")
    @click.option("--from-image", type=click.Path(dir_okay=False), help="VAE only: start from this image's encoding.")
    @click.option("--to-image", type=click.Path(dir_okay=False), help="VAE only: end at this image's encoding.")
    @click.option("--frames", type=click.IntRange(2, 64), default=8, show_default=True, help="Images in the strip.")
    @click.option("--truncation", type=click.FloatRange(min=0.0, min_open=True), help="Truncate the seeds' latents at +-T.")
    @click.option("--zoom", type=click.IntRange(1, 16), default=4, show_default=True, help="Enlarge pixels this many times.")
    @click.option("--out", "out_file", type=OutputPath(folder=False), default="interpolation.png", show_default=True)
    @click.option("--overwrite", is_flag=True, help="Replace the --out file if it exists.")
    @click.option("--json", "as_json", is_flag=True,
                  help="Print one JSON document (path, model, class, seeds or images, frames, timings) instead of the path.")
    @click.pass_obj
    def interpolate(obj, model: str, class_label: int | None, from_seed: int, to_seed: int, from_image: str | None,
                    to_image: str | None, frames: int, truncation: float | None, zoom: int, out_file: str,
                    overwrite: bool, as_json: bool) -> None:
        """Frames along the latent path between two seeds or two images.

        \b
        Examples:
          toolkit interpolate --model gan-digits --class 3 --from-seed 0 --to-seed 1
          toolkit interpolate --model vae-digits --class 7 --from-image a.png --to-image b.png
        """
        import torch
        from PIL import Image

        from toolkit.errors import InvalidRequestError, UnsupportedRequestError
        from toolkit.families.latent import LatentGenerator, latent_for
        from toolkit.generation.files import refuse_existing
        from toolkit.generation.images import make_grid, open_image, save_output, tensor_to_pil
        from toolkit.generation.store import find_model, load_generator

        started = time.perf_counter()
        refuse_existing(out_file, overwrite=overwrite)
        registry = obj.registry  # the CLI's CommandContext: the installed plugins
        info = find_model(model, registry)
        generator = load_generator(info, registry)
        if not isinstance(generator, LatentGenerator):
            raise UnsupportedRequestError(f"'{info.name}' ({info.generator}) has no latent space to walk; use a GAN or VAE model")
        if class_label is not None and class_label >= max(generator.num_classes, 1):
            raise InvalidRequestError(f"--class: model '{info.name}' has classes 0-{generator.num_classes - 1} (got {class_label})")
        if class_label is None and generator.num_classes:
            class_label = int(torch.randint(generator.num_classes, (1,), generator=torch.Generator().manual_seed(from_seed)))
        label = torch.tensor([class_label]) if class_label is not None else None
        ends = [latent_for(generator, seed=seed, label=label, truncation=truncation,
                           image=open_image(path, what=name) if path else None)
                for seed, path, name in ((from_seed, from_image, "--from-image"), (to_seed, to_image, "--to-image"))]
        with torch.no_grad():
            images = generator.interpolate(ends[0], ends[1], frames, None if label is None else label.repeat(frames))
        strip = [im.resize((im.width * zoom, im.height * zoom), Image.NEAREST) for im in tensor_to_pil(images)]
        path = save_output(make_grid(strip, columns=frames), Path(out_file), overwrite=overwrite)
        if not as_json:
            click.echo(str(path))
            return
        click.echo(json.dumps({  # the class drawn when none was given; a seed is unused at an image's end
            "path": str(path), "model": info.name, "class_label": class_label, "frames": frames,
            "from": {"seed": None if from_image else from_seed, "image": from_image},
            "to": {"seed": None if to_image else to_seed, "image": to_image},
            "truncation": truncation, "zoom": zoom, "seconds": {"total": round(time.perf_counter() - started, 3)},
        }, indent=2))
