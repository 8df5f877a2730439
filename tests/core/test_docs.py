"""docs/plugins.md and toolkit/host/hookspecs.py cannot drift apart, and the example plugin the
docs walk through does what they say."""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from toolkit.components import PostProcessor, Stage
from toolkit.host import hookspecs
from toolkit.host.loading import new_plugin_manager
from toolkit.host.registry import KINDS, Registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
SEPIA_PACKAGE = ROOT / "plugins" / "packages" / "toolkit-example-sepia"

if str(SEPIA_PACKAGE) not in sys.path:  # imported from the source tree, not installed
    sys.path.insert(0, str(SEPIA_PACKAGE))

import toolkit_sepia  # noqa: E402


def hookspecs_by_name() -> dict[str, object]:
    """Every function in toolkit.host.hookspecs carrying pluggy's hookspec marker."""
    return {name: fn for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.hookspec.project_name}_spec")}


def documented_hooks() -> dict[str, list[str]]:
    """``### name(arg, ...)`` headings in docs/plugins.md -> their argument names."""
    headings = re.findall(r"^### (\w+)\(([^)]*)\)", DOCS, flags=re.MULTILINE)
    return {name: [a.strip() for a in args.split(",") if a.strip()] for name, args in headings}


def test_hookspecs_are_found():
    """The hooks checked below are every ``@hookspec`` function in hookspecs.py's source,
    exactly the hooks pluggy knows, and include the register hook of every registry kind."""
    tree = ast.parse(inspect.getsource(hookspecs))
    decorated = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                 and any(isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list)}
    known_to_pluggy = {name for name in vars(new_plugin_manager().hook) if not name.startswith("_")}
    assert set(hookspecs_by_name()) == decorated == known_to_pluggy
    assert {f"register_{kind}" for kind in KINDS} <= decorated


def test_every_hook_is_documented():
    documented = documented_hooks()
    for name, fn in hookspecs_by_name().items():
        assert name in documented, f"hook {name} has no '### {name}(...)' section in docs/plugins.md"
        spec_args = list(inspect.signature(fn).parameters)
        assert documented[name] == spec_args, (
            f"docs/plugins.md shows {name}({', '.join(documented[name])}) "
            f"but the spec is {name}({', '.join(spec_args)})"
        )
    stale = set(documented) - set(hookspecs_by_name())
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {sorted(stale)}"


def test_loading_rules_are_documented():
    for term in ("TOOLKIT_PLUGINS", "TOOLKIT_STRICT_PLUGINS", "TOOLKIT_TRACE_PLUGINS", "toolkit plugins --json",
                 "[project.entry-points.toolkit]", "Write your own plugin in 5 minutes"):
        assert term in DOCS, f"docs/plugins.md does not mention {term}"


# -- the example plugin ----------------------------------------------------------------------


def sepia(images: torch.Tensor, **options) -> torch.Tensor:
    """Run the example post-processor: ``(B, 3, H, W)`` in [-1, 1] -> same shape."""
    result = toolkit_sepia.Sepia().process(images, toolkit_sepia.Sepia.Options(**options), None)
    assert result.record == {"strength": toolkit_sepia.Sepia.Options(**options).strength}
    return result.images


def test_sepia_applies_the_sepia_matrix():
    pixel = torch.tensor([0.2, 0.4, 0.6])  # one RGB colour in [0, 1]
    images = (pixel * 2 - 1).reshape(1, 3, 1, 1).expand(2, 3, 4, 5).contiguous()
    expected = torch.tensor([
        0.393 * 0.2 + 0.769 * 0.4 + 0.189 * 0.6,
        0.349 * 0.2 + 0.686 * 0.4 + 0.168 * 0.6,
        0.272 * 0.2 + 0.534 * 0.4 + 0.131 * 0.6,
    ])
    full = sepia(images)  # default strength 1
    assert full.shape == images.shape and full.dtype == images.dtype
    assert torch.allclose((full[:, :, 2, 3] + 1) / 2, expected.expand(2, 3), atol=1e-5)
    half = sepia(images, strength=0.5)
    assert torch.allclose((half[0, :, 0, 0] + 1) / 2, (pixel + expected) / 2, atol=1e-5)
    assert torch.allclose(sepia(images, strength=0.0), images, atol=1e-6)


def test_sepia_keeps_range_and_warms_colours():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = sepia(images, strength=1.0)
    assert out.min() >= -1 and out.max() <= 1
    red, green, blue = out.mean(dim=(0, 2, 3)).tolist()
    assert red > green > blue
    white = sepia(torch.ones(1, 3, 2, 2))
    assert torch.equal(white[:, 0], torch.ones(1, 2, 2))  # clamped, not pushed past 1


def test_sepia_options_refuse_bad_values():
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        toolkit_sepia.Sepia.Options(strength=1.5)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        toolkit_sepia.Sepia.Options(strenght=0.5)


def test_sepia_registers_as_an_edit_postprocessor():
    assert issubclass(toolkit_sepia.Sepia, PostProcessor) and toolkit_sepia.Sepia.stage is Stage.EDIT
    registry = Registry()
    register, staged = registry.stage("postprocessors", "sepia")
    toolkit_sepia.register_postprocessors(register)
    registry.commit("postprocessors", staged)
    assert registry.get("postprocessors", "sepia") is toolkit_sepia.Sepia
