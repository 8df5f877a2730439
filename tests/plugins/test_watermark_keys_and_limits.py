"""The watermark's promises at their edges (rescales of 0.7 to 1.6, white pages), what it
says when an image cannot keep a mark (exit status 3, the record), and whose mark it is:
your own key, a mark that is already there, and `verify`'s wording of a claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import photo, shapes_like
from PIL import Image, ImageDraw
from toolkit_plugins.postprocessors import c2pa as credentials
from toolkit_plugins.postprocessors.watermark import detect, embed, payload
from toolkit_plugins.postprocessors.watermark.key import KEY_FILE, WatermarkKeyError, load_key

from toolkit.cli import cli
from toolkit.generation.recipe import read_post_log


def resized(a: np.ndarray, factor: float) -> np.ndarray:
    """Resized by ``factor`` and kept at that size (bicubic), as a user's image editor does."""
    im = Image.fromarray(a)
    return np.asarray(im.resize((round(im.width * factor), round(im.height * factor)), Image.BICUBIC))


def text_page(size: int) -> np.ndarray:
    """A white page with evenly spaced lines of text: it repeats along one axis, which once
    outshone the tile's period in the detector's autocorrelation."""
    im = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(im)
    for row in range(7):
        draw.text((10, 10 + row * size // 7), "The quick brown fox jumps", fill=(20, 20, 20))
    return np.asarray(im)


@pytest.mark.parametrize("factor", [0.7, 0.75, 1.5, 1.6])
@pytest.mark.parametrize("image", ["chelsea", "generated", "text page"])
def test_the_mark_survives_rescales_at_the_ends_of_the_promise(image, factor):
    a = {"chelsea": lambda: photo("chelsea", (256, 256)), "generated": lambda: shapes_like(256, seed=3),
         "text page": lambda: text_page(256)}[image]()
    data = payload.number(4242)
    out = embed(a.astype(np.float64), data).image.astype(np.uint8)
    assert detect(resized(out, factor)) == data


def test_a_white_page_says_which_promised_attacks_its_mark_does_not_survive():
    white = np.full((256, 256, 3), 255.0)
    result = embed(white, payload.number(7))
    assert result.fragile is not None and "brighter" in result.fragile  # brightening clips the whole page
    sturdier = embed(white, payload.number(7), psnr=34)  # what the message suggests, measured
    assert sturdier.fragile == []


def test_photos_at_256_are_not_rehearsed_and_say_nothing():
    assert embed(photo("astronaut", (256, 256)).astype(np.float64), payload.number(1)).fragile is None


# -- the CLI: exit status 3 and the record --------------------------------------------------


def test_post_writes_a_fragile_mark_but_exits_3_and_records_why(home, registry, tmp_path):
    source = tmp_path / "page.png"
    Image.new("RGB", (256, 256), "white").save(source)
    done = CliRunner().invoke(cli, ["post", str(source), "--post", "watermark:number=5", "--out", str(tmp_path / "out")], obj={})
    assert done.exit_code == 3, done.output
    assert "Incomplete: watermark: image 0's mark does not survive" in " ".join(done.stderr.split())
    written = Path(done.stdout.split()[-1])
    assert detect(np.asarray(Image.open(written).convert("RGB"))) == payload.number(5)  # written, and it reads
    log = read_post_log(written)  # a photo's record of what was done to it
    step = next(r for r in log["postprocessors"] if r["name"] == "watermark")
    assert "brighter" in step["record"]["fragile_to"][0] and step["record"]["readable"] == [True]
    assert step["shortfall"].startswith("image 0's mark does not survive")


def test_post_on_a_photo_that_holds_exits_0(home, registry, tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(photo("coffee", (256, 256))).save(source)
    done = CliRunner().invoke(cli, ["post", str(source), "--post", "watermark:number=5", "--out", str(tmp_path / "out")], obj={})
    assert done.exit_code == 0, done.output


# -- keys ----------------------------------------------------------------------------------


@pytest.fixture
def keys_command(registry) -> None:
    credentials.register_commands(cli)  # what `toolkit` does at start-up for every plugin's commands


def test_keys_create_makes_a_private_watermark_key_and_adds_one_to_older_keys(home, keys_command):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create"], obj={})
    assert made.exit_code == 0, made.output
    key_path = home / "keys" / KEY_FILE
    assert str(key_path) in made.stdout and key_path.stat().st_mode & 0o777 == 0o600
    first = key_path.read_text()
    # Signing keys made before watermark keys existed: only the missing key is made.
    key_path.unlink()
    again = runner.invoke(cli, ["keys", "create"], obj={})
    assert again.exit_code == 0 and again.stdout.split() == [str(key_path)]
    assert key_path.read_text() != first
    # Everything there: refused, nothing replaced.
    kept = key_path.read_text()
    refused = runner.invoke(cli, ["keys", "create"], obj={})
    assert refused.exit_code == 1 and "--force" in refused.output and key_path.read_text() == kept


def test_a_mark_written_with_your_own_key_reads_only_with_it(home, keys_command, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "create"], obj={}).exit_code == 0
    source = tmp_path / "photo.png"
    Image.fromarray(photo("chelsea", (256, 256))).save(source)
    done = runner.invoke(cli, ["post", str(source), "--post", "watermark:number=99,key=own", "--out", str(tmp_path / "out")], obj={})
    assert done.exit_code == 0, done.output
    out = done.stdout.split()[-1]
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert detect(pixels) is None  # the public key sees nothing
    assert detect(pixels, key=load_key("own").seed) == payload.number(99)
    found = json.loads(runner.invoke(cli, ["verify", out, "--json"], obj={}).stdout)[0]["found"]["watermark"]
    assert found["key"] == "own" and len(found["key_fingerprint"]) == 16
    assert found["claim"].startswith("the number 99") and "only its holders can write" in found["claim"]
    # Someone else's verify (no key of theirs) reads nothing, and says which keys it tried.
    (home / "keys" / KEY_FILE).rename(tmp_path / "elsewhere.key")
    none = json.loads(runner.invoke(cli, ["verify", out, "--json"], obj={}).stdout)[0]["found"]["watermark"]
    assert none.startswith("none") and "public" in none
    # Given the key file, they read it.
    given = runner.invoke(cli, ["verify", out, "--json", "--check", f"watermark:key={tmp_path / 'elsewhere.key'}"], obj={})
    assert json.loads(given.stdout)[0]["found"]["watermark"]["payload"] == payload.number(99).hex()


def test_a_missing_or_broken_key_is_refused_before_any_work(home, registry, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["generate", "--model", "gan-digits", "--class", "1", "--post", "upscale-lanczos:scale=4",
                                  "--post", "watermark:key=own", "--out", str(tmp_path / "out")], obj={})
    assert missing.exit_code == 1 and "toolkit keys create" in missing.output and not (tmp_path / "out").exists()
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(WatermarkKeyError, match="is not a watermark key"):
        load_key(str(bad))


def test_an_image_that_carries_a_mark_is_not_marked_again_without_replace(home, registry, tmp_path):
    runner = CliRunner()
    source = tmp_path / "photo.png"
    Image.fromarray(photo("astronaut", (256, 256))).save(source)
    first = runner.invoke(cli, ["post", str(source), "--post", "watermark:number=1", "--out", str(tmp_path / "a")], obj={})
    assert first.exit_code == 0, first.output
    marked = first.stdout.split()[-1]
    again = runner.invoke(cli, ["post", marked, "--post", "watermark:number=2", "--out", str(tmp_path / "b")], obj={})
    assert again.exit_code == 1 and "already carries a toolkit mark" in again.output and "replace=true" in again.output
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    replaced = runner.invoke(cli, ["post", marked, "--post", "watermark:number=2,replace=true", "--out", str(tmp_path / "b")], obj={})
    assert replaced.exit_code == 0, replaced.output
    assert detect(np.asarray(Image.open(replaced.stdout.split()[-1]).convert("RGB"))) == payload.number(2)
