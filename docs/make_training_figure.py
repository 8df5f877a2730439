"""Write docs/images/training-loss.png and docs/images/training-samples.png from a training
run's folder: the loss curve from RUN/metrics.jsonl, and the fixed-seed sample grids the
trainer wrote to RUN/samples/ side by side, step by step.

    toolkit train configs/ddpm-digits.yaml output.dir=runs/docs-ddpm-digits output.export_dir=runs/docs-ddpm-digits/model
    pip install -e ".[docs]" && python docs/make_training_figure.py runs/docs-ddpm-digits

The run is an ordinary one: the figure shows what any run's folder holds (TensorBoard reads
RUN/logs for the same curves).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

DOCS_IMAGES = Path(__file__).parent / "images"


def loss_curve(run: Path, target: Path) -> None:
    """Every ``loss*`` column of RUN/metrics.jsonl against the step, with its moving average."""
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{run}/metrics.jsonl has no rows: did the run log (output.log_every)?")
    columns = sorted({k for row in rows for k in row if k.startswith("loss")})
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    for column in columns:
        steps = [row["step"] for row in rows if column in row]
        values = [row[column] for row in rows if column in row]
        ax.plot(steps, values, lw=1, alpha=0.35)
        window = max(1, len(values) // 20)
        smooth = [sum(values[max(0, i - window + 1): i + 1]) / len(values[max(0, i - window + 1): i + 1]) for i in range(len(values))]
        ax.plot(steps, smooth, lw=2, label=f"{column} (moving average of {window})", color=ax.lines[-1].get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{run.name}: training loss, logged every {rows[1]['step'] - rows[0]['step'] if len(rows) > 1 else 1} steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target)


def samples_over_steps(run: Path, target: Path, columns: int = 6, zoom: int = 2) -> None:
    """Up to ``columns`` of the run's sample grids, evenly spread over its steps, labelled."""
    grids = sorted((run / "samples").glob("step-*.png"))
    if not grids:
        raise SystemExit(f"{run}/samples has no grids: did the run sample (output.sample_every)?")
    picked = [grids[round(i * (len(grids) - 1) / max(columns - 1, 1))] for i in range(min(columns, len(grids)))]
    picked = list(dict.fromkeys(picked))
    images = [Image.open(p).convert("RGB") for p in picked]
    w, h = images[0].width * zoom, images[0].height * zoom
    label = 22
    out = Image.new("RGB", (len(images) * (w + 8) + 8, h + label + 8), "white")
    draw = ImageDraw.Draw(out)
    for i, (path, image) in enumerate(zip(picked, images)):
        x = 8 + i * (w + 8)
        draw.text((x, 4), f"step {int(path.stem.split('-')[1])}", fill="black")
        out.paste(image.resize((w, h), Image.NEAREST), (x, label))
    out.save(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a training run's folder (output.dir)")
    parser.add_argument("--columns", type=int, default=6, help="sample grids shown")
    args = parser.parse_args()
    loss_curve(args.run, DOCS_IMAGES / "training-loss.png")
    samples_over_steps(args.run, DOCS_IMAGES / "training-samples.png", args.columns)
    print(DOCS_IMAGES / "training-loss.png")
    print(DOCS_IMAGES / "training-samples.png")


if __name__ == "__main__":
    main()
