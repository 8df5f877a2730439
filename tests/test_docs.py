"""docs/plugins.md and toolkit/hookspecs.py cannot drift apart."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from toolkit import hookspecs

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def hookspec_functions():
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "toolkit_spec")}


def test_there_are_hooks():
    assert {"register_generators", "register_conditioners", "register_samplers", "register_postprocessors",
            "register_datasets", "register_commands", "register_web_controls"} <= set(hookspec_functions())


def test_every_hook_is_documented_with_its_arguments():
    documented = dict(re.findall(r"^### (\w+)\(([^)]*)\)", DOCS, flags=re.MULTILINE))
    for name, fn in hookspec_functions().items():
        assert name in documented, f"hook {name} has no '### {name}(...)' section in docs/plugins.md"
        args = [a.strip() for a in documented[name].split(",") if a.strip()]
        assert args == list(inspect.signature(fn).parameters), f"docs/plugins.md shows {name}({documented[name]})"
    assert set(documented) <= set(hookspec_functions()), "docs/plugins.md documents a hook that does not exist"
