"""Inpainting figures: how well a model redraws the masked part of held-out samples.

For ``n`` samples of the model's dataset (the ``test`` split unless told otherwise), the
sample's image is the init image and its ``"mask"`` (or, for a dataset without masks, a
centred box half the image's side) says what to redraw; the model is asked for the
sample's caption (text models) or class (class-conditional ones). Then:

* ``outside_max_difference``: the largest 8-bit difference from the init image over every
  pixel where the mask is 0, over all images. It must be 0.
* inside the mask, what the dataset itself checks: for text models the mean of each of
  ``Dataset.score_prompt``'s checks of the caption (``prompt_<check>``); for
  class-conditional ones ``Dataset.image_scores`` with the sample's class (for a one-object
  scene under its mask: is there one object, of the class asked for). The same figures on
  the un-edited images (``..._unedited``) are the most a model can reach.
* ``seam``: the mean absolute 8-bit difference between the two pixels of every pair of
  4-neighbours that straddles the border of the sample's mask (one pixel inside, one
  outside), on the results and at the same positions on the un-edited images;
  ``seam_ratio`` is the first over the second (1.0: the border is as smooth as the image
  was there; None when the un-edited image is flat at every border pixel).

``feather`` > 0 softens each mask outwards: 1 over the mask, falling linearly to 0 over
``feather`` pixels around it (a blended edge). The seam is still measured at the border of
the sample's own mask, so a hard and a feathered run compare at the same pixels.

Images are generated in batches through the model's own conditioners and generator, as
``toolkit.generation.pipeline.run`` does for one request, with the sampler, steps and
guidance a plain ``toolkit generate`` would use.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from toolkit.components import Conditioning, Dataset, GenerateArgs, TextEmbedding
from toolkit.errors import EvaluationError
from toolkit.eval.models import model_data
from toolkit.generation.images import pil_to_tensor, tensor_to_pil
from toolkit.generation.recipe import library_versions
from toolkit.generation.request import GenerationRequest
from toolkit.generation.store import LoadedModel, find_model, load_model
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry

BATCH = 50  # samples per generate call

Pairs = tuple[np.ndarray, np.ndarray]


def seam_pairs(mask: np.ndarray) -> Pairs:
    """Every pair of 4-neighbours across the border of ``mask > 0``, ``mask`` ``(H, W)``:
    (inside ``(K, 2)``, outside ``(K, 2)``) row/column indices, pair by pair."""
    redraw = mask > 0
    inside, outside = [], []
    for axis in (0, 1):
        step = np.diff(redraw.astype(np.int8), axis=axis)  # +1: kept -> redrawn, -1: redrawn -> kept
        first = np.argwhere(step != 0)  # the pair's first pixel; the second is one further along axis
        second = first.copy()
        second[:, axis] += 1
        first_is_inside = redraw[first[:, 0], first[:, 1]]
        inside.append(np.where(first_is_inside[:, None], first, second))
        outside.append(np.where(first_is_inside[:, None], second, first))
    return np.concatenate(inside), np.concatenate(outside)


def seam_gradient(image: np.ndarray, pairs: Pairs) -> float:
    """Mean over the pairs of the absolute difference (8-bit levels, averaged over the
    channels) across the border: ``image`` ``(H, W, 3)``. NaN without pairs."""
    inside, outside = pairs
    if len(inside) == 0:
        return float("nan")
    pixels = np.asarray(image, dtype=np.float64)
    step = pixels[inside[:, 0], inside[:, 1]] - pixels[outside[:, 0], outside[:, 1]]
    return float(np.abs(step).mean())


def feathered(mask: np.ndarray, feather: int) -> np.ndarray:
    """``mask`` ``(H, W)`` in [0, 1] -> the same with its edge blended outwards: 1 - d / (feather + 1)
    at distance d (pixels) from the mask, so ``feather`` pixels around it are partly redrawn."""
    if feather <= 0:
        return mask
    distance = ndimage.distance_transform_edt(mask <= 0)
    return np.maximum(mask, np.clip(1 - distance / (feather + 1), 0, 1)).astype(np.float32)


def sample_mask(sample: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The sample's ``"mask"`` ``(H, W)``, or a centred box of half the side."""
    if "mask" in sample:
        return sample["mask"].reshape(height, width).numpy().astype(np.float32)
    box = np.zeros((height, width), np.float32)
    box[height // 4: height - height // 4, width // 4: width - width // 4] = 1
    return box


def to_pil_mask(mask: np.ndarray) -> Image.Image:
    """``(H, W)`` in [0, 1] -> an 8-bit greyscale mask, white = redraw."""
    return Image.fromarray(np.round(mask * 255).astype(np.uint8), "L")


def inpaint_batch(model: LoadedModel, request: GenerationRequest, inits: list[Image.Image], masks: list[Image.Image],
                  prompts: list[dict[str, Any]], seed: int) -> list[Image.Image]:
    """One generate call for several (init image, mask, prompt) triples: each input encoded
    by the model's conditioners, the rows stacked; ``request`` holds the resolved sampler,
    steps and guidance. ``prompts``: per sample ``{"prompt": str}`` or ``{"class_label": int}``."""
    height, width = request.height, request.width
    assert height is not None and width is not None
    size = {"n": 1, "height": height, "width": width}
    cond = Conditioning(init_image=torch.cat([model.conditioner("init_image").encode(i, **size) for i in inits]),
                        mask=torch.cat([model.conditioner("mask").encode(m, **size) for m in masks]))
    if "prompt" in prompts[0]:
        texts = [model.conditioner("text").encode(p["prompt"], **size) for p in prompts]
        masks_ = [t.attention_mask for t in texts]
        cond.text = TextEmbedding(torch.cat([t.tokens for t in texts]), torch.cat([t.pooled for t in texts]),
                                  None if masks_[0] is None else torch.cat(masks_))
    elif "class_label" in prompts[0]:
        cond.class_labels = torch.cat([model.conditioner("class").encode(p["class_label"], **size) for p in prompts])
    registry = model.registry
    args = GenerateArgs(n=len(inits), height=height, width=width, generator=torch.Generator().manual_seed(seed),
                        steps=request.steps, guidance_scale=request.guidance_scale,
                        sampler=registry.get("samplers", request.sampler) if request.sampler else None,
                        sampler_name=request.sampler, truncation=request.truncation)
    with torch.inference_mode():
        images = model.generator.generate(cond, args)
    return tensor_to_pil(images)


def evaluate_inpainting(name: str, n: int = 100, seed: int = 0, *, split: str = "test", feather: int = 0,
                        sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                        device: str = "cpu", registry: Registry | None = None, examples: int = 0,
                        progress: Any = None) -> dict[str, Any]:
    """The figures of the module docstring for model ``name`` on ``n`` samples of ``split``.
    Returns a JSON-able report; with ``examples`` > 0 also ``"examples"``: that many
    ``(init, mask, result)`` PIL triples (not JSON: pop them before saving). ``progress``: a
    ``rich.progress.Progress``, advanced per batch of images, or None for silence."""
    from toolkit.generation import pipeline  # imports the plugin stack; only evaluating needs it

    started = time.perf_counter()
    registry = registry or get_registry()
    info = find_model(name, registry)
    if not {"init_image", "mask"} <= info.accepts:
        raise EvaluationError(f"model '{info.name}' does not inpaint (it accepts {', '.join(sorted(info.accepts))})")
    data = model_data(info).build(split, registry)
    if len(data) < n:
        raise EvaluationError(f"{data.name} {split} has {len(data)} samples, fewer than the {n} asked for")
    samples = [data[i] for i in range(n)]
    conditioning = _conditioning(info.accepts, samples[0])
    prompts = [{key: sample[source] for key, source in conditioning.items()} for sample in samples]
    _, height, width = samples[0]["image"].shape
    inits = tensor_to_pil(torch.stack([s["image"] for s in samples]))
    pil_masks = [to_pil_mask(feathered(sample_mask(s, height, width), feather)) for s in samples]
    first = GenerationRequest(model=name, init_image=inits[0], mask=pil_masks[0], sampler=sampler, steps=steps,
                              guidance_scale=guidance_scale, height=height, width=width, **prompts[0])
    request = pipeline.plan(first, registry).request  # the defaults `toolkit generate` resolves
    model = load_model(info, registry, device)

    results: list[Image.Image] = []
    task = progress.add_task(f"inpainting with {info.name}", total=n) if progress else None
    for batch, start in enumerate(range(0, n, BATCH)):
        end = min(n, start + BATCH)
        batch_seed = int(np.random.SeedSequence([seed, batch]).generate_state(1)[0] & 0x7FFF_FFFF)
        results += inpaint_batch(model, request, inits[start:end], pil_masks[start:end], prompts[start:end], batch_seed)
        if task is not None:
            progress.update(task, advance=end - start)

    # Where the mask as sent is 0, which the mask conditioner keeps 0: pixels kept exactly.
    outside = [int(np.abs(_levels(r) - _levels(i))[np.asarray(p) == 0].max(initial=0))
               for r, i, p in zip(results, inits, pil_masks)]
    pairs = [seam_pairs(sample_mask(s, height, width) >= 0.5) for s in samples]
    seam = float(np.nanmean([seam_gradient(np.asarray(r), q) for r, q in zip(results, pairs)]))
    seam_unedited = float(np.nanmean([seam_gradient(np.asarray(i), q) for i, q in zip(inits, pairs)]))
    report: dict[str, Any] = {
        "model": info.name, "model_sha256": info.sha256(), "generator": info.generator,
        "dataset": {"name": data.name, "size": data.size, "split": split, "seed": data.seed},
        "n": n, "seed": seed, "feather": feather, "conditioning": sorted(conditioning),
        "sampler": request.sampler, "steps": request.steps, "guidance_scale": request.guidance_scale,
        "outside_max_difference": max(outside), "images_changed_outside": sum(d > 0 for d in outside),
        **_inside_scores(data, results, samples, conditioning, ""),
        **_inside_scores(data, inits, samples, conditioning, "_unedited"),
        "seam": seam, "seam_unedited": seam_unedited, "seam_ratio": seam / seam_unedited if seam_unedited else None,
        "seconds": round(time.perf_counter() - started, 2), "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if examples:
        report["examples"] = list(zip(inits, pil_masks, results))[:examples]
    return report


def _conditioning(accepts: set[str], sample: dict[str, Any]) -> dict[str, str]:
    """Request field -> sample key: the caption for a text model, the class for a
    class-conditional one, nothing for an unconditional one."""
    if "text" in accepts and "caption" in sample:
        return {"prompt": "caption"}
    if "class" in accepts and "class_label" in sample:
        return {"class_label": "class_label"}
    return {}


def _levels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _inside_scores(data: Dataset, images: list[Image.Image], samples: list[dict[str, Any]], conditioning: dict[str, str],
                   suffix: str) -> dict[str, float]:
    """The dataset's checks of ``images`` against what each sample asked for (see the module
    docstring); empty when the dataset has none."""
    tensors = pil_to_tensor(images)  # (N, 3, H, W): the 8-bit pixels a user gets
    if "prompt" in conditioning and data.prompt_checks:
        checks = [data.score_prompt(image, sample["caption"]) for image, sample in zip(tensors, samples)]
        keys = dict.fromkeys(key for c in checks for key in c)  # a caption without a colour has no colour check
        return {f"prompt_{key}{suffix}": float(np.mean([c[key] for c in checks if key in c])) for key in keys}
    labels = torch.tensor([s["class_label"] for s in samples]) if "class_label" in conditioning else None
    return {f"{key}{suffix}": value for key, value in data.image_scores(tensors, labels).items()}
