"""Hostile input for every command: each fails with a non-zero exit, one ``Error:`` line on
stderr and no traceback, and changes no file that was there before.

In-process (click's runner) against one prepared folder of hostile files; the table names
every command `toolkit` has, plugin commands included, so a new command needs its rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
import toolkit_tiny
from PIL import Image, PngImagePlugin

from toolkit.cli import cli
from toolkit.generation.recipe import RECIPE_KEY
from toolkit.host.loading import call_each, plugins_with_extra, set_registry
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "gan-digits.yaml")
BIG = str(10**23)

# (command, arguments, environment): "{d}" is the folder of hostile files.
CASES: list[tuple[str, list[str], dict[str, str]]] = [
    ("toolkit", ["--bogus"], {}),
    ("toolkit", ["no-such-command"], {}),
    ("toolkit", ["--threads", "0", "models"], {}),
    ("toolkit", ["--threads", "two", "models"], {}),
    ("models", [], {"TOOLKIT_THREADS": "-1"}),
    # config.toml ("{d}" in a value is the folder of hostile files too)
    ("config", ["extra"], {}),
    ("config", [], {"TOOLKIT_HOME": "{d}/home-not-toml"}),
    ("config", ["--json"], {"TOOLKIT_HOME": "{d}/home-wrong-type"}),
    ("models", [], {"TOOLKIT_HOME": "{d}/home-unknown-key"}),
    ("generate", ["--class", "1"], {"TOOLKIT_HOME": "{d}/home-unknown-key"}),
    ("generate", ["--class", "1"], {"TOOLKIT_HOME": "{d}/home-no-such-model"}),
    # generate
    ("generate", ["--model", "nonexistent"], {}),
    ("generate", ["--model", "{d}/sd"], {}),
    ("generate", ["--model", "{d}/afile"], {}),
    ("generate", ["--model", "gan-huge", "--class", "1"], {}),
    ("generate", ["--model", "tinym", "--steps", "0"], {}),
    ("generate", ["--model", "tinym", "--seed", "-1"], {}),
    ("generate", ["--model", "tinym", "--seed", BIG], {}),
    ("generate", ["--model", "tinym", "--n", "100000"], {}),
    ("generate", ["--model", "tinym", "--width", "100000"], {}),
    ("generate", ["--model", "tinym", "--class", "abc"], {}),
    ("generate", ["--model", "tinym", "--prompt", "x" * 3000], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}/corrupt.png"], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}/bomb.png"], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}/missing.png"], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}"], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}/notes.txt"], {}),
    ("generate", ["--model", "tinym", "--sketch", "{d}/ok.png"], {"TOOLKIT_MAX_IMAGE_PIXELS": "abc"}),
    ("generate", ["--model", "tinym", "--post", "upscale-lanczos:scale=true"], {}),
    ("generate", ["--model", "tinym", "--post", "upscale-lanczos:scale=1e999"], {}),
    ("generate", ["--model", "tinym", "--post", "invert:x=1,x=2"], {}),
    ("generate", ["--model", "tinym", "--post", ":"], {}),
    ("generate", ["--model", "tinym", "--post", "nope"], {}),
    ("generate", ["--model", "tinym", "--out", "{d}/afile/sub"], {}),
    ("generate", ["--model", "tinym", "--out", "/proc/toolkit-out"], {}),
    ("generate", ["--model", "tinym", "--out", "{d}/a\0b"], {}),
    ("generate", ["--model", "tinym", "--device", "foo"], {}),
    ("generate", ["--model", "tinym", "--device", "cuda:99"], {}),
    ("generate", ["--replay", "{d}/made.png", "--class", "2"], {}),
    ("generate", ["--replay", "{d}/plain.png"], {}),
    ("generate", ["--replay", "{d}/corrupt.png"], {}),
    ("generate", ["--replay", "{d}/recipe-index.png"], {}),
    ("generate", ["--replay", "{d}/recipe-list.png"], {}),
    ("generate", ["--replay", "{d}/recipe-deep.png"], {}),
    ("generate", ["--replay", "{d}/recipe-path.png"], {}),
    ("generate", ["--replay", "{d}/recipe-big.png"], {}),
    # post
    ("post", ["{d}/missing.png", "--post", "invert"], {}),
    ("post", ["{d}/corrupt.png", "--post", "invert"], {}),
    ("post", ["{d}/notes.txt", "--post", "invert"], {}),
    ("post", ["{d}", "--post", "invert"], {}),
    ("post", ["{d}/recipe-list.png", "--post", "invert"], {}),
    ("post", ["{d}/recipe-big.png", "--post", "invert"], {}),
    ("post", ["{d}/ok.png", "--post", "nope"], {}),
    ("post", ["{d}/ok.png", "--post", "upscale-lanczos:scale=true"], {}),
    ("post", ["{d}/ok.png", "--post", "invert", "--out", "{d}/afile"], {}),
    ("post", ["{d}/ok.png", "--post", "invert"], {"TOOLKIT_MAX_IMAGE_PIXELS": "-1"}),
    # info
    ("info", ["{d}/plain.png"], {}),
    ("info", ["{d}/corrupt.png"], {}),
    ("info", ["{d}/missing.png"], {}),
    ("info", ["{d}/recipe-index.png"], {}),
    ("info", ["{d}/recipe-deep.png"], {}),
    ("info", ["{d}/recipe-big.png"], {}),
    # verify
    ("verify", ["{d}/corrupt.png"], {}),
    ("verify", ["{d}/missing.png"], {}),
    ("verify", ["{d}/recipe-deep.png"], {}),
    ("verify", ["{d}/ok.png", "--check", "nope:x=1"], {}),
    ("verify", ["{d}/ok.png", "--check", "watermark:a=1,a=2"], {}),
    ("verify", ["{d}/ok.png", "--trust", "{d}/notes.txt"], {}),
    # listings
    ("plugins", ["--bogus"], {}),
    ("models", ["--json", "extra"], {}),
    ("dataset list", ["--bogus"], {}),
    ("eval-classifier list", ["--bogus"], {}),
    # dataset preview
    ("dataset preview", ["nope"], {}),
    ("dataset preview", ["shapes", "-o", "max_objects=1e999"], {}),
    ("dataset preview", ["shapes", "-o", "seed=abc"], {}),
    ("dataset preview", ["shapes", "-o", "length=1", "-o", "length=2"], {}),
    ("dataset preview", ["shapes", "-o", "noequals"], {}),
    ("dataset preview", ["shapes", "--n", "0"], {}),
    ("dataset preview", ["shapes", "--out", "{d}/afile/p.png"], {}),
    ("dataset preview", ["imagefolder", "-o", "root={d}/afile"], {}),
    # train
    ("train", ["{d}/missing.yaml"], {}),
    ("train", ["{d}/corrupt.png"], {}),
    ("train", ["{d}/list.yaml"], {}),
    ("train", ["{d}/deep.yaml"], {}),
    ("train", [CONFIG, "train.betas=[0.5,"], {}),
    ("train", [CONFIG, "nosuchsection.x=1"], {}),
    ("train", [CONFIG, "=3"], {}),
    ("train", [CONFIG, "train.steps=-1"], {}),
    ("train", [CONFIG, "model.latent_dim=5000", "output.dir={d}/run"], {}),
    # eval
    ("eval", ["--model", "nonexistent"], {}),
    ("eval", ["--model", "ldm-shapes", "--prompts", "{d}/ok.png"], {}),
    ("eval", ["--model", "tinym", "--out", "{d}/afile/r.json"], {}),
    ("eval", ["--model", "tinym", "--device", "foo"], {}),
    ("eval", ["--model", "tinym", "--n-per-class", "0"], {}),
    ("eval", ["--model", "tinym", "-o", "x=1", "-o", "x=2"], {}),
    ("eval-classifier train", ["--dataset", "nope", "--size", "16", "--out", "{d}/cls"], {}),
    ("eval-classifier train", ["--dataset", "digits", "--size", "3"], {}),
    ("eval-classifier train", ["--dataset", "digits", "--size", "16", "--out", "{d}/afile"], {}),
    ("eval-classifier train", ["--dataset", "digits", "--size", "16", "--device", "foo"], {}),
    # app: all refused while the command line is read, so no server ever starts
    ("app", ["--port", "0"], {}),
    ("app", ["--port", "abc"], {}),
    ("app", ["--out", "{d}/afile"], {}),
    ("app", ["--device", "foo"], {}),
    # plugin commands
    ("interpolate", ["--model", "gan-digits", "--from-seed", BIG, "--out", "{d}/i.png"], {}),
    ("interpolate", ["--model", "nonexistent", "--out", "{d}/i.png"], {}),
    ("interpolate", ["--model", "tinym", "--out", "{d}/i.png"], {}),
    ("interpolate", ["--model", "vae-digits", "--class", "1", "--from-image", "{d}/corrupt.png", "--out", "{d}/i.png"], {}),
    ("interpolate", ["--model", "gan-digits", "--out", "{d}/afile/i.png"], {}),
    ("keys create", ["--out", "{d}/afile"], {}),
    ("keys create", ["--out", "/proc/toolkit-keys"], {}),
    ("keys create", ["--name", "", "--out", "{d}/keys"], {}),
    ("import-weights", ["nope"], {}),
    ("tiny-hello", ["--bogus"], {}),
]


def _with_recipe(source: Path, target: Path, text: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, text, zip=True)
    Image.open(source).save(target, pnginfo=info)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A $TOOLKIT_HOME with the tiny model and an out-of-bounds copy of gan-digits, the
    installed plugins (commands too), and a folder of hostile files; yields that folder."""
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLKIT_HOME", str(root / "home"))
        toolkit_tiny.make_model(root / "home" / "models" / "tinym", default=True)
        pm, registry = plugins_with_extra([("tiny", toolkit_tiny)])
        set_registry(pm, registry)
        call_each(pm, registry, "register_commands", cli=cli)
        huge = shutil.copytree(registry.models["gan-digits"].obj, root / "home" / "models" / "gan-huge")
        (huge / "config.json").write_text(json.dumps({**json.loads((huge / "config.json").read_text()), "latent_dim": 5000}))
        d = root / "in"
        d.mkdir()
        (d / "afile").write_text("an ordinary file")
        (d / "notes.txt").write_text("not an image")
        (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        Image.new("1", (20000, 20000)).save(d / "bomb.png", optimize=True)
        Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(d / "ok.png")
        Image.new("RGB", (16, 16)).save(d / "plain.png")
        made = invoke("generate", "--model", "tinym", "--class", "1", "--seed", "1", "--out", str(d / "made"))
        shutil.copy(made.stdout.split()[0], d / "made.png")
        recipe = json.loads(Image.open(d / "made.png").text[RECIPE_KEY])
        for name, text in {"index": json.dumps({**recipe, "index": -1}), "list": "[]", "deep": "[" * 100_000,
                           "path": json.dumps({**recipe, "request": {**recipe["request"], "sketch": str(d / "ok.png")}}),
                           "big": json.dumps({**recipe, "pad": "0" * 1_100_000})}.items():
            _with_recipe(d / "made.png", d / f"recipe-{name}.png", text)
        for name, text in {"not-toml": "model = \n", "wrong-type": 'threads = "4"\n', "unknown-key": 'modle = "x"\n',
                           "no-such-model": 'model = "no-such-model"\n'}.items():
            (d / f"home-{name}").mkdir()
            (d / f"home-{name}" / "config.toml").write_text(text)
        (d / "list.yaml").write_text("- 1\n- 2\n")
        (d / "deep.yaml").write_text("[" * 10_000)
        (d / "sd" / "unet").mkdir(parents=True)
        (d / "sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
        yield root
    set_registry(None, None)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def all_commands(group: click.Group, prefix: str = "") -> set[str]:
    names = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        names |= all_commands(command, f"{path} ") if isinstance(command, click.Group) else {path}
    return names


def test_every_command_has_hostile_inputs(world):
    assert all_commands(cli) <= {command for command, _, _ in CASES}


@pytest.mark.parametrize(("command", "args", "env"), CASES,
                         ids=[f"{c}:{' '.join(a)[:60]}" for c, a, _ in CASES])
def test_hostile_input_fails_in_one_line_and_changes_nothing(world, monkeypatch, command, args, env):
    monkeypatch.chdir(world)  # defaults such as --out out/ land where the snapshot sees them
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(d=world / "in"))
    monkeypatch.setattr("toolkit_apps.server.serve", lambda *a, **k: pytest.fail("the app started"))
    before = snapshot(world)
    words = [] if command == "toolkit" else command.split()
    result = invoke(*words, *[a.format(d=world / "in") for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.output
    after = snapshot(world)
    assert {path: after.get(path) for path in before} == before

