"""The digits and imagefolder dataset plugins, and the dataset preview command."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from toolkit.cli import cli
from toolkit.errors import ConfigError, InvalidRequestError
from toolkit_plugins.digits import DigitsDataset
from toolkit_plugins.imagefolder import ImageFolderDataset


def test_digits_real_labelled_and_split():
    train, test = DigitsDataset("train", size=16), DigitsDataset("test", size=16)
    assert len(train) + len(test) == 1797 and set(train.indices).isdisjoint(test.indices)
    sample = train[0]
    assert sample["image"].shape == (3, 16, 16) and -1 <= sample["image"].min() and sample["image"].max() <= 1
    assert sorted({int(train[i]["class_label"]) for i in range(len(train))}) == list(range(10))
    assert sample["caption"] == f"a handwritten digit {sample['class_label']}"
    assert torch.equal(DigitsDataset("train", size=16)[5]["image"], train[5]["image"])
    with pytest.raises(InvalidRequestError, match="splits train, test"):
        DigitsDataset("validation")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.new("RGB", (80, 40), (255, 0, 0)).save(root / "cats" / "a.png")
    Image.new("RGBA", (30, 30), (0, 0, 255, 0)).save(root / "cats" / "b.png")  # transparent -> white
    Image.new("RGB", (50, 60), (0, 255, 0)).save(root / "dogs" / "c.jpg")
    (root / "dogs" / "c.txt").write_text("a green dog\n")
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("1", (9000, 9000)).save(root / "dogs" / "bomb.png", optimize=True)
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "cats/a.png", "text": "a red cat"}) + "\n")
    return root


def test_imagefolder_reads_captions_labels_and_skips_bad_files(folder):
    with pytest.warns(UserWarning, match="skipped 2 unreadable or oversized"):
        data = ImageFolderDataset(root=str(folder), size=32, labels="folders")
    assert [p.name for p in data.files] == ["a.png", "b.png", "c.jpg"]
    assert data.class_names == ["cats", "dogs"]
    a, b, c = data[0], data[1], data[2]
    assert a["caption"] == "a red cat" and c["caption"] == "a green dog" and "caption" not in b
    assert (a["class_label"], c["class_label"]) == (0, 1)
    assert a["image"].shape == (3, 32, 32) and torch.allclose(a["image"][:, 16, 16], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(b["image"], torch.ones(3, 32, 32))


def test_imagefolder_errors(tmp_path, folder):
    with pytest.raises(ConfigError, match="needs a folder: pass root=PATH"):
        ImageFolderDataset()
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageFolderDataset(root=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no readable images"):
        ImageFolderDataset(root=str(tmp_path / "empty"))


def test_dataset_preview_command(tmp_path, registry):
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(cli, ["dataset", "preview", "shapes", "--n", "4", "--out", str(out)], obj={})
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 200
    bad = CliRunner().invoke(cli, ["dataset", "preview", "imagefolder", "--out", str(tmp_path / "x.png")], obj={})
    assert bad.exit_code == 1 and "pass root=PATH" in bad.stderr
    unknown = CliRunner().invoke(cli, ["dataset", "preview", "shapez"], obj={})
    assert unknown.exit_code == 1 and "Did you mean 'shapes'" in unknown.stderr
