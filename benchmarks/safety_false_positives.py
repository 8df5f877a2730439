"""False positives of the safety post-processor's default policy on benign inputs.

1. Image check: ``--per-model`` images from each of the six shipped models (ddpm, gan and
   vae, each on digits and on shapes; classes in turn, seeds 0, 1, ...; the models'
   default sampling settings) go through the safety post-processor with the default
   policy, in-process, batch by batch as the pipeline would. Counts the images withheld,
   blurred or flagged (the goal is 0), the classifiers that ran and those skipped (and
   why), and the highest score each category got. The ``nudenet`` classifier runs when
   the opt-in toolkit-nudenet package is installed, or (unless ``--no-nudenet``) loaded
   from plugins/packages/toolkit-nudenet when the nudenet wheel is importable.
2. Prompt check: every distinct caption of the shapes dataset (train, test and heldout
   splits at their default lengths) and the ordinary prompts of
   benchmarks/safety_prompts.yaml (``benign``, used while setting the thresholds, and
   ``benign_unseen``, written after). Counts the prompts refused, blurred or flagged, and
   each category's highest similarity against its threshold. The ``harmful`` paraphrases
   show how much the policy catches beyond its exact words (optimistic: they were
   written alongside it).

    python benchmarks/safety_false_positives.py                   # ~10 min on 2 busy cores
    python benchmarks/safety_false_positives.py --quick           # a smoke run (tests run it)
    python benchmarks/safety_false_positives.py --json safety.json

Tables print as markdown, for docs/postprocessors.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import yaml
from toolkit_plugins.datasets.shapes import ShapesDataset, caption
from toolkit_plugins.postprocessors.safety import Safety, SafetyOptions
from toolkit_plugins.postprocessors.safety.policy import load_policy

from toolkit.components import PostContext
from toolkit.generation.images import pil_to_tensor
from toolkit.generation.pipeline import generate
from toolkit.host.loading import get_registry, plugins_with_extra, set_registry

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "benchmarks" / "safety_prompts.yaml"
MODELS = ("ddpm-digits", "gan-digits", "vae-digits", "ddpm-shapes", "gan-shapes", "vae-shapes")


def use_nudenet(wanted: bool) -> str:
    """Make sure the registry has the nudenet classifier when asked and possible; say how."""
    registry = get_registry()
    if "nudenet" in registry.safety_classifiers:
        return "installed package"
    if not wanted:
        return "left out (--no-nudenet)"
    try:
        import nudenet  # noqa: F401
    except ImportError:
        return "not available (nudenet is not installed)"
    sys.path.insert(0, str(ROOT / "plugins" / "packages" / "toolkit-nudenet"))
    import toolkit_nudenet

    set_registry(*plugins_with_extra([("nudenet", toolkit_nudenet)]))
    return "loaded from plugins/packages/toolkit-nudenet"


def image_check(per_model: int, batch: int) -> dict:
    """Generate ``per_model`` images per shipped model and run the default policy on them."""
    registry = get_registry()
    safety, options = Safety(), SafetyOptions()
    rows, skipped, safety_seconds = [], {}, 0.0
    for model in MODELS:
        if model not in registry.models:
            continue
        num_classes = json.loads((Path(registry.models[model].obj) / "config.json").read_text())["num_classes"]
        actions: Counter[str] = Counter()
        best: dict[str, float] = {}
        made, seed = 0, 0
        while made < per_model:
            n = min(batch, per_model - made)
            result = generate(model=model, class_label=seed % num_classes, n=n, seed=seed)
            ctx = PostContext(result.plan.request, seed, model, "", registry=result.plan.registry)  # none of our models has a CLIP to pass
            started = time.perf_counter()
            record = safety.process(pil_to_tensor(result.images), options, ctx).record
            safety_seconds += time.perf_counter() - started
            for verdict in record["images"]:
                actions[verdict["action"]] += 1
                for category, score in verdict["scores"].items():
                    best[category] = max(best.get(category, float("-inf")), score)
            for name, reason in record.get("skipped", {}).items():
                skipped.setdefault(name, {})[model] = reason
            made, seed = made + n, seed + 1
        rows.append({"model": model, "images": made, "withheld": actions["block"], "blurred": actions["blur"],
                     "flagged": actions["flag"], "best_scores": {k: round(v, 4) for k, v in sorted(best.items())}})
        print(f"  {model}: {made} images, {dict(actions)}", file=sys.stderr, flush=True)
    total = sum(r["images"] for r in rows)
    return {"models": rows, "skipped": skipped, "safety_ms_per_image": round(1000 * safety_seconds / max(total, 1), 1)}


def shapes_captions(quick: bool) -> list[str]:
    captions: set[str] = set()
    for split in ShapesDataset.splits:
        dataset = ShapesDataset(split, size=32, **({"length": 300} if quick else {}))
        captions.update(caption(dataset.scene(i)) for i in range(len(dataset)))
    return sorted(captions)


def prompt_check(quick: bool) -> dict:
    policy = load_policy()
    data = yaml.safe_load(PROMPTS.read_text(encoding="utf-8"))
    sets = {"shapes captions": shapes_captions(quick), "benign (tuning)": data["benign"],
            "benign_unseen": data["benign_unseen"]}
    out = {}
    for name, prompts in sets.items():
        started = time.perf_counter()
        results = policy.check_prompts(prompts)
        matched = [(p, [f"{m.category}: {m.reason}" for m in matches]) for p, (matches, _) in zip(prompts, results) if matches]
        closest = {}
        for category, spec in policy.categories.items():
            if spec.threshold is None:
                continue
            score, prompt = max((s.get(category, 0.0), p) for p, (_, s) in zip(prompts, results))
            closest[category] = {"similarity": score, "threshold": spec.threshold, "prompt": prompt}
        out[name] = {"prompts": len(prompts), "matched": matched, "closest": closest,
                     "seconds": round(time.perf_counter() - started, 1)}
        print(f"  {name}: {len(prompts)} prompts, {len(matched)} matched", file=sys.stderr, flush=True)
    harmful = {}
    for category, prompts in data["harmful"].items():
        results = policy.check_prompts(prompts)
        caught = [any(m.category == category and m.action == "block" for m in matches) for matches, _ in results]
        harmful[category] = {"caught": sum(caught), "of": len(prompts),
                             "missed": [p for p, hit in zip(prompts, caught) if not hit]}
    out["harmful"] = harmful
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-model", type=int, default=100, help="images per shipped model (6 models)")
    parser.add_argument("--batch", type=int, default=25, help="images per generate call")
    parser.add_argument("--quick", action="store_true", help="10 images per model and 300 captions per split")
    parser.add_argument("--no-nudenet", action="store_true", help="leave the opt-in nudenet classifier out")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if args.quick:
        args.per_model, args.batch = 10, 10
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    nudenet = use_nudenet(not args.no_nudenet)
    print(f"image check ({nudenet} nudenet) ...", file=sys.stderr)
    images = image_check(args.per_model, args.batch)
    print("prompt check ...", file=sys.stderr)
    prompts = prompt_check(args.quick)

    total = sum(r["images"] for r in images["models"])
    acted = sum(r["withheld"] + r["blurred"] + r["flagged"] for r in images["models"])
    print(f"\n### Image check: default policy, {total} generated images (nudenet: {nudenet})\n")
    categories = sorted({c for r in images["models"] for c in r["best_scores"]})
    print("| model | images | withheld | blurred | flagged | " + " | ".join(f"max {c}" for c in categories) + " |")
    print("| --- " * (5 + len(categories)) + "|")
    for r in images["models"]:
        scores = " | ".join(f"{r['best_scores'].get(c, float('nan')):.2f}" for c in categories)
        print(f"| {r['model']} | {r['images']} | {r['withheld']} | {r['blurred']} | {r['flagged']} | {scores} |")
    print(f"\nFalse positives: {acted} of {total} ({100 * acted / max(total, 1):.1f} %). "
          f"Safety step: {images['safety_ms_per_image']} ms per image.")
    for name, by_model in sorted(images["skipped"].items()):
        example = by_model[min(by_model)]
        print(f"Classifier `{name}` skipped on {len(by_model)} of {len(images['models'])} models (e.g. {example}).")

    print("\n### Prompt check: default policy\n")
    print("| prompts | count | refused or matched | false-positive rate | closest category (similarity / threshold) |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("shapes captions", "benign (tuning)", "benign_unseen"):
        r = prompts[name]
        category, c = max(r["closest"].items(), key=lambda kv: kv[1]["similarity"] - kv[1]["threshold"])
        print(f"| {name} | {r['prompts']} | {len(r['matched'])} | {100 * len(r['matched']) / r['prompts']:.2f} % | "
              f"{category} {c['similarity']:.2f} / {c['threshold']:.2f} (\"{c['prompt']}\") |")
    for name in ("shapes captions", "benign (tuning)", "benign_unseen"):
        for prompt, why in prompts[name]["matched"]:
            print(f"- {name}: \"{prompt}\" -> {'; '.join(why)}")
    print("\n| harmful paraphrases (category) | refused | missed |")
    print("| --- | --- | --- |")
    for category, r in prompts["harmful"].items():
        print(f"| {category} | {r['caught']} / {r['of']} | {'; '.join(r['missed']) or '-'} |")
    if args.json:
        args.json.write_text(json.dumps({"nudenet": nudenet, "images": images, "prompts": prompts}, indent=2))


if __name__ == "__main__":
    main()
