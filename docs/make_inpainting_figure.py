"""Write docs/images/inpainting.png and docs/results/inpainting-<model>.json: inpainting with a
hard-edged mask and with the same mask feathered, side by side, with the figures of each.

    python docs/make_inpainting_figure.py                       # ldm-shapes, 100 test scenes
    python docs/make_inpainting_figure.py --model M --n 200 --feather 3

Both runs use the same samples and seed (``toolkit.eval.inpainting.evaluate_inpainting``):
the hard mask is each sample's own (for shapes, one object's slightly enlarged box), the
blended one the same mask softened outwards over ``--feather`` pixels. Columns: the init
image, the hard mask, its result, the feathered mask, its result; each picture enlarged 4x
(nearest), so pixels stay pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

from toolkit.eval.inpainting import evaluate_inpainting

DOCS = Path(__file__).parent
SCALE = 4
COLUMNS = ("init image", "hard mask", "result", "feathered mask", "result")


def sheet(hard: dict, soft: dict, rows: int) -> Image.Image:
    """The examples of both reports as one picture, with each run's figures under it."""
    cells = [[init, mask, out, soft_mask, soft_out] for (init, mask, out), (_, soft_mask, soft_out)
             in zip(hard["examples"][:rows], soft["examples"][:rows])]
    side = cells[0][0].width * SCALE
    pad, title, footer = 6, 18, 40
    picture = Image.new("RGB", (pad + len(COLUMNS) * (side + pad), title + rows * (side + pad) + footer), "white")
    draw = ImageDraw.Draw(picture)
    for c, name in enumerate(COLUMNS):
        draw.text((pad + c * (side + pad), 3), name, fill="black")
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            picture.paste(image.convert("RGB").resize((side, side), Image.NEAREST), (pad + c * (side + pad), title + r * (side + pad)))
    top = title + rows * (side + pad)
    for line, (label, report) in enumerate((("hard", hard), (f"feathered {soft['feather']} px", soft))):
        draw.text((pad, top + 3 + 16 * line), f"{label}: {summary(report)}", fill="black")
    return picture


def summary(report: dict) -> str:
    accuracy = {k: v for k, v in report.items() if k.endswith("accuracy") or k.startswith("prompt_all")}
    shown = ", ".join(f"{k} {v:.0%}" for k, v in accuracy.items())
    ratio = "n/a" if report["seam_ratio"] is None else f"x{report['seam_ratio']:.2f}"
    return (f"outside max diff {report['outside_max_difference']}; {shown}; seam {report['seam']:.2f} vs "
            f"{report['seam_unedited']:.2f} unedited ({ratio}); n={report['n']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ldm-shapes")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--feather", type=int, default=3)
    parser.add_argument("--split", default="test")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's")
    args = parser.parse_args()
    runs = {}
    for name, feather in (("hard", 0), ("feathered", args.feather)):
        runs[name] = evaluate_inpainting(args.model, n=args.n, split=args.split, feather=feather, steps=args.steps,
                                         examples=args.rows)
        print(name, summary(runs[name]), f"({runs[name]['seconds']:.0f} s)")
    out = DOCS / "images" / "inpainting.png"
    sheet(runs["hard"], runs["feathered"], args.rows).save(out)
    for report in runs.values():
        report.pop("examples")
    results = DOCS / "results" / f"inpainting-{args.model}.json"
    results.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {out} and {results}")


if __name__ == "__main__":
    main()
