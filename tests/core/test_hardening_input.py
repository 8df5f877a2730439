"""Hostile input, one item of issue #23 per section: plugins that hijack a name or call
sys.exit(), plugin faults, tampered recipes, odd image modes, --replay, environment values,
malformed model folders, bad --out and --device, and the smaller cases. Each command fails
in one line, with no traceback, before any work."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import toolkit_tiny
import torch
from PIL import Image, PngImagePlugin

from toolkit import hookimpl
from toolkit.cli import cli, main
from toolkit.components import PostProcessor, PostResult, Stage
from toolkit.errors import CheckpointError, ConfigError, InvalidRequestError, ToolkitWarning
from toolkit.generation.images import open_image
from toolkit.generation.recipe import RECIPE_KEY
from toolkit.generation.request import parse_request
from toolkit.host.loading import (
    add_plugin,
    build_registry,
    call_each,
    load_entry_points,
    new_plugin_manager,
    plugins_with_extra,
    set_registry,
)
from toolkit.host.registry import PluginInfo, Registry
from toolkit.train.checkpoints import verify_checkpoint
from toolkit.train.config import apply_override
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[2]


def assert_one_line_error(result, status: int | None = None, contains: str = "") -> str:
    """A non-zero exit (``status`` if given), one ``Error:`` line on stderr containing
    ``contains``, and no exception escaping the command (no traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0 if status is None else result.exit_code == status, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def plugin_module(name: str, **hooks) -> types.ModuleType:
    """An in-process plugin module with the given ``@hookimpl`` functions."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        function.__name__ = hook_name
        setattr(module, hook_name, hookimpl(function))
    return module


@pytest.fixture
def with_plugins(home):
    """``with_plugins(module, ...)``: the installed plugins, tiny, and these, as the registry."""

    def install(*modules: types.ModuleType) -> Registry:
        pm, registry = plugins_with_extra([("tiny", toolkit_tiny), *((m.__name__, m) for m in modules)])
        set_registry(pm, registry)
        return registry

    yield install
    set_registry(None, None)


def made_png(folder: Path, *args: str) -> Path:
    """One PNG from the tiny model (its recipe inside); ``args``: more generate flags."""
    result = invoke("generate", "--model", "tinym", "--class", "1", "--seed", "3", *args, "--out", str(folder))
    assert result.exit_code == 0, result.output
    return Path(result.stdout.split()[0])


def with_recipe(source: Path, target: Path, text: str) -> Path:
    """``source``'s pixels with ``text`` as its recipe chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, text, zip=True)
    Image.open(source).save(target, pnginfo=info)
    return target


class EvilWatermark(PostProcessor):
    """A stranger's post-processor under a built-in's name."""

    name = "watermark"
    stage = Stage.WATERMARK

    def process(self, images, options, ctx):
        return PostResult(images, {"evil": True})


def _register_evil(register):
    register(EvilWatermark)


# -- 6. a plugin cannot replace a built-in ------------------------------------------------------


def test_builtins_win_a_name_clash_and_the_newcomer_is_broken(home, monkeypatch):
    monkeypatch.setenv("TOOLKIT_PLUGINS", "watermark")
    pm, registry = new_plugin_manager(), Registry()
    evil = plugin_module("evil", register_postprocessors=_register_evil)
    add_plugin(pm, registry, PluginInfo("evil"), lambda: evil)  # registered before the built-ins
    load_entry_points(pm, registry)
    build_registry(pm, registry)
    assert registry.postprocessors["watermark"].plugin == "watermark" and registry.plugins["watermark"].ok
    assert registry.plugins["watermark"].builtin
    error = registry.plugins["evil"].error
    assert "postprocessor 'watermark' is built in (plugin 'watermark')" in error
    assert "TOOLKIT_PLUGIN_OVERRIDES=evil" in error


def test_overriding_a_builtin_takes_an_explicit_setting(home, monkeypatch):
    monkeypatch.setenv("TOOLKIT_PLUGIN_OVERRIDES", "evil")
    pm, registry = plugins_with_extra([("evil", plugin_module("evil", register_postprocessors=_register_evil))])
    set_registry(pm, registry)
    try:
        assert registry.postprocessors["watermark"].obj is EvilWatermark and registry.plugins["evil"].ok
        rows = {row["name"]: row for row in json.loads(invoke("plugins", "--json").stdout)}
        assert rows["evil"]["replaces"] == ["postprocessor 'watermark' of plugin 'watermark'"]
        assert rows["watermark"]["status"] == "ok" and rows["watermark"]["builtin"] and not rows["evil"]["builtin"]
        assert "replaces built-in" in invoke("plugins").stdout  # the table, too
    finally:
        set_registry(None, None)


def test_an_entry_point_cannot_take_a_builtins_plugin_name(home, monkeypatch):
    real = importlib.metadata.entry_points
    evil = plugin_module("evil", register_postprocessors=_register_evil)
    impostor = SimpleNamespace(name="watermark", dist=SimpleNamespace(name="evil-pkg", version="6.6"), load=lambda: evil)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [impostor, *real(group=group)])
    monkeypatch.setenv("TOOLKIT_PLUGINS", "watermark")
    pm, registry = new_plugin_manager(), Registry()
    load_entry_points(pm, registry)
    build_registry(pm, registry)
    assert registry.plugins["watermark"].package == "toolkit-imagegen" and registry.postprocessors["watermark"].obj is not EvilWatermark
    assert "is taken by package 'toolkit-imagegen'" in registry.plugins["watermark (evil-pkg)"].error


def test_a_plugin_cannot_replace_a_command(home):
    original = cli.commands["verify"]

    def register_commands(cli):
        @cli.command("verify")
        def fake_verify() -> None:
            """Says everything is fine."""

    try:
        pm, registry = plugins_with_extra([("hijack", plugin_module("hijack", register_commands=register_commands))])
        call_each(pm, registry, "register_commands", cli=cli)
        assert cli.commands["verify"] is original
        assert "command 'verify' already exists" in registry.plugins["hijack"].error
    finally:
        cli.commands["verify"] = original


# -- 7. sys.exit() in a plugin ------------------------------------------------------------------


def test_sys_exit_at_import_or_in_a_hook_marks_the_plugin_broken(home):
    pm, registry = new_plugin_manager(), Registry()
    add_plugin(pm, registry, PluginInfo("quits-on-import"), lambda: sys.exit(4))
    assert "SystemExit: 4" in registry.plugins["quits-on-import"].error

    def register_datasets(register):
        sys.exit(3)

    _, registry = plugins_with_extra([("quitter", plugin_module("quitter", register_datasets=register_datasets))])
    assert "SystemExit: 3" in registry.plugins["quitter"].error and registry.plugins["digits"].ok


def test_help_works_with_a_plugin_that_calls_sys_exit(home, monkeypatch, capsys):
    def register_commands(cli):
        sys.exit(3)

    pm, registry = plugins_with_extra([("quitter", plugin_module("quitter", register_commands=register_commands))])
    set_registry(pm, registry)
    monkeypatch.setattr(sys, "argv", ["toolkit", "--help"])
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() sets the CLI's
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        set_registry(None, None)
    assert exit_.value.code == 0 and "Usage:" in capsys.readouterr().out


# -- 8. a plugin's fault is reported as the plugin's --------------------------------------------


class Faulty(PostProcessor):
    """A post-processor with bugs."""

    name = "faulty"
    stage = Stage.EDIT

    def process(self, images, options, ctx):
        raise KeyError("images")  # a bug

    @classmethod
    def inspect(cls, path, image, ctx):
        raise ZeroDivisionError("division by zero\nsecond line")


def _register_faulty(register):
    register(Faulty)


def test_a_failing_process_is_one_line_naming_the_plugin(tiny_model, with_plugins, tmp_path):
    with_plugins(plugin_module("buggy", register_postprocessors=_register_faulty))
    result = invoke("generate", "--model", "tinym", "--post", "faulty", "--out", str(tmp_path / "out"))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: plugin 'buggy' failed in post-processor 'faulty' (process): KeyError")
    assert result.exit_code == 1 and not (tmp_path / "out").exists()


def test_verify_reports_every_file_when_a_plugin_inspect_fails(tiny_model, with_plugins, tmp_path):
    with_plugins(plugin_module("buggy", register_postprocessors=_register_faulty))
    a, b = made_png(tmp_path), tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(b)
    result = invoke("verify", "--json", str(a), str(b))
    reports = json.loads(result.stdout)
    assert [r["path"] for r in reports] == [str(a), str(b)] and result.exit_code == 1
    assert reports[0]["found"]["recipe"]["model"] == "tinym"
    assert reports[1]["found"]["faulty"] == ("could not check: plugin 'buggy' failed in post-processor 'faulty' "
                                             "(inspect): ZeroDivisionError: division by zero second line "
                                             "(toolkit --debug shows where)")


# -- 9. tampered recipes ------------------------------------------------------------------------


def _recipe(png: Path) -> dict:
    return json.loads(Image.open(png).text[RECIPE_KEY])


TAMPERED = {
    "index out of range": lambda r: json.dumps({**r, "index": 99}),
    "negative index": lambda r: json.dumps({**r, "index": -1}),
    "index of the wrong type": lambda r: json.dumps({**r, "index": "0"}),
    "request a string": lambda r: json.dumps({**r, "request": "x"}),
    "request missing": lambda r: json.dumps({k: v for k, v in r.items() if k != "request"}),
    "sha256 missing": lambda r: json.dumps({**r, "model": {"name": "tinym", "generator": "tiny"}}),
    "model a string": lambda r: json.dumps({**r, "model": "tinym"}),
    "a JSON list": lambda r: "[1, 2]",
    "100k-deep JSON": lambda r: "[" * 100_000 + "]" * 100_000,
    "a file name as sketch": lambda r: json.dumps({**r, "request": {**r["request"], "sketch": "/etc/hostname"}}),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
def test_tampered_recipes_fail_in_one_line_everywhere(tiny_model, tmp_path, tamper):
    png = made_png(tmp_path / "made")
    bad = with_recipe(png, tmp_path / "bad.png", TAMPERED[tamper](_recipe(png)))
    for args in (["generate", "--replay", str(bad), "--out", str(tmp_path / "replayed")], ["info", str(bad)],
                 ["post", str(bad), "--post", "invert", "--out", str(tmp_path / "post")]):
        assert_one_line_error(invoke(*args), 1, "recipe")
    verified = invoke("verify", "--json", str(bad))
    assert verified.exit_code == 2 and json.loads(verified.stdout)[0]["found"]["recipe"]["state"] == "invalid"
    assert not (tmp_path / "replayed").exists() and not (tmp_path / "post").exists()


# -- 10. every image mode -----------------------------------------------------------------------


@pytest.fixture
def odd_images(tmp_path) -> dict[str, Path]:
    """A CMYK JPEG (white), a float TIFF at 0.8 and a 16-bit PNG at 30000, all 16x16."""
    files = {"cmyk": tmp_path / "cmyk.jpg", "float": tmp_path / "float.tif", "16bit": tmp_path / "g16.png"}
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(files["cmyk"])
    Image.fromarray(np.full((16, 16), 0.8, np.float32), "F").save(files["float"])
    Image.fromarray(np.full((16, 16), 30000, np.uint16)).save(files["16bit"])
    return files


def test_every_mode_is_converted_by_the_one_reader(odd_images):
    expected = {"cmyk": 255, "float": 204, "16bit": 117}  # 0.8 * 255; 30000 / 257
    for kind, path in odd_images.items():
        image = open_image(path)
        assert image.mode in ("L", "RGB") and abs(int(np.asarray(image.convert("L"))[0, 0]) - expected[kind]) <= 1, kind
    request = parse_request(init_image=str(odd_images["cmyk"]), mask=str(odd_images["float"]), sketch=str(odd_images["16bit"]))
    assert all(value.startswith("data:image/png;base64,") for value in (request.init_image, request.mask, request.sketch))


def test_odd_modes_as_sketch_and_in_post(tiny_model, odd_images, tmp_path):
    for kind, path in odd_images.items():
        result = invoke("generate", "--model", "tinym", "--sketch", str(path), "--out", str(tmp_path / kind))
        assert result.exit_code == 0 and result.exception is None, (kind, result.output)
        posted = invoke("post", str(path), "--post", "invert", "--out", str(tmp_path / "post"))
        assert posted.exit_code == 0, posted.output
        inverted = np.asarray(Image.open(posted.stdout.split()[0]).convert("L"))[0, 0]
        assert abs(int(inverted) - {"cmyk": 0, "float": 51, "16bit": 138}[kind]) <= 1, kind


def test_imagefolder_reads_16bit_and_float_images(registry, odd_images):
    from toolkit.components import build_dataset

    data = build_dataset(registry, "imagefolder", size=16, options={"root": str(odd_images["cmyk"].parent)})
    values = {Path(f).suffix: float(data[i]["image"].mean()) for i, f in enumerate(data.files)}
    assert values[".tif"] == pytest.approx(204 / 127.5 - 1, abs=0.02)
    assert values[".png"] == pytest.approx(117 / 127.5 - 1, abs=0.02)
    assert values[".jpg"] == pytest.approx(1.0, abs=0.02)


# -- 11. --replay -------------------------------------------------------------------------------


def test_replay_refuses_flags_it_would_ignore(tiny_model, tmp_path):
    png = made_png(tmp_path)
    result = invoke("generate", "--replay", str(png), "--class", "3", "-n", "2", "--out", str(tmp_path / "again"))
    assert_one_line_error(result, 1, "--class, --n cannot change it")
    assert not (tmp_path / "again").exists()


def test_replay_runs_the_post_chain_a_post_output_records(tiny_model, tmp_path):
    png = made_png(tmp_path / "made")
    posted = invoke("post", str(png), "--post", "invert", "--out", str(tmp_path / "post"))
    output = Path(posted.stdout.split()[0])
    assert json.loads(invoke("info", str(output)).stdout)["post_runs"] == [[{"name": "invert", "options": {}}]]
    replayed = invoke("generate", "--replay", str(output), "--out", str(tmp_path / "again"))
    assert replayed.exit_code == 0 and "identical to the original: yes" in replayed.stderr, replayed.output


def test_replay_says_why_it_cannot_redo_an_unrecorded_post(tiny_model, tmp_path):
    png = made_png(tmp_path / "made")
    recipe = _recipe(png)  # what `toolkit post` wrote before recipes recorded post_runs
    recipe |= {"postprocessors": [{"name": "invert", "stage": "edit", "options": {}, "record": {}}],
               "chain": recipe["chain"] + ["invert [edit]"]}
    old = with_recipe(png, tmp_path / "old-post.png", json.dumps(recipe))
    assert_one_line_error(invoke("generate", "--replay", str(old), "--out", str(tmp_path / "again")), 1,
                          "changed by `toolkit post` (invert)")


def test_a_replay_that_differs_exits_non_zero(tiny_model, tmp_path):
    png = made_png(tmp_path / "made")
    image = Image.open(png)
    image.load()
    changed = image.copy()
    changed.putpixel((0, 0), (1, 2, 3))
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, image.text[RECIPE_KEY], zip=True)
    changed.save(tmp_path / "changed.png", pnginfo=info)
    result = invoke("generate", "--replay", str(tmp_path / "changed.png"), "--out", str(tmp_path / "again"))
    assert "identical to the original: NO" in result.stderr
    assert result.exit_code == 1 and "Error: the replay" in result.stderr and "differs" in result.stderr
    assert result.stdout.strip().endswith(".png")  # the replay is still written, for comparison


# -- 12. TOOLKIT_MAX_IMAGE_PIXELS ---------------------------------------------------------------


def test_a_bad_pixel_limit_fails_only_where_it_is_used(tiny_model, tmp_path, monkeypatch):
    env = {**os.environ, "TOOLKIT_MAX_IMAGE_PIXELS": "abc", "TOOLKIT_PLUGINS": "models,ddpm"}
    listed = subprocess.run([sys.executable, "-m", "toolkit", "models", "--json"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert listed.returncode == 0 and "ddpm-digits" in listed.stdout, listed.stderr
    Image.new("RGB", (16, 16)).save(tmp_path / "sketch.png")
    for value in ("abc", "-1", "0", "1.5"):
        monkeypatch.setenv("TOOLKIT_MAX_IMAGE_PIXELS", value)
        result = invoke("generate", "--model", "tinym", "--sketch", str(tmp_path / "sketch.png"), "--out", str(tmp_path / "o"))
        assert_one_line_error(result, 1, f"TOOLKIT_MAX_IMAGE_PIXELS='{value}' is not a positive whole number")
    monkeypatch.setenv("TOOLKIT_MAX_IMAGE_PIXELS", "4e7")
    assert invoke("generate", "--model", "tinym", "--sketch", str(tmp_path / "sketch.png"), "--out",
                  str(tmp_path / "o")).exit_code == 0
    monkeypatch.setenv("TOOLKIT_MAX_IMAGE_PIXELS", "100")
    assert_one_line_error(invoke("post", str(tmp_path / "sketch.png"), "--post", "invert", "--out", str(tmp_path / "p")),
                          1, "over the limit")


# -- 13. malformed model folders and absurd config values ---------------------------------------


def test_a_malformed_model_folder_is_listed_as_broken(tiny_model, home):
    for name, config in {"sizes-a-number": '{"generator": "tiny", "sizes": 5}', "a-list": "[1, 2]",
                         "one-side": '{"generator": "tiny", "sizes": [[16]]}', "not-json": "{",
                         "accepts-a-string": '{"generator": "tiny", "accepts": "class", "sizes": [[16, 16]]}'}.items():
        (home / "models" / name).mkdir()
        (home / "models" / name / "config.json").write_text(config)
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tinym"]["error"] is None and rows["tinym"]["sizes"] == ["16x16"]
    for name in ("sizes-a-number", "a-list", "one-side", "not-json", "accepts-a-string"):
        assert rows[name]["error"] and rows[name]["generator"] == "?", name
    table = invoke("models")
    assert table.exit_code == 0 and "broken" in table.stdout and "tinym" in table.stdout


def test_absurd_config_values_are_refused_by_the_bounds(registry, home, tmp_path):
    from toolkit_plugins.generators.gan import GANConfig

    with pytest.raises(ValueError, match="less than or equal to 4096"):
        GANConfig(latent_dim=10_000_000)
    folder = shutil.copytree(registry.models["gan-digits"].obj, home / "models" / "gan-huge")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "latent_dim": 5000}))
    result = invoke("generate", "--model", "gan-huge", "--class", "1", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 1, "has values its generator refuses (latent_dim: Input should be less than or equal to 4096)")


# -- 14. --out checked before the work ----------------------------------------------------------


def test_a_bad_out_is_refused_before_any_work(tiny_model, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    for out, message in ((tmp_path / "afile" / "sub", "is a file, so nothing can be written under it"),
                         (tmp_path / "afile", "is a file, not a folder"), (Path("/proc/toolkit-out"), "cannot write in /proc")):
        for command in (["generate", "--model", "tinym"], ["post", str(tmp_path / "afile"), "--post", "invert"]):
            result = invoke(*command, "--out", str(out))
            assert_one_line_error(result, 2, message)
    assert (tmp_path / "afile").read_text() == "keep me"
    result = invoke("dataset", "preview", "tiny", "--out", str(tmp_path / "afile" / "p.png"))
    assert_one_line_error(result, 2, "is a file, so nothing can be written under it")


# -- 15. --device -------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "message"), [
    ("foo", "device 'foo' is not a torch device; this machine has: cpu"),
    pytest.param("cuda", "torch has no usable cuda device here", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has a GPU")),
    ("cpu:x", "device 'cpu:x' is not a torch device"),
])
def test_a_device_this_machine_lacks_is_one_line(tiny_model, tmp_path, device, message):
    result = invoke("generate", "--model", "tinym", "--device", device, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 2, message)
    from toolkit import generate

    with pytest.raises(InvalidRequestError, match="not a torch device|no usable"):
        generate(model="tinym", device=device)


# -- 16. the smaller cases ----------------------------------------------------------------------


def test_a_half_written_override_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'train.betas=\[0.5,': the value is not valid YAML"):
        apply_override({}, "train.betas=[0.5,")
    result = invoke("train", str(ROOT / "configs" / "ddpm-digits.yaml"), "train.betas=[0.5,")
    assert_one_line_error(result, 1, "not valid YAML")


def test_a_checkpoint_manifest_without_files_is_refused(tmp_path):
    for manifest in ('{"step": 1}', '{"files": {}}', "[]", '{"step": 1, "files": {"../../etc/hostname": "0"}}'):
        (tmp_path / "manifest.json").write_text(manifest)
        with pytest.raises(CheckpointError):
            verify_checkpoint(tmp_path)


def test_eval_prompts_must_be_a_text_file(registry, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    result = invoke("eval", "--model", "ldm-shapes", "--prompts", str(tmp_path / "x.png"), "--out", str(tmp_path / "r.json"))
    assert_one_line_error(result, 2, "is not a text file")


@pytest.mark.parametrize(("options", "message"), [
    (["max_objects=1e999"], "max_objects must be a number, not '1e999'"),
    (["seed=abc"], "seed cannot be a dataset option"),
    (["length=1", "length=2"], "option 'length' is given twice"),
])
def test_dataset_preview_options_are_one_line(registry, tmp_path, options, message):
    flags = [arg for option in options for arg in ("-o", option)]
    result = invoke("dataset", "preview", "shapes", *flags, "--out", str(tmp_path / "p.png"))
    assert_one_line_error(result, 1, message)
    assert not (tmp_path / "p.png").exists()


def test_interpolate_refuses_a_seed_past_the_range(registry, tmp_path):
    call_each(*_installed_commands(), "register_commands", cli=cli)
    result = invoke("interpolate", "--model", "gan-digits", "--from-seed", str(10**23), "--out", str(tmp_path / "i.png"))
    assert_one_line_error(result, 2, "--from-seed")


def _installed_commands():
    from toolkit.host.loading import get_plugin_manager, get_registry

    return get_plugin_manager(), get_registry()


def test_a_diffusers_folder_without_its_unet_config(registry, tmp_path):
    (tmp_path / "sd" / "unet").mkdir(parents=True)
    (tmp_path / "sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    result = invoke("generate", "--model", str(tmp_path / "sd"), "--prompt", "a cat", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 1, "unet/config.json")


def test_an_allow_list_naming_no_installed_plugin_warns(home, monkeypatch):
    monkeypatch.setenv("TOOLKIT_PLUGINS", "nonexistent,digits")
    with pytest.warns(ToolkitWarning, match="TOOLKIT_PLUGINS names nonexistent, which no installed plugin is called"):
        _, registry = plugins_with_extra([])
    assert set(registry.plugins) == {"digits"}


@pytest.mark.parametrize(("post", "message"), [
    ("upscale-lanczos:scale=true", "scale takes a number or a name, not true"),
    ("upscale-lanczos:scale=2,scale=4", "option 'scale' is given twice"),
])
def test_post_options_are_not_coerced_or_overwritten(tiny_model, tmp_path, post, message):
    result = invoke("generate", "--model", "tinym", "--post", post, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, 1, message)


def test_verify_exit_status_says_what_it_found(tiny_model, with_plugins, tmp_path):
    class Broken(PostProcessor):
        """Finds every signature invalid."""

        name = "broken-signature"
        stage = Stage.SIGN

        def process(self, images, options, ctx):
            return PostResult(images)

        @classmethod
        def inspect(cls, path, image, ctx):
            return {"state": "invalid", "problems": ["signature does not validate"]}

    png = made_png(tmp_path)
    assert invoke("verify", str(png)).exit_code == 0
    with_plugins(plugin_module("signer", register_postprocessors=lambda register: register(Broken)))
    result = invoke("verify", str(png))
    assert result.exit_code == 2 and "signature does not validate" in result.stdout
    assert result.stderr.strip() == f"Error: {png}: invalid: broken-signature"
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert invoke("verify", str(tmp_path / "corrupt.png")).exit_code == 1


def test_a_recipe_chunk_over_pillows_limit_is_named(tiny_model, tmp_path):
    png = made_png(tmp_path / "made")
    big = with_recipe(png, tmp_path / "big.png", json.dumps({**_recipe(png), "pad": os.urandom(700_000).hex()}))
    line = assert_one_line_error(invoke("info", str(big)), 1, "metadata (text) chunk over the 1 MB Pillow reads")
    assert "is it a PNG" not in line
