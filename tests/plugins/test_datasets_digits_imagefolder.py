"""The `digits` and `imagefolder` dataset plugins."""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from sklearn.datasets import load_digits

from toolkit.errors import ConfigError, InvalidRequestError
from toolkit_plugins.datasets.digits import DigitsDataset
from toolkit_plugins.datasets.imagefolder import MAX_PIXELS, ImageFolderDataset

# -- digits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> dict[str, DigitsDataset]:
    return {split: DigitsDataset(split) for split in DigitsDataset.splits}


def test_digits_samples_are_rgb_in_range_and_labelled(digits):
    sample = digits["train"][0]
    image = sample["image"]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # grey replicated
    assert sample["caption"] == f"a handwritten digit {sample['class_label']}"
    assert digits["train"].class_names == [str(d) for d in range(10)]
    assert DigitsDataset("test", size=20)[3]["image"].shape == (3, 20, 20)


def test_digits_are_the_real_scans_white_on_black(digits):
    real = load_digits()
    data = DigitsDataset("test", size=8)  # no resizing: the scans themselves
    for i in (0, 17, len(data) - 1):
        index = data.indices[i]
        assert data[i]["class_label"] == real.target[index]
        expected = torch.from_numpy(real.images[index] / 8.0 - 1).float()  # 0..16 -> [-1, 1]
        assert torch.allclose(data[i]["image"][0], expected, atol=1e-5)
    mean = torch.stack([digits["train"][i]["image"][0] for i in range(200)]).mean(0)
    assert mean[0, 0] < -0.99 and mean[16, 16] > 0  # black background, white ink in the middle


def test_digits_split_is_stratified_disjoint_and_complete(digits):
    train, test = digits["train"], digits["test"]
    assert set(train.indices).isdisjoint(test.indices)
    assert sorted([*train.indices, *test.indices]) == list(range(1797))
    assert len(test) == 360  # 20%
    for split in (train, test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() > 0 and counts.max() - counts.min() <= 0.05 * len(split)


def test_digits_are_deterministic_and_seeded(digits):
    again = DigitsDataset("train")
    assert np.array_equal(again.indices, digits["train"].indices)
    assert torch.equal(again[42]["image"], digits["train"][42]["image"])
    assert not np.array_equal(DigitsDataset("train", seed=1).indices, again.indices)


def test_digits_batch_through_a_dataloader(digits):
    batch = next(iter(torch.utils.data.DataLoader(digits["train"], batch_size=8)))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["class_label"].shape == (8,)


def test_digits_refuse_unknown_split_and_options():
    with pytest.raises(InvalidRequestError, match="has splits train, test, not 'validation'"):
        DigitsDataset("validation")
    with pytest.raises(InvalidRequestError, match="no options \\['root'\\]"):
        DigitsDataset(root="x")


# -- imagefolder -----------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width x height`` pixels it does not contain."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five good images in two class folders, captions both ways, and four bad files."""
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    wide = Image.new("RGB", (80, 40), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 16, 40))  # a blue band the centre crop must cut away
    wide.save(root / "cats" / "a.png")
    (root / "cats" / "a.txt").write_text("loses to metadata.jsonl")
    Image.new("RGBA", (30, 30), (0, 0, 255, 0)).save(root / "cats" / "b.png")  # transparent -> white
    Image.new("RGB", (50, 60), (0, 255, 0)).save(root / "dogs" / "c.jpg", quality=95)
    (root / "dogs" / "c.txt").write_text("a green dog\n")
    Image.new("L", (16, 16), 0).save(root / "dogs" / "d.bmp")
    Image.new("P", (16, 16), 0).save(root / "dogs" / "e.gif")
    # Bad files.
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (root / "cats" / "a.png").read_bytes()
    (root / "dogs" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dogs" / "claims-huge.png").write_bytes(png_claiming(100_000, 100_000))
    Image.new("1", (9000, 8000)).save(root / "dogs" / "bomb.png", optimize=True)  # 72 MP, a few kB
    # Not images, or hidden: ignored.
    (root / "notes.md").write_text("not an image")
    (root / ".thumbnails").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".thumbnails" / "x.png")
    rows = [{"file_name": "cats/a.png", "text": "a red cat"}, {"file_name": "dogs/d.bmp", "other": 1}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def build(folder: Path, **options) -> tuple[ImageFolderDataset, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageFolderDataset(root=str(folder), size=32, **options)
    return data, caught


def test_imagefolder_finds_sorted_images_and_skips_bad_ones_with_one_warning(folder):
    data, caught = build(folder)
    assert [p.relative_to(folder).as_posix() for p in data.files] == [
        "cats/a.png", "cats/b.png", "dogs/c.jpg", "dogs/d.bmp", "dogs/e.gif"]
    assert len(caught) == 1 and issubclass(caught[0].category, UserWarning)
    message = str(caught[0].message)
    assert "skipped 4 unreadable or oversized image(s)" in message and "\n" not in message
    assert "megapixels" in message


def test_imagefolder_refuses_oversized_files_without_decoding(folder, monkeypatch):
    assert 9000 * 8000 > MAX_PIXELS

    def no_decoding(image):
        raise AssertionError(f"{image.filename} was decoded while the dataset was built")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data, _ = build(folder)
    monkeypatch.undo()
    assert {p.name for p in data.files}.isdisjoint({"bomb.png", "claims-huge.png"})
    assert data[0]["image"].shape == (3, 32, 32)  # decoding works again once built


def test_imagefolder_images_are_rgb_cropped_and_composited(folder):
    data, _ = build(folder)
    red, transparent, green, black, _ = (data[i]["image"] for i in range(5))
    for image in (red, transparent, green, black):
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1
    # Shorter side to 32, then the centre: the blue band at the left edge is cropped away.
    assert torch.allclose(red, torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 32, 32), atol=0.02)
    assert torch.allclose(transparent, torch.ones(3, 32, 32))  # alpha composited on white
    assert torch.allclose(green[:, 16, 16], torch.tensor([-1.0, 1.0, -1.0]), atol=0.05)
    assert torch.equal(black, -torch.ones(3, 32, 32))


def test_imagefolder_captions_from_metadata_then_txt(folder):
    data, _ = build(folder)
    captions = [data[i].get("caption") for i in range(len(data))]
    assert captions == ["a red cat", None, "a green dog", None, None]


def test_imagefolder_labels_from_folders(folder):
    plain, _ = build(folder)
    assert plain.class_names is None and "class_label" not in plain[0]
    labelled, _ = build(folder, labels="folders")
    assert labelled.class_names == ["cats", "dogs"]
    assert [labelled[i]["class_label"] for i in range(len(labelled))] == [0, 0, 1, 1, 1]
    Image.new("RGB", (8, 8)).save(folder / "loose.png")
    with pytest.raises(ConfigError, match="loose.png is directly in"):
        build(folder, labels="folders")


def test_imagefolder_val_split_is_seeded_and_disjoint(folder):
    everything, _ = build(folder)
    train, _ = build(folder, val_fraction=0.4, labels="folders")
    val, _ = build(folder, val_fraction=0.4, labels="folders", split="val")
    assert len(val.files) == 2 and set(train.files).isdisjoint(val.files)
    assert sorted(train.files + val.files) == everything.files
    assert train.class_names == val.class_names == ["cats", "dogs"]  # labels mean the same in both
    again, _ = build(folder, val_fraction=0.4, split="val")
    assert again.files == val.files
    other_seeds = [build(folder, val_fraction=0.4, split="val", seed=s)[0].files for s in range(1, 6)]
    assert any(files != val.files for files in other_seeds)
    with pytest.raises(ConfigError, match="needs val_fraction > 0"):
        build(folder, split="val")


def test_imagefolder_applies_exif_rotation_and_reads_16_bit(tmp_path):
    stored = Image.new("RGB", (40, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 20, 40, 40))  # red on top, blue below, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: show rotated 90 degrees clockwise
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    grey = np.full((20, 20), 32768, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "sixteen.png")
    data, _ = build(tmp_path)
    rotated, sixteen = data[0]["image"], data[1]["image"]
    assert rotated[2, 16, 4] > 0.8 and rotated[0, 16, 28] > 0.8  # now blue on the left, red on the right
    assert torch.allclose(sixteen, torch.zeros(3, 32, 32), atol=0.01)  # mid-grey, not clipped to white


def test_imagefolder_errors_say_what_to_do(tmp_path, folder):
    with pytest.raises(ConfigError, match="needs a folder: pass root=PATH"):
        ImageFolderDataset()
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageFolderDataset(root=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageFolderDataset(root=str(folder / "cats" / "a.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no readable images"):
        ImageFolderDataset(root=str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="skipped 1"), pytest.raises(ConfigError, match="no readable images"):
        ImageFolderDataset(root=str(tmp_path / "bad"))
    with pytest.raises(ConfigError, match="has splits train, val, not 'test'"):
        ImageFolderDataset("test", root=str(folder))
    with pytest.raises(ConfigError, match="no options \\['colour'\\]"):
        ImageFolderDataset(root=str(folder), colour="red")
    with pytest.raises(ConfigError, match="labels must be 'folders'"):
        ImageFolderDataset(root=str(folder), labels="names")
    (folder / "metadata.jsonl").write_text('{"text": "no file name"}\n')
    with pytest.raises(ConfigError, match="metadata.jsonl line 1 must be a JSON object"):
        build(folder)
