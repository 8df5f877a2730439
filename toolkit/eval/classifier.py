"""The small classifier `toolkit eval` reads images with: one per dataset, size and options,
trained by `toolkit eval-classifier train`, its penultimate layer the feature space of
every metric (toolkit.eval.metrics).

Classifiers are folders (``config.json`` + ``model.safetensors``) found by dataset, size and
options: first in ``$TOOLKIT_HOME/eval_classifiers``, then among those plugins ship
(``register_eval_classifiers``).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.components import Dataset, build_dataset
from toolkit.errors import EvaluationError, ModelError
from toolkit.eval.augment import augment, random_shift
from toolkit.generation.model_folder import load_weights, read_config, save_model_folder
from toolkit.generation.recipe import library_versions
from toolkit.generation.store import toolkit_home
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry

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
        """The default classifier folder: "<dataset>-<size>", then "-key=value" per option (a
        value's characters that a folder name cannot hold, such as a path's "/", become "_")."""
        options = "".join(f"-{k}={option_text(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}-{self.size}" + re.sub(r"[^\w.=-]+", "_", options)

    def matches(self, other: DataRef) -> bool:
        # Options compare as JSON, so 1 and 1.0 or differently ordered keys cannot split hairs.
        same = json.dumps(self.options, sort_keys=True) == json.dumps(other.options, sort_keys=True)
        return self.name == other.name and self.size == other.size and same

    def describe(self) -> str:
        options = "".join(f" -o {k}={option_text(v)}" for k, v in sorted(self.options.items()))
        return f"dataset '{self.name}' at {self.size}x{self.size}" + (f" with{options}" if options else "")

    def train_command(self) -> str:
        options = "".join(f" -o {k}={option_text(v)}" for k, v in sorted(self.options.items()))
        return f"toolkit eval-classifier train --dataset {self.name} --size {self.size}{options}"

    def build(self, split: str, registry: Registry) -> Dataset:
        if split not in registry.get("datasets", self.name).splits:
            raise EvaluationError(f"dataset '{self.name}' has no '{split}' split (it has "
                                  f"{', '.join(registry.get('datasets', self.name).splits)}); evaluation needs a train and a test split")
        return build_dataset(registry, self.name, split=split, size=self.size, seed=self.seed, options=self.options)


def option_text(value: Any) -> str:
    """A dataset option's value as ``-o key=VALUE`` takes it: true, not Python's True."""
    return value if isinstance(value, str) else json.dumps(value)


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

    ``blocks`` conv blocks (conv 3x3, BatchNorm, ReLU; 2x2 max-pool between them; widths
    ``width``, 2x, 4x, then 8x), global average pooling, a ``feature_dim`` layer, a linear
    head. Global pooling makes it work at any image size, and keeps a 1-2 pixel shift from
    changing the features much. Three blocks see 10x10 pixels each, enough for small images
    of simple objects; a 64x64 picture with parts (a face's eyes and mouth) needs five.
    """

    def __init__(self, num_classes: int, *, width: int = 16, feature_dim: int = 64, blocks: int = 3):
        super().__init__()
        self.num_classes, self.width, self.feature_dim, self.blocks = num_classes, width, feature_dim, blocks

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

        widths = [width * min(2 ** i, 8) for i in range(blocks)]
        layers: list[nn.Module] = [block(3, widths[0])]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.MaxPool2d(2), block(c_in, c_out)]
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(widths[-1], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def config(self) -> dict[str, int]:
        config = {"num_classes": self.num_classes, "width": self.width, "feature_dim": self.feature_dim}
        return config if self.blocks == 3 else {**config, "blocks": self.blocks}  # older folders have no "blocks"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, 3, S, S)`` in [-1, 1] -> features ``(B, feature_dim)``, non-negative."""
        h = self.trunk(x)  # (B, C, S / 2 ** (blocks - 1), same)
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


def train_classifier(dataset: str, size: int, options: dict[str, Any] | None = None, *, out: str | Path | None = None,
                     steps: int = 1000, batch_size: int = 128, lr: float = 3e-3, max_shift: int = 2,
                     train_samples: int = 10_000, width: int = 16, feature_dim: int = 64, blocks: int = 3,
                     augmentations: bool = False, seed: int = 0, device: str = "cpu", registry: Registry | None = None,
                     progress: Any = None) -> Path:
    """Train an ``EvalClassifier`` on the dataset's ``train`` split, measure its accuracy on
    the held-out ``test`` split, and save it. Returns the folder (default
    ``$TOOLKIT_HOME/eval_classifiers/<dataset>-<size>``, where ``toolkit eval`` looks first).

    train_samples: at most this many training images are loaded (the first ones; datasets
    are deterministic), which keeps a 20,000-image procedural split to seconds of loading.
    width, feature_dim, blocks: the ``EvalClassifier``'s size.
    augmentations: besides the shift, ``augment``'s zoom, blur, light and noise (for a
    dataset of one render per class, whose generated images are never pixel-exact).
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
        model = EvalClassifier(len(class_names), width=width, feature_dim=feature_dim, blocks=blocks).to(device)
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
        x = augment(images[index], rng) if augmentations else random_shift(images[index], max_shift, rng)
        x = x.to(device)
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
                  "train_samples": len(labels), "seed": seed, **({"augmentations": True} if augmentations else {})},
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
    except RuntimeError as error:  # tensor sizes or names that do not fit the architecture
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


