"""$TOOLKIT_HOME/config.toml (toolkit.generation.user_config): a flag beats an environment
variable, which beats the file, which beats the built-in default; `generate`, the Python API
and `toolkit models` honour it; a broken file is one line and exit status 1; `toolkit config`
shows it all; `toolkit models` shows parameters, description, licence and path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import toolkit_tiny
import torch
from helpers import invoke  # tests/ is on sys.path

from toolkit.errors import UserConfigError
from toolkit.generation import pipeline, threads
from toolkit.generation.user_config import config_path, read_settings, setting


@pytest.fixture
def write_config(home: Path):
    """Write $TOOLKIT_HOME/config.toml; returns its path."""
    def write(text: str) -> Path:
        path = home / "config.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def no_thread_env(monkeypatch: pytest.MonkeyPatch):
    """Neither thread variable set, whatever the machine running the tests has; torch's count
    put back afterwards."""
    monkeypatch.delenv("TOOLKIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


@pytest.fixture
def two_models(tiny_model: Path, home: Path) -> Path:
    """'tinym' (marked default, from the ``tiny_model`` fixture) and 'tinyb' beside it."""
    return toolkit_tiny.make_model(home / "models" / "tinyb", seed=1)


# -- precedence --------------------------------------------------------------------------------


def said(name: str, given: object = None, **kwargs) -> tuple:
    """(value, source, where) of ``setting(name, given, ...)``."""
    chosen = setting(name, given, **kwargs)
    return chosen.value, chosen.source, chosen.where


def test_flag_beats_env_beats_file_beats_default(write_config, no_thread_env, monkeypatch):
    path = write_config('model = "gan-digits"\nout = "~/pictures"\ndevice = "cuda"\nthreads = 3\n')
    assert said("threads") == said("threads", path=path) == (3, "config file", str(path))
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert said("threads") == ("4", "env", "OMP_NUM_THREADS")
    monkeypatch.setenv("TOOLKIT_THREADS", "2")
    assert said("threads") == ("2", "env", "TOOLKIT_THREADS")
    assert said("threads", 5) == (5, "flag", "--threads")
    assert said("model") == ("gan-digits", "config file", str(path)) and said("model", "vae-digits")[0] == "vae-digits"
    assert said("out")[0] == str(Path.home() / "pictures")  # ~ expanded
    assert said("device", "cpu", flag="device=") == ("cpu", "flag", "device=")
    path.unlink()
    assert said("device", default="cpu") == ("cpu", "default", None)
    assert said("model") == (None, "default", None) and read_settings() == {}


def test_thread_choice_reads_the_file_after_the_variables(write_config, no_thread_env, monkeypatch):
    path = write_config("threads = 1\n")
    choice = threads.choose()
    assert (choice.threads, choice.source) == (1, str(path)) and torch.get_num_threads() == 1
    monkeypatch.setenv("TOOLKIT_THREADS", "2")
    assert (threads.choose().threads, threads.choose().source) == (2, "TOOLKIT_THREADS")
    assert threads.choose(3).threads == 3


# -- generate, the API and the app's default ------------------------------------------------------


def test_generate_honours_every_setting(two_models, write_config, no_thread_env, tmp_path):
    path = write_config(f'model = "tinyb"\nout = "{tmp_path / "from-config"}"\ndevice = "cpu"\nthreads = 1\n')
    result = invoke("--debug", "generate", "--class", "3", "-n", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "tinyb" and doc["device"] == "cpu" and doc["threads"] == 1
    assert Path(doc["images"][0]["path"]).parent == tmp_path / "from-config"
    assert f"threads: 1 (from {path})" in result.stderr

    flags = invoke("--threads", "2", "generate", "--model", "tinym", "--class", "3", "-n", "1", "--out",
                   str(tmp_path / "from-flag"), "--device", "cpu", "--json")
    assert flags.exit_code == 0, flags.output
    doc = json.loads(flags.stdout)
    assert doc["model"] == "tinym" and doc["threads"] == 2
    assert Path(doc["images"][0]["path"]).parent == tmp_path / "from-flag"


def test_a_configured_device_is_used_and_said_when_missing(two_models, write_config, tmp_path):
    """cuda:99 exists nowhere: the file's device is what generate tried; --device beats it."""
    path = write_config('device = "cuda:99"\n')
    result = invoke("generate", "--class", "3", "-n", "1", "--out", str(tmp_path))
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {path} sets device 'cuda:99'")
    assert "pass --device" in result.stderr and "Traceback" not in result.output
    assert invoke("generate", "--class", "3", "-n", "1", "--out", str(tmp_path), "--device", "cpu").exit_code == 0


def test_without_a_file_the_defaults_stay(two_models, no_thread_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("generate", "--class", "3", "-n", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "tinym" and doc["device"] == "cpu"  # the folder marked default
    assert Path(doc["images"][0]["path"]).parent == Path("out")


def test_the_python_api_honours_the_file(two_models, registry, write_config):
    write_config('model = "tinyb"\n')
    result = pipeline.generate(class_label=1, n=1, seed=0, registry=registry)
    assert result.plan.model.name == "tinyb" and result.plan.request.model == "tinyb"
    assert pipeline.generate(model="tinym", class_label=1, n=1, seed=0, registry=registry).plan.model.name == "tinym"
    write_config('model = "tinyb"\ndevice = "cuda:99"\n')
    with pytest.raises(UserConfigError, match="sets device 'cuda:99'"):
        pipeline.generate(class_label=1, n=1, seed=0, registry=registry)
    assert pipeline.generate(class_label=1, n=1, seed=0, registry=registry, device="cpu").images


def test_a_configured_model_folder_is_recorded_by_path(two_models, registry, write_config, tmp_path):
    """A replay must find the same folder: the recipe names the path, not the folder's name."""
    folder = toolkit_tiny.make_model(tmp_path / "elsewhere" / "mine")
    write_config(f'model = "{folder}"\n')
    assert pipeline.generate(class_label=1, n=1, seed=0, registry=registry).plan.request.model == str(folder)


def test_the_app_form_starts_on_the_configured_model(two_models, registry, write_config):
    from toolkit_apps.form import model_cards

    assert next(iter(model_cards(registry))) == "tinym"
    write_config('model = "tinyb"\n')
    assert next(iter(model_cards(registry))) == "tinyb"


# -- a broken file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "said"), [
    ('model = gan-digits\n', "is not valid TOML: Invalid value (at line 1, column 9)"),
    ('# threads\nthreads = "4"\n',
     'line 2: threads must be a whole number from 1 to 1024, e.g. threads = 4 (got the string "4")'),
    ("threads = true\n", "threads must be a whole number from 1 to 1024, e.g. threads = 4 (got true)"),
    ("device = 3\n", 'line 1: device must be a non-empty string in quotes, e.g. device = "cuda" (got 3)'),
    ('modle = "x"\n', "line 1: unknown setting 'modle' (did you mean 'model'?)"),
    ('[model]\nname = "x"\n', "line 1: model must be a non-empty string in quotes"),
])
@pytest.mark.parametrize("command", [["config"], ["generate", "--class", "3"], ["models"]])
def test_a_broken_file_is_one_line_and_exit_1(two_models, write_config, no_thread_env, tmp_path, text, said, command):
    path = write_config(text)
    result = invoke(*command, "--out", str(tmp_path / "out")) if command[0] == "generate" else invoke(*command)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {path}") and said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_broken_file_in_a_real_process(home, write_config):
    """The installed command, not click's runner: one line on stderr, exit status 1."""
    path = write_config("threads = 0\n")
    env = {**os.environ, "TOOLKIT_HOME": str(home), "TOOLKIT_THREADS": "", "OMP_NUM_THREADS": ""}  # "": not set
    result = subprocess.run([sys.executable, "-m", "toolkit", "config"], capture_output=True, text=True, timeout=300,
                            check=False, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"Error: {path}, line 1: threads must be a whole number from 1 to 1024, "
                                     "e.g. threads = 4 (got 0)")


def test_the_reader_imports_no_torch():
    """`toolkit config` must start fast: the settings module is standard library only."""
    code = "import sys, toolkit.generation.user_config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- toolkit config --------------------------------------------------------------------------------


def test_config_command(write_config, no_thread_env):
    text = invoke("config")
    assert text.exit_code == 0 and f"{config_path()} (not there" in text.stdout
    assert '# model = "my-model"' in text.stdout and "# threads = 4" in text.stdout  # the example
    path = write_config('model = "gan-digits"\n')
    doc = json.loads(invoke("--threads", "2", "config", "--json").stdout)
    assert doc["path"] == str(path) and doc["exists"] is True
    assert doc["settings"]["model"] == {"value": "gan-digits", "source": "config file", "where": str(path),
                                        "default": "the installed model marked default (`toolkit models`)"}
    assert doc["settings"]["threads"]["value"] == 2 and doc["settings"]["threads"]["source"] == "flag"
    assert (doc["settings"]["out"]["value"], doc["settings"]["out"]["source"]) == ("out", "default")
    assert (doc["settings"]["device"]["value"], doc["settings"]["device"]["source"]) == ("cpu", "default")
    assert invoke("config", "--path").stdout.strip() == str(path)
    shown = invoke("config").stdout
    assert "(found)" in shown and "gan-digits" in shown and "config file" in shown


# -- toolkit models --------------------------------------------------------------------------------


def test_models_json_has_parameters_description_licence_and_path(registry):
    from toolkit.generation.store import find_model, load_generator

    rows = {m["name"]: m for m in json.loads(invoke("models", "--json").stdout)}
    for name, row in rows.items():
        assert {"parameters", "description", "license", "path"} <= set(row), name
        if row["source"] == "models":  # shipped: all ours
            assert row["license"] == "Apache-2.0" and row["description"] and row["parameters"] > 0
            assert Path(row["path"]).is_dir()
    generator = load_generator(find_model("gan-digits", registry), registry)
    assert rows["gan-digits"]["parameters"] == sum(p.numel() for p in generator.decoder_module().parameters())
    shown = invoke("models", "gan-digits").stdout
    assert "Apache-2.0" in shown and "Class-conditional GAN" in shown
    assert f"{rows['gan-digits']['parameters']:,}" in shown


def test_models_mark_the_configured_default(two_models, write_config):
    defaults = lambda: [m["name"] for m in json.loads(invoke("models", "--json").stdout) if m["default"]]
    assert defaults() == ["tinym"]
    write_config('model = "gan-digits"\n')
    assert defaults() == ["gan-digits"]
    write_config('model = "nope"\n')
    result = invoke("models", "--json")
    assert result.exit_code == 0 and "sets model = \"nope\": unknown model 'nope'" in result.stderr
    assert not [m for m in json.loads(result.stdout) if m["default"]]
