"""Sketch adherence: edge F1, and ``toolkit eval --model M --sketches [N]``.

**Edge F1** (docs/sketches.md) compares the edges of a generated image with the strokes of
the sketch it was asked to follow:

* edges: scikit-image's Canny detector on the image's luminance (ITU-R 601 weights, 0-1),
  Gaussian sigma ``EDGE_SIGMA`` pixels per 64 pixels of image side (at least 1), hysteresis
  thresholds ``EDGE_STEPS`` given as the height of a sharp luminance step that just passes;
* strokes: the sketch's pixels of at least ``STROKE_LEVEL``;
* both thinned to one-pixel skeletons (``skimage.morphology.skeletonize``), then matched
  with a tolerance of ``TOLERANCE`` pixels through distance transforms: precision is the
  share of edge pixels with a stroke pixel within the tolerance, recall the share of
  stroke pixels with an edge pixel within it, F1 = 2PR / (P + R), and 0 when either side
  is empty.

**The evaluation** draws N scenes from a split the model never trained on (the dataset and
options its config.json records), each with a caption and a sketch, and generates every
scene with the same seed several ways: prompt and sketch, the prompt alone, the sketch
alone (without text, the sketch and nothing). Each image gets its edge F1 against the
scene's sketch and, when the dataset checks images against captions
(``Dataset.score_prompt``), those checks against the caption.

The sketch given and scored against is the dataset's ``sketch_style=clean`` one when it
takes that option (datasets that draw training sketches unevenly offer even lines this
way), else its own. ``styles`` add the same scenes sketched differently, each scored
against that same sketch so the figures compare: ``inverted`` (light lines on black),
``thick`` (``THICK_WIDTH`` px lines), ``wobbly`` (moved by a smooth random field, as an
unsteady hand) and ``photo`` (the scene's own image, traced by the sketch conditioner as
with ``--sketch-from-photo``) are made here; any other name is asked of the dataset as
``sketch_style=NAME``, which must change the sketches only.
"""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timezone
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from scipy import ndimage
from skimage.feature import canny
from skimage.morphology import skeletonize

from toolkit.components import Dataset, build_dataset
from toolkit.errors import EvaluationError, ToolkitError, ToolkitWarning
from toolkit.eval.classifier import DataRef
from toolkit.eval.models import model_data
from toolkit.generation.images import pil_to_tensor, tensor_to_pil
from toolkit.generation.recipe import library_versions
from toolkit.generation.store import find_model, list_models
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry

TOLERANCE = 2.0  # pixels
EDGE_SIGMA = 1.0  # pixels per 64 pixels of image side
EDGE_STEPS = (0.05, 0.1)  # (low, high) Canny thresholds, as sharp luminance steps (0-1)
STROKE_LEVEL = 0.5
SKETCH_STYLE_OPTION = "sketch_style"  # the dataset option asked for sketches drawn another way...
REFERENCE_STYLE = "clean"  # ...and the style every image is scored against, where there is one
OWN_STYLES = ("inverted", "thick", "wobbly", "photo")  # styles made here from the dataset's sketch and image
THICK_WIDTH = 5.0  # pixels per 64
WOBBLE = 1.0  # root-mean-square shift of the wobbly style, pixels per 64...
WOBBLE_SMOOTHNESS = 6.0  # ...smoothed by a Gaussian of this sigma, pixels per 64
DEFAULT_SPLIT = "test"

# -- edge F1 ---------------------------------------------------------------------------------


def canny_edges(channel: np.ndarray, sigma: float, steps: tuple[float, float] = EDGE_STEPS) -> np.ndarray:
    """Canny edges of ``(H, W)`` values in [0, 1] -> ``(H, W)`` bool. ``steps`` are the
    hysteresis thresholds as the height of a sharp step that just passes, so they mean the
    same at every ``sigma``."""
    unit = _step_gradient(float(sigma))
    return canny(channel, sigma=sigma, low_threshold=steps[0] * unit, high_threshold=steps[1] * unit, mode="nearest")


@cache
def _step_gradient(sigma: float) -> float:
    """The gradient magnitude Canny computes (Sobel after a Gaussian of ``sigma``) at a sharp step of height 1."""
    step = np.zeros((3, int(8 * sigma) + 8))
    step[:, step.shape[1] // 2:] = 1.0
    smooth = ndimage.gaussian_filter(step, sigma, mode="nearest")
    return float(np.abs(ndimage.sobel(smooth, axis=1))[1].max())


def image_edges(image: torch.Tensor) -> np.ndarray:
    """An image ``(3, H, W)`` in [-1, 1] -> its Canny edges ``(H, W)`` bool (see the module docstring)."""
    rgb = (image.detach().float().cpu().clamp(-1, 1).numpy() + 1) / 2
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return canny_edges(luminance, max(1.0, EDGE_SIGMA * min(luminance.shape) / 64))


def sketch_strokes(sketch: torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """A sketch ``(1, h, w)`` in [0, 1], 1 = stroke -> its strokes ``(H, W)`` bool, area-resized
    to ``size`` = (H, W) first when given and different."""
    sketch = sketch.detach().float().cpu()
    if size is not None and tuple(sketch.shape[-2:]) != tuple(size):
        sketch = F.interpolate(sketch[None], size=tuple(size), mode="area")[0]
    return sketch[0].numpy() >= STROKE_LEVEL


def edge_f1(predicted: np.ndarray, reference: np.ndarray, tolerance: float = TOLERANCE) -> dict[str, float]:
    """Edge pixels ``(H, W)`` bool against stroke pixels ``(H, W)`` bool, both thinned to
    skeletons first -> ``{"precision", "recall", "f1"}`` (see the module docstring)."""
    predicted, reference = skeletonize(np.asarray(predicted, bool)), skeletonize(np.asarray(reference, bool))
    if not predicted.any() or not reference.any():
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    near_reference = ndimage.distance_transform_edt(~reference) <= tolerance
    near_predicted = ndimage.distance_transform_edt(~predicted) <= tolerance
    precision = float((predicted & near_reference).sum() / predicted.sum())
    recall = float((reference & near_predicted).sum() / reference.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def sketch_f1(image: torch.Tensor, sketch: torch.Tensor) -> dict[str, float]:
    """Edge F1 of an image ``(3, H, W)`` in [-1, 1] against a sketch ``(1, h, w)`` in [0, 1]."""
    return edge_f1(image_edges(image), sketch_strokes(sketch, tuple(image.shape[-2:])))


# -- sketches drawn differently ----------------------------------------------------------------


def sketch_image(sketch: torch.Tensor) -> Image.Image:
    """A sketch ``(1, H, W)`` in [0, 1], 1 = stroke -> what a person hands over: dark lines on white, mode L."""
    ink = sketch[0].detach().float().cpu().clamp(0, 1).numpy()
    return Image.fromarray(np.round(255 * (1 - ink)).astype(np.uint8), "L")


def thick_sketch(sketch: torch.Tensor) -> torch.Tensor:
    """A sketch ``(1, H, W)`` -> the same lines ``THICK_WIDTH`` pixels (per 64) wide, ``(1, H, W)`` in {0, 1}."""
    centre = skeletonize(sketch_strokes(sketch))
    half = THICK_WIDTH * min(centre.shape) / 64 / 2
    return torch.from_numpy((ndimage.distance_transform_edt(~centre) <= half).astype(np.float32))[None]


def wobbly_sketch(sketch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A sketch ``(1, H, W)`` -> the same lines moved by a smooth random field (``WOBBLE``
    pixels root-mean-square, per 64), ``(1, H, W)`` in [0, 1]."""
    lines = sketch[0].detach().float().cpu().numpy()
    scale = min(lines.shape) / 64
    shift = np.stack([ndimage.gaussian_filter(rng.standard_normal(lines.shape), WOBBLE_SMOOTHNESS * scale, mode="wrap")
                      for _ in range(2)])  # (2, H, W)
    shift *= WOBBLE * scale / max(float(np.sqrt((shift ** 2).sum(axis=0).mean())), 1e-12)
    grid = np.indices(lines.shape, dtype=np.float64) + shift
    return torch.from_numpy(ndimage.map_coordinates(lines, grid, order=1, mode="constant").astype(np.float32))[None]


def styled_sketch(style: str, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The request fields that hand over the sample's sketch in one of ``OWN_STYLES``."""
    if style == "inverted":
        return {"sketch": ImageOps.invert(sketch_image(sample["sketch"]))}
    if style == "thick":
        return {"sketch": sketch_image(thick_sketch(sample["sketch"]))}
    if style == "wobbly":
        return {"sketch": sketch_image(wobbly_sketch(sample["sketch"], rng))}
    assert style == "photo", style
    return {"sketch": tensor_to_pil(sample["image"][None])[0], "sketch_from_photo": True}


# -- the evaluation --------------------------------------------------------------------------


def scene_seed(seed: int, index: int) -> int:
    """The seed every image of scene ``index`` is generated with."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFF_FFFF)


def evaluate_sketches(model: str, n: int = 200, seed: int = 0, *, styles: tuple[str, ...] = (),
                      split: str = DEFAULT_SPLIT, dataset: str | None = None, size: int | None = None,
                      options: dict[str, Any] | None = None,
                      sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                      device: str = "cpu", registry: Registry | None = None, progress: Any = None) -> dict[str, Any]:
    """Score how well model ``model`` follows sketches on ``n`` scenes of the dataset's
    ``split`` (see the module docstring). Returns a JSON-able report whose ``variants`` map
    each way of asking (``"prompt + sketch"``, ``"prompt"``, ``"sketch"``, ``"prompt + sketch
    (thick)"``, ...) to its images, mean edge F1, precision and recall, the share of images
    passing each of the dataset's prompt checks, and the warnings generating them gave."""
    from toolkit.generation import pipeline  # the pipeline imports the whole plugin stack; only evaluating needs it

    started = time.perf_counter()
    registry = registry or get_registry()
    info = find_model(model, registry)
    if "sketch" not in info.accepts:
        able = [m.name for m in list_models(registry) if "sketch" in m.accepts]
        raise EvaluationError(f"model '{info.name}' does not accept sketches; models that do: "
                              f"{', '.join(able) or 'none installed'}")
    ref = model_data(info, dataset, size, options, record="sketch_dataset")
    data, reference = _reference_data(ref, split, registry)
    if n > len(data):
        raise EvaluationError(f"{ref.describe()} has {len(data)} '{split}' samples; ask for --sketches {len(data)} "
                              "or fewer")
    styled = {style: _build(ref, split, {SKETCH_STYLE_OPTION: style}, registry)
              for style in styles if style not in OWN_STYLES}
    text = "text" in info.accepts
    checks = type(data).score_prompt is not Dataset.score_prompt  # the dataset checks images against captions
    indices = sorted(np.random.default_rng(seed).choice(len(data), size=n, replace=False).tolist())
    fixed = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    fixed = {"model": model, "n": 1, **{k: v for k, v in fixed.items() if v is not None}}

    rows: dict[str, list[dict[str, Any]]] = {}
    notes: dict[str, dict[str, int]] = {}  # variant -> warning -> how many images gave it
    task = progress.add_task(f"sketch scenes with {info.name}", total=n) if progress else None
    first = None
    for index in indices:
        sample = data[index]
        if "sketch" not in sample or (text and "caption" not in sample):
            raise EvaluationError(f"{ref.describe()} gives no sketch{' and caption' if text else ''} with its samples")
        caption = sample["caption"] if text else None
        for name, fields in _variants(sample, index, caption, styles, styled, np.random.default_rng([seed, index])):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ToolkitWarning)  # a sketch read as blank: the figures need it said
                request = {**fixed, "seed": scene_seed(seed, index), **fields}
                result = pipeline.generate(request, device=device, registry=registry)
            first = first or result
            image = pil_to_tensor(result.images[0])[0]  # (3, H, W), what a user gets: 8-bit pixels
            row: dict[str, Any] = sketch_f1(image, sample["sketch"])
            if checks and caption is not None:
                row.update(data.score_prompt(image, caption))
            rows.setdefault(name, []).append(row)
            for said in (str(w.message) for w in caught if issubclass(w.category, ToolkitWarning)):
                notes.setdefault(name, {})[said] = notes.get(name, {}).get(said, 0) + 1
        if task is not None:
            progress.update(task, advance=1)
    assert first is not None
    resolved = first.plan.request
    return {
        "model": info.name, "model_sha256": info.sha256(), "generator": info.generator,
        "dataset": {"name": ref.name, "size": ref.size, "options": ref.options, "seed": ref.seed, "split": split,
                    "indices": indices},
        "n": n, "seed": seed, "styles": list(styles),
        "sampler": resolved.sampler, "steps": resolved.steps, "guidance_scale": resolved.guidance_scale,
        "size": [resolved.height, resolved.width],
        "edge_f1": {"tolerance_px": TOLERANCE, "edge_sigma_per_64px": EDGE_SIGMA, "edge_steps": list(EDGE_STEPS),
                    "stroke_level": STROKE_LEVEL, "reference": reference},
        "prompt_checks": list(type(data).prompt_checks) if checks and text else [],
        "variants": {name: {**summarise(found), "warnings": notes.get(name, {})} for name, found in rows.items()},
        "seconds": round(time.perf_counter() - started, 2),
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _build(ref: DataRef, split: str, extra: dict[str, Any], registry: Registry) -> Dataset:
    try:
        return build_dataset(registry, ref.name, split=split, size=ref.size, seed=ref.seed,
                             options={**ref.options, **extra})
    except ToolkitError as error:
        if SKETCH_STYLE_OPTION in extra:
            raise EvaluationError(f"dataset '{ref.name}' offers no sketch style '{extra[SKETCH_STYLE_OPTION]}' "
                                  f"({error}); styles made for every dataset: {', '.join(OWN_STYLES)}") from None
        raise EvaluationError(f"cannot draw scenes from {ref.describe()}: {error}") from None


def _reference_data(ref: DataRef, split: str, registry: Registry) -> tuple[Dataset, str]:
    """The split whose sketches are given and scored against, and how it was asked for:
    ``sketch_style=clean`` where the dataset takes it. A style the model's config records
    is how its training sketches were drawn (unevenly, on purpose); the figures are against
    even lines all the same, so models trained on different styles compare."""
    try:
        asked = {SKETCH_STYLE_OPTION: REFERENCE_STYLE}
        return _build(ref, split, asked, registry), f"{SKETCH_STYLE_OPTION}={REFERENCE_STYLE}"
    except EvaluationError:
        return _build(ref, split, {}, registry), "the dataset's own sketches"  # it draws one kind of sketch


def _variants(sample: dict[str, Any], index: int, caption: str | None, styles: tuple[str, ...],
              styled: dict[str, Dataset], rng: np.random.Generator) -> list[tuple[str, dict[str, Any]]]:
    """(name, request fields) of every way scene ``index`` is generated."""
    sketch = {"sketch": sketch_image(sample["sketch"])}
    if caption is None:
        variants = [("sketch", sketch), ("nothing", {})]
    else:
        prompt = {"prompt": caption}
        variants = [("prompt + sketch", {**prompt, **sketch}), ("prompt", prompt), ("sketch", sketch)]
    base = variants[0][0]
    for style in styles:
        if style in OWN_STYLES:
            fields = styled_sketch(style, sample, rng)
        else:
            other = styled[style][index]
            if not torch.equal(other["image"], sample["image"]):
                raise EvaluationError(f"the dataset's option {SKETCH_STYLE_OPTION}={style} changes the scenes, not "
                                      "only their sketches; it cannot be compared with the others")
            fields = {"sketch": sketch_image(other["sketch"])}
        variants.append((f"{base} ({style})", {**variants[0][1], **fields}))
    return variants


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: images, and the mean of every figure (edge F1 / precision / recall, and
    each prompt check as the share of images that pass it)."""
    summary: dict[str, Any] = {"images": len(rows)}
    for key in dict.fromkeys(key for row in rows for key in row):
        summary[key] = float(np.mean([row[key] for row in rows if key in row]))
    return summary
