"""The `shapes` dataset: procedural captioned shapes, deterministic by seed, with a split
of unseen combinations for measuring generalisation.

Sample ``i`` of a split is drawn from ``np.random.default_rng([seed, split_index, i])``,
so any sample can be rebuilt on its own, in any order, in any worker process. A seeded
set of (shape, colour) combinations never appears in ``train`` or ``test``; every
``heldout`` sample uses at least one of them.

Two layouts: ``grid`` (the default) puts one or two upright objects in distinct cells of
a 3x3 grid; ``free`` (free.py) puts one to four objects anywhere, at any size in a range,
turned and overlapping, with sketches drawn the way people draw (sketches.py) or, with
``sketch_style="clean"``, in even lines for evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError

from .free import MAX_FREE_OBJECTS, FreeScene, free_coverage, render_free, sample_free_scene
from .render import MIN_SIZE, render
from .scene import COLOURS, MAX_OBJECTS, SHAPES, Scene, ShapeObject, all_combinations, caption, sample_scene
from .sketches import draw_sketch

if TYPE_CHECKING:  # torch, and scipy under the evaluator, are imported where samples are made or scored
    import torch

    from .evaluator import ShapesEvaluator

HELDOUT_FRACTION = 0.15
DEFAULT_LENGTHS = {"train": 20_000, "test": 2_000, "heldout": 1_000}
LAYOUTS = {"grid": MAX_OBJECTS, "free": MAX_FREE_OBJECTS}  # each layout's most objects, its default
SKETCH_STYLES = ("varied", "clean")


def heldout_combinations(seed: int) -> frozenset[tuple[str, str]]:
    """About ``HELDOUT_FRACTION`` of all (shape, colour) pairs, chosen by ``seed``.

    No two held-out pairs share a shape or a colour, so training still shows every shape
    in most colours and every colour on most shapes: the held-out split tests combining
    known attributes, not learning new ones.
    """
    count = min(round(HELDOUT_FRACTION * len(all_combinations())), len(SHAPES), len(COLOURS))
    rng = np.random.default_rng([seed, 0x5EED])  # a stream of its own, apart from the samples'
    shapes = rng.permutation(len(SHAPES))[:count]
    colours = rng.permutation(len(COLOURS))[:count]
    names = list(COLOURS)
    return frozenset((SHAPES[s], names[c]) for s, c in zip(shapes, colours))


class ShapesDataset(Dataset):
    """Procedural scenes of coloured shapes, with captions, sketches and inpainting masks; a
    held-out split has (shape, colour) pairs training never shows. ``layout="grid"``: one or
    two objects in a 3x3 grid; ``layout="free"``: one to four anywhere, turned, overlapping."""

    name = "shapes"
    description = (f"procedural captioned shapes ({len(COLOURS)} colours, {len(SHAPES)} shapes, 2 sizes, "
                   f"3x3 positions; -o layout=free: 1-{MAX_FREE_OBJECTS} turned, overlapping objects anywhere) "
                   "with sketches, masks and a held-out split of unseen combinations")
    splits = ("train", "test", "heldout")
    # `toolkit eval --prompts`: the prompt sets in prompts/ (docs/make_prompt_sets.py writes them).
    prompt_sets = {f.stem: f for f in sorted((Path(__file__).parent / "prompts").glob("*.jsonl"))}
    default_prompt_set = "shapes-heldout"
    prompt_checks = ("shape", "colour", "size", "position", "count", "binding", "all_correct")
    reference_clip_model = "ldm-shapes"
    clip_score_note = "CLIP score with our clip-shapes CLIP (trained here on shapes), not OpenAI's CLIP"

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, length: int | None = None,
                 max_objects: int | None = None, partial_captions: float = 0.0, layout: str = "grid",
                 sketch_style: str | None = None, **options: Any):
        if options:
            raise InvalidRequestError(
                f"dataset 'shapes' has no options {sorted(options)}; it takes split, size, seed, length, max_objects, "
                "partial_captions, layout, sketch_style")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'shapes' has splits {', '.join(self.splits)}, not '{split}'")
        size, partial_captions = _number("size", size, int), _number("partial_captions", partial_captions, float)
        if size < MIN_SIZE:
            raise InvalidRequestError(f"dataset 'shapes' needs size >= {MIN_SIZE}, not {size}")
        if not isinstance(layout, str) or layout not in LAYOUTS:
            raise InvalidRequestError(f"dataset 'shapes': layout must be {' or '.join(LAYOUTS)}, not '{layout}'")
        most = LAYOUTS[layout]
        max_objects = most if max_objects is None else _number("max_objects", max_objects, int)
        if not 1 <= max_objects <= most:
            raise InvalidRequestError(
                f"dataset 'shapes': max_objects must be 1 to {most} in the {layout} layout, not {max_objects}")
        if sketch_style is not None and layout != "free":
            raise InvalidRequestError("dataset 'shapes': sketch_style needs layout=free (grid sketches are always clean)")
        if sketch_style not in (None, *SKETCH_STYLES):
            raise InvalidRequestError(
                f"dataset 'shapes': sketch_style must be {' or '.join(SKETCH_STYLES)}, not '{sketch_style}'")
        length = None if length is None else _number("length", length, int)
        if length is not None and length < 0:
            raise InvalidRequestError(f"dataset 'shapes': length must be 0 or more, not {length}")
        if not 0 <= partial_captions <= 1:
            raise InvalidRequestError(f"dataset 'shapes': partial_captions must be 0 to 1, not {partial_captions}")
        super().__init__(split, size=size, seed=int(seed))
        self.length = DEFAULT_LENGTHS[split] if length is None else length
        self.max_objects = max_objects
        self.layout = layout
        # Training sketches vary as people draw; "clean" ones are even lines, for evaluation.
        self.sketch_style = sketch_style or "varied"
        # Text-to-image training sees some captions with attributes left out ("a red shape at
        # the top"), so short prompts and negative prompts ("red") mean something to the model.
        self.partial_captions = partial_captions
        self.heldout_combinations = heldout_combinations(self.seed)
        self._allowed = frozenset(all_combinations()) - self.heldout_combinations

    @property
    def class_names(self) -> list[str]:
        """The shape names; ``class_label`` indexes them (the first object's shape)."""
        return list(SHAPES)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"shapes {self.split} has {self.length} samples; there is no sample {index}")
        return np.random.default_rng([self.seed, self.splits.index(self.split), index])

    def scene(self, index: int) -> Scene | FreeScene:
        """The scene of sample ``index`` (without drawing it): a ``Scene`` in the grid layout,
        a ``FreeScene`` in the free layout."""
        return self._sample_scene(self._rng(index))

    def _sample_scene(self, rng: np.random.Generator) -> Scene | FreeScene:
        sample = sample_free_scene if self.layout == "free" else sample_scene
        if self.split == "heldout":
            # Other objects may use held-out pairs too: nothing here is ever trained on.
            return sample(rng, max_objects=self.max_objects, required=set(self.heldout_combinations))
        return sample(rng, max_objects=self.max_objects, allowed=set(self._allowed))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """A sample: "image" ``(3, H, W)`` float32 in [-1, 1]; "caption" str; "class_label"
        int (the first object's shape); "sketch" ``(1, H, W)`` float32 in [0, 1], 1 = stroke;
        "mask" ``(1, H, W)`` float32 in {0, 1}, 1 over one object's slightly enlarged bounding
        box; "attributes" a list of ``{"shape", "colour", "size", "position"}`` dicts, one per
        object in caption order. In the free layout each dict also has "centre" ``[x, y]`` and
        "radius" in pixels, "rotation" in degrees clockwise (free.py), "visible" (the share of
        the object not hidden by later ones) and "sketched" (whether the sketch draws it)."""
        import torch

        rng = self._rng(int(index))
        scene = self._sample_scene(rng)
        if self.layout == "free":
            image, sketch, target, objects, attributes = self._draw_free(scene, rng)
        else:
            drawn = render(scene, self.size, rng)
            target = drawn["masks"][int(rng.integers(len(scene)))]  # the object an inpainting model redraws
            image, sketch, objects, attributes = drawn["image"], drawn["sketch"], list(scene), scene.to_json()
        # numpy arithmetic, then one wrap: torch's per-op overhead would dominate on images this small.
        pixels = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0
        return {
            "image": torch.from_numpy(pixels),
            "caption": self._caption(objects, rng),
            "class_label": SHAPES.index(scene[0].shape),
            "sketch": torch.from_numpy(sketch)[None],
            "mask": torch.from_numpy(_box_mask(target, pad=max(1, round(self.size / 32))))[None],
            "attributes": attributes,
        }

    def _draw_free(self, scene: FreeScene, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[ShapeObject], list[dict[str, Any]]]:
        """A free-layout scene's image ``(H, W, 3)`` uint8, sketch ``(H, W)`` float32, the
        inpainting target's pixels ``(H, W)`` bool, its objects in caption words, and attributes."""
        image = render_free(scene, self.size)
        covered = free_coverage(scene[int(rng.integers(len(scene)))], self.size)
        # The sketch has a stream of its own, so the caption's draws do not depend on its style.
        pen = np.random.default_rng(int(rng.integers(2**63)))
        sketch, sketched = draw_sketch(scene, self.size, pen if self.sketch_style == "varied" else None)
        attributes = [{**obj, "sketched": drawn} for obj, drawn in zip(scene.to_json(self.size), sketched)]
        return image, sketch, covered >= min(0.5, covered.max()), scene.coarse(), attributes

    def _caption(self, scene: Scene | list[ShapeObject], rng: np.random.Generator) -> str:
        """The full caption; with probability ``partial_captions``, each attribute of each
        object is left out with probability one half (drawn after the image, so the image
        of a sample does not depend on this option)."""
        if self.partial_captions == 0 or rng.random() >= self.partial_captions:
            return caption(scene)
        keep = rng.random((len(scene), 4)) >= 0.5
        return caption([ShapeObject(*(value if k else None for value, k in zip(
            (obj.shape, obj.colour, obj.size, obj.position), flags))) for obj, flags in zip(scene, keep)])

    def _evaluator(self) -> ShapesEvaluator:
        from .evaluator import ShapesEvaluator

        return ShapesEvaluator(layout=self.layout)

    def image_scores(self, images: torch.Tensor, class_labels: torch.Tensor | None) -> dict[str, float]:
        """The shapes evaluator's view of ``(B, 3, H, W)`` images in [-1, 1]:
        ``objects_detected_one``, the share with exactly one object, and, when the intended
        classes ``(B,)`` are known, ``shape_accuracy``, the share with exactly one object of
        the intended shape (``class_label`` indexes ``SHAPES``)."""
        found = [self._evaluator().detect(image) for image in images]
        scores = {"objects_detected_one": float(np.mean([len(objects) == 1 for objects in found]))}
        if class_labels is not None:
            scores["shape_accuracy"] = float(np.mean([len(objects) == 1 and objects[0].shape == SHAPES[int(label)]
                                                      for objects, label in zip(found, class_labels)]))
        return scores

    def score_prompt(self, image: torch.Tensor, caption: str) -> dict[str, bool]:
        """The shapes evaluator's checks of image ``(3, H, W)`` in [-1, 1] against a caption."""
        return self._evaluator().evaluate(image, caption).scores()

    def shows_attribute(self, image: torch.Tensor, attributes: dict[str, str]) -> bool:
        """Whether the evaluator finds an object with every given value, e.g. {"shape": "circle"}."""
        found = [obj.as_object().to_json() for obj in self._evaluator().detect(image)]
        return any(all(obj.get(k) == v for k, v in attributes.items()) for obj in found)


def _number(name: str, value: Any, kind: type) -> Any:
    """An option's value as ``kind`` (int or float), or a one-line error naming the option."""
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(1e999)
        raise InvalidRequestError(f"dataset 'shapes': {name} must be a number, not '{value}'") from None


def _box_mask(mask: np.ndarray, pad: int) -> np.ndarray:
    """``(H, W)`` bool -> ``(H, W)`` float32, 1 over the mask's bounding box grown by ``pad``
    pixels: a loose region, as a person would brush over the object to replace it."""
    rows, cols = np.nonzero(mask)
    box = np.zeros(mask.shape, np.float32)
    box[max(rows.min() - pad, 0): rows.max() + pad + 1, max(cols.min() - pad, 0): cols.max() + pad + 1] = 1.0
    return box
