"""Write the prompt files `toolkit eval --prompts` scores text-to-image models on:

    plugins/builtin/datasets/shapes/prompts/shapes-heldout.jsonl      350 prompts from the test and held-out splits
    plugins/builtin/datasets/shapes/prompts/shapes-two-objects-draw2.jsonl  173 more two-object prompts, a second draw
    plugins/builtin/datasets/shapes/prompts/shapes-paraphrases.jsonl  reworded prompts, each with its canonical caption
    plugins/builtin/datasets/shapes/prompts/shapes-negative.jsonl     short prompts with and without a negative prompt (80)

Deterministic: `python docs/make_prompt_sets.py` rewrites the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from toolkit_plugins.datasets.shapes import ShapesDataset
from toolkit_plugins.datasets.shapes.scene import COLOURS, SHAPES, parse_caption

OUT = Path(__file__).resolve().parent.parent / "plugins" / "builtin" / "datasets" / "shapes" / "prompts"

# Words a person might use instead of ours; none of them is in the training captions.
COLOUR_WORDS = {"red": ["crimson", "scarlet"], "orange": ["tangerine", "amber"], "yellow": ["golden", "lemon"],
                "green": ["emerald", "grass-green"], "cyan": ["turquoise", "aqua"], "blue": ["azure", "cobalt"],
                "purple": ["violet", "lilac"]}
SHAPE_WORDS = {"circle": ["disk", "round thing"], "square": ["box", "block"], "triangle": ["three-sided shape", "wedge"],
               "diamond": ["rhombus", "lozenge"], "star": ["five-pointed star", "starlet"]}
SIZE_WORDS = {"small": ["tiny", "little"], "large": ["big", "huge"]}
POSITION_WORDS = {"top left": ["up left", "in the upper left corner"], "top": ["up top", "at the upper edge"],
                  "top right": ["up right", "in the upper right corner"], "left": ["at the left side", "to the left"],
                  "center": ["in the middle", "at the centre"], "right": ["at the right side", "to the right"],
                  "bottom left": ["down left", "in the lower left corner"], "bottom": ["down below", "at the lower edge"],
                  "bottom right": ["down right", "in the lower right corner"]}


def samples(split: str, objects: int, count: int, seed: int) -> list[dict]:
    """``count`` samples of the split with exactly ``objects`` objects, in a fixed order."""
    data = ShapesDataset(split, size=64, seed=0, length=20_000 if split != "heldout" else 1_000)
    rng = np.random.default_rng(seed)
    chosen = []
    for i in rng.permutation(len(data)):
        scene = data.scene(int(i))
        if len(scene) == objects:
            chosen.append({"caption": data[int(i)]["caption"]})
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"not enough {objects}-object scenes in {split}")


def paraphrase(caption: str, rng: np.random.Generator) -> str:
    """One rewording of a one-object caption: synonyms for every word, sometimes a new order."""
    (obj,) = parse_caption(caption)
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    size, colour, shape = pick(SIZE_WORDS[obj.size]), pick(COLOUR_WORDS[obj.colour]), pick(SHAPE_WORDS[obj.shape])
    where = pick(POSITION_WORDS[obj.position_name])
    form = int(rng.integers(3))
    if form == 0:
        return f"a {size} {colour} {shape} {where}"
    if form == 1:
        return f"{where}, a {colour} {shape}, {size}"
    return f"a {shape} that is {size} and {colour}, {where}"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    heldout = (
        [{"prompt": s["caption"], "group": "single object"} for s in samples("test", 1, 150, 1)]
        + [{"prompt": s["caption"], "group": "two objects"} for s in samples("test", 2, 100, 2)]
        + [{"prompt": s["caption"], "group": "held-out combination, single"} for s in samples("heldout", 1, 50, 3)]
        + [{"prompt": s["caption"], "group": "held-out combination, two"} for s in samples("heldout", 2, 50, 4)]
    )
    # A second draw of two-object prompts (other seeds, none in the first), to show how much
    # the two-object figures move from one draw of 50-100 prompts to the next.
    first = {e["prompt"] for e in heldout}
    draw2 = ([{"prompt": s["caption"], "group": "two objects"} for s in samples("test", 2, 100, 12) if s["caption"] not in first]
             + [{"prompt": s["caption"], "group": "held-out combination, two"} for s in samples("heldout", 2, 80, 14)
                if s["caption"] not in first])
    rng = np.random.default_rng(5)
    canonical = samples("test", 1, 100, 6)
    paraphrases = ([{"prompt": s["caption"], "group": "canonical"} for s in canonical]
                   + [{"prompt": paraphrase(s["caption"], rng), "caption": s["caption"], "group": "paraphrase"} for s in canonical])
    negative = []
    colours, shapes = list(COLOURS), list(SHAPES)
    for i in range(40):
        colour, shape = colours[i % len(colours)], shapes[i % len(shapes)]
        if i < 20:
            negative.append({"prompt": f"a large {shape} in the center", "caption": f"a large {shape} in the center",
                             "negative_prompt": colour, "absent": {"colour": colour}, "group": "negative colour"})
        else:
            negative.append({"prompt": f"a large {colour} shape in the center", "caption": f"a large {colour} shape in the center",
                             "negative_prompt": shape, "absent": {"shape": shape}, "group": "negative shape"})
    # The same shapes named the way training captions name them, to tell a model that ignores
    # shape words from one that only ignores a bare word.
    negative += [{**e, "negative_prompt": f"a large {e['negative_prompt']} in the center", "group": "negative shape, as a caption"}
                 for e in negative if e["group"] == "negative shape"]
    # And as the prompt itself with the shape filled in: guidance then pushes along exactly
    # the difference between the two, the shape, and not also away from a colour.
    negative += [{**e, "negative_prompt": e["prompt"].replace(" shape ", f" {e['absent']['shape']} "),
                  "group": "negative shape, as the prompt with it named"}
                 for e in negative if e["group"] == "negative shape"]
    for name, entries in (("shapes-heldout", heldout), ("shapes-two-objects-draw2", draw2), ("shapes-paraphrases", paraphrases),
                          ("shapes-negative", negative)):
        path = OUT / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in entries))
        print(f"{path}: {len(entries)} prompts")


if __name__ == "__main__":
    main()
