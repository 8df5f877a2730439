"""The shapes dataset's free layout: scenes, samples, sketches, and the evaluator reading them.

Run as a script for the evaluator's figure on more images than the tests use:
``python tests/plugins/test_shapes_free.py 600``.
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from toolkit_plugins.datasets.shapes import SHAPES, ShapeObject, ShapesDataset, ShapesEvaluator, parse_caption, sketches
from toolkit_plugins.datasets.shapes.free import (
    MARGIN,
    MIN_VISIBLE,
    RADIUS,
    ROTATION,
    SAME_COLOUR_GAP,
    SIZE_BOUNDARY,
    FreeObject,
    FreeScene,
    free_coverage,
    render_free,
    sample_free_scene,
    unit_polygon,
)
from toolkit_plugins.datasets.shapes.scene import SIZES, cell_of
from toolkit_plugins.datasets.shapes.sketches import draw_sketch

from toolkit.errors import InvalidRequestError

ATTRIBUTES = ("shape", "colour", "size", "position")


def free_data(split: str = "train", **options) -> ShapesDataset:
    return ShapesDataset(split, layout="free", **{"length": 60, **options})


# -- scenes ------------------------------------------------------------------------------


def test_free_scenes_keep_their_rules():
    rng = np.random.default_rng(0)
    scenes = [sample_free_scene(rng) for _ in range(300)]
    assert {len(s) for s in scenes} == {1, 2, 3, 4}
    assert {len(sample_free_scene(rng, max_objects=1)) for _ in range(30)} == {1}
    assert set(ROTATION) == set(SHAPES) and set(RADIUS) == set(SIZES)
    assert RADIUS["small"][1] < SIZE_BOUNDARY < RADIUS["large"][0]  # no size is a coin toss
    partly_hidden = 0
    for scene in scenes:
        assert len(scene.visible) == len(scene) and min(scene.visible) >= MIN_VISIBLE
        partly_hidden += sum(v < 1 for v in scene.visible)
        for obj in scene:
            low, high = RADIUS[obj.size]
            assert low <= obj.radius <= high
            turn_low, turn_high = ROTATION[obj.shape]
            assert turn_low <= obj.rotation <= turn_high
            corners = obj.polygon(1)
            assert corners.min() >= MARGIN - 1e-9 and corners.max() <= 1 - MARGIN + 1e-9
        for a, b in itertools.combinations(scene, 2):  # the same colour never touches
            if a.colour == b.colour:
                reach = sum(o.radius * np.linalg.norm(unit_polygon(o.shape), axis=1).max() for o in (a, b))
                assert math.hypot(a.x - b.x, a.y - b.y) - reach >= SAME_COLOUR_GAP
    assert partly_hidden > 20  # overlaps happen
    with pytest.raises(InvalidRequestError, match="between 1 and 4"):
        sample_free_scene(rng, max_objects=5)


def test_square_and_diamond_stay_apart():
    """A square turned 45 degrees is a diamond: the turns allowed keep each far from the other."""
    def corner_angle(shape: str, turn: float) -> float:  # where the corners point, modulo a quarter turn
        x, y = unit_polygon(shape, turn)[0]
        return math.degrees(math.atan2(y, x)) % 90

    def apart(a: float, b: float) -> float:
        return min(abs(a - b), 90 - abs(a - b))

    assert apart(corner_angle("diamond", 0.0), corner_angle("square", 45.0)) == pytest.approx(0.0, abs=1e-9)
    squares = [corner_angle("square", t) for t in np.linspace(*ROTATION["square"], 31)]
    diamonds = [corner_angle("diamond", t) for t in np.linspace(*ROTATION["diamond"], 31)]
    assert min(apart(s, d) for s in squares for d in diamonds) == pytest.approx(15.0)


# -- samples -----------------------------------------------------------------------------


def test_free_samples_are_deterministic_and_well_formed():
    a, b, c = free_data(seed=3), free_data(seed=3), free_data(seed=4)
    for i in range(6):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in ("image", "sketch", "mask"))
        assert (x["caption"], x["class_label"], x["attributes"]) == (y["caption"], y["class_label"], y["attributes"])
        assert not torch.equal(x["image"], c[i]["image"])
    counts = set()
    for i in range(len(a)):
        sample = a[i]
        image, sketch, mask, attributes = sample["image"], sample["sketch"], sample["mask"], sample["attributes"]
        counts.add(len(attributes))
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and -1 <= image.min() <= image.max() <= 1
        assert sketch.shape == (1, 64, 64) and sketch.dtype == torch.float32 and 0 <= sketch.min() and sketch.max() == 1
        assert mask.shape == (1, 64, 64) and set(mask.unique().tolist()) == {0.0, 1.0}
        assert sample["class_label"] == SHAPES.index(attributes[0]["shape"])
        # The caption says what the attributes say, and the coarse words follow the exact geometry.
        assert parse_caption(sample["caption"]) == [
            ShapeObject(o["shape"], o["colour"], o["size"], cell_of(o["position"])) for o in attributes]
        for obj in attributes:
            x, y = obj["centre"]
            assert cell_of(obj["position"]) == (int(y / 64 * 3), int(x / 64 * 3))
            assert obj["size"] == ("large" if obj["radius"] / 64 > SIZE_BOUNDARY else "small")
            assert obj["visible"] >= MIN_VISIBLE and isinstance(obj["sketched"], bool)
            assert set(obj) == {*ATTRIBUTES, "centre", "radius", "rotation", "visible", "sketched"}
    assert counts == {1, 2, 3, 4}
    assert {len(s["attributes"]) for s in free_data(max_objects=2)} == {1, 2}
    large = free_data(size=128, length=2, seed=3)[1]
    assert large["image"].shape == (3, 128, 128) and large["sketch"].shape == large["mask"].shape == (1, 128, 128)
    assert [o["centre"] for o in large["attributes"]] == [[2 * v for v in o["centre"]] for o in a[1]["attributes"]]


def test_the_mask_covers_one_whole_object():
    data = free_data(length=30)
    for i in range(len(data)):
        scene, mask = data.scene(i), data[i]["mask"][0].numpy() > 0
        inside = [free_coverage(obj, 64)[~mask].max() < 0.5 for obj in scene]
        assert any(inside)  # some object lies wholly in the box


def test_sketch_style_changes_only_the_sketch():
    varied, clean = free_data(length=40), free_data(length=40, sketch_style="clean")
    differ = 0
    for i in range(len(varied)):
        v, c = varied[i], clean[i]
        assert torch.equal(v["image"], c["image"]) and torch.equal(v["mask"], c["mask"]) and v["caption"] == c["caption"]
        assert [{**o, "sketched": True} for o in v["attributes"]] == c["attributes"]
        differ += not torch.equal(v["sketch"], c["sketch"])
    assert differ == len(varied)
    partial = free_data(length=40, partial_captions=1.0)
    assert all(torch.equal(partial[i]["image"], varied[i]["image"]) for i in range(5))
    assert any(partial[i]["caption"] != varied[i]["caption"] for i in range(5))


def test_free_layout_keeps_heldout_combinations_out_of_training():
    train, test, held = (free_data(split, length=200) for split in ("train", "test", "heldout"))
    combos = train.heldout_combinations
    assert combos == held.heldout_combinations == ShapesDataset("train").heldout_combinations
    for data in (train, test):
        assert not any((o.shape, o.colour) in combos for i in range(len(data)) for o in data.scene(i))
    assert all(any((o.shape, o.colour) in combos for o in held.scene(i)) for i in range(len(held)))


def test_free_layout_errors():
    with pytest.raises(InvalidRequestError, match="max_objects must be 1 to 4 in the free layout"):
        free_data(max_objects=5)
    with pytest.raises(InvalidRequestError, match="sketch_style must be varied or clean, not 'neat'"):
        free_data(sketch_style="neat")
    with pytest.raises(InvalidRequestError, match="unknown colour 'mauve'"):
        FreeObject("circle", "mauve", 0.5, 0.5, 0.1)


# -- sketches ----------------------------------------------------------------------------

SQUARE = FreeScene((FreeObject("square", "red", 0.5, 0.5, 0.15, 5.0),), (1.0,))


def outline_distance(scene: FreeScene, size: int = 64) -> np.ndarray:
    """``(size, size)``: each pixel's distance to the nearest visible object edge."""
    owner = np.full((size, size), -1)
    for k, obj in enumerate(scene):
        owner[free_coverage(obj, size) >= 0.5] = k
    edges = np.zeros((size, size), bool)
    for k in range(len(scene)):
        region = owner == k
        edges |= region & ~ndimage.binary_erosion(region)
    return ndimage.distance_transform_edt(~edges)


def test_clean_sketch_traces_the_visible_outlines():
    data = free_data("test", length=30, sketch_style="clean")
    for i in range(len(data)):
        sample, scene = data[i], data.scene(i)
        ink = sample["sketch"][0].numpy()
        distance = outline_distance(scene)
        assert np.all(distance[ink > 0.5] <= 2.5)  # no line off an outline, none where an object is hidden
        assert np.mean(ink[distance == 0] > 0.3) > 0.97  # and every outline drawn
        assert all(o["sketched"] for o in sample["attributes"])
    ink, drawn = draw_sketch(SQUARE, 64)
    assert drawn == [True] and np.array_equal(ink, draw_sketch(SQUARE, 64)[0]) and ink.dtype == np.float32


def test_varied_sketches_vary_as_people_draw():
    distance = outline_distance(SQUARE)
    edge = distance == 0
    # The farthest a line may stray: overshoot, wobble and drift (shares of the radius), half
    # the widest pen, the wobble's pixels, and a pixel for drawing on a grid.
    r = SQUARE[0].radius * 64
    reach = (sketches.OVERSHOOT[1] + sketches.WOBBLE[0] + sketches.OPEN_DRIFT[1]) * r + sketches.WIDTH[1] / 2 \
        + sketches.WOBBLE[1] + 1
    widths, traced, wobble = [], [], []
    for seed in range(80):
        ink, drawn = draw_sketch(SQUARE, 64, np.random.default_rng(seed))
        assert np.array_equal(ink, draw_sketch(SQUARE, 64, np.random.default_rng(seed))[0])  # deterministic
        assert drawn == [True] and 0 <= ink.min() and ink.max() <= 1
        widths.append(ink.sum() / edge.sum())  # ink per pixel of outline: the stroke width
        traced.append(np.mean(ndimage.maximum_filter(ink, size=3)[edge] > 0.3))  # how much of the outline is drawn
        wobble.append(np.average(distance, weights=ink))
        assert np.all(distance[ink > 0.5] <= reach)  # a hand's line, still on the square
    assert min(widths) < 1.5 and max(widths) > 3.0  # 1 to 4 px pens
    assert min(traced) < 0.9 < max(traced)  # some have gaps or stay open
    assert max(wobble) > 1.3 * min(wobble)
    # Overlaps: hidden lines are erased, unless the sketch draws see-through; some objects are left out.
    overlap = FreeScene((FreeObject("square", "blue", 0.4, 0.4, 0.15), FreeObject("circle", "red", 0.6, 0.6, 0.12),
                         FreeObject("star", "green", 0.2, 0.8, 0.1)), (0.8, 1.0, 1.0))
    inside_top = ndimage.binary_erosion(free_coverage(overlap[1], 64) > 0.5, iterations=3)
    assert draw_sketch(overlap, 64)[0][inside_top].max() < 0.1
    drawings = [draw_sketch(overlap, 64, np.random.default_rng(seed)) for seed in range(60)]
    assert any(ink[inside_top].max() > 0.5 for ink, _ in drawings)
    assert any(not all(drawn) for _, drawn in drawings) and all(any(drawn) for _, drawn in drawings)


# -- the evaluator -----------------------------------------------------------------------


def ground_truth_agreement(images, attributes) -> dict[str, float]:
    """Per attribute, the share of ground-truth objects read right by the detection at
    their place (matched by centre); "count": the share of images with every object found."""
    evaluator = ShapesEvaluator(layout="free")
    hits, counts = {name: [] for name in ATTRIBUTES}, []
    for image, truth in zip(images, attributes):
        found = evaluator.detect(image)
        counts.append(len(found) == len(truth))
        distance = np.array([[math.dist(t["centre"], f.centre) for f in found] for t in truth]).reshape(len(truth), -1)
        match = dict(zip(*linear_sum_assignment(distance)))
        for j, t in enumerate(truth):
            near = j in match and distance[j, match[j]] < t["radius"] / 2 + 2
            read = found[match[j]].as_object().to_json() if near else {}
            for name in ATTRIBUTES:
                hits[name].append(read.get(name) == t[name])
    figures = {name: float(np.mean(v)) for name, v in hits.items()}
    figures["shape_and_colour"] = float(np.mean([s and c for s, c in zip(hits["shape"], hits["colour"])]))
    figures["count"] = float(np.mean(counts))
    return figures


def renders(n: int, blur: float = 0.0, noise: float = 0.0):
    data, generator = free_data("test", length=n, sketch_style="clean"), torch.Generator().manual_seed(0)
    samples = [data[i] for i in range(n)]
    images = [s["image"] for s in samples]
    if blur:
        images = [torch.from_numpy(np.clip((ndimage.gaussian_filter((im.numpy() + 1) * 127.5, (0, blur, blur))
                                            + noise * torch.randn(im.shape, generator=generator).numpy())
                                           / 127.5 - 1, -1, 1)).float() for im in images]
    return images, [s["attributes"] for s in samples]


def test_free_evaluator_reads_ground_truth():
    figures = ground_truth_agreement(*renders(60))
    print("\nfree layout, clean renders:", {k: round(v, 4) for k, v in figures.items()})
    assert figures["shape_and_colour"] >= 0.98 and figures["count"] >= 0.98 and min(figures.values()) >= 0.97


def test_free_evaluator_on_blurred_noisy_renders():
    figures = ground_truth_agreement(*renders(40, blur=1.0, noise=8.0))
    print("\nfree layout, blur 1 px + noise 8/255:", {k: round(v, 4) for k, v in figures.items()})
    assert min(figures.values()) >= 0.95


def test_free_evaluator_reads_overlapping_objects():
    scene = FreeScene((FreeObject("square", "blue", 0.42, 0.45, 0.16, -10.0),
                       FreeObject("star", "yellow", 0.6, 0.62, 0.12, 30.0),
                       FreeObject("triangle", "red", 0.25, 0.25, 0.1, 200.0)), (0.75, 1.0, 1.0))
    found = ShapesEvaluator(layout="free").detect(render_free(scene, 64))
    assert sorted((f.shape, f.colour) for f in found) == [("square", "blue"), ("star", "yellow"), ("triangle", "red")]
    square = next(f for f in found if f.shape == "square")
    assert math.dist(square.centre, (0.42 * 64, 0.45 * 64)) < 1.0 and abs(square.radius / (0.16 * 64) - 1) < 0.06
    # The grid evaluator never looks under a neighbour; the free one reads captions the same way.
    result = ShapesEvaluator(layout="free").evaluate(render_free(scene, 64), " and ".join(
        obj.coarse().describe() for obj in scene))
    assert result.all_correct


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    print(f"free layout, {count} clean renders:", {k: round(v, 4) for k, v in ground_truth_agreement(*renders(count)).items()})
