"""Images at the edges: reading user files safely, and PIL <-> tensor conversion.

Inside the toolkit an image batch is a float tensor ``(batch, 3, H, W)`` in ``[-1, 1]``;
PIL appears only when reading inputs and writing outputs. numpy and torch are imported by
the functions that convert, not with this module: the CLI imports it at every start.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from toolkit.errors import ConfigError, ImageInputError
from toolkit.generation.files import atomic_file, refuse_existing, write_new

if TYPE_CHECKING:
    import torch

# Inputs are sketches, masks and init images for models of at most a few hundred pixels,
# and photos to upscale; anything past this is refused before decoding (decompression bombs).
# The default; TOOLKIT_MAX_IMAGE_PIXELS, read by max_input_pixels() each time, overrides it.
MAX_INPUT_PIXELS = 40_000_000
# Modes every consumer takes as they are: 8 bits per channel, with or without alpha or a palette.
PLAIN_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})


def max_input_pixels() -> int:
    """The input pixel limit: $TOOLKIT_MAX_IMAGE_PIXELS (a whole number such as 40000000 or
    4e7), read when an image is checked, so a bad value fails that command in one line
    rather than every command at import."""
    value = os.environ.get("TOOLKIT_MAX_IMAGE_PIXELS", "").strip()
    if not value:
        return MAX_INPUT_PIXELS
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        number = float("nan")
    if not (number.is_integer() and 1 <= number <= 2**62):
        raise ConfigError(f"TOOLKIT_MAX_IMAGE_PIXELS={value!r} is not a positive whole number of pixels; "
                          f"set it to e.g. 40000000 (or 4e7), or unset it for the default {MAX_INPUT_PIXELS}")
    return int(number)


def open_image(source: str | Path | bytes | Image.Image, *, what: str = "image") -> Image.Image:
    """Open an image from a path, PNG/JPEG bytes, a ``data:`` URL or a PIL image, fully decoded.

    The pixel count is checked from the header before any pixel is decoded.
    """
    if isinstance(source, Image.Image):
        check_pixel_count(source.width, source.height, what)
        return normalize_mode(source, what)
    if isinstance(source, str) and source.startswith("data:"):
        try:
            source = base64.b64decode(source.split(",", 1)[1], validate=True)
        except (IndexError, ValueError) as error:
            raise ImageInputError(f"the {what} is a data URL that is not valid base64: {error}") from None
    if isinstance(source, bytes):
        stream, label = io.BytesIO(source), f"the {what} data"
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise ImageInputError(f"{what} file not found: {path}")
        if not path.is_file():
            raise ImageInputError(f"{what} path is not a file: {path}")
        stream, label = path, str(path)
    try:
        with warnings.catch_warnings():
            # The bomb check is ours (below); keep PIL's own limit as a second line only.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
            check_pixel_count(image.width, image.height, f"{what} {label}")
            image.load()
    except ImageInputError:
        raise
    except Image.DecompressionBombError:  # PIL's own check fires in open() for the largest
        # Pillow refuses past twice its MAX_IMAGE_PIXELS, before we can read the size.
        raise ImageInputError(
            f"{what} {label} is over the limit of {max_input_pixels() / 1e6:.0f} megapixels (it has more than "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f}); resize it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if "MAX_TEXT_CHUNK" in str(error):  # Pillow's only sign of an oversized PNG text chunk
            raise ImageInputError(
                f"{label} carries a metadata (text) chunk over the {PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB Pillow "
                "reads: a recipe with very large input images, or a crafted file; strip its metadata to use the pixels"
            ) from None
        raise ImageInputError(f"cannot read {label} as an image ({error}); is it a PNG, JPEG or WebP file?") from None
    return normalize_mode(image, f"{what} {label}")


def check_pixel_count(width: int, height: int, what: str) -> None:
    limit = max_input_pixels()
    if width * height > limit:
        raise ImageInputError(
            f"{what} is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{limit / 1e6:.0f}; resize it first (or raise TOOLKIT_MAX_IMAGE_PIXELS if you trust it)"
        )
    if width < 1 or height < 1:
        raise ImageInputError(f"{what} has no pixels ({width}x{height})")


def normalize_mode(image: Image.Image, what: str = "image") -> Image.Image:
    """``image`` in one of ``PLAIN_MODES``, its values converted rather than cut off: 16- and
    32-bit integer greyscale scaled from 0-65535 to 0-255, float greyscale clipped to [0, 1]
    (NaN as 0) and scaled, CMYK, YCbCr, HSV and LAB converted to RGB, other alpha modes to
    RGBA. Every image a user gives goes through here (``open_image``, the imagefolder dataset),
    so 16-bit PNGs do not turn white, float TIFFs black, or CMYK JPEGs into a traceback."""
    if image.mode in PLAIN_MODES:
        return image
    if image.mode == "F" or image.mode.startswith("I"):
        import numpy as np

        values = np.asarray(image, dtype=np.float64)  # (H, W)
        if image.mode == "F":
            scaled = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1) * 255
        else:
            scaled = values.clip(0, 65535) / 257
        converted = Image.fromarray(scaled.round().astype(np.uint8), "L")
    else:
        alpha = image.mode in ("PA", "La", "RGBa")  # (LAB's "A" band is a colour, not alpha)
        try:
            converted = image.convert("RGBA" if alpha else "RGB")
        except ValueError:
            raise ImageInputError(f"{what} has colour mode {image.mode}, which toolkit cannot convert; "
                                  "save it as an RGB or greyscale PNG") from None
    converted.info = dict(image.info)  # metadata (a PNG's text chunks) stays readable
    return converted


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (a sketch's paper colour)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def fit_to(image: Image.Image, width: int, height: int, *, what: str, resample: int = Image.BICUBIC) -> Image.Image:
    """Resize to ``width x height`` when the aspect ratio matches; refuse otherwise, since
    stretching a sketch or mask would silently move what the user drew."""
    if image.size == (width, height):
        return image
    if abs(image.width / image.height - width / height) > 0.02:
        raise ImageInputError(
            f"the {what} is {image.width}x{image.height} but the model makes {width}x{height} images; "
            f"crop it to a {width}:{height} aspect ratio first"
        )
    return image.resize((width, height), resample)


def pil_to_tensor(images: list[Image.Image] | Image.Image) -> torch.Tensor:
    """PIL image(s) -> float tensor ``(batch, 3, H, W)`` in ``[-1, 1]``."""
    import numpy as np
    import torch

    images = [images] if isinstance(images, Image.Image) else images
    array = np.stack([np.asarray(to_rgb(im), dtype=np.float32) for im in images])  # (B, H, W, 3)
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float tensor ``(batch, 3, H, W)`` in ``[-1, 1]`` -> list of RGB PIL images."""
    import torch

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (batch, 3, H, W), got {tuple(images.shape)}")
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy(), "RGB") for a in array]


def to_data_url(image: Image.Image) -> str:
    """A lossless PNG ``data:`` URL: how input images travel inside requests and recipes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def save_atomic(image: Image.Image, path: str | Path, *, replace: bool = True, **save_options) -> Path:
    """Save a PNG through a temporary file and a rename, so a crash never leaves half a file
    where a finished one (or an earlier output) was. ``replace=False``: ``FileExistsError``
    rather than replace an existing file."""
    with atomic_file(path, replace=replace) as f:
        image.save(f, format="PNG", **save_options)
    return Path(path)


def save_output(image: Image.Image, path: str | Path, *, overwrite: bool = False) -> Path:
    """Save a PNG where the user asked (``--out FILE``): an existing file is replaced only
    with ``overwrite``, else ``OutputExistsError`` says what to do, even when the file
    appeared while the image was being made."""
    try:
        return save_atomic(image, path, replace=overwrite)
    except FileExistsError:  # it appeared while the image was being made
        refuse_existing(path)
        raise


def save_new(image: Image.Image, folder: str | Path, stem: str, **save_options) -> Path:
    """Save a PNG as ``folder/STEM.png``, or ``STEM-1.png``, ``STEM-2.png``... whichever is
    free when it is written (``files.write_new``: never replaces a file, even one another
    process writes at the same moment); returns the path it got."""
    return write_new(folder, stem, ".png", lambda f: image.save(f, format="PNG", **save_options))


def make_grid(images: list[Image.Image], columns: int, *, pad: int = 2, background=(255, 255, 255)) -> Image.Image:
    """Tile equally sized images into a grid, row by row."""
    if not images:
        raise ValueError("no images to tile")
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), background)
    for i, image in enumerate(images):
        grid.paste(to_rgb(image), (pad + (i % columns) * (w + pad), pad + (i // columns) * (h + pad)))
    return grid
