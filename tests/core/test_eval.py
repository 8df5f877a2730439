"""`toolkit eval`: the evaluation classifier, the metrics on features with known answers,
the whole command on the shipped ddpm-digits, and one clear line for every mistake."""

from __future__ import annotations

import json
import shutil

import pytest
import toolkit_tiny
import torch
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)
from toolkit_plugins.datasets.shapes import ShapesDataset
from torch import nn

from toolkit.eval.augment import augment, random_shift
from toolkit.eval.classifier import (
    DataRef,
    find_classifier,
    list_classifiers,
    load_classifier,
    train_classifier,
)
from toolkit.eval.metrics import diversity, frechet_distance, precision_recall_coverage
from toolkit.eval.models import batch_seed, evaluate_model
from toolkit.generation.model_folder import update_model_config
from toolkit.generation.store import find_model
from toolkit.host.loading import get_registry


class Identity(nn.Module):
    """A torchmetrics FID "extractor" for features that are already features: ``(N, D)`` -> same."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def gaussian(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


# -- the classifier ------------------------------------------------------------------------


def test_classifier_trains_saves_and_loads(registry, home):
    folder = train_classifier("tiny", 8, steps=3, batch_size=4, registry=registry)
    assert folder == home / "eval_classifiers" / "tiny-8"  # where `toolkit eval` looks first
    loaded = load_classifier(folder)
    assert loaded.class_names == ["red", "green", "blue"] and 0 <= loaded.test_accuracy <= 1
    assert loaded.config["dataset"] == {"name": "tiny", "size": 8, "options": {}, "seed": 0,
                                        "class_names": ["red", "green", "blue"]}
    images = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1  # resized to 8x8
    features, logits = loaded.embed(images)
    assert features.shape == (5, 64) and logits.shape == (5, 3) and (features >= 0).all()
    assert torch.equal(load_classifier(folder).embed(images)[0], features)  # eval mode: deterministic
    assert find_classifier(DataRef("tiny", 8), registry).path == folder


def test_user_classifier_takes_precedence_over_shipped(registry, home):
    shipped = find_classifier(DataRef("digits", 16), registry)
    assert shipped.path.parent.name == "eval_classifiers" and shipped.path.name == "digits-16"
    mine = shutil.copytree(shipped.path, home / "eval_classifiers" / "my-digits")
    assert find_classifier(DataRef("digits", 16), registry).path == mine
    assert find_classifier(DataRef("shapes", 32, {"max_objects": 1}), registry).path.name == "shapes-32"


def test_shipped_classifiers_are_accurate(registry):
    shipped = {path.name: config for path, config, source in list_classifiers(registry) if source != "user"}
    assert shipped["digits-16"]["dataset"]["options"] == {} and shipped["digits-16"]["test_accuracy"] >= 0.97
    assert shipped["shapes-32"]["dataset"]["options"] == {"max_objects": 1}
    assert shipped["shapes-32"]["test_accuracy"] >= 0.97


def test_a_deeper_augmented_classifier_round_trips_and_is_named_by_its_options(registry, home):
    """blocks and augmentations reach the folder; options name the default folder, so two
    classifiers of one dataset and size (emoji's base and tone) do not overwrite each other."""
    assert DataRef("emoji", 64, {"label": "tone", "root": "a/b c"}).folder_name == "emoji-64-label=tone-root=a_b_c"
    folder = train_classifier("tiny", 16, steps=2, batch_size=4, width=4, feature_dim=8, blocks=4,
                              augmentations=True, registry=registry)
    assert folder == home / "eval_classifiers" / "tiny-16"
    loaded = load_classifier(folder)
    assert loaded.config["architecture"] == {"num_classes": 3, "width": 4, "feature_dim": 8, "blocks": 4}
    assert loaded.config["train"]["augmentations"] is True
    assert len([m for m in loaded.model.trunk if isinstance(m, torch.nn.MaxPool2d)]) == 3
    assert loaded.embed(torch.zeros(2, 3, 16, 16))[0].shape == (2, 8)
    assert find_classifier(DataRef("tiny", 16), registry).path == folder


def test_augment_keeps_the_background_and_is_seeded():
    """A white image stays white whatever the zoom and shift (the corner pixel is the
    background), up to the light and noise; the same seed gives the same batch."""
    images = torch.ones(8, 3, 16, 16)
    images[:, :, 6:10, 6:10] = -1.0  # a dark square on white
    a = augment(images, torch.Generator().manual_seed(1))
    b = augment(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    assert (a[:, :, 0, 0] > 0.6).all()  # corners: background, at most 10% darker, faint noise
    assert not torch.allclose(a[0], a[1])  # each image drawn on its own


def test_random_shift_moves_each_image_by_at_most_max_shift():
    images = torch.zeros(16, 1, 9, 9)
    images[:, :, 4, 4] = 1.0
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    positions = [divmod(int(i), 9) for i in shifted[:, 0].flatten(1).argmax(1)]
    assert shifted.shape == images.shape and shifted.sum() == 16  # one pixel each, nothing cut off
    assert all(abs(r - 4) <= 2 and abs(c - 4) <= 2 for r, c in positions)
    assert len(set(positions)) > 1  # shifts differ between images


# -- metrics on features -------------------------------------------------------------------


def test_identical_sets_score_perfectly():
    real = gaussian(300)
    assert precision_recall_coverage(real, real.clone()) == {"precision": 1.0, "recall": 1.0, "coverage": 1.0}
    assert frechet_distance(real, real.clone(), Identity(8)) == pytest.approx(0.0, abs=1e-3)


def test_distant_sets_score_zero():
    real, fake = gaussian(300), gaussian(300, seed=1) + 100.0
    assert precision_recall_coverage(real, fake) == {"precision": 0.0, "recall": 0.0, "coverage": 0.0}
    assert frechet_distance(real, fake, Identity(8)) == pytest.approx(8 * 100.0**2, rel=0.02)  # |mean shift|^2


def test_dropping_a_mode_keeps_precision_and_halves_recall():
    blob = gaussian(400)
    real = torch.cat([blob[:200], blob[200:] + 50.0])  # two well separated modes
    fake = gaussian(200, seed=2)  # only the first mode
    scores = precision_recall_coverage(real, fake)
    assert scores["precision"] > 0.8 and 0.4 < scores["recall"] < 0.55 and scores["coverage"] < 0.55


def test_diversity_is_near_zero_for_a_collapsed_set_and_one_for_real_data():
    real, labels = gaussian(200), torch.arange(200) % 2
    collapsed = real[:1].repeat(200, 1) + 1e-3 * gaussian(200, seed=3)  # every sample the same
    ratios = diversity(real, labels, collapsed, labels, ["a", "b"])
    assert set(ratios) == {"a", "b"} and max(ratios.values()) < 0.01
    same = diversity(real, labels, gaussian(200, seed=4), labels, ["a", "b"])
    assert all(0.85 < value < 1.15 for value in same.values())


def test_batch_seeds_are_stable_and_distinct():
    seeds = {batch_seed(0, label, batch) for label in (None, 0, 1, 2) for batch in range(3)}
    assert len(seeds) == 12 and batch_seed(0, 1, 0) == batch_seed(0, 1, 0) != batch_seed(1, 1, 0)


def test_shapes_scores_real_images_perfectly():
    data = ShapesDataset("test", size=32, max_objects=1, length=12)
    images = torch.stack([data[i]["image"] for i in range(12)])
    labels = torch.tensor([data[i]["class_label"] for i in range(12)])
    assert data.image_scores(images, labels) == {"objects_detected_one": 1.0, "shape_accuracy": 1.0}
    assert data.image_scores(images, (labels + 1) % 5)["shape_accuracy"] == 0.0
    assert data.image_scores(torch.zeros(2, 3, 32, 32), None) == {"objects_detected_one": 0.0}


# -- evaluating models -----------------------------------------------------------------------


REPORT_KEYS = {
    "model", "model_sha256", "generator", "dataset", "classifier", "sampler", "steps", "guidance_scale", "n_per_class",
    "n", "seed", "class_accuracy", "classifier_test_accuracy", "fid_classifier", "fid_classifier_real_baseline",
    "fid_note", "precision", "recall", "coverage", "precision_real_baseline", "recall_real_baseline",
    "coverage_real_baseline", "diversity", "diversity_per_class", "diversity_real_baseline", "seconds", "versions",
}


def test_eval_ddpm_digits_end_to_end(home, tmp_path):
    out = tmp_path / "report.json"
    result = invoke("eval", "--model", "ddpm-digits", "--n-per-class", "4", "--steps", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "NOT Inception-FID" in result.stdout and str(out) in result.stdout
    report = json.loads(out.read_text())
    assert REPORT_KEYS <= set(report)
    # The sampler and guidance default as in `toolkit generate`.
    assert (report["n"], report["steps"], report["sampler"], report["guidance_scale"]) == (40, 2, "ddim", 2.0)
    assert report["model_sha256"] == find_model("ddpm-digits", get_registry()).sha256()
    assert report["dataset"]["name"] == "digits" and report["classifier"]["path"].endswith("digits-16")
    for key in ("class_accuracy", "precision", "recall", "coverage", "precision_real_baseline", "recall_real_baseline",
                "coverage_real_baseline"):
        assert 0 <= report[key] <= 1, key
    assert report["classifier_test_accuracy"] >= 0.97
    # Two sampling steps leave the images far from the data; two sets of real digits are close.
    assert report["fid_classifier"] > 1.5 * report["fid_classifier_real_baseline"] > 0
    assert len(report["diversity_per_class"]) == 10 and report["diversity"] > 0
    assert "shape_accuracy" not in report  # digits has no checks of its own


def test_unconditional_and_resized_models(registry, home):
    train_classifier("tiny", 8, steps=2, batch_size=4, registry=registry)
    folder = toolkit_tiny.make_model(home / "models" / "tiny-uncond", num_classes=3, accepts=["sketch"])  # 16x16
    update_model_config(folder, {"dataset": {"name": "tiny", "size": 8, "options": {}}})
    report = evaluate_model("tiny-uncond", n_per_class=2, registry=registry)
    assert report["conditional"] is False and report["n"] == 6 and report["size"] == [16, 16]
    assert report["class_accuracy"] is None and report["diversity"] is None and report["sampler"] is None
    assert 0 <= report["precision"] <= 1
    assert report["fid_classifier"] > 10 * report["fid_classifier_real_baseline"]  # an untrained net vs the data itself
    assert evaluate_model("tiny-uncond", n_per_class=2, registry=registry)["fid_classifier"] == report["fid_classifier"]

    toolkit_tiny.make_model(home / "models" / "tiny-cond", num_classes=3)  # records no dataset
    report = evaluate_model("tiny-cond", n_per_class=2, dataset="tiny", size=8, registry=registry)
    assert report["conditional"] is True and report["n"] == 6
    assert set(report["diversity_per_class"]) <= {"red", "green", "blue"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nonexistent"], "unknown model 'nonexistent'"),
        (["--model", "tinym"],
         "does not record the data it was trained on (no \"dataset\" in its config.json); pass --dataset NAME --size N"),
        (["--model", "tinym", "--dataset", "digits", "--size", "8"],
         "no evaluation classifier for dataset 'digits' at 8x8; train one (a few minutes on a CPU) with "
         "`toolkit eval-classifier train --dataset digits --size 8`"),
        (["--model", "tinym", "--dataset", "shapes", "--size", "16", "-o", "max_objects=1"],
         "`toolkit eval-classifier train --dataset shapes --size 16 -o max_objects=1`"),
        (["--model", "tinym", "--dataset", "shapes", "--size", "32", "-o", "max_objects=1"],
         "has 10 classes but dataset 'shapes'"),
        (["--model", "tinym", "--dataset", "digits", "--size", "16", "--classifier", "{home}/models/tinym"],
         "is not an evaluation classifier folder"),
        (["--model", "ddpm-digits", "--sampler", "nope"], "unknown sampler 'nope'"),
    ],
)
def test_eval_mistakes_print_one_line(tiny_model, home, tmp_path, args, message):
    out = tmp_path / "report.json"
    result = invoke("eval", *[a.format(home=home) for a in args], "--out", str(out))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and message in result.stderr.replace("\n", " "), result.stderr
    assert "Traceback" not in result.output and not out.exists()


def test_eval_classifier_train_command(registry, home):
    result = invoke("eval-classifier", "train", "--dataset", "tiny", "--size", "8", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.stderr and result.stdout.strip() == str(home / "eval_classifiers" / "tiny-8")
    listed = invoke("eval-classifier", "list")
    assert "tiny-8" in listed.stdout and "digits-16" in listed.stdout
