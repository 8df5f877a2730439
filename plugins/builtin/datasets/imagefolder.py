"""The `imagefolder` dataset: your own folder of images, with optional captions and labels.

    photos/
      metadata.jsonl        {"file_name": "cats/a.jpg", "text": "a cat on a sofa"} per line (optional)
      cats/a.jpg
      cats/b.txt            a caption beside its image works too
      cats/b.png
      dogs/c.webp

* Any format Pillow reads (PNG, JPEG, WebP, BMP, GIF, TIFF), found recursively and sorted,
  so the order never changes. Hidden files and folders (``.git``, macOS ``._x.jpg``) are
  left out.
* Captions: ``metadata.jsonl`` (the Hugging Face ``imagefolder`` convention, file names
  relative to the root) wins over a ``.txt`` with the image's stem; images with neither
  have no caption.
* ``labels="folders"``: the first sub-folder under the root is the class, classes sorted
  by name.
* Every file is checked once, when the dataset is built, so that a bad file cannot stop a
  training run hours in: files over ``MAX_PIXELS`` are refused from their header, without
  decoding a pixel (decompression bombs), and files whose structure PIL cannot verify are
  skipped. One warning says how many were skipped and why.
* Images become RGB (transparency composited on white, EXIF rotation applied), the shorter
  side is resized to ``size`` and the centre cropped: ``(3, size, size)`` in [-1, 1].
* Splits: ``train`` is every image; with ``val_fraction=F`` a seeded fraction F becomes
  ``val`` and ``train`` the rest.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from toolkit import hookimpl
from toolkit.components import Dataset
from toolkit.errors import ConfigError, ImageInputError
from toolkit.generation.images import normalize_mode, pil_to_tensor, to_rgb

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Training photos may be large, but past this a file is a decompression bomb or a mistake.
MAX_PIXELS = 64_000_000


class ImageFolderDataset(Dataset):
    """A folder of your images; captions from metadata.jsonl or .txt files, labels from folders."""

    name = "imagefolder"
    description = "your own folder of images (options: root, labels=folders, val_fraction)"
    splits = ("train", "val")

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, root: str | Path | None = None,
                 labels: str | None = None, val_fraction: float = 0.0, **options: Any):
        if options:
            raise ConfigError(
                f"dataset 'imagefolder' has no options {sorted(options)}; it takes root, labels and val_fraction"
            )
        if root is None:
            raise ConfigError("dataset 'imagefolder' needs a folder: pass root=PATH (-o root=PATH on the command line)")
        if split not in self.splits:
            raise ConfigError(f"dataset 'imagefolder' has splits {', '.join(self.splits)}, not '{split}'")
        if labels not in (None, "folders"):
            raise ConfigError(f"imagefolder: labels must be 'folders' or left unset, not '{labels}'")
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"imagefolder: size must be a positive whole number of pixels, not {size!r}")
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"imagefolder: val_fraction must be at least 0 and below 1, not {val_fraction}")
        if split == "val" and val_fraction == 0:
            raise ConfigError("imagefolder: the 'val' split needs val_fraction > 0, e.g. val_fraction=0.1")
        super().__init__(split, size=size, seed=seed)

        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ConfigError(f"imagefolder: {self.root} is not a folder; pass root=PATH to a folder of images")
        files = self._usable_images(_find_images(self.root))

        # Classes come from every image, before the split, so a label means the same class
        # in train and val even when a class has no image in one of them.
        self._classes: list[str] | None = None
        if labels == "folders":
            loose = [p for p in files if len(p.relative_to(self.root).parts) == 1]
            if loose:
                raise ConfigError(
                    f"imagefolder: labels=folders needs every image in a class sub-folder, but {loose[0].name} "
                    f"is directly in {self.root}; move it into one"
                )
            self._classes = sorted({p.relative_to(self.root).parts[0] for p in files})

        if val_fraction > 0:
            files = _split(files, split, val_fraction, seed)
        self.files = files
        metadata = _read_metadata(self.root)
        self.captions = [metadata.get(self._key(p)) or _caption_beside(p) for p in files]

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _usable_images(self, files: list[Path]) -> list[Path]:
        """The files that pass ``_check``; one warning for the rest, an error if none pass."""
        problems = {path: why for path in files if (why := _check(path)) is not None}
        if problems:
            shown = "; ".join(f"{self._key(p)}: {why}" for p, why in list(problems.items())[:3])
            more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            warnings.warn(f"imagefolder: skipped {len(problems)} unreadable or oversized image(s) in {self.root} "
                          f"({shown}{more})", stacklevel=3)
        usable = [path for path in files if path not in problems]
        if not usable:
            raise ConfigError(f"imagefolder: no readable images in {self.root} "
                              f"(looked recursively for {', '.join(sorted(EXTENSIONS))})")
        return usable

    @property
    def class_names(self) -> list[str] | None:
        return self._classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``{"image": (3, size, size) float in [-1, 1]}`` plus ``"caption"`` (str) and
        ``"class_label"`` (int) where the folder provides them."""
        path = self.files[index]
        image = ImageOps.fit(_load_rgb(path, self.size), (self.size, self.size), Image.BICUBIC, centering=(0.5, 0.5))
        sample: dict[str, Any] = {"image": pil_to_tensor(image)[0]}
        if self.captions[index] is not None:
            sample["caption"] = self.captions[index]
        if self._classes is not None:
            sample["class_label"] = self._classes.index(path.relative_to(self.root).parts[0])
        return sample


def _find_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted; hidden files and folders left out."""
    return sorted(
        path for path in root.rglob("*")
        if path.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    )


def _check(path: Path) -> str | None:
    """None if ``path`` is an image PIL can verify within ``MAX_PIXELS``, else why not.

    Only the header and the file's structure are read: ``verify`` checks chunks and
    checksums without decompressing the pixels.
    """
    try:
        with warnings.catch_warnings():
            # The size check below is ours; PIL's own warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    return f"{image.width}x{image.height} is over {MAX_PIXELS // 1_000_000} megapixels"
                image.verify()
    except Image.DecompressionBombError:  # PIL refuses the very largest headers in open()
        return f"over {MAX_PIXELS // 1_000_000} megapixels"
    except Exception as error:  # noqa: BLE001 - PIL raises many kinds of error for broken files
        return f"{type(error).__name__}: {error}"
    return None


def _load_rgb(path: Path, size: int) -> Image.Image:
    """Decode ``path`` as an upright RGB image whose shorter side is at least ``size``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:  # the file changed since the dataset was built
                    raise ImageInputError(
                        f"imagefolder: {path} is over {MAX_PIXELS // 1_000_000} megapixels; resize it"
                    )
                opened.draft("RGB", (size, size))  # JPEG only: decode at a reduced scale, much faster for photos
                # Phone photos are stored sideways with a rotation tag. This also decodes the
                # pixels into a copy that outlives the file handle.
                image = ImageOps.exif_transpose(opened)
    except ImageInputError:
        raise
    except Exception as error:  # noqa: BLE001 - verified at construction, so this is a truncated or changed file
        raise ImageInputError(f"imagefolder: cannot read {path} ({error}); remove or replace the file") from None
    # 16-bit greyscale (medical, scientific, some PNG exports) would clip to white in PIL's RGB
    # conversion, float TIFFs to black: scaled as every input image is.
    return to_rgb(normalize_mode(image, f"imagefolder: {path}"))


def _split(files: list[Path], split: str, val_fraction: float, seed: int) -> list[Path]:
    """The ``split`` part of ``files``: a seeded ``val_fraction`` is val, the rest train."""
    import numpy as np

    count = min(len(files) - 1, max(1, round(len(files) * val_fraction)))
    if count < 1:
        raise ConfigError(f"imagefolder: {len(files)} image(s) are too few to set aside val_fraction={val_fraction}")
    order = np.random.default_rng(seed).permutation(len(files))
    chosen = order[:count] if split == "val" else order[count:]
    return [files[i] for i in sorted(chosen)]  # back in file-name order


def _read_metadata(root: Path) -> dict[str, str]:
    """Captions by file name relative to ``root``, from ``metadata.jsonl`` if there is one."""
    path = root / "metadata.jsonl"
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file_name = row["file_name"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f'{path} line {number} must be a JSON object like {{"file_name": "a.png", "text": "a caption"}}'
            ) from None
        # Rows may carry other columns (the Hugging Face convention allows any); only "text" is a caption.
        if isinstance(row.get("text"), str) and row["text"].strip():
            captions[str(file_name).removeprefix("./")] = row["text"].strip()
    return captions


def _caption_beside(path: Path) -> str | None:
    """The text of ``photo.txt`` next to ``photo.jpg``, or None."""
    text = path.with_suffix(".txt")
    if not text.is_file():
        return None
    return text.read_text(encoding="utf-8", errors="replace").strip() or None


@hookimpl
def register_datasets(register):
    register(ImageFolderDataset)
