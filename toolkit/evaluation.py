"""Evaluating generators against the data they were trained on: ``toolkit eval --model NAME``.

Every model is scored the same way. A fixed, seeded set of images is generated through
``toolkit.pipeline`` (so sampler, steps and guidance default exactly as in ``toolkit
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
* whatever the dataset itself scores (``Dataset.image_scores``; the shapes dataset counts
  objects and checks their shape), on the generated images and on real ones.

Classifiers are folders (``config.json`` + ``model.safetensors``) found by dataset, size and
options: first in ``$TOOLKIT_HOME/eval_classifiers``, then among those plugins ship
(``register_eval_classifiers``). ``toolkit eval-classifier train`` makes one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .components import Dataset
from .errors import EvaluationError, InvalidRequestError, ModelError
from .images import pil_to_tensor
from .plugins import get_registry
from .recipe import library_versions
from .registry import Registry
from .request import GenerationRequest
from .store import ModelInfo, find_model, load_weights, read_config, save_model_folder, toolkit_home, weights_sha256

FID_NOTE = "FID in our classifier's feature space, NOT Inception-FID (no Inception weights are available offline)"
K_NEAREST = 3  # the k of the k-NN manifolds behind precision, recall and coverage (both papers' default)
MAX_BATCH = 64  # images per generate call: the request schema's limit on n
CLASSIFIER_KIND = "eval-classifier"  # config.json marker, so a model folder is not mistaken for one


# -- what a model is compared with -----------------------------------------------------------


@dataclass
class DataRef:
    """The data a model was trained on, which it is compared with: a registered dataset at
    one image size with its options. ``seed`` picks the dataset's train/test split."""

    name: str
    size: int
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def folder_name(self) -> str:
        """The default classifier folder, e.g. "digits-16"."""
        return f"{self.name}-{self.size}"

    def matches(self, other: DataRef) -> bool:
        # Options compare as JSON, so 1 and 1.0 or differently ordered keys cannot split hairs.
        same = json.dumps(self.options, sort_keys=True) == json.dumps(other.options, sort_keys=True)
        return self.name == other.name and self.size == other.size and same

    def describe(self) -> str:
        options = "".join(f" -o {k}={v}" for k, v in sorted(self.options.items()))
        return f"dataset '{self.name}' at {self.size}x{self.size}" + (f" with{options}" if options else "")

    def train_command(self) -> str:
        options = "".join(f" -o {k}={v}" for k, v in sorted(self.options.items()))
        return f"toolkit eval-classifier train --dataset {self.name} --size {self.size}{options}"

    def build(self, split: str, registry: Registry) -> Dataset:
        cls = registry.get("datasets", self.name)
        if split not in cls.splits:
            raise EvaluationError(f"dataset '{self.name}' has no '{split}' split (it has {', '.join(cls.splits)}); "
                                  "evaluation needs a train and a test split")
        try:
            return cls(split=split, size=self.size, seed=self.seed, **self.options)
        except TypeError as error:
            raise InvalidRequestError(f"dataset '{self.name}': {error}") from None


def load_images(data: Dataset, indices: list[int] | None = None, *, progress: Any = None,
                what: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of a dataset as one batch: images ``(N, 3, S, S)`` in [-1, 1] and class labels
    ``(N,)`` int64. ``indices`` default to the whole split."""
    indices = list(range(len(data))) if indices is None else indices
    task = progress.add_task(f"loading {what or data.split}", total=len(indices)) if progress else None
    images, labels = [], []
    for done, index in enumerate(indices, start=1):
        sample = data[index]
        if "class_label" not in sample:
            raise EvaluationError(f"dataset '{data.name}' has no class labels; the evaluation classifier needs them")
        images.append(sample["image"])
        labels.append(int(sample["class_label"]))
        if task is not None and (done % 256 == 0 or done == len(indices)):
            progress.update(task, completed=done)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


# -- the classifier ------------------------------------------------------------------------


class EvalClassifier(nn.Module):
    """A small CNN that tells a dataset's classes apart; its penultimate layer is the feature
    space every distribution metric here is measured in.

    Three conv blocks (conv 3x3, BatchNorm, ReLU; 2x2 max-pool between them), global average
    pooling, a ``feature_dim`` layer, a linear head. Global pooling makes it work at any
    image size, and keeps a 1-2 pixel shift from changing the features much.
    """

    def __init__(self, num_classes: int, *, width: int = 16, feature_dim: int = 64):
        super().__init__()
        self.num_classes, self.width, self.feature_dim = num_classes, width, feature_dim

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

        self.trunk = nn.Sequential(
            block(3, width), nn.MaxPool2d(2), block(width, 2 * width), nn.MaxPool2d(2), block(2 * width, 4 * width),
        )
        self.embed = nn.Sequential(nn.Linear(4 * width, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def config(self) -> dict[str, int]:
        return {"num_classes": self.num_classes, "width": self.width, "feature_dim": self.feature_dim}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, 3, S, S)`` in [-1, 1] -> features ``(B, feature_dim)``, non-negative."""
        h = self.trunk(x)  # (B, 4 * width, S / 4, S / 4)
        return self.embed(h.mean(dim=(2, 3)))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, 3, S, S)`` in [-1, 1] -> logits ``(B, num_classes)``."""
        return self.head(self.features(x))


@dataclass
class TrainedClassifier:
    """A classifier with what its folder's config.json says: the data it was trained on and
    its accuracy on that data's held-out test split."""

    model: EvalClassifier  # in eval mode
    path: Path
    config: dict[str, Any]

    @property
    def data(self) -> DataRef:
        d = self.config["dataset"]
        return DataRef(d["name"], int(d["size"]), dict(d.get("options", {})), int(d.get("seed", 0)))

    @property
    def class_names(self) -> list[str]:
        return list(self.config["dataset"]["class_names"])

    @property
    def test_accuracy(self) -> float:
        return float(self.config["test_accuracy"])

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """images ``(N, 3, H, W)`` in [-1, 1], resized to the classifier's size when they differ
        -> features ``(N, D)`` and logits ``(N, C)``, float32 on the CPU."""
        device = next(self.model.parameters()).device
        features, logits = [], []
        for chunk in images.split(batch_size):
            x = resize(chunk.to(device), self.data.size)
            f = self.model.features(x)
            features.append(f.float().cpu())
            logits.append(self.model.head(f).float().cpu())
        return torch.cat(features), torch.cat(logits)


class ClassifierFeatures(nn.Module):
    """The classifier's feature layer shaped as torchmetrics' FID wants a custom extractor:
    it calls ``extractor(images)`` on whatever ``update`` receives, unconverted (our float
    images in [-1, 1]), and reads ``num_features`` instead of probing with a 299x299 image."""

    def __init__(self, classifier: TrainedClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.model.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images ``(N, 3, H, W)`` in [-1, 1] -> ``(N, D)``."""
        return self.classifier.embed(images)[0]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, 3, size, size)``; unchanged when already that size."""
    if images.shape[-2:] == (size, size):
        return images
    # antialias: a downscaled generated image should look like the dataset's own downscaling, not alias.
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``(B, C, H, W)`` by its own whole-pixel offset of up to
    ``max_shift`` in each direction, repeating edge pixels (the classifier's augmentation)."""
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, b, 1), generator=generator)  # (B, 1) each
    rows = (torch.arange(h) - dy).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w) - dx).clamp(0, w - 1)  # (B, W)
    batch = torch.arange(b)[:, None, None]
    shifted = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return shifted.permute(0, 3, 1, 2).contiguous()


def train_classifier(dataset: str, size: int, options: dict[str, Any] | None = None, *, out: str | Path | None = None,
                     steps: int = 1000, batch_size: int = 128, lr: float = 3e-3, max_shift: int = 2,
                     train_samples: int = 10_000, width: int = 16, feature_dim: int = 64, seed: int = 0,
                     device: str = "cpu", registry: Registry | None = None, progress: Any = None) -> Path:
    """Train an ``EvalClassifier`` on the dataset's ``train`` split, measure its accuracy on
    the held-out ``test`` split, and save it. Returns the folder (default
    ``$TOOLKIT_HOME/eval_classifiers/<dataset>-<size>``, where ``toolkit eval`` looks first).

    train_samples: at most this many training images are loaded (the first ones; datasets
    are deterministic), which keeps a 20,000-image procedural split to seconds of loading.
    progress: a ``rich.progress.Progress``, or None for silence.
    """
    registry = registry or get_registry()
    data = DataRef(dataset, int(size), dict(options or {}))
    train, test = data.build("train", registry), data.build("test", registry)
    class_names = train.class_names
    if not class_names:
        raise EvaluationError(f"dataset '{dataset}' has no class names; the evaluation classifier needs labelled data")
    first = list(range(min(len(train), train_samples)))
    images, labels = load_images(train, first, progress=progress, what=f"{dataset} train")
    test_images, test_labels = load_images(test, progress=progress, what=f"{dataset} test")

    with torch.random.fork_rng(devices=[]):  # seeded initial weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = EvalClassifier(len(class_names), width=width, feature_dim=feature_dim).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    rng = torch.Generator().manual_seed(seed)
    task = progress.add_task(f"training the {data.folder_name} classifier", total=steps) if progress else None
    order = torch.empty(0, dtype=torch.int64)
    model.train()
    for step in range(1, steps + 1):
        if len(order) < batch_size:  # a fresh shuffled epoch
            order = torch.cat([order, torch.randperm(len(images), generator=rng)])
        index, order = order[:batch_size], order[batch_size:]
        x = random_shift(images[index], max_shift, rng).to(device)
        loss = F.cross_entropy(model(x), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if task is not None:
            progress.update(task, completed=step,
                            description=f"training the {data.folder_name} classifier loss {loss.item():.3f}")
    model.eval()

    with torch.no_grad():
        predicted = torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in test_images.split(256)])
    config = {
        "kind": CLASSIFIER_KIND,
        "architecture": model.config,
        "dataset": {"name": dataset, "size": int(size), "options": data.options, "class_names": class_names,
                    "seed": data.seed},
        "test_accuracy": round((predicted == test_labels).double().mean().item(), 4),
        "test_samples": len(test_labels),
        "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "max_shift": max_shift,
                  "train_samples": len(labels), "seed": seed},
        "versions": library_versions(),
    }
    folder = Path(out) if out is not None else user_classifiers_dir() / data.folder_name
    return save_model_folder(folder, config, {"model.safetensors": model.state_dict()})


def load_classifier(folder: str | Path, device: str = "cpu") -> TrainedClassifier:
    """Load a classifier folder written by ``train_classifier`` (weights checked against
    their recorded sha256)."""
    folder = Path(folder)
    config = read_config(folder)
    if config.get("kind") != CLASSIFIER_KIND:
        raise ModelError(f"{folder} is not an evaluation classifier folder (its config.json has no \"kind\": "
                         f"\"{CLASSIFIER_KIND}\"); make one with `toolkit eval-classifier train`")
    model = EvalClassifier(**config["architecture"])
    try:
        model.load_state_dict(load_weights(folder, device=device))
    except RuntimeError as error:  # shapes or names that do not fit the architecture
        raise ModelError(f"{folder}/model.safetensors does not fit its config.json ({error}); "
                         "retrain the classifier") from None
    return TrainedClassifier(model.to(device).eval(), folder, config)


def user_classifiers_dir() -> Path:
    return toolkit_home() / "eval_classifiers"


def list_classifiers(registry: Registry | None = None) -> list[tuple[Path, dict[str, Any], str]]:
    """Every classifier folder as ``(path, config, source)``, in look-up order: the user
    folder first, then those plugins ship. Unreadable folders are left out."""
    registry = registry or get_registry()
    user = user_classifiers_dir()
    found = [(f, "user") for f in sorted(user.iterdir()) if f.is_dir()] if user.is_dir() else []
    found += [(Path(e.obj), e.plugin) for _, e in sorted(registry.eval_classifiers.items())]
    listed = []
    for folder, source in found:
        try:
            config = read_config(folder)
        except ModelError:
            continue
        if config.get("kind") == CLASSIFIER_KIND:
            listed.append((folder, config, source))
    return listed


def find_classifier(data: DataRef, registry: Registry | None = None, device: str = "cpu") -> TrainedClassifier:
    """The first classifier (user folder before shipped ones) trained on ``data``'s dataset,
    size and options."""
    for folder, config, _ in list_classifiers(registry):
        d = config["dataset"]
        if data.matches(DataRef(d["name"], int(d["size"]), dict(d.get("options", {})))):
            return load_classifier(folder, device)
    raise EvaluationError(f"no evaluation classifier for {data.describe()}; train one (a few minutes on a CPU) "
                          f"with `{data.train_command()}`")


# -- metrics on features -------------------------------------------------------------------


def frechet_distance(real: torch.Tensor, fake: torch.Tensor, extractor: nn.Module, batch_size: int = 256) -> float:
    """Fréchet distance between two sets through torchmetrics' FID with a custom extractor.

    real, fake: whatever ``extractor`` takes, batched along dim 0; ``extractor`` returns
    ``(N, D)`` features and has ``num_features = D``. Both sets need at least 2 samples (and
    more than D for a well-conditioned covariance).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=extractor)
    for chunk in real.split(batch_size):
        metric.update(chunk, real=True)
    for chunk in fake.split(batch_size):
        metric.update(chunk, real=False)
    # The matrix square root's round-off can leave identical sets a hair below zero.
    return max(float(metric.compute()), 0.0)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, D)``, ``(M, D)`` -> Euclidean distances ``(N, M)``, computed exactly (the
    matmul shortcut's round-off would put a sample a hair away from itself)."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(features: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """``(N, D)`` -> ``(N,)``: each sample's distance to its k-th nearest other sample."""
    if len(features) <= k:
        raise EvaluationError(f"k-NN metrics need more than k={k} samples per set, got {len(features)}; "
                              "raise --n-per-class")
    return _distances(features, features).kthvalue(k + 1, dim=1).values  # k + 1: a sample is its own nearest


def precision_recall_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST) -> dict[str, float]:
    """real ``(N, D)``, fake ``(M, D)`` features -> precision, recall and coverage in [0, 1].

    Each sample's k-NN ball (radius: distance to its k-th nearest neighbour in its own
    set) approximates its set's manifold. precision: fake samples inside some real ball;
    recall: real samples inside some fake ball; coverage: real samples whose own ball holds
    at least one fake sample.
    """
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    d = _distances(real, fake)  # (N, M)
    return {
        "precision": (d <= real_radii[:, None]).any(dim=0).double().mean().item(),
        "recall": (d <= fake_radii[None, :]).any(dim=1).double().mean().item(),
        "coverage": (d.min(dim=1).values <= real_radii).double().mean().item(),
    }


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """``(N, D)`` with N >= 2 -> the mean distance between two different samples."""
    n = len(features)
    return (_distances(features, features).sum() / (n * (n - 1))).item()


def diversity(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
              class_names: list[str]) -> dict[str, float]:
    """Per class: mean pairwise distance of the fake samples over that of the real ones
    (features ``(N, D)``, labels ``(N,)``). Classes with fewer than 2 samples on a side are
    left out."""
    ratios = {}
    for label, name in enumerate(class_names):
        r, f = real[real_labels == label], fake[fake_labels == label]
        if len(r) >= 2 and len(f) >= 2:
            ratios[name] = mean_pairwise_distance(f) / max(mean_pairwise_distance(r), 1e-12)
    return ratios


# -- evaluating a model --------------------------------------------------------------------


def batch_seed(seed: int, label: int | None, batch: int) -> int:
    """The seed of one generate call: a function of the evaluation seed, the class (None
    for unconditional models) and the batch's index only, so a set is reproducible piece
    by piece and classes never share noise."""
    entropy = [seed, 0 if label is None else label + 1, batch]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFF_FFFF)


def model_data(info: ModelInfo, dataset: str | None = None, size: int | None = None,
               options: dict[str, Any] | None = None) -> DataRef:
    """What the model is compared with: its config's ``dataset`` entry (written by ``toolkit
    train``), each part overridden by the arguments given."""
    recorded = info.config.get("dataset") or {}
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
    from . import pipeline  # the pipeline imports the whole plugin stack; only evaluating needs it

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
    # The dataset's own checks (shapes: object count and shape), on generated and on as many real images.
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
