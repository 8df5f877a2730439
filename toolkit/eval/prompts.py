"""``toolkit eval --prompts FILE``: score a text-to-image model on a prompt file, GenEval-style
(Ghosh et al. 2023, https://arxiv.org/abs/2310.11513): object count, colour, shape, size,
position and attribute binding, checked on each image by the model's dataset plugin
(``Dataset.score_prompt``), never by a learned model.

A prompt file is JSON Lines, one prompt per line::

    {"prompt": "a small red circle in the top left", "group": "single object"}
    {"prompt": "a crimson disk up left", "caption": "a small red circle in the top left", "group": "paraphrase"}
    {"prompt": "a large shape in the center", "negative_prompt": "red", "absent": {"colour": "red"}, "group": "negative"}

``caption`` (default: the prompt) is what the image is checked against, so reworded prompts
are scored against their canonical meaning. A line with ``negative_prompt`` and ``absent``
is generated twice, with and without the negative prompt, and reports how often the named
attribute appears in each: a negative prompt that works lowers that share.

The CLIP score (Hessel et al. 2021, https://arxiv.org/abs/2104.08718: 100 x max(cosine, 0)
between image and prompt) uses the model's own CLIP, or else the dataset's reference model's:
never OpenAI's, so compare it only with other figures from this toolkit.

Where the dataset has one real image per caption (``Dataset.reference_image``: emoji) and
an evaluation classifier fits the model's data, the report adds, in that classifier's
features: ``fid_classifier``, the Fréchet distance from the generated images to the real
training images, beside ``fid_classifier_real_baseline``, the same for the prompts' own real
images (what a generator that drew each prompt exactly would score); and ``seed_spread``,
the mean distance between two images of one prompt over the mean distance between the real
images of two different prompts (0: every seed draws the same picture; the real data has
one image per caption, so its own figure is 0), with ``seed_pixel_difference``, the mean
absolute difference in 8-bit levels between two images of one prompt.

The dataset plugin supplies everything domain-specific: the checks, the prompt sets it
ships (``--prompts NAME``) and the default one, and the reference CLIP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.components import Dataset, Generator, ImageTextScorer, image_text_scorer
from toolkit.errors import EvaluationError, ToolkitError
from toolkit.eval.classifier import ClassifierFeatures, find_classifier, load_images
from toolkit.eval.metrics import frechet_distance, mean_pairwise_distance
from toolkit.eval.models import model_data
from toolkit.generation.images import pil_to_tensor
from toolkit.generation.store import find_model, load_generator
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry


def resolve_prompts(prompts: str | Path | None, data: Dataset) -> Path:
    """A prompt file: ``prompts`` itself when it is a file, else one of the dataset's named
    prompt sets (``None``: its default set)."""
    if prompts is not None and Path(prompts).is_file():
        return Path(prompts)
    sets = type(data).prompt_sets
    name = str(prompts) if prompts is not None else type(data).default_prompt_set
    if name in sets:
        return sets[name]
    known = f"prompt sets of dataset '{data.name}': {', '.join(sets) or 'none'}"
    if prompts is None:
        raise EvaluationError(f"dataset '{data.name}' ships no default prompt set; give --prompts FILE ({known})")
    raise EvaluationError(f"prompt file not found: {prompts} (and it names none of the {known})")


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """The prompt file's entries, each with "prompt", "caption" and "group" filled in."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"prompt file not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvaluationError(f"{path}:{number} is not a JSON object ({error}); one prompt per line") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str):
            raise EvaluationError(f'{path}:{number} needs "prompt": a string')
        entries.append({"caption": entry["prompt"], "group": "prompts", **entry})
    if not entries:
        raise EvaluationError(f"{path} holds no prompts")
    return entries


def _clip_scorer(generator: Generator, data: Dataset, registry: Registry) -> ImageTextScorer | None:
    """The model itself when it has a CLIP, else the dataset's reference model (so models
    with another text encoder get the same yardstick); None when neither is there."""
    scorer = image_text_scorer(generator)
    reference = type(data).reference_clip_model
    if scorer is not None or reference is None:
        return scorer
    try:
        return image_text_scorer(load_generator(find_model(reference, registry), registry))
    except ToolkitError:  # no reference CLIP installed: the score is left out
        return None


def evaluate_prompts(model: str, prompts: str | Path | None = None, *, images_per_prompt: int = 2, seed: int = 0,
                     dataset: str | None = None,
                     sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                     device: str = "cpu", registry: Registry | None = None, progress: Any = None) -> dict[str, Any]:
    """Generate ``images_per_prompt`` images per prompt (seed ``seed + line``) and score them.
    ``prompts``: a prompt file, or the name of one of the dataset's prompt sets (None: its default).

    Returns a JSON-able report: per group the share of images with each check right
    (shape, colour, size, position, count, binding, all_correct), the CLIP score, and for
    negative-prompt lines the share showing the named attribute with and without it.
    """
    from toolkit.generation import pipeline

    started = time.perf_counter()
    registry = registry or get_registry()
    info = find_model(model, registry)
    if "text" not in info.accepts:
        raise EvaluationError(f"model '{info.name}' does not take prompts; `toolkit eval --model {info.name}` scores it by class")
    data = model_data(info, dataset).build("test", registry)
    prompts = resolve_prompts(prompts, data)
    entries = read_prompt_file(prompts)
    settings = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    task = progress.add_task(f"evaluating {info.name} on {Path(prompts).name}", total=len(entries)) if progress else None
    rows, scorer, first, generated = [], None, None, []
    for index, entry in enumerate(entries):
        request = {"model": model, "prompt": entry["prompt"], "n": images_per_prompt, "seed": seed + index,
                   **{k: v for k, v in settings.items() if v is not None}}
        result = pipeline.generate(request, device=device, registry=registry)
        first = first or result
        images = torch.cat([pil_to_tensor(image) for image in result.images])
        generated.append(images)
        checks = [data.score_prompt(image, entry["caption"]) for image in images]
        row = {"prompt": entry["prompt"], "caption": entry["caption"], "group": entry["group"], "checks": checks}
        if scorer is None:
            scorer = _clip_scorer(load_generator(info, registry, device), data, registry) or False
        if scorer:
            similarity = scorer.clip_image_text_similarity(images, [entry["prompt"]])[:, 0]
            row["clip_score"] = float((100 * similarity.clamp(min=0)).mean())
        if "negative_prompt" in entry:
            negative = pipeline.generate({**request, "negative_prompt": entry["negative_prompt"]}, device=device, registry=registry)
            absent = entry.get("absent") or {}
            row["present_without_negative"] = [data.shows_attribute(image, absent) for image in images]
            row["present_with_negative"] = [data.shows_attribute(pil_to_tensor(image)[0], absent) for image in negative.images]
        rows.append(row)
        if task is not None:
            progress.update(task, advance=1)
    assert first is not None
    req = first.plan.request
    return {
        "model": info.name, "prompts": str(prompts), "images_per_prompt": images_per_prompt, "seed": seed,
        "sampler": req.sampler, "steps": req.steps, "guidance_scale": req.guidance_scale,
        "checks": list(type(data).prompt_checks),
        "groups": summarise(rows, type(data).prompt_checks), "clip_score_note": type(data).clip_score_note if scorer else None,
        **distribution_figures(data, [entry["caption"] for entry in entries], generated, model_data(info, dataset), registry),
        "seconds": time.perf_counter() - started, "rows": rows,
    }


def distribution_figures(data: Dataset, captions: list[str], images: list[torch.Tensor], ref: Any,
                         registry: Registry) -> dict[str, Any]:
    """FID against the real training images and seed spread (see the module docstring), for
    ``images``: one ``(n, 3, H, W)`` batch per caption. Empty where the dataset has no single
    image per caption or no classifier fits ``ref`` (the model's ``DataRef``)."""
    try:
        references = torch.stack([data.reference_image(caption) for caption in captions])  # (P, 3, H, W)
        judge = find_classifier(ref, registry)
    except (NotImplementedError, EvaluationError):
        return {}
    train = ref.build("train", registry)
    real, _ = load_images(train, list(range(min(len(train), 10_000))), what=f"{ref.name} train")
    fake = torch.cat(images)
    repeated = torch.cat([reference[None].expand(len(batch), -1, -1, -1) for reference, batch in zip(references, images)])
    extractor = ClassifierFeatures(judge)
    spreads, pixels = [], []
    for batch in images:
        if len(batch) >= 2:
            spreads.append(mean_pairwise_distance(judge.embed(batch)[0]))
            levels = (batch + 1) * 127.5
            pixels.append(float((levels[:, None] - levels[None]).abs().mean() * len(batch) / (len(batch) - 1)))
    between = mean_pairwise_distance(judge.embed(references)[0]) if len(references) >= 2 else float("nan")
    return {
        "fid_classifier": frechet_distance(real, fake, extractor),
        "fid_classifier_real_baseline": frechet_distance(real, repeated, extractor),
        "fid_real_images": len(real),
        "seed_spread": float(np.mean(spreads)) / between if spreads else None,
        "seed_pixel_difference": float(np.mean(pixels)) if pixels else None,
        "classifier": str(judge.path),
    }


def summarise(rows: list[dict[str, Any]], checks: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per group: prompts, images, the share right of each of ``checks`` that applies, the
    mean CLIP score, and the negative-prompt shares."""
    groups: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(row["group"] for row in rows):
        members = [row for row in rows if row["group"] == name]
        found = [c for row in members for c in row["checks"]]
        summary: dict[str, Any] = {"prompts": len(members), "images": len(found)}
        for key in checks:
            values = [c[key] for c in found if key in c]
            if values:
                summary[key] = float(np.mean(values))
        scores = [row["clip_score"] for row in members if "clip_score" in row]
        if scores:
            summary["clip_score"] = float(np.mean(scores))
        for key in ("present_without_negative", "present_with_negative"):
            values = [v for row in members for v in row.get(key, [])]
            if values:
                summary[key] = float(np.mean(values))
        # Each image with the negative prompt starts from the same noise as its twin without
        # it, so pairs say what the negative removed from images that showed the attribute;
        # a share over all images is diluted by prompts that rarely draw it anyway.
        pairs = [(a, b) for row in members
                 for a, b in zip(row.get("present_without_negative", []), row.get("present_with_negative", []))]
        shown = [with_it for without, with_it in pairs if without]
        if shown:
            summary["shown_without_negative"] = len(shown)
            summary["removed_by_negative"] = 1 - float(np.mean(shown))
        groups[name] = summary
    return groups
