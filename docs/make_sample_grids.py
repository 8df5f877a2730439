"""Write the sample grids in docs/images/: one row per class (or prompt), labelled at its
left, one column per seed.

    python docs/make_sample_grids.py                      # every shipped model
    python docs/make_sample_grids.py gan-digits --n 12    # one model

Each row is ``toolkit generate --model MODEL --class C --n N --seed 0`` with the model's
default sampler, steps, guidance and truncation; pixels are enlarged 4x (nearest) so the
16x16 and 32x32 images can be seen. Text-to-image models get one row per prompt of
PROMPTS (``--prompt P``; EMOJI_PROMPTS for a model trained on emoji, each row ending with
the real emoji it names), with the prompt written at the left, at 2x.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw
from rich.progress import track

from toolkit import generate
from toolkit.generation.images import make_grid
from toolkit.generation.store import list_models
from toolkit.host.loading import get_registry

DOCS_IMAGES = Path(__file__).parent / "images"


def labelled_row(label: str, images: list[Image.Image], label_width: int) -> Image.Image:
    """One grid row: ``label`` written at the left, then ``images`` side by side."""
    samples = make_grid(images, columns=len(images))
    row = Image.new("RGB", (label_width + samples.width, samples.height), "white")
    ImageDraw.Draw(row).multiline_text((6, 6), textwrap.fill(label, max(8, label_width // 7)), fill="black", spacing=4)
    row.paste(samples, (label_width, 0))
    return row


def sample_grid(model: str, n: int, seed: int, zoom: int, label_width: int = 90) -> Image.Image:
    info = next(m for m in list_models(get_registry()) if m.name == model)
    dataset = info.config.get("dataset") or {}
    count = info.config.get("num_classes", 0)
    names = dataset.get("class_names") or [str(label) for label in range(count)]
    rows = []
    for label in track(range(count), description=f"{model}"):
        images = [im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
                  for im in generate(model=model, class_label=label, n=n, seed=seed).images]
        rows.append(labelled_row(f"{label}: {names[label]}" if names[label] != str(label) else str(label), images, label_width))
    return make_grid(rows, columns=1)


# Prompts in plain training wording, one and two objects, none of them a test-set caption on purpose.
PROMPTS = [
    "a large green triangle in the center",
    "a small red circle in the top left",
    "a large blue square at the bottom",
    "a small yellow star on the right",
    "a large purple diamond in the top right",
    "a large orange circle on the left and a small cyan square on the right",
    "a small red star at the top and a large blue triangle at the bottom",
]


# (prompt, the emoji's caption): training names, held-out skin tones and hair, and paraphrases.
EMOJI_PROMPTS = [
    ("a dog face", "a dog face"),
    ("a smiling face with sunglasses", "a smiling face with sunglasses"),
    ("a thumbs up, dark skin tone", "a thumbs up, dark skin tone"),
    ("the flag of France", "the flag of France"),
    ("a pizza", "a pizza"),
    ("a woman astronaut, medium skin tone", "a woman astronaut, medium skin tone"),
    ("a puppy", "a dog face"),
    ("the french flag", "the flag of France"),
    ("a red rose", "a rose"),
]


def prompt_grid(model: str, n: int, seed: int, zoom: int, label_width: int = 360) -> Image.Image:
    from toolkit_plugins.datasets.emoji import EmojiDataset

    info = next(m for m in list_models(get_registry()) if m.name == model)
    emoji = (info.config.get("dataset") or {}).get("name") == "emoji"
    real = EmojiDataset("train", size=int(info.config["dataset"]["size"])) if emoji else None
    rows = []
    for prompt, caption in track(EMOJI_PROMPTS if emoji else [(p, p) for p in PROMPTS], description=model):
        images = generate(model=model, prompt=prompt, n=n, seed=seed).images
        if real is not None:  # a white gap, then the emoji the prompt names
            reference = real.reference_image(caption)
            gap = Image.new("RGB", images[0].size, "white")
            images += [gap, Image.fromarray(((reference.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy())]
        images = [im.resize((im.width * zoom, im.height * zoom), Image.NEAREST) for im in images]
        rows.append(labelled_row(prompt if prompt == caption else f"{prompt} ({caption})", images, label_width))
    return make_grid(rows, columns=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="default: every shipped class-conditional model")
    parser.add_argument("--n", type=int, default=10, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=4)
    args = parser.parse_args()
    models = {m.name: m for m in list_models(get_registry()) if m.source != "user"}
    names = args.models or [name for name, m in models.items() if m.accepts & {"class", "text"}]
    for name in names:
        target = DOCS_IMAGES / f"{name}.png"
        if "class" in models[name].accepts:
            sample_grid(name, args.n, args.seed, args.zoom).save(target)
        else:
            prompt_grid(name, min(args.n, 6), args.seed, max(args.zoom // 2, 1)).save(target)
        print(target)


if __name__ == "__main__":
    main()
