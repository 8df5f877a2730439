"""Evaluating generators against the data they were trained on: ``toolkit eval --model NAME``.

Every model is scored the same way. A fixed, seeded set of images is generated through
``toolkit.generation.pipeline`` (so sampler, steps and guidance default exactly as in ``toolkit
generate``): ``n_per_class`` images of every class, or ``n_per_class x classes`` for an
unconditional model. A small classifier trained on the same dataset, size and options
(``EvalClassifier``) reads them, and its penultimate layer is the feature space of:

* ``class_accuracy``: how often the classifier reads the class the image was asked for,
  beside ``classifier_test_accuracy``, its accuracy on the held-out real test split (the
  most a generator can expect to reach);
* ``fid_classifier``: the Fréchet distance between generated images and the real test
  split. This is FID in our classifier's feature space, NOT Inception-FID (no Inception
  weights are available offline): its numbers compare only with each other and with
  ``fid_classifier_real_baseline``, the same distance between real training images and
  the test split;
* ``precision`` / ``recall`` (Kynkäänniemi et al. 2019, https://arxiv.org/abs/1904.06991):
  the share of generated samples inside the real data's k-nearest-neighbour manifold
  (fidelity), and of real samples inside the generated one (variety);
* ``coverage`` (Naeem et al. 2020, https://arxiv.org/abs/2002.09797): the share of real
  samples with a generated sample inside their k-NN ball; unlike recall, a few outlying
  generated samples cannot inflate it;
* ``diversity``: per class, the mean pairwise feature distance of generated images over
  that of real images of the class: 1.0 is as varied as the real data, near 0 is mode
  collapse;
* whatever the dataset plugin itself scores (``Dataset.image_scores``: object counts, say),
  on the generated images and on real ones.

Classifiers are folders (``config.json`` + ``model.safetensors``) found by dataset, size and
options: first in ``$TOOLKIT_HOME/eval_classifiers``, then among those plugins ship
(``register_eval_classifiers``). ``toolkit eval-classifier train`` makes one.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.components import Dataset
from toolkit.errors import EvaluationError
from toolkit.eval.classifier import ClassifierFeatures, DataRef, find_classifier, load_classifier, load_images
from toolkit.eval.metrics import K_NEAREST, diversity, frechet_distance, precision_recall_coverage
from toolkit.generation.files import write_atomic
from toolkit.generation.images import pil_to_tensor
from toolkit.generation.model_folder import weights_sha256
from toolkit.generation.recipe import library_versions
from toolkit.generation.request import GenerationRequest
from toolkit.generation.store import ModelInfo, find_model
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry

FID_NOTE = "FID in our classifier's feature space, NOT Inception-FID (no Inception weights are available offline)"
MAX_BATCH = 64  # images per generate call: the request schema's limit on n


# -- evaluating a model --------------------------------------------------------------------


def batch_seed(seed: int, label: int | None, batch: int) -> int:
    """The seed of one generate call: a function of the evaluation seed, the class (None
    for unconditional models) and the batch's index only, so a set is reproducible piece
    by piece and classes never share noise."""
    entropy = [seed, 0 if label is None else label + 1, batch]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFF_FFFF)


def model_data(info: ModelInfo, dataset: str | None = None, size: int | None = None,
               options: dict[str, Any] | None = None, record: str = "dataset") -> DataRef:
    """What the model is compared with: its config's ``record`` entry (``dataset``, written by
    ``toolkit train``; a stage that added a part records its own data under another key,
    e.g. ``sketch_dataset``), falling back to ``dataset``; each part overridden by the
    arguments given."""
    recorded = info.config.get(record) or info.config.get("dataset") or {}
    name, size = dataset or recorded.get("name"), size or recorded.get("size")
    if name is None or size is None:
        raise EvaluationError(f"model '{info.name}' does not record the data it was trained on (no \"dataset\" in its "
                              "config.json); pass --dataset NAME --size N")
    options = options if options is not None else (recorded.get("options", {}) if name == recorded.get("name") else {})
    return DataRef(name, int(size), dict(options), int(recorded.get("seed", 0)))


def evaluate_model(name: str, n_per_class: int = 100, seed: int = 0, *, dataset: str | None = None,
                   size: int | None = None, options: dict[str, Any] | None = None, classifier: str | Path | None = None,
                   sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                   truncation: float | None = None, device: str = "cpu", registry: Registry | None = None, progress: Any = None) -> dict[str, Any]:
    """Generate a fixed, seeded set with model ``name`` and score it (see the module
    docstring). Returns a JSON-able report; figures that do not apply (class accuracy for an
    unconditional model) are None.

    dataset, size, options: override what the model's config says it was trained on.
    classifier: a classifier folder to use instead of the one found for the data.
    sampler, steps, guidance_scale: for diffusion models; default as in ``toolkit generate``.
    truncation: for latent models (GAN, VAE); default the model's.
    progress: a ``rich.progress.Progress``, or None for silence.
    """
    from toolkit.generation import pipeline  # the pipeline imports the whole plugin stack; only evaluating needs it

    started = time.perf_counter()
    registry = registry or get_registry()
    info = find_model(name, registry)
    data = model_data(info, dataset, size, options)
    judge = load_classifier(classifier, device) if classifier else find_classifier(data, registry, device)
    if judge.data.name != data.name:
        raise EvaluationError(f"classifier {judge.path} was trained on dataset '{judge.data.name}', not '{data.name}'")
    class_names = judge.class_names
    conditional = "class" in info.accepts
    if conditional and info.config.get("num_classes", len(class_names)) != len(class_names):
        raise EvaluationError(f"model '{info.name}' has {info.config['num_classes']} classes but {data.describe()} has "
                              f"{len(class_names)}; pass the --dataset it was trained on")

    # Every batch's request, planned before any work, so a bad sampler or steps fails at once.
    labels: list[int | None] = list(range(len(class_names))) if conditional else [None]
    per_label = n_per_class if conditional else n_per_class * len(class_names)
    plans = []
    for label in labels:
        for batch, start in enumerate(range(0, per_label, MAX_BATCH)):
            request = GenerationRequest(model=name, class_label=label, n=min(MAX_BATCH, per_label - start),
                                        seed=batch_seed(seed, label, batch), sampler=sampler, steps=steps,
                                        guidance_scale=guidance_scale, truncation=truncation)
            plans.append((label, pipeline.plan(request, registry)))
    resolved = plans[0][1].request

    total = per_label * len(labels)
    task = progress.add_task(f"generating {total} images with {info.name}", total=total) if progress else None
    fake_images, fake_labels = [], []
    for label, plan in plans:
        result = pipeline.run(plan, device=device)
        fake_images.append(pil_to_tensor(result.images))  # what a user gets: 8-bit pixels
        fake_labels += [-1 if label is None else label] * len(result.images)
        if task is not None:
            progress.update(task, advance=len(result.images))
    fake = torch.cat(fake_images)  # (N, 3, H, W) in [-1, 1]
    fake_label = torch.tensor(fake_labels)  # (N,), -1 for unconditional

    test_data, train_data = data.build("test", registry), data.build("train", registry)
    real, real_label = load_images(test_data, progress=progress, what=f"{data.name} test")
    # The baseline compares two real sets of the sizes the generated figures compare.
    subset = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(seed))[:total].sort().values
    train, train_label = load_images(train_data, subset.tolist(), progress=progress, what=f"{data.name} train")

    real_features, real_logits = judge.embed(real)
    fake_features, fake_logits = judge.embed(fake)
    train_features, _ = judge.embed(train)
    extractor = ClassifierFeatures(judge)
    generated = precision_recall_coverage(real_features, fake_features)
    baseline = precision_recall_coverage(real_features, train_features)
    real_diversity = diversity(real_features, real_label, train_features, train_label, class_names)
    report: dict[str, Any] = {
        "model": info.name,
        "model_sha256": info.sha256(),
        "generator": info.generator,
        "dataset": {"name": data.name, "size": data.size, "options": data.options, "seed": data.seed,
                    "class_names": class_names, "test_samples": len(real)},
        "classifier": {"path": str(judge.path), "sha256": weights_sha256(judge.path),
                       "feature_dim": judge.model.feature_dim},
        "sampler": resolved.sampler,
        "steps": resolved.steps,
        "guidance_scale": resolved.guidance_scale,
        "truncation": resolved.truncation,
        "size": [resolved.height, resolved.width],
        "n_per_class": n_per_class,
        "n": total,
        "seed": seed,
        "conditional": conditional,
        "classifier_test_accuracy": (real_logits.argmax(1) == real_label).double().mean().item(),
        "class_accuracy": None,
        "class_accuracy_per_class": None,
        "fid_classifier": frechet_distance(real, fake, extractor),
        "fid_classifier_real_baseline": frechet_distance(real, train, extractor),
        "fid_note": FID_NOTE,
        "k": K_NEAREST,
        **generated,
        **{f"{key}_real_baseline": value for key, value in baseline.items()},
        "diversity": None,
        "diversity_per_class": None,
        "diversity_real_baseline": float(np.mean(list(real_diversity.values()))) if real_diversity else None,
    }
    if conditional:
        hits = fake_logits.argmax(1) == fake_label
        report["class_accuracy"] = hits.double().mean().item()
        report["class_accuracy_per_class"] = {name: hits[fake_label == i].double().mean().item()
                                              for i, name in enumerate(class_names)}
        per_class = diversity(real_features, real_label, fake_features, fake_label, class_names)
        report["diversity_per_class"] = per_class
        report["diversity"] = float(np.mean(list(per_class.values()))) if per_class else None
    # The dataset's own checks (``Dataset.image_scores``), on generated and on as many real images.
    report.update(_dataset_scores(test_data, fake, None if not conditional else fake_label, "", progress))
    report.update(_dataset_scores(test_data, real[:total], real_label[:total], "_real", progress))
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["versions"] = {**library_versions(), "torchmetrics": version("torchmetrics")}
    report["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def _dataset_scores(data: Dataset, images: torch.Tensor, labels: torch.Tensor | None, suffix: str,
                    progress: Any) -> dict[str, float]:
    """``Dataset.image_scores`` over ``(N, 3, H, W)`` images in batches, averaged; keys get ``suffix``."""
    sums: dict[str, float] = {}
    task = None
    for start in range(0, len(images), MAX_BATCH):
        chunk = images[start:start + MAX_BATCH]
        scores = data.image_scores(chunk, None if labels is None else labels[start:start + MAX_BATCH])
        if not scores:
            return {}  # the dataset scores nothing
        if progress is not None and task is None:
            task = progress.add_task(f"{data.name} checks{' on real images' if suffix else ''}", total=len(images))
        for key, value in scores.items():
            sums[key] = sums.get(key, 0.0) + value * len(chunk)  # scores are batch means: weight by batch size
        if task is not None:
            progress.update(task, completed=start + len(chunk))
    return {f"{key}{suffix}": value / len(images) for key, value in sums.items()}


def save_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON through a temporary file and a rename: never half a file."""
    return write_atomic(path, json.dumps(report, indent=2) + "\n")
