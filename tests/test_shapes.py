"""The shapes dataset and evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from toolkit.errors import InvalidRequestError
from toolkit_plugins.shapes import COLOURS, POSITIONS, SHAPES, SIZES, ShapesDataset, ShapesEvaluator, caption, parse_caption


def test_vocabulary_is_rich_enough():
    assert len(COLOURS) >= 6 and len(SHAPES) >= 5 and len(SIZES) == 2 and len(POSITIONS) == 9


def test_samples_are_deterministic_and_well_formed():
    a, b, c = ShapesDataset(seed=3), ShapesDataset(seed=3), ShapesDataset(seed=4)
    for i in range(5):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in ("image", "sketch", "mask")) and x["caption"] == y["caption"]
    assert any(not torch.equal(a[i]["image"], c[i]["image"]) for i in range(5))
    sample = a[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].min() >= -1 and sample["image"].max() <= 1
    assert sample["sketch"].shape == (1, 64, 64) and sample["sketch"].max() > 0.9  # dark strokes exist
    assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0} and sample["mask"].sum() > 0
    assert sample["class_label"] == SHAPES.index(sample["attributes"][0]["shape"])
    counts = {len(a[i]["attributes"]) for i in range(40)}
    assert counts == {1, 2}


def test_heldout_combinations_stay_out_of_training():
    train, held = ShapesDataset("train", length=400), ShapesDataset("heldout", length=200)
    combos = train.heldout_combinations
    assert 4 <= len(combos) <= 7
    for i in range(len(train)):
        assert not any((o["shape"], o["colour"]) in combos for o in train[i]["attributes"])
    for i in range(len(held)):
        assert any((o["shape"], o["colour"]) in combos for o in held[i]["attributes"])


def test_caption_round_trip_and_partial_captions():
    data = ShapesDataset("test", length=300)
    for i in range(300):
        scene, _ = data.scene(i)
        assert parse_caption(caption(scene)) == scene
    (obj,) = parse_caption("a red circle")
    assert (obj.shape, obj.colour, obj.size, obj.position) == ("circle", "red", None, None)
    with pytest.raises(InvalidRequestError, match="cannot read 'a crimson disk'"):
        parse_caption("a crimson disk")


def agreement(images_and_captions) -> dict[str, float]:
    evaluator, scores = ShapesEvaluator(), {}
    for image, text in images_and_captions:
        for name, ok in evaluator.evaluate(image, text).scores().items():
            scores.setdefault(name, []).append(ok)
    result = {k: float(np.mean(v)) for k, v in scores.items()}
    result["all"] = float(np.mean([x for v in scores.values() for x in v]))
    print({k: round(v, 4) for k, v in result.items()})
    return result


def test_evaluator_agrees_with_ground_truth_on_renders():
    data = ShapesDataset("test", length=600)
    result = agreement((data[i]["image"], data[i]["caption"]) for i in range(len(data)))
    assert result["all"] >= 0.99
    assert min(result.values()) >= 0.98


def test_evaluator_on_blurred_noisy_renders():
    data, g = ShapesDataset("test", length=300), torch.Generator().manual_seed(0)

    def degraded(i):
        pixels = (data[i]["image"].numpy() + 1) * 127.5
        pixels = gaussian_filter(pixels, sigma=(0, 0.7, 0.7)) + torch.randn(pixels.shape, generator=g).numpy() * 8
        return torch.from_numpy(pixels / 127.5 - 1).float().clamp(-1, 1), data[i]["caption"]

    result = agreement(degraded(i) for i in range(len(data)))
    assert result["all"] >= 0.95 and result["colour"] >= 0.99 and result["position"] >= 0.99


def test_evaluator_notices_wrong_images():
    data, evaluator = ShapesDataset("test", length=50), ShapesEvaluator()
    one = next(i for i in range(50) if len(data[i]["attributes"]) == 1)
    sample = data[one]
    obj = sample["attributes"][0]
    other_colour = next(c for c in COLOURS if c != obj["colour"])
    wrong = sample["caption"].replace(obj["colour"], other_colour)
    result = evaluator.evaluate(sample["image"], wrong)
    assert result.colour is False and result.shape is True and not result.all_correct
    blank = torch.full((3, 64, 64), 0.85)
    assert evaluator.evaluate(blank, sample["caption"]).count is False
