"""The assertions the contract checks share: each raises ``AssertionError`` with a message
that names the component and what it broke, so a failing contract reads without a debugger."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from toolkit.errors import ToolkitError

# An option or split no component has: what the contracts pass to see it refused.
UNKNOWN = "no_such_option_xyz"


def expect(condition: bool, message: str) -> None:
    """``assert`` that survives ``python -O``: these checks are the point of the call."""
    if not condition:
        raise AssertionError(message)


def expect_tensor(value: Any, what: str, shape: tuple[int | None, ...], *, low: float | None = None,
                  high: float | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` is a finite tensor of ``shape`` (None: any size on that axis) within
    ``[low, high]``; of ``dtype`` if given, else floating point."""
    expect(isinstance(value, torch.Tensor), f"{what}: expected a tensor, got {type(value).__name__}")
    expect(value.ndim == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape)),
           f"{what}: expected shape {_shape(shape)}, got {tuple(value.shape)}")
    if dtype is not None:
        expect(value.dtype == dtype, f"{what}: expected dtype {dtype}, got {value.dtype}")
        return value
    expect(value.is_floating_point(), f"{what}: expected a float tensor, got {value.dtype}")
    expect(bool(torch.isfinite(value).all()), f"{what}: holds NaN or infinite values")
    if low is not None:
        expect(float(value.min()) >= low, f"{what}: values reach {float(value.min()):.4g}, below {low}")
    if high is not None:
        expect(float(value.max()) <= high, f"{what}: values reach {float(value.max()):.4g}, above {high}")
    return value


def expect_json(value: Any, what: str) -> None:
    """``value`` survives ``json.dumps`` as strict JSON (no NaN): what a recipe can hold."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{what} is not JSON-serialisable ({error}): {value!r:.300}") from None


def expect_toolkit_error(call: Callable[[], Any], what: str, *, mentions: str | None = None) -> ToolkitError:
    """``call()`` raises a ``ToolkitError`` (one line for the user, no traceback) whose
    message names ``mentions``; returns the error."""
    try:
        call()
    except ToolkitError as error:
        expect(mentions is None or mentions in str(error),
               f"{what}: the ToolkitError does not name '{mentions}': {error}")
        return error
    except Exception as error:  # noqa: BLE001 - any other exception is the contract breach reported here
        raise AssertionError(f"{what}: raised {type(error).__name__} ({error}) instead of a "
                             "toolkit.errors.ToolkitError the CLI can show in one line") from error
    raise AssertionError(f"{what}: was accepted; expected a toolkit.errors.ToolkitError")


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
