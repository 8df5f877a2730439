"""Edge F1 on cases with known answers, the sketch styles the evaluation makes, and
`toolkit eval --sketches` end to end on a tiny model that draws its sketch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import toolkit_tiny
import torch
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)
from scipy import ndimage
from skimage.morphology import skeletonize
from toolkit_plugins.datasets.shapes import ShapesDataset

from toolkit.errors import EvaluationError
from toolkit.eval.sketches import (
    edge_f1,
    evaluate_sketches,
    image_edges,
    sketch_f1,
    sketch_image,
    sketch_strokes,
    thick_sketch,
    wobbly_sketch,
)
from toolkit.generation.model_folder import update_model_config


def lines(columns: list[int], size: int = 32, width: int = 1) -> np.ndarray:
    """``(size, size)`` bool: full-height vertical lines ``width`` px wide starting at ``columns``."""
    out = np.zeros((size, size), bool)
    for c in columns:
        out[:, c:c + width] = True
    return out


# -- edge F1 -------------------------------------------------------------------------------------


def test_identical_edges_score_one():
    assert edge_f1(lines([8, 20]), lines([8, 20])) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


@pytest.mark.parametrize(("shift", "f1"), [(1, 1.0), (2, 1.0), (3, 0.0), (4, 0.0)])
def test_a_shift_counts_within_two_pixels_only(shift, f1):
    assert edge_f1(lines([8 + shift, 20 + shift]), lines([8, 20]))["f1"] == f1


def test_half_the_strokes_found_gives_known_precision_and_recall():
    scores = edge_f1(lines([8]), lines([8, 20]))
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5 and scores["f1"] == pytest.approx(2 / 3)
    scores = edge_f1(lines([8, 20]), lines([8]))  # the other way round: extra edges cost precision
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0


def test_both_sides_are_thinned_to_skeletons():
    # A 5 px wide stroke and a 1 px line along its middle are the same line.
    assert edge_f1(lines([10], width=1), lines([8], width=5))["f1"] == 1.0
    assert edge_f1(lines([8], width=5), lines([10], width=1))["f1"] == 1.0


def test_empty_sides_score_zero_without_dividing_by_zero():
    empty = np.zeros((32, 32), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide-by-zero RuntimeWarning would fail here
        for predicted, reference in ((empty, lines([8])), (lines([8]), empty), (empty, empty)):
            assert edge_f1(predicted, reference) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_an_image_scores_high_against_its_own_sketch_and_low_against_another():
    data = ShapesDataset("test", size=64, length=20)
    own = [sketch_f1(data[i]["image"], data[i]["sketch"])["f1"] for i in range(20)]
    other = [sketch_f1(data[i]["image"], data[(i + 1) % 20]["sketch"])["f1"] for i in range(20)]
    flat = sketch_f1(torch.zeros(3, 64, 64), data[0]["sketch"])
    assert np.mean(own) > 0.95 and min(own) > 0.9
    assert np.mean(other) < 0.3
    assert flat["f1"] == 0.0 and not image_edges(torch.zeros(3, 64, 64)).any()


def test_sketch_strokes_resize_to_the_image():
    sketch = torch.zeros(1, 64, 64)
    sketch[0, :, 30:34] = 1.0
    strokes = sketch_strokes(sketch, (16, 16))
    assert strokes.shape == (16, 16) and strokes[:, 7:9].all() and strokes.sum() == 32


# -- sketches drawn differently --------------------------------------------------------------------


def test_thick_and_wobbly_sketches_keep_the_lines():
    data = ShapesDataset("test", size=64, length=10)
    thick_f1, wobbly_f1 = [], []
    for i in range(10):
        sketch = data[i]["sketch"]
        thick = thick_sketch(sketch)
        wobbly = wobbly_sketch(sketch, np.random.default_rng(i))
        assert thick.shape == wobbly.shape == sketch.shape
        strokes = thick[0].numpy() > 0
        depth = ndimage.distance_transform_edt(strokes)[skeletonize(strokes)]
        assert 4 <= np.median(2 * depth - 1) <= 6  # five pixels wide
        thick_f1.append(edge_f1(sketch_strokes(thick), sketch_strokes(sketch))["f1"])
        wobbly_f1.append(edge_f1(sketch_strokes(wobbly), sketch_strokes(sketch))["f1"])
        assert not torch.equal(wobbly, sketch)
        assert torch.equal(wobbly, wobbly_sketch(sketch, np.random.default_rng(i)))  # seeded
    # Five-pixel lines fill small shapes in (their skeleton is then not the outline): a mean, not a minimum.
    assert np.mean(thick_f1) > 0.9 and np.mean(wobbly_f1) > 0.95
    image = np.asarray(sketch_image(sketch))
    assert image.dtype == np.uint8 and image.min() < 64 and image.max() == 255  # dark lines on white


# -- the evaluation, end to end --------------------------------------------------------------------


@pytest.fixture
def sketch_model(home, registry):
    """'tinysk': a 16x16 tiny model that takes text and sketches and draws exactly its sketch
    (dark lines on light grey: only the sketch channel of its convolution is kept), recorded
    as trained on the shapes data at 16x16."""
    folder = toolkit_tiny.make_model(home / "models" / "tinysk", accepts=["sketch", "text"])
    model = toolkit_tiny.TinyGenerator.from_pretrained(folder)
    with torch.no_grad():
        model.net.conv.weight.zero_()
        model.net.conv.weight[:, -1, 1, 1] = -1.0  # the sketch channel, centre tap
        model.net.conv.bias.fill_(0.3)
    model.save_pretrained(folder)
    update_model_config(folder, {"dataset": {"name": "shapes", "size": 16, "options": {}}})
    return folder


def test_a_model_that_draws_its_sketch_scores_high_with_it_and_low_without(sketch_model, registry):
    report = evaluate_sketches("tinysk", 4, styles=("inverted", "thick", "wobbly", "photo"), registry=registry)
    variants = report["variants"]
    assert list(variants) == ["prompt + sketch", "prompt", "sketch", "prompt + sketch (inverted)",
                              "prompt + sketch (thick)", "prompt + sketch (wobbly)", "prompt + sketch (photo)"]
    assert all(v["images"] == 4 for v in variants.values())
    assert variants["prompt + sketch"]["f1"] > 0.9 and variants["sketch"]["f1"] > 0.9
    assert variants["prompt"]["f1"] == 0.0  # a flat image: no edges at all
    for style in ("inverted", "thick", "wobbly", "photo"):
        assert variants[f"prompt + sketch ({style})"]["f1"] > 0.75, style
    assert report["prompt_checks"] == list(ShapesDataset.prompt_checks)
    assert all(0 <= variants["prompt + sketch"][check] <= 1 for check in report["prompt_checks"])
    assert report["edge_f1"]["reference"] == "the dataset's own sketches"  # the grid layout draws one kind
    assert report["size"] == [16, 16] and len(report["dataset"]["indices"]) == 4
    again = evaluate_sketches("tinysk", 4, registry=registry)
    assert again["variants"]["prompt + sketch"] == variants["prompt + sketch"]  # seeded: the same scenes and noise


def test_the_reference_is_the_clean_style_where_the_dataset_offers_one(sketch_model, registry):
    update_model_config(sketch_model, {"dataset": {"name": "shapes", "size": 16, "options": {"layout": "free"}}})
    report = evaluate_sketches("tinysk", 2, styles=("varied",), registry=registry)
    assert report["edge_f1"]["reference"] == "sketch_style=clean"
    assert set(report["variants"]) == {"prompt + sketch", "prompt", "sketch", "prompt + sketch (varied)"}


def test_scenes_come_from_the_sketch_record_and_are_scored_against_clean_lines(sketch_model, registry):
    """A model whose sketch control was trained on other data than the model (ldm-shapes: the
    grid layout, then a ControlNet on the free one) records it as ``sketch_dataset``; a style
    recorded there (how the training sketches were drawn) does not change the reference."""
    update_model_config(sketch_model, {"sketch_dataset": {"name": "shapes", "size": 16,
                                                          "options": {"layout": "free", "sketch_style": "varied"}}})
    report = evaluate_sketches("tinysk", 2, registry=registry)
    assert report["dataset"]["options"] == {"layout": "free", "sketch_style": "varied"}
    assert report["edge_f1"]["reference"] == "sketch_style=clean"


def test_eval_sketches_command_writes_a_report(sketch_model, tmp_path):
    out = tmp_path / "sketches.json"
    result = invoke("eval", "--model", "tinysk", "--sketches", "2", "--sketch-style", "thick", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "tinysk: 2 test scenes" in result.stdout and str(out) in result.stdout  # the table, then the path
    report = json.loads(out.read_text())
    assert report["n"] == 2 and report["styles"] == ["thick"] and report["model_sha256"]
    assert list(report["variants"]) == ["prompt + sketch", "prompt", "sketch", "prompt + sketch (thick)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tinym", "--sketches", "2"], "model 'tinym' does not accept sketches"),
        (["--model", "tinysk", "--sketches", "5000"], "has 2000 'test' samples; ask for --sketches 2000 or fewer"),
        (["--model", "tinysk", "--sketches", "2", "--sketch-style", "smudged"],
         "dataset 'shapes' offers no sketch style 'smudged'"),
        (["--model", "tinysk", "--sketches", "2", "--split", "validation"], "has splits train, test, heldout"),
        (["--model", "tinysk", "--sketches", "0"], "Invalid value for '--sketches'"),
    ],
)
def test_eval_sketches_mistakes_print_one_line(sketch_model, home, tmp_path, args, message):
    toolkit_tiny.make_model(home / "models" / "tinym", accepts=["class"])
    out = tmp_path / "report.json"
    result = invoke("eval", *args, "--out", str(out))
    assert result.exit_code != 0 and "Traceback" not in result.output and not out.exists()
    assert message in result.stderr.replace("\n", " "), result.stderr


def test_a_dataset_without_sketches_is_refused(registry, home):
    folder = toolkit_tiny.make_model(home / "models" / "tinyt", num_classes=3, accepts=["sketch"])
    update_model_config(folder, {"dataset": {"name": "tiny", "size": 8, "options": {}}})
    with pytest.raises(EvaluationError, match="gives no sketch with its samples"):
        evaluate_sketches("tinyt", 2, registry=registry)
