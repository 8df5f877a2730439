"""Print the markdown table of docs/results.md from the `toolkit eval` reports in docs/results/.

    for m in ddpm-digits gan-digits vae-digits ddpm-shapes gan-shapes vae-shapes; do
        toolkit eval --model $m --out docs/results/$m.json
    done
    python docs/make_results_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ORDER = ["ddpm-digits", "gan-digits", "vae-digits", "ddpm-shapes", "gan-shapes", "vae-shapes"]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(r: dict) -> str:
    sampling = f"{r['sampler']}, {r['steps']} steps, guidance {r['guidance_scale']}" if r["sampler"] else (
        f"truncation {r['truncation']}" if r.get("truncation") else "one pass")
    shapes = {"shape_accuracy": r.get("shape_accuracy")}
    cells = [
        f"`{r['model']}`", sampling, str(r["n"]),
        f"{percent(r['class_accuracy'])} ({percent(r['classifier_test_accuracy'])})",
        f"{number(r['fid_classifier'])} ({number(r['fid_classifier_real_baseline'])})",
        f"{percent(r['precision'])} / {percent(r['recall'])} / {percent(r['coverage'])}",
        f"{number(r['diversity'])} (min {number(min(r['diversity_per_class'].values()))})",
        f"{percent(shapes['shape_accuracy'])} ({percent(r.get('shape_accuracy_real'))})" if shapes["shape_accuracy"] is not None else "-",
        f"{r['seconds']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print("| model | sampling | images | class accuracy (classifier on real test) | FID, classifier features (real vs real) "
          "| precision / recall / coverage | diversity (worst class) | shapes evaluator: shape right | seconds |")
    print("|" + " --- |" * 9)
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if path.is_file():
            print(row(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
