"""Write the sample grids in docs/images/: one row per class, one column per seed.

    python docs/make_sample_grids.py                      # every shipped class-conditional model
    python docs/make_sample_grids.py gan-digits --n 12    # one model

Each row is ``toolkit generate --model MODEL --class C --n N --seed 0`` with the model's
default sampler, steps, guidance and truncation; pixels are enlarged 4x (nearest) so the
16x16 and 32x32 images can be seen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from rich.progress import track

from toolkit import generate
from toolkit.images import make_grid
from toolkit.plugins import get_registry
from toolkit.store import list_models

DOCS_IMAGES = Path(__file__).parent / "images"


def sample_grid(model: str, n: int, seed: int, zoom: int) -> Image.Image:
    info = next(m for m in list_models(get_registry()) if m.name == model)
    rows = []
    for label in track(range(info.config.get("num_classes", 0)), description=f"{model}"):
        rows += generate(model=model, class_label=label, n=n, seed=seed).images
    rows = [im.resize((im.width * zoom, im.height * zoom), Image.NEAREST) for im in rows]
    return make_grid(rows, columns=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="default: every shipped class-conditional model")
    parser.add_argument("--n", type=int, default=10, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=4)
    args = parser.parse_args()
    names = args.models or [m.name for m in list_models(get_registry()) if m.source != "user" and "class" in m.accepts]
    for name in names:
        target = DOCS_IMAGES / f"{name}.png"
        sample_grid(name, args.n, args.seed, args.zoom).save(target)
        print(target)


if __name__ == "__main__":
    main()
