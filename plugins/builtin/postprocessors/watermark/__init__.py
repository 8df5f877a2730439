"""An invisible, robust watermark: ``--post watermark`` hides a 40-bit payload in every
image; ``toolkit verify IMAGE`` reads it back, or says there is none.

By default the payload says which model made the image (the first 16 bits of its weights'
SHA-256) and when (to the hour, UTC); ``payload=TEXT`` stores a hash of your text instead
and ``number=N`` a number of yours (payload.py has the layout). The layout comes from a
key: the public one by default, which anyone can read and write, or your own
(``key=own``, from ``toolkit keys create``; key.py). An image that already carries a mark
is refused unless ``replace=true``. At 256x256 and up it
survives JPEG down to quality 50, halving and restoring the size, rescales of 0.7 to 1.6,
a Gaussian blur, brightness changes of 10 % and 10 % crops, at a PSNR of 38.5 dB by default (``psnr=``:
lower is sturdier and more visible); docs/postprocessors.md has the measurements against
imwatermark, and where it falls short (64x64 photos, brightening near-white images).

Here: the plugin, and the choice between the embedding modes. The stages have modules of
their own: layout.py (which slot carries which bit), reading.py (the DCT coefficients and
the detector's weights), spread.py, lattice.py and dips.py (the three embedding modes),
attacks.py (what the embedder rehearses), detector.py (the alignment and rescale search),
payload.py (the payload and its Reed-Solomon code, from ``reedsolo``) and key.py (whose mark). The detector
says "none" rather than guess: payload.py bounds its false-positive rate on unmarked
images. docs/postprocessors.md ("Invisible watermark") explains the design.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from toolkit import hookimpl
from toolkit.components import InspectContext, PostContext, PostProcessor, PostResult, Stage
from toolkit.errors import ImageInputError, ToolkitError

from . import payload
from .attacks import CROP_THEN_JPEG, describe, promised, rehearsals
from .detector import candidates
from .dips import DIP_KEEP, DIPS_MIN_CLIPPED, clipped_when_brightened, embed_dips
from .key import PUBLIC, PUBLIC_KEY, WatermarkKey, load_key, reading_keys
from .lattice import LATTICE_MAX_SIDE, embed_lattice
from .layout import BLOCK, MIN_SIDE, make_layout
from .reading import luma
from .spread import EmbedResult
from .spread import embed as spread_embed

if TYPE_CHECKING:  # torch is imported where images are marked, not when the plugins load
    import torch

    from toolkit.host.registry import Registry

KEY = PUBLIC  # seeds the layout; a detector with another key sees nothing


class AlreadyMarkedError(ToolkitError):
    """The image already carries a toolkit watermark, and replace=true was not given."""


class WatermarkOptions(BaseModel):
    """``--post watermark[:payload=TEXT|number=N,psnr=DB,key=own,replace=true]``."""

    model_config = ConfigDict(extra="forbid")

    payload: str | None = Field(None, min_length=1, max_length=1000,
                                description="store a 36-bit hash of this text instead of model and time")
    number: int | None = Field(None, ge=0, lt=2**36, description="store this number (0 to 2**36 - 1) instead")
    psnr: float = Field(38.5, ge=30, le=50, description="target PSNR in dB: lower is more robust and more visible")
    key: str = Field("public", min_length=1, description="public (anyone reads and writes it), own "
                     "($TOOLKIT_HOME/keys/watermark.key from `toolkit keys create`) or a key file's path")
    replace: bool = Field(False, description="mark an image that already carries a toolkit mark (else refused)")

    @field_validator("number")
    @classmethod
    def _one_payload(cls, number: int | None, info: ValidationInfo) -> int | None:
        if number is not None and info.data.get("payload") is not None:
            raise PydanticCustomError("one_payload", "give payload= or number=, not both")
        return number


class WatermarkInspectOptions(BaseModel):
    """``toolkit verify --check watermark:key=FILE``: read with this key too."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, min_length=1, description="a watermark key file to read with, besides the public "
                            "key and your own")


class Watermark(PostProcessor):
    """Hide a robust, invisible 40-bit payload (model and time by default); `toolkit verify` reads it."""

    name = "watermark"
    stage = Stage.WATERMARK
    description = "invisible watermark: model + time (or your text/number), survives JPEG, resize, blur, crop"
    Options = WatermarkOptions
    InspectOptions = WatermarkInspectOptions

    def check_request(self, request: Any, options: WatermarkOptions, registry: Registry) -> None:
        """Refuse, before any work, a key that cannot be read and images too small for the
        mark that nothing upscales."""
        load_key(options.key)
        height, width = request.height, request.width
        if height is None or width is None or min(height, width) >= MIN_SIDE:
            return
        upscaled = any(spec.name in registry.postprocessors and registry.postprocessors[spec.name].obj.stage == Stage.UPSCALE
                       for spec in request.post)
        if not upscaled:
            raise ImageInputError(_too_small(height, width))

    def process(self, images: torch.Tensor, options: WatermarkOptions, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in [-1, 1], H and W at least 64 -> the same, marked."""
        import torch

        _, _, height, width = images.shape
        if min(height, width) < MIN_SIDE:
            raise ImageInputError(_too_small(height, width))
        key = load_key(options.key)
        data = _payload(options, ctx)
        pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
        if not options.replace:
            _refuse_marked(pixels, key)
        marked, psnrs, modes, readable, fragile = [], [], [], [], []
        for i, rgb in enumerate(pixels):
            result = embed(rgb, data, options.psnr, key=key.seed)
            marked.append(result.image)
            psnrs.append(round(result.psnr, 2))
            modes.append(result.mode)
            # Read it back as `toolkit verify` will: a very busy small image can defeat the mark.
            readable.append(detect(result.image, key=key.seed) == data)
            fragile.append(result.fragile)
            if ctx.progress:
                ctx.progress(i + 1, len(pixels))
        out = torch.from_numpy(np.stack(marked)).permute(0, 3, 1, 2).float().to(images.device) / 127.5 - 1
        record = {"payload": data.hex(), **payload.describe(data), **key.describe(), "psnr_db": psnrs, "mode": modes,
                  "readable": readable, "fragile_to": fragile}
        shortfall = _shortfall(readable, fragile, options.psnr, height, width)
        if shortfall:
            record["warning"] = shortfall
        return PostResult(out, record, shortfall=shortfall)

    @classmethod
    def inspect(cls, path: Path, image: Image.Image, ctx: InspectContext) -> dict[str, Any] | str:
        """The payload, worded as the claim it is, with the key it was read with; or a line
        saying there is no watermark (for any key tried)."""
        keys = reading_keys(getattr(ctx.options, "key", None))  # an InspectContext made without options has none
        rgb = np.asarray(image.convert("RGB"))
        for key in keys:
            data = detect(rgb, key=key.seed)
            if data is not None:
                break
        else:
            tried = ", ".join(k.label for k in keys)
            return f"none (no toolkit watermark found; keys tried: {tried})"
        found = {"payload": data.hex(), **payload.describe(data), **key.describe()}
        meaning = found.pop("meaning")
        who = ("the public key: anyone can write this mark, so it says what its writer claimed, not who made the image"
               if key is PUBLIC_KEY else "this key: only its holders can write a mark that reads with it")
        found["claim"] = f"{meaning} (read with {who})"
        if found.get("model_sha256_prefix", "0000") != "0000":
            found["model"] = _models_with_prefix(found["model_sha256_prefix"], ctx.registry)
        return found


def _refuse_marked(pixels: np.ndarray, key: WatermarkKey) -> None:
    """Raise ``AlreadyMarkedError`` if an image of ``pixels`` ``(B, H, W, 3)`` carries a mark
    that reads with ``key``, the public key or your own: writing over it would replace
    one claim with another without a word."""
    keys = [key] + [k for k in reading_keys() if k.seed != key.seed]
    for i, rgb in enumerate(pixels):
        for k in keys:
            data = detect(rgb, key=k.seed)
            if data is not None:
                raise AlreadyMarkedError(
                    f"watermark: image {i} already carries a toolkit mark (payload {data.hex()}, "
                    f"{payload.describe(data)['meaning']}; read with the {k.label} key); pass "
                    "--post watermark:replace=true to write a new mark over it")


def detect(rgb: np.ndarray, key: str = KEY) -> bytes | None:
    """The payload hidden in ``rgb`` ((H, W, 3) uint8 or float in [0, 255]) with the layout
    of ``key`` (a ``WatermarkKey.seed``), or None."""
    layout = make_layout(payload.CODED_BITS, key)
    for soft in candidates(rgb, layout):
        data = payload.decode(soft, layout.whitening)
        if data is not None:
            return data
    return None


def embed(rgb: np.ndarray, data: bytes, psnr: float = 38.5, key: str = KEY) -> EmbedResult:
    """Hide the 5-byte payload ``data`` in ``rgb`` ((H, W, 3) floats in [0, 255], at least
    64x64) at ``psnr`` dB or more, with the layout of ``key`` (a ``WatermarkKey.seed``).

    Spread spectrum, unless it fails one of the rehearsed attacks and another mode survives
    more of them: the dips variants where brightening clips a large share of the image (a
    near-white background), and, under ``LATTICE_MAX_SIDE``, the lattice mode (a busy
    photo at 64x64). The attacks promised at this size (``attacks.promised``) count first,
    then the other rehearsals; between two that survive as many, the one that also survives
    a crop saved as JPEG (``CROP_THEN_JPEG``) wins; then spread spectrum, which also
    survives blur and rescaling. The result's ``fragile`` lists the promised attacks the
    chosen mark does not survive (rehearsed for small, near-white, near-black and mostly
    flat images)."""
    layout = make_layout(payload.CODED_BITS, key)
    bits = payload.encode(data, layout.whitening)
    spread = spread_embed(rgb, bits, layout, psnr=psnr)
    small = min(rgb.shape[:2]) < LATTICE_MAX_SIDE
    near_white = clipped_when_brightened(rgb).mean() >= DIPS_MIN_CLIPPED
    near_black = (np.asarray(rgb).max(-1) < 0.5).mean() >= DIPS_MIN_CLIPPED  # the mark can only go up there
    if not (small or near_white or near_black or _mostly_flat(rgb)):
        # From LATTICE_MAX_SIDE up, spread spectrum carries enough tiles for every rehearsed
        # attack on photos and generated images: skip the rehearsal's dozen readings.
        return spread
    rehearsed = rehearsals(*rgb.shape[:2])
    shared, _ = rehearsed.pop(CROP_THEN_JPEG, (None, None))
    promise = promised(*rgb.shape[:2])

    def lost(image: np.ndarray) -> list[str]:
        """The rehearsed attacks after which ``image`` no longer reads ("as saved" first)."""
        gone = [] if detect(image, key) == data else ["as saved"]
        return gone + [name for name, (attack, _) in rehearsed.items() if detect(attack(image), key) != data]

    def score(failed: list[str], image: np.ndarray) -> tuple[int, int, bool]:
        # The promised attacks count first, then the others rehearsed; a crop saved as JPEG,
        # how crops get shared but no promise of ours, only breaks ties.
        broken = sum(name == "as saved" or name in promise for name in failed)
        return -broken, -len(failed), shared is None or detect(shared(image), key) == data

    failed = lost(spread.image)
    best, best_failed, best_score = spread, failed, score(failed, spread.image)
    others = [lambda keep=keep: embed_dips(rgb, bits, layout, spread, keep, psnr=psnr) for keep in DIP_KEEP] if near_white else []
    if small:
        others.append(lambda: embed_lattice(rgb, bits, layout, psnr=psnr))
    for make in others:
        if best_score == (0, 0, True):
            break
        result = make()
        failed = lost(result.image)
        if score(failed, result.image) > best_score:
            best, best_failed, best_score = result, failed, score(failed, result.image)
    best.fragile = [name for name in best_failed if name in promise]
    return best


def _mostly_flat(rgb: np.ndarray) -> bool:
    """Whether most 8x8 blocks of ``rgb`` ``(H, W, 3)`` are flat: there no host noise
    dithers JPEG's rounding, so a coefficient the mark moved less than half a step is
    rounded away everywhere alike, and the embedder rehearses to find out."""
    y = luma(np.asarray(rgb))
    rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    blocks = y[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK)
    return bool((blocks.std((1, 3)) < 1.0).mean() >= 0.5)


def _shortfall(readable: list[bool], fragile: list[list[str] | None], psnr: float, height: int, width: int) -> str | None:
    """One line on the images whose mark does not read back, or does not survive an
    attack promised at their size; None when every mark holds."""
    lines = []
    unreadable = [i for i, ok in enumerate(readable) if not ok]
    if unreadable:
        lines.append(f"the mark does not read back from image(s) {', '.join(map(str, unreadable))}: too busy to carry it")
    weak = {i: names for i, names in enumerate(fragile) if names and readable[i]}
    for i, names in weak.items():
        lines.append(f"image {i}'s mark does not survive {', '.join(sorted({describe(n, height, width) for n in names}))}")
    if not lines:
        return None
    # Measured: psnr=34 carries the mark through brightening and JPEG 50 on white pages.
    return (f"{'; '.join(lines)} (at {psnr:g} dB); a lower psnr= (e.g. {min(psnr - 4, 34):g}) or a larger size "
            "makes it sturdier")


def _too_small(height: int, width: int) -> str:
    return (f"watermark needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, these are {width}x{height}; "
            f"upscale first, e.g. --post upscale-lanczos:scale={-(-MIN_SIDE // min(height, width))} --post watermark")


def _payload(options: WatermarkOptions, ctx: PostContext) -> bytes:
    if options.payload is not None:
        return payload.text(options.payload)
    if options.number is not None:
        return payload.number(options.number)
    return payload.model_time(ctx.model_sha256, datetime.now(timezone.utc))


def _models_with_prefix(prefix: str, registry: Registry) -> list[str] | str:
    """Installed models whose weights hash starts with ``prefix``: the likely maker."""
    from toolkit.generation.store import list_models

    try:
        names = [m.name for m in list_models(registry) if m.sha256().startswith(prefix)]
    except Exception as error:  # noqa: BLE001 - a broken model folder must not hide the payload
        return f"could not check installed models: {error}"
    return names or "no installed model matches"


@hookimpl
def register_postprocessors(register):
    register(Watermark)
