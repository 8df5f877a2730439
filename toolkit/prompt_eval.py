"""``toolkit eval --prompts FILE``: score a text-to-image model on a prompt file, GenEval-style
(Ghosh et al. 2023, https://arxiv.org/abs/2310.11513): object count, colour, shape, size,
position and attribute binding, checked on each image by the model's dataset (for shapes,
the procedural shapes evaluator), never by a learned model.

A prompt file is JSON Lines, one prompt per line::

    {"prompt": "a small red circle in the top left", "group": "single object"}
    {"prompt": "a crimson disk up left", "caption": "a small red circle in the top left", "group": "paraphrase"}
    {"prompt": "a large shape in the center", "negative_prompt": "red", "absent": {"colour": "red"}, "group": "negative"}

``caption`` (default: the prompt) is what the image is checked against, so reworded prompts
are scored against their canonical meaning. A line with ``negative_prompt`` and ``absent``
is generated twice, with and without the negative prompt, and reports how often the named
attribute appears in each: a negative prompt that works lowers that share.

The CLIP score (Hessel et al. 2021, https://arxiv.org/abs/2104.08718: 100 x max(cosine, 0)
between image and prompt) uses the CLIP we trained on shapes, not OpenAI's: compare it only
with other figures from this toolkit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .components import offers_clip
from .errors import EvaluationError, ToolkitError
from .evaluation import model_data
from .images import pil_to_tensor
from .plugins import get_registry
from .registry import Registry
from .store import find_model

DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent / "configs" / "prompts" / "shapes-heldout.jsonl"
CLIP_SCORE_NOTE = "CLIP score with our clip-shapes CLIP (trained here on shapes), not OpenAI's CLIP"


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


def _clip_scorer(info: Any, generator: Any, registry: Registry) -> Any | None:
    """Something with ``clip_image_text_similarity``: the model itself when it has a CLIP,
    else the shipped ldm-shapes (so models with another text encoder get the same yardstick)."""
    from . import pipeline

    if offers_clip(generator):
        return generator
    try:
        reference = find_model("ldm-shapes", registry)
    except ToolkitError:  # no reference CLIP installed: the score is left out
        return None
    return pipeline.load_generator(reference, registry)


def evaluate_prompts(model: str, prompts: str | Path = DEFAULT_PROMPTS, *, images_per_prompt: int = 2, seed: int = 0,
                     dataset: str | None = None,
                     sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                     device: str = "cpu", registry: Registry | None = None, progress: Any = None) -> dict[str, Any]:
    """Generate ``images_per_prompt`` images per prompt (seed ``seed + line``) and score them.

    Returns a JSON-able report: per group the share of images with each check right
    (shape, colour, size, position, count, binding, all_correct), the CLIP score, and for
    negative-prompt lines the share showing the named attribute with and without it.
    """
    from . import pipeline

    started = time.perf_counter()
    registry = registry or get_registry()
    info = find_model(model, registry)
    if "text" not in info.accepts:
        raise EvaluationError(f"model '{info.name}' does not take prompts; `toolkit eval --model {info.name}` scores it by class")
    data = model_data(info, dataset).build("test", registry)
    entries = read_prompt_file(prompts)
    settings = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    task = progress.add_task(f"evaluating {info.name} on {Path(prompts).name}", total=len(entries)) if progress else None
    rows, scorer, first = [], None, None
    for index, entry in enumerate(entries):
        request = {"model": model, "prompt": entry["prompt"], "n": images_per_prompt, "seed": seed + index,
                   **{k: v for k, v in settings.items() if v is not None}}
        result = pipeline.generate(request, device=device, registry=registry)
        first = first or result
        images = torch.cat([pil_to_tensor(image) for image in result.images])
        checks = [data.score_prompt(image, entry["caption"]) for image in images]
        row = {"prompt": entry["prompt"], "caption": entry["caption"], "group": entry["group"], "checks": checks}
        if scorer is None:
            scorer = _clip_scorer(info, pipeline.load_generator(info, registry, device), registry) or False
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
        "groups": summarise(rows), "clip_score_note": CLIP_SCORE_NOTE if scorer else None,
        "seconds": time.perf_counter() - started, "rows": rows,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group: prompts, images, the share right of every check that applies, the mean
    CLIP score, and the negative-prompt shares."""
    groups: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(row["group"] for row in rows):
        members = [row for row in rows if row["group"] == name]
        checks = [c for row in members for c in row["checks"]]
        summary: dict[str, Any] = {"prompts": len(members), "images": len(checks)}
        for key in ("shape", "colour", "size", "position", "count", "binding", "all_correct"):
            values = [c[key] for c in checks if key in c]
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
