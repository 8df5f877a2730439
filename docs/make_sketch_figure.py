"""Write docs/images/sketch-to-image.png: drawings and what a sketch model draws from them.

    python docs/make_sketch_figure.py                    # ldm-shapes, seeds 0-2
    python docs/make_sketch_figure.py --model M --seeds 4

One row per drawing: the three in examples/sketches/ (with the prompts examples/README.md
gives) and test scenes of the model's sketch data (held out from training; their captions
as prompts). Columns: the drawing, the model's images for the prompt and the drawing (one
per seed), and one for the drawing alone, without a prompt. Every image is made by
``toolkit.generate`` exactly as ``toolkit generate --prompt ... --sketch FILE --seed S``
makes it, and enlarged 4x (nearest), so pixels stay pixels.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from toolkit import generate
from toolkit.components import build_dataset
from toolkit.eval.models import model_data
from toolkit.eval.sketches import sketch_image
from toolkit.generation.store import find_model
from toolkit.host.loading import get_registry

DOCS = Path(__file__).parent
EXAMPLES = DOCS.parent / "examples" / "sketches"
PROMPTS = {  # examples/README.md's prompts for its drawings
    "circle-and-star": "a large red circle on the left and a small yellow star in the top right",
    "two-squares": "a large blue square in the bottom left and a small orange square in the top right",
    "hand-drawn-triangle-and-circle": "a large green triangle in the center and a small purple circle in the top left",
}
SCALE = 4


def drawings(model: str, scenes: int) -> list[tuple[Image.Image, str]]:
    """(drawing, prompt): the examples' drawings, then ``scenes`` held-out test scenes."""
    rows = [(Image.open(EXAMPLES / f"{name}.png"), prompt) for name, prompt in PROMPTS.items()]
    registry = get_registry()
    ref = model_data(find_model(model, registry), record="sketch_dataset")
    data = build_dataset(registry, ref.name, split="test", size=ref.size, seed=ref.seed,
                         options={**ref.options, "sketch_style": "clean"})
    for index in range(scenes):
        sample = data[index * 7]  # spread over the split, always the same scenes
        rows.append((sketch_image(sample["sketch"]), sample["caption"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ldm-shapes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DOCS / "images" / "sketch-to-image.png")
    args = parser.parse_args()

    rows = drawings(args.model, args.scenes)
    side, pad, text = 64 * SCALE, 8, 44
    columns = 2 + args.seeds
    sheet = Image.new("RGB", (pad + columns * (side + pad), pad + len(rows) * (side + text + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (drawing, prompt) in enumerate(rows):
        images = [generate(model=args.model, prompt=prompt, sketch=drawing, seed=seed).images[0]
                  for seed in range(args.seeds)]
        images.append(generate(model=args.model, sketch=drawing, seed=0).images[0])
        top = pad + r * (side + text + pad)
        cells = [drawing.convert("RGB").resize((side, side), Image.LANCZOS)] + [
            image.resize((side, side), Image.NEAREST) for image in images]
        for c, cell in enumerate(cells):
            sheet.paste(cell, (pad + c * (side + pad), top))
        caption = f'prompt: "{prompt}"  (seeds 0-{args.seeds - 1}; last: the drawing alone, no prompt)'
        for line, part in enumerate(textwrap.wrap(caption, width=(columns * (side + pad)) // 6)[:3]):
            draw.text((pad, top + side + 3 + 13 * line), part, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
