"""Write docs/images/upscale-comparison.png: the same image enlarged 4x by each upscaler.

    python docs/make_upscale_comparison.py            # ~1 min on 2 cores (x4plus is the slow one)

Columns: the input (pixels enlarged, nearest), upscale-lanczos, upscale-realesrgan with
model=animevideov3, and with model=x4plus, all at scale 4. Rows: an image the shipped
ddpm-shapes model makes (``toolkit generate --model ddpm-shapes --class 1 --seed 0``,
32x32 -> 128x128, shown at 2x with nearest so it lines up with the next row), and a real
photo (scikit-image's chelsea, downscaled to 64x64 -> 256x256).
"""

from __future__ import annotations

from pathlib import Path

import skimage.data
from PIL import Image, ImageDraw
from toolkit_plugins.postprocessors.upscale import UpscaleLanczos, UpscaleRealESRGAN

from toolkit import generate
from toolkit.components import PostContext
from toolkit.generation.images import pil_to_tensor, tensor_to_pil
from toolkit.host.registry import Registry

OUT = Path(__file__).parent / "images" / "upscale-comparison.png"
CELL = 256  # every picture is shown at this size
COLUMNS = [  # (title, post-processor, options); None: the input itself
    ("input (nearest)", None, {}),
    ("upscale-lanczos", UpscaleLanczos, {"scale": 4}),
    ("realesrgan animevideov3", UpscaleRealESRGAN, {"model": "animevideov3", "scale": 4}),
    ("realesrgan x4plus", UpscaleRealESRGAN, {"model": "x4plus", "scale": 4}),
]


def row(image: Image.Image) -> list[Image.Image]:
    """The image through each column's upscaler, each shown CELL pixels wide (nearest)."""
    cells = []
    for _, processor, options in COLUMNS:
        if processor is None:
            out = image
        else:
            context = PostContext(request=None, seed=0, model_name="docs", model_sha256="", registry=Registry())
            out = tensor_to_pil(processor().process(pil_to_tensor(image), processor.Options(**options), context).images)[0]
        cells.append(out.resize((CELL, CELL), Image.NEAREST))
    return cells


def main() -> None:
    generated = generate(model="ddpm-shapes", class_label=1, seed=0).images[0]
    photo = Image.fromarray(skimage.data.chelsea()).crop((70, 0, 370, 300)).resize((64, 64), Image.LANCZOS)
    rows = [(f"ddpm-shapes, class 1, seed 0: {generated.width}x{generated.height} -> x4 (shown 2x)", row(generated)),
            ("photo (scikit-image chelsea), 64x64 -> x4", row(photo))]
    pad, title, caption = 6, 18, 18
    sheet = Image.new("RGB", (pad + len(COLUMNS) * (CELL + pad), title + len(rows) * (caption + CELL + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (name, _, _) in enumerate(COLUMNS):
        draw.text((pad + c * (CELL + pad), 3), name, fill="black")
    for r, (label, cells) in enumerate(rows):
        top = title + r * (caption + CELL + pad)
        draw.text((pad, top + 3), label, fill="black")
        for c, cell in enumerate(cells):
            sheet.paste(cell, (pad + c * (CELL + pad), top + caption))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT, optimize=True)
    print(OUT)


if __name__ == "__main__":
    main()
