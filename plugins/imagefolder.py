"""The `imagefolder` dataset: your own folder of images, with optional captions and labels.

    photos/
      metadata.jsonl        {"file_name": "cats/a.jpg", "text": "a cat on a sofa"} per line (optional)
      cats/a.jpg
      cats/a.txt            a caption beside the image works too
      dogs/b.png

Any format Pillow reads; searched recursively and sorted, so the order never changes.
``labels="folders"`` turns the first sub-folder into a class label. Images are checked
once when the dataset is built: unreadable ones are skipped with one warning, and files
past the pixel limit are refused before they are decoded.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from toolkit import hookimpl
from toolkit.components import Dataset
from toolkit.errors import ConfigError, ImageInputError
from toolkit.images import check_pixel_count, open_image, pil_to_tensor, to_rgb

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _readable(path: Path) -> str | None:
    """None if the file is a readable image within the pixel limit, else why not."""
    try:
        with Image.open(path) as image:
            check_pixel_count(image.width, image.height, str(path))
            image.verify()  # checks the structure without decoding every pixel
    except ImageInputError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - PIL raises many kinds for broken files
        return f"{path.name}: {error}"
    return None


def _captions(root: Path) -> dict[str, str]:
    path = root / "metadata.jsonl"
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            captions[str(row["file_name"])] = str(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(f"{path}:{number} must be a JSON object with 'file_name' and 'text'") from None
    return captions


class ImageFolderDataset(Dataset):
    """A folder of your images, captions from metadata.jsonl or .txt files."""

    name = "imagefolder"
    description = "your own folder of images (options: root, labels=folders, val_fraction)"
    splits = ("train", "val")

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, root: str | None = None,
                 labels: str | None = None, val_fraction: float = 0.0, **options: Any):
        if options:
            raise ConfigError(f"dataset 'imagefolder' has no options {sorted(options)}; it takes root, labels, val_fraction")
        if root is None:
            raise ConfigError("dataset 'imagefolder' needs a folder: pass root=PATH (-o root=PATH on the command line)")
        if split not in self.splits:
            raise ConfigError(f"dataset 'imagefolder' has splits {', '.join(self.splits)}, not '{split}'")
        if labels not in (None, "folders"):
            raise ConfigError(f"imagefolder: labels must be 'folders' or unset, not '{labels}'")
        super().__init__(split, size=size, seed=seed)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ConfigError(f"imagefolder: {self.root} is not a folder")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        problems = {p: why for p in files if (why := _readable(p)) is not None}
        if problems:
            warnings.warn(f"imagefolder: skipped {len(problems)} unreadable or oversized image(s) in {self.root}, "
                          f"e.g. {next(iter(problems.values()))}", stacklevel=2)
        files = [p for p in files if p not in problems]
        if not files:
            raise ConfigError(f"imagefolder: no readable images in {self.root} (looked for {', '.join(sorted(EXTENSIONS))})")
        if val_fraction > 0:
            order = np.random.default_rng(seed).permutation(len(files))
            cut = int(round(len(files) * val_fraction))
            chosen = order[:cut] if split == "val" else order[cut:]
            files = [files[i] for i in sorted(chosen)]
        self.files = files
        captions = _captions(self.root)
        self.captions = [captions.get(p.relative_to(self.root).as_posix()) or _caption_beside(p) for p in files]
        self._classes = None
        if labels == "folders":
            loose = [p.name for p in files if len(p.relative_to(self.root).parts) == 1]
            if loose:
                raise ConfigError(f"imagefolder: labels=folders needs every image in a class sub-folder; {loose[0]} is not")
            self._classes = sorted({p.relative_to(self.root).parts[0] for p in files})

    @property
    def class_names(self) -> list[str] | None:
        return self._classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        image = to_rgb(open_image(path))
        # Shorter side to `size`, then a centre crop: no stretching.
        scale = self.size / min(image.size)
        image = image.resize((max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))), Image.BICUBIC)
        left, top = (image.width - self.size) // 2, (image.height - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        sample: dict[str, Any] = {"image": pil_to_tensor(image)[0]}  # (3, size, size) in [-1, 1]
        if self.captions[index] is not None:
            sample["caption"] = self.captions[index]
        if self._classes is not None:
            sample["class_label"] = self._classes.index(path.relative_to(self.root).parts[0])
        return sample


def _caption_beside(path: Path) -> str | None:
    text = path.with_suffix(".txt")
    return text.read_text().strip() or None if text.is_file() else None


@hookimpl
def register_datasets(register):
    register(ImageFolderDataset)

