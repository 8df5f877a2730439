"""Every registered post-processor, the tiny test plugin's included, passes the checks of
``toolkit.contracts`` (declaration, ``process`` shapes and range, options refused while
planning, ``check_request`` refusing only with a ToolkitError, ``inspect`` on a plain PNG),
and the checks themselves catch a post-processor that breaks its contract."""

from __future__ import annotations

import pytest
import toolkit_tiny
import torch
from pydantic import BaseModel

from toolkit.components import PostProcessor, PostResult, Stage
from toolkit.contracts import (
    check_postprocessor_declaration,
    check_postprocessor_inspect,
    check_postprocessor_plans,
    check_postprocessor_process,
    check_postprocessor_refuses_unknown_options,
)
from toolkit.generation.pipeline import Plan
from toolkit.host.loading import plugins_with_extra

# What a post-processor needs to run its contract here; the rest run as registered.
SETUP = {
    # Signs with a key and certificate from `toolkit keys create`, so planning gets past its key check.
    "c2pa": {"fixtures": ["signing_keys"], "plans": True},
    # Converts its network's weights on first use; a small input keeps the network's run short.
    "upscale-realesrgan": {"height": 16, "width": 20},
}
# Post-processors whose contract is checked in another file, with where and why. None yet.
TESTED_ELSEWHERE: dict[str, str] = {}


def names() -> list[str]:
    """The post-processors the ``registry`` fixture holds, known at collection time."""
    _, registry = plugins_with_extra([("tiny", toolkit_tiny)])
    return sorted(set(registry.postprocessors) - set(TESTED_ELSEWHERE))


@pytest.fixture
def signing_keys(home):
    from toolkit_plugins.postprocessors.c2pa.keys import create_keys, keys_dir

    return create_keys(keys_dir(), name="contract test signer")


@pytest.fixture(params=names())
def post(request, registry) -> tuple[type[PostProcessor], dict]:
    """(the registered class, its SETUP), with its fixtures set up."""
    setup = SETUP.get(request.param, {})
    for fixture in setup.get("fixtures", []):
        request.getfixturevalue(fixture)
    return registry.get("postprocessors", request.param), setup


def runnable(cls: type[PostProcessor]) -> None:
    reason = cls.unavailable()
    if reason:
        pytest.skip(f"post-processor '{cls.name}' cannot run here: {reason}")


def test_every_registered_postprocessor_is_checked(registry):
    assert set(registry.postprocessors) == set(names()) | set(TESTED_ELSEWHERE)


def test_declaration(post):
    check_postprocessor_declaration(post[0])


def test_process_gives_images_in_range_and_a_json_record(post, registry):
    cls, setup = post
    runnable(cls)
    size = {key: setup[key] for key in ("height", "width") if key in setup}
    check_postprocessor_process(cls, registry, **size)


def test_an_unknown_option_is_refused_while_planning(post, registry):
    check_postprocessor_refuses_unknown_options(post[0], registry)


def test_planning_refuses_only_with_a_toolkit_error(post, registry):
    cls, setup = post
    result = check_postprocessor_plans(cls, registry)
    if setup.get("plans"):  # given what it needs, it must plan
        assert isinstance(result, Plan), result


def test_inspect_of_a_plain_png(post, registry):
    check_postprocessor_inspect(post[0], registry)


# -- the checks catch what they are meant to ------------------------------------------------


class Loose(BaseModel):
    """Options that silently ignore unknown keys (pydantic's default)."""

    strength: float = 1.0


class Overshoot(PostProcessor):
    """Brightens past the image range."""

    name = "overshoot"
    stage = Stage.EDIT

    def process(self, images, options, ctx):
        return PostResult(images * 2, {"gain": 2})


def test_the_checks_catch_broken_postprocessors(registry):
    class Ignoring(Overshoot):
        Options = Loose

    with pytest.raises(AssertionError, match="Options accepts an unknown key"):
        check_postprocessor_declaration(Ignoring)
    with pytest.raises(AssertionError, match=r"values reach -2, below -1"):
        check_postprocessor_process(Overshoot, registry)

    class TensorRecord(Overshoot):
        def process(self, images, options, ctx):
            return PostResult(images, {"gain": torch.tensor(1.0)})

    with pytest.raises(AssertionError, match="record is not JSON-serialisable"):
        check_postprocessor_process(TensorRecord, registry)

    class Halving(Overshoot):
        def process(self, images, options, ctx):
            return PostResult(images[:, :, ::2, ::2], {})

    with pytest.raises(AssertionError, match=r"expected shape \(2, 3, 64, 80\), got \(2, 3, 32, 40\)"):
        check_postprocessor_process(Halving, registry)  # an edit must not change the size; only upscalers may
    with pytest.raises(AssertionError, match="not registered under its name"):
        check_postprocessor_refuses_unknown_options(Overshoot, registry)
