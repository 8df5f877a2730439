"""The post-processor contract (``toolkit.components.PostProcessor``).

Run ``check_postprocessor`` where ``cls.unavailable()`` is None; a post-processor that
cannot run here can still pass ``check_postprocessor_declaration`` and
``check_postprocessor_refuses_unknown_options``.
"""

from __future__ import annotations

import inspect as pyinspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from toolkit.components import InspectContext, PostContext, PostProcessor, PostResult, Stage
from toolkit.errors import ToolkitError
from toolkit.generation.pipeline import Plan, plan
from toolkit.generation.request import GenerationRequest
from toolkit.host.registry import Registry

from .expect import UNKNOWN, expect, expect_json, expect_tensor, expect_toolkit_error


def check_postprocessor(cls: type[PostProcessor], registry: Registry, *, options: dict[str, Any] | None = None,
                        inspect_options: dict[str, Any] | None = None, batch: int = 2, height: int = 64,
                        width: int = 80, model: str | None = None) -> None:
    """Every check below. ``options`` / ``inspect_options``: what ``cls.Options`` /
    ``cls.InspectOptions`` need when their defaults do not validate; ``model``: a model to
    plan a request with (default: the first one ``registry`` has)."""
    check_postprocessor_declaration(cls)
    check_postprocessor_process(cls, registry, options=options, batch=batch, height=height, width=width)
    check_postprocessor_refuses_unknown_options(cls, registry, model=model)
    check_postprocessor_plans(cls, registry, options=options, model=model)
    check_postprocessor_inspect(cls, registry, inspect_options=inspect_options)


def check_postprocessor_declaration(cls: type[PostProcessor]) -> None:
    """A name, a ``Stage``, pydantic ``Options`` and ``InspectOptions`` that refuse unknown
    keys (a typo must be an error, not silently ignored), and ``unavailable()`` None or a reason."""
    expect(pyinspect.isclass(cls) and issubclass(cls, PostProcessor), f"{cls!r} is not a PostProcessor subclass")
    what = f"post-processor '{getattr(cls, 'name', cls.__name__)}'"
    expect(isinstance(getattr(cls, "name", None), str) and bool(cls.name), f"{what}: no 'name'")
    stage = getattr(cls, "stage", None)
    expect(isinstance(stage, Stage), f"{what}: stage {stage!r} is not a toolkit.components.Stage")
    for attribute in ("Options", "InspectOptions"):
        model = getattr(cls, attribute)
        expect(pyinspect.isclass(model) and issubclass(model, BaseModel), f"{what}: {attribute} is not a pydantic model")
        try:
            model.model_validate({UNKNOWN: 1})
        except ValidationError as error:
            expect(any(e["type"] == "extra_forbidden" for e in error.errors()),
                   f"{what}: {attribute} does not refuse an unknown key; set model_config = ConfigDict(extra='forbid')")
        else:
            raise AssertionError(f"{what}: {attribute} accepts an unknown key; set model_config = ConfigDict(extra='forbid')")
    reason = cls.unavailable()
    expect(reason is None or (isinstance(reason, str) and bool(reason)),
           f"{what}: unavailable() must return None or a non-empty reason, got {reason!r}")


def sample_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``(batch, 3, height, width)`` in [-1, 1], every image different: a smooth colour
    gradient with a little noise, closer to a generated picture than static is."""
    y = torch.linspace(-1, 1, height)[:, None].expand(height, width)
    x = torch.linspace(-1, 1, width)[None, :].expand(height, width)
    base = torch.stack([y, x, -(x + y) / 2])  # (3, H, W)
    noise = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    shift = torch.linspace(-0.3, 0.3, batch).reshape(batch, 1, 1, 1)
    return (0.7 * base + 0.15 * noise + shift).clamp(-1, 1)


def check_postprocessor_process(cls: type[PostProcessor], registry: Registry, *, options: dict[str, Any] | None = None,
                                batch: int = 2, height: int = 64, width: int = 80) -> PostResult:
    """``process`` on a ``(batch, 3, height, width)`` batch in [-1, 1] returns a ``PostResult``
    whose images are ``(batch, 3, H', W')`` floats in [-1, 1] (H', W' may differ only for
    the upscale stage) and whose record is JSON for the recipe. Returns the result."""
    what = f"post-processor '{cls.name}'"
    validated = _options(cls, options)
    request = GenerationRequest(n=batch, height=height, width=width)
    ctx = PostContext(request=request, seed=0, model_name="contract-test", model_sha256="0" * 64, registry=registry)
    images = sample_images(batch, height, width)
    result = cls().process(images, validated, ctx)
    expect(isinstance(result, PostResult), f"{what}: process returned {type(result).__name__}, not a PostResult")
    size = (None, None) if cls.stage == Stage.UPSCALE else (height, width)
    out = expect_tensor(result.images, f"{what}: PostResult.images", (batch, 3, *size), low=-1, high=1)
    expect(out.shape[2] > 0 and out.shape[3] > 0, f"{what}: returned empty images {tuple(out.shape)}")
    expect(isinstance(result.record, dict), f"{what}: PostResult.record is {type(result.record).__name__}, not a dict")
    expect_json(result.record, f"{what}: PostResult.record")
    return result


def check_postprocessor_refuses_unknown_options(cls: type[PostProcessor], registry: Registry, *,
                                                model: str | None = None) -> None:
    """A request naming the post-processor with an unknown option is refused while it is
    planned, before any work, with a ``ToolkitError`` that names the option."""
    what = f"post-processor '{cls.name}'"
    entry = registry.postprocessors.get(cls.name)
    expect(entry is not None and entry.obj is cls, f"{what} is not registered under its name in this registry")
    request = GenerationRequest(model=model or _a_model(registry), post=[{"name": cls.name, "options": {UNKNOWN: 1}}])
    expect_toolkit_error(lambda: plan(request, registry), f"{what} with an unknown option", mentions=UNKNOWN)


def check_postprocessor_plans(cls: type[PostProcessor], registry: Registry, *, options: dict[str, Any] | None = None,
                              model: str | None = None) -> Plan | ToolkitError:
    """Planning a request that names it (which calls its ``check_request(request, options,
    registry)``) either puts it in the plan or refuses with a ``ToolkitError`` (a blocked
    prompt, a missing key, images too small for it): never another exception. Returns the
    plan or the error."""
    what = f"post-processor '{cls.name}'"
    request = GenerationRequest(model=model or _a_model(registry), post=[{"name": cls.name, "options": options or {}}])
    try:
        planned = plan(request, registry)
    except ToolkitError as error:
        return error
    except Exception as error:  # noqa: BLE001 - any other exception is the contract breach reported here
        raise AssertionError(f"{what}: planning a request with it raised {type(error).__name__} ({error}) instead "
                             "of refusing with a toolkit.errors.ToolkitError") from error
    expect([step.name for step in planned.post] == [cls.name], f"{what}: missing from the plan's chain {planned.chain}")
    return planned


def check_postprocessor_inspect(cls: type[PostProcessor], registry: Registry, *,
                                inspect_options: dict[str, Any] | None = None) -> Any:
    """``inspect`` (``toolkit verify``) on a plain PNG that no post-processor touched says
    nothing (None), or a line (str), or a JSON-able dict. Returns what it said."""
    what = f"post-processor '{cls.name}'"
    try:
        options = cls.InspectOptions.model_validate(inspect_options or {})
    except ValidationError as error:
        raise AssertionError(f"{what}: InspectOptions do not validate from {inspect_options or {}}; pass "
                             f"inspect_options= ({error})") from None
    pixels = ((sample_images(1, 64, 80)[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()  # (H, W, 3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plain.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
        with Image.open(path) as image:
            image.load()
            finding = cls.inspect(path, image, InspectContext(registry, options))
    expect(finding is None or isinstance(finding, (str, dict)),
           f"{what}: inspect returned {type(finding).__name__}; expected None, a str or a dict")
    expect_json(finding, f"{what}: what inspect found")
    return finding


def _a_model(registry: Registry) -> str:
    expect(bool(registry.models), "no model is registered to plan a request with; pass model=")
    return min(registry.models)


def _options(cls: type[PostProcessor], options: dict[str, Any] | None) -> BaseModel:
    try:
        return cls.Options.model_validate(options or {})
    except ValidationError as error:
        raise AssertionError(f"post-processor '{cls.name}': its Options do not validate from {options or {}}; "
                             f"pass options= ({error})") from None
