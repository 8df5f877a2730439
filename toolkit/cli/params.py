"""Option types every command shares, checked while the command line is read, before any
work: where an output goes (``OutputPath``, or config.toml's ``output_folder``), which
device runs it (``DEVICE``), on how many CPU threads (``THREADS``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from toolkit.errors import ToolkitError, UserConfigError


def unwritable(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` (an output folder, or an output file with ``folder=False``) cannot be
    written, or None. Nothing is created: the nearest folder that exists is tried with a
    temporary file, removed at once (permission bits alone say nothing to root, or on /proc)."""
    if "\0" in str(path):
        return "the path holds a NUL character"
    try:
        path = path.expanduser()
        if path.exists() and path.is_dir() != folder:
            return f"{path} is {'a file' if folder else 'a folder'}, not {'a folder' if folder else 'a file'}"
        nearest = next(p for p in (path if folder else path.parent, *path.absolute().parents) if p.exists())
    except OSError as error:
        return f"cannot use {path} ({error.strerror or error})"
    if not nearest.is_dir():
        return f"{nearest} is a file, so nothing can be written under it"
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        return f"cannot write in {nearest} ({error.strerror or error})"
    return None


class OutputPath(click.ParamType):
    """A folder (``folder=True``) or file the command will write, refused at once when it
    cannot be: under a file, read-only, or on a filesystem such as /proc."""

    name = "path"

    def __init__(self, *, folder: bool):
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        reason = unwritable(Path(value), folder=self.folder)
        if reason:
            self.fail(reason, param, ctx)
        return str(value)


def output_folder(given: str | None, default: str) -> str:
    """The output folder: ``given`` (--out, already checked by ``OutputPath``), else ``out``
    in config.toml, checked here as --out would be, else ``default``."""
    from toolkit.generation.user_config import setting

    chosen = setting("out", given, default=default)
    if chosen.source == "config file":
        reason = unwritable(Path(chosen.value), folder=True)
        if reason:
            raise UserConfigError(f"{chosen.where} sets out = \"{chosen.value}\", which cannot be used: {reason}; "
                                  "change it there, or pass --out")
    return str(chosen.value)


class DeviceType(click.ParamType):
    """A torch device this machine has (``toolkit.generation.device.check_device``)."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from toolkit.generation.device import check_device

        try:
            return check_device(str(value))
        except ToolkitError as error:
            self.fail(str(error), param, ctx)


DEVICE = DeviceType()


class ThreadsType(click.ParamType):
    """A torch thread count: a whole number from 1 (``toolkit.generation.threads``)."""

    name = "n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from toolkit.generation.threads import parse_threads

        try:
            return parse_threads(value)
        except ToolkitError as error:
            self.fail(str(error), param, ctx)


THREADS = ThreadsType()
