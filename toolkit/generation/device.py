"""Which torch device a run may use: checked before any work, in one line when it cannot be.

``--device`` (generate, eval, app, ...) and the Python API's ``device=`` both come here, so
``--device cuda`` on a machine without a GPU, or a name torch does not know, is refused
before a model loads, saying which devices this machine has. Where neither is given,
``resolve_device`` takes ``device`` from $TOOLKIT_HOME/config.toml, else the CPU.
"""

from __future__ import annotations

import torch

from toolkit.errors import InvalidRequestError, UserConfigError
from toolkit.generation.user_config import setting


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_device(name: str) -> str:
    """``name`` when torch can run on it here; otherwise an ``InvalidRequestError`` naming
    the devices this machine has. Backends other than CPU, CUDA and MPS (xpu, ...) are
    accepted when torch says they are available."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidRequestError(f"device '{name}' is not a torch device; this machine has: "
                                  f"{', '.join(available_devices())}") from None
    if device.type == "cpu":
        return name
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.mps, torch.xpu
    if device.type == "mps":
        backend = torch.backends.mps
    is_available = getattr(backend, "is_available", None)
    if is_available is None or not is_available():
        raise InvalidRequestError(f"device '{name}': torch has no usable {device.type} device here; this machine has: "
                                  f"{', '.join(available_devices())}")
    count = getattr(backend, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise InvalidRequestError(f"device '{name}': there is no {device.type} device {device.index}; "
                                  f"this machine has: {', '.join(available_devices())}")
    return name


def resolve_device(given: str | None = None, *, flag: str = "--device") -> str:
    """The device to run on: ``given`` (``flag`` names it in errors), else ``device`` in
    config.toml, else "cpu"; checked by ``check_device``, and a configured device this
    machine lacks is a ``UserConfigError`` naming the file."""
    chosen = setting("device", given, flag=flag, default="cpu")
    if chosen.source != "config file":
        return check_device(chosen.value)
    try:
        return check_device(chosen.value)
    except InvalidRequestError as error:
        raise UserConfigError(f"{chosen.where} sets {error}; change it there, or pass {flag}") from None
