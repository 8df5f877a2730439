"""The plugin host: discovery through entry points, isolation of broken plugins,
duplicate names, and the TOOLKIT_PLUGINS / _STRICT_ / _TRACE_ switches."""

from __future__ import annotations

import json
import sys
import types

import pytest
import toolkit_tiny

from toolkit import hookimpl
from toolkit.errors import PluginError
from toolkit.host.loading import get_registry, plugins_with_extra, set_registry

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "fixtures" / "toolkit-duplicate"))
import toolkit_duplicate  # noqa: E402


def plugins_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_builtins_are_found_through_entry_points():
    set_registry(None, None)
    try:
        registry = get_registry()
        assert {"class", "sketch", "mask", "init_image"} <= set(registry.conditioners)
        assert {"shapes", "digits", "imagefolder"} <= set(registry.datasets)
        assert registry.plugins["conditioners"].package == "toolkit-imagegen"  # an entry point, not an import
    finally:
        set_registry(None, None)


def test_broken_plugins_are_reported_and_isolated(run_toolkit, home):
    toolkit_tiny.make_model(home / "models" / "tinym")
    rows = plugins_json(run_toolkit("plugins", "--json"))
    assert rows["broken-import"]["status"] == "broken"
    assert "ImportError: this plugin needs a library that is not installed" in rows["broken-import"]["error"]
    assert rows["broken-register"]["status"] == "broken" and "bug in plugin registration" in rows["broken-register"]["error"]
    assert rows["broken-register"]["components"] == {}  # what it registered before failing is dropped
    assert rows["tiny"]["status"] == "ok" and rows["tiny"]["components"]["generators"] == ["tiny", "tiny-diffusion"]
    table = run_toolkit("plugins")
    assert "broken" in table.stdout and table.returncode == 0
    # Everything else keeps working with the broken plugins installed.
    generated = run_toolkit("generate", "--model", "tinym", "--seed", "1", "--out", str(home / "out"), check=True)
    assert generated.stdout.strip().endswith(".png")


def test_strict_mode_raises_with_one_line(run_toolkit):
    result = run_toolkit("plugins", env={"TOOLKIT_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert "plugin 'broken-import' failed: ImportError" in result.stderr
    assert "Traceback" not in result.stderr


def test_allow_list_and_trace(run_toolkit):
    result = run_toolkit("plugins", "--json", env={"TOOLKIT_PLUGINS": "tiny,conditioners", "TOOLKIT_TRACE_PLUGINS": "1"})
    assert set(plugins_json(result)) == {"tiny", "conditioners"}
    assert "[toolkit trace] calling register_generators of plugin 'tiny'" in result.stderr
    assert "-> generators: ['tiny', 'tiny-diffusion']" in result.stderr


def test_duplicate_names_are_an_error_naming_both_plugins(home):
    pm, registry = plugins_with_extra([("tiny", toolkit_tiny), ("duplicate", toolkit_duplicate)])
    error = registry.plugins["duplicate"].error
    assert "postprocessor 'invert' is registered by both plugin 'tiny' and plugin 'duplicate'" in error
    assert registry.postprocessors["invert"].plugin == "tiny"


def test_duplicate_in_strict_mode_raises(home, monkeypatch):
    monkeypatch.setenv("TOOLKIT_STRICT_PLUGINS", "1")
    monkeypatch.setenv("TOOLKIT_PLUGINS", "")
    with pytest.raises(PluginError, match="registered by both"):
        plugins_with_extra([("tiny", toolkit_tiny), ("duplicate", toolkit_duplicate)])


def test_hookimpl_matching_no_spec_marks_plugin_broken(home):
    typo = types.ModuleType("typo")

    @hookimpl
    def register_generator(register):  # missing "s": a plugin author's typo
        pass

    typo.register_generator = register_generator
    _, registry = plugins_with_extra([("typo", typo)])
    assert "register_generator" in registry.plugins["typo"].error


def test_registering_a_non_component_is_refused(home):
    bad = types.ModuleType("bad")

    @hookimpl
    def register_generators(register):
        register(object)

    bad.register_generators = register_generators
    _, registry = plugins_with_extra([("bad", bad)])
    assert "expected a subclass of Generator" in registry.plugins["bad"].error


def test_plugin_commands_are_added(run_toolkit):
    assert "tiny-hello" in run_toolkit("--help", check=True).stdout
    assert run_toolkit("tiny-hello", "you", check=True).stdout.strip() == "hello you from tiny"
