"""The `toolkit` command in-process (click's runner): outputs, recipes, replay, and one
clear line with a non-zero exit for every user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from toolkit.cli import cli
from toolkit.errors import ToolkitError
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)


def test_generate_info_and_replay(tiny_model, tmp_path):
    result = invoke("generate", "--model", "tinym", "--class", "3", "-n", "2", "--seed", "5", "--post", "invert", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.split() if line.endswith(".png")]
    assert len(paths) == 2 and all(p.exists() for p in paths)
    assert "chain: tinym (tiny) -> invert [edit]" in result.stderr
    info = invoke("info", str(paths[1]))
    recipe = json.loads(info.stdout)
    assert recipe["request"]["class_label"] == 3 and recipe["seed"] == 5 and recipe["index"] == 1
    replayed = invoke("generate", "--replay", str(paths[1]), "--out", str(tmp_path / "again"))
    assert replayed.exit_code == 0, replayed.output
    assert "identical to the original: yes" in replayed.stderr
    assert (tmp_path / "again").is_dir()


def test_models_and_plugins_json(tiny_model):
    models = {m["name"]: m for m in json.loads(invoke("models", "--json").stdout)}
    assert models["tinym"]["accepts"] == ["class", "sketch"] and models["tinym"]["default"]
    assert models["tinym"]["source"] == "user" and models["ddpm-digits"]["source"] == "models"  # shipped by a plugin
    plugins = {p["name"]: p for p in json.loads(invoke("plugins", "--json").stdout)}
    assert plugins["tiny"]["stages"] == {"invert": "edit"}


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    Image.new("RGB", (10, 30)).save(tmp_path / "tall.png")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sketch", "{d}/missing.png"], "sketch file not found"),
        (["--sketch", "{d}/corrupt.png"], "cannot read"),
        (["--sketch", "{d}/bomb.png"], "over the limit of 40 megapixels"),
        (["--sketch", "{d}/tall.png", "--sketch-scale", "3"], "--sketch-scale: Input should be less than or equal to 2"),
        (["--model", "nonexistent"], "unknown model 'nonexistent'"),
        (["--steps", "0"], "--steps: Input should be greater than or equal to 1"),
        (["--class", "99"], "--class: model 'tinym' has classes 0-9"),
        (["--prompt", "a red circle"], "does not accept text"),
        (["--post", "nope"], "unknown postprocessor 'nope'"),
        (["--post", "invert:x=1"], "post-processor 'invert': unknown option 'x' (it takes: no options)"),
        (["--width", "32", "--height", "32"], "makes 16x16 images, not 32x32"),
    ],
)
def test_user_mistakes_print_one_line(tiny_model, bad_files, args, message):
    out_dir = bad_files / "out"
    result = invoke("generate", "--model", "tinym", *[a.format(d=bad_files) for a in args], "--out", str(out_dir))
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith("Error:") and "Traceback" not in result.output
    assert not out_dir.exists()  # nothing written


def test_debug_shows_the_exception(tiny_model):
    result = CliRunner().invoke(cli, ["--debug", "generate", "--model", "nonexistent"], obj={})
    assert isinstance(result.exception, ToolkitError)


def test_info_on_a_png_without_recipe(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    result = invoke("info", str(tmp_path / "plain.png"))
    assert result.exit_code == 1 and "carries no toolkit recipe" in result.stderr


def test_generate_help_comes_from_the_schema():
    result = invoke("generate", "--help")
    for flag in ("--prompt", "--negative-prompt", "--sketch", "--mask", "--class", "--model", "--sampler", "--steps",
                 "--guidance", "--seed", "--n", "--out", "--replay", "--post"):
        assert flag in result.stdout
    assert "classifier-free guidance scale" in result.stdout


SHIPPED = [("ddpm-digits", "ddpm, ddim", 16), ("gan-digits", "gan", 16), ("vae-digits", "vae", 16),
           ("ddpm-shapes", "ddpm, ddpm", 32), ("gan-shapes", "gan", 32), ("vae-shapes", "vae", 32)]


@pytest.mark.parametrize(("model", "chain", "size"), SHIPPED)
def test_every_shipped_model_generates_offline_and_replays(registry, tmp_path, model, chain, size):
    steps = ["--steps", "5"] if "ddpm" in model else []
    result = invoke("generate", "--model", model, "--class", "3", "-n", "2", "--seed", "0", *steps, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"chain: {model} ({chain})" in result.stderr
    path = Path(result.stdout.split()[-1])
    assert Image.open(path).size == (size, size)
    replayed = invoke("generate", "--replay", str(path), "--out", str(tmp_path / "again"))
    assert "identical to the original: yes" in replayed.stderr


@pytest.mark.parametrize("model", ["ldm-shapes", "ldm-shapes-minilm", None])
def test_shipped_text_models_generate_offline_and_replay(registry, tmp_path, model):
    """None: the README's main command, on the default model (ldm-shapes)."""
    chosen = ["--model", model] if model else []
    result = invoke("generate", *chosen, "--prompt", "a large green triangle in the center", "-n", "2", "--seed", "0",
                    "--steps", "4", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"chain: {model or 'ldm-shapes'} (ldm, dpmpp-2m)" in result.stderr
    path = Path(result.stdout.split()[-1])
    assert Image.open(path).size == (64, 64)
    replayed = invoke("generate", "--replay", str(path), "--out", str(tmp_path / "again"))
    assert "identical to the original: yes" in replayed.stderr


def test_post_runs_a_chain_on_existing_files(tiny_model, tmp_path):
    made = invoke("generate", "--model", "tinym", "--class", "1", "--seed", "2", "--out", str(tmp_path))
    png = Path(made.stdout.split()[0])
    result = invoke("post", str(png), "--post", "invert", "--out", str(tmp_path / "post"))
    assert result.exit_code == 0, result.output
    done = Path(result.stdout.split()[0])
    before, after = (np.asarray(Image.open(p).convert("RGB"), dtype=int) for p in (png, done))
    assert np.abs(before + after - 255).max() <= 1  # inverted, and the source untouched
    recipe = json.loads(invoke("info", str(done)).stdout)
    assert recipe["chain"][-1] == "invert [edit]" and recipe["postprocessors"][-1]["record"] == {"inverted": 1}
    photo = tmp_path / "photo.jpg"  # not a toolkit file: processed, no recipe invented
    Image.new("RGB", (40, 24), (10, 200, 30)).save(photo)
    result = invoke("post", str(photo), "--post", "invert", "--out", str(tmp_path / "post"))
    assert result.exit_code == 0, result.output
    assert Image.open(result.stdout.split()[0]).size == (40, 24)
    assert "no toolkit recipe" in invoke("info", result.stdout.split()[0]).output


def test_post_refuses_bad_input_without_writing(tiny_model, tmp_path, bad_files):
    for args, message in [(["{d}/missing.png", "--post", "invert"], "image file not found"),
                          (["{d}/bomb.png", "--post", "invert"], "over the limit of 40 megapixels"),
                          (["{d}/tall.png", "--post", "nope"], "unknown postprocessor 'nope'")]:
        result = invoke("post", *[a.format(d=bad_files) for a in args], "--out", str(tmp_path / "post"))
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "post").exists()


def test_verify_reports_recipe_or_none(tiny_model, tmp_path):
    made = invoke("generate", "--model", "tinym", "--class", "1", "--seed", "2", "--out", str(tmp_path))
    plain = tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(plain)
    result = invoke("verify", made.stdout.split()[0], str(plain), "--json")
    assert result.exit_code == 0, result.output
    made_report, plain_report = json.loads(result.stdout)
    assert made_report["found"]["recipe"]["model"] == "tinym" and made_report["found"]["recipe"]["seed"] == 2
    assert plain_report["found"]["recipe"].startswith("none")
