"""Print the markdown tables of docs/results.md from the `toolkit eval` reports in docs/results/.

    for m in ddpm-digits gan-digits vae-digits ddpm-shapes gan-shapes vae-shapes; do
        toolkit eval --model $m --out docs/results/$m.json
    done
    for m in ldm-shapes ldm-shapes-minilm; do
        for p in heldout two-objects-draw2 paraphrases; do
            toolkit eval --model $m --prompts shapes-$p --images-per-prompt 1 --out docs/results/$m-$p.json
        done
        toolkit eval --model $m --prompts shapes-negative --images-per-prompt 5 --out docs/results/$m-negative.json
    done
    toolkit eval --model ldm-shapes --prompts shapes-heldout --images-per-prompt 4 --out docs/results/ldm-shapes-heldout-x4.json
    python docs/make_results_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit_plugins.datasets.shapes import ShapesDataset, parse_caption

from toolkit.eval.prompts import summarise

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


TEXT_MODELS = ["ldm-shapes", "ldm-shapes-minilm"]
CHECKS = ("shape", "colour", "size", "position", "count", "binding", "all_correct")


def prompt_tables() -> None:
    """Text-to-image: the shapes evaluator's checks per prompt group, paraphrases against
    their canonical wording, and negative prompts."""
    reports = {(m, p): json.loads(path.read_text()) for m in TEXT_MODELS
               for p in ("heldout", "heldout-x4", "two-objects-draw2", "paraphrases", "negative")
               if (path := RESULTS / f"{m}-{p}.json").is_file()}
    if not reports:
        return
    scored = [(each, label) for kind, label in (("heldout", ""), ("heldout-x4", ", 4 images each"),
                                                ("two-objects-draw2", ", second draw"))
              for each in of_kind(reports, kind)]
    print("\n| model | prompts | images | shape | colour | size | position | count | binding | all right | CLIP score | seconds |")
    print("|" + " --- |" * 12)
    for (model, r), draw in scored:
        for group, g in r["groups"].items():
            cells = [percent(g.get(c)) for c in CHECKS]
            print(f"| `{model}` | {group}{draw} ({g['prompts']}) | {g['images']} | " + " | ".join(cells)
                  + f" | {number(g.get('clip_score'))} | {r['seconds']:.0f} |")
    pair_table(scored)
    print("\n| model | wording | prompts | shape | colour | size | position | all right | gap to canonical |")
    print("|" + " --- |" * 9)
    for model, r in of_kind(reports, "paraphrases"):
        canonical = r["groups"].get("canonical", {})
        for group, g in r["groups"].items():
            gap = "-" if group == "canonical" else f"{100 * (g['all_correct'] - canonical.get('all_correct', 0)):+.1f} points"
            print(f"| `{model}` | {group} | {g['prompts']} | " + " | ".join(percent(g.get(c)) for c in CHECKS[:4])
                  + f" | {percent(g.get('all_correct'))} | {gap} |")
    print("\n| model | negative prompt names a | prompts | images showing it, without the negative prompt | with it "
          "| of those showing it, gone with the negative (same seed) |")
    print("|" + " --- |" * 6)
    for model, r in of_kind(reports, "negative"):
        for group, g in summarise(r["rows"], ShapesDataset.prompt_checks).items():  # recomputed, so older reports get the paired figure too
            removed = f"{percent(g.get('removed_by_negative'))} of {g.get('shown_without_negative', 0)}"
            print(f"| `{model}` | {group.removeprefix('negative ')} | {g['prompts']} | {percent(g.get('present_without_negative'))} "
                  f"| {percent(g.get('present_with_negative'))} | {removed} |")


def pair_table(reports: list[tuple[tuple[str, dict], str]]) -> None:
    """Two-object prompts split by what their objects share: two shapes alike leave only
    colour, size and place to tell the objects apart, the hardest binding."""
    print("\n| model | prompts | both the same shape | the same colour | nothing alike |")
    print("|" + " --- |" * 5)
    for (model, r), draw in reports:
        counts: dict[tuple[str, str], list[int]] = {}
        for line in r["rows"]:
            objects = parse_caption(line["caption"])
            if len(objects) != 2:
                continue
            a, b = objects
            kind = "shape" if a.shape == b.shape else "colour" if a.colour == b.colour else "none"
            tally = counts.setdefault((line["group"], kind), [0, 0, 0])
            tally[0] += sum(check["all_correct"] for check in line["checks"])
            tally[1] += len(line["checks"])
            tally[2] += 1
        for group in dict.fromkeys(g for g, _ in counts):
            cells = ["-" if (t := counts.get((group, k))) is None else f"{100 * t[0] / t[1]:.0f}% of {t[2]}"
                     + ("" if t[1] == t[2] else f" ({t[1]} images)") for k in ("shape", "colour", "none")]
            print(f"| `{model}` | {group}{draw} | " + " | ".join(cells) + " |")


def of_kind(reports: dict, kind: str) -> list[tuple[str, dict]]:
    """(model, report) for every report of one prompt file, in TEXT_MODELS order."""
    return [(model, r) for (model, k), r in reports.items() if k == kind]


def main() -> None:
    print("| model | sampling | images | class accuracy (classifier on real test) | FID, classifier features (real vs real) "
          "| precision / recall / coverage | diversity (worst class) | shapes evaluator: shape right | seconds |")
    print("|" + " --- |" * 9)
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if path.is_file():
            print(row(json.loads(path.read_text())))
    prompt_tables()


if __name__ == "__main__":
    main()
