"""The user's settings file, ``$TOOLKIT_HOME/config.toml``: the model, output folder, device
and CPU thread count to use when a command (or a Python API call) does not say::

    model = "my-model"           # instead of the installed model marked default
    out = "~/Pictures/toolkit"   # `toolkit generate`'s and `toolkit app`'s output folder
    device = "cuda"              # the torch device
    threads = 4                  # torch's CPU threads

Each setting comes from the first that gives it: the command line's flag (or the API's
argument), an environment variable (threads only: TOOLKIT_THREADS, then OMP_NUM_THREADS),
this file, the built-in default. ``toolkit config`` shows which one did. No file means the
built-in defaults; a file that cannot be read, that is not TOML, or that holds an unknown
setting or a value of the wrong type is a ``UserConfigError`` naming the file, the line and
what to write instead. The file is read each time a setting is asked for (a few hundred
bytes), so a long-running app sees an edit on its next request.

The standard library and platformdirs only: ``toolkit config`` must start without torch.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from toolkit.errors import UserConfigError
from toolkit.generation.threads import ENV as THREADS_ENV
from toolkit.generation.threads import MAX_THREADS

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is new in 3.11; tomli is the same parser under its old name
    import tomli as tomllib

FILE_NAME = "config.toml"


def toolkit_home() -> Path:
    """Where user data lives: $TOOLKIT_HOME, default the platform's user cache dir."""
    return Path(os.environ.get("TOOLKIT_HOME") or platformdirs.user_cache_dir("toolkit")).expanduser()


def config_path() -> Path:
    return toolkit_home() / FILE_NAME


@dataclass(frozen=True)
class Key:
    """One setting the file may hold."""

    name: str
    kind: type  # str or int: the TOML value it takes
    example: str  # a value as written in the file, for the example and for error messages
    comment: str  # what it sets, short enough for the example's line
    default: str  # the built-in default, in words
    env: tuple[str, ...] = ()  # environment variables that beat the file, the first first


KEYS = {key.name: key for key in (
    Key("model", str, '"my-model"', "when no --model: a name, or a model folder",
        "the installed model marked default (`toolkit models`)"),
    Key("out", str, '"~/Pictures/toolkit"', "when no --out: generate's and the app's folder",
        "out for generate, $TOOLKIT_HOME/app for the app"),
    Key("device", str, '"cuda"', "when no --device: cpu, cuda, cuda:1, mps", "cpu"),
    Key("threads", int, "4", "when no --threads: CPU threads for torch",
        "the CPUs this process may use, less those other processes keep busy", env=(THREADS_ENV, "OMP_NUM_THREADS")),
)}


def example() -> str:
    """A commented config.toml that sets nothing, every key shown with what it does."""
    lines = [f"# {FILE_NAME}: every line optional; flags and environment variables beat it"]
    width = max(len(f"# {key.name} = {key.example}") for key in KEYS.values()) + 2
    lines += [f"# {key.name} = {key.example}".ljust(width) + f"# {key.comment}" for key in KEYS.values()]
    lines.append("# a relative out is read from the folder you run in; ~ is your home folder")
    return "\n".join(lines)


# -- reading the file ------------------------------------------------------------------------


def read_settings(path: Path | None = None) -> dict[str, Any]:
    """The settings the file holds, each checked against ``KEYS``; ``{}`` when there is no
    file. ``out`` comes back with ``~`` expanded."""
    path = path or config_path()
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise UserConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as error:
        raise UserConfigError(f"cannot read {path} ({error.strerror or error}); fix its permissions or "
                              "remove it") from None
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # its message ends "(at line 3, column 7)"
        raise UserConfigError(f"{path} is not valid TOML: {error}; fix that line (strings need quotes: "
                              "model = \"my-model\"; each setting once)") from None
    for name, value in settings.items():
        key = KEYS.get(name)
        where = _located(path, text, name)
        if key is None:
            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserConfigError(f"{where}: unknown setting '{name}'{hint}; the file may set "
                                  f"{', '.join(KEYS)}, nothing else")
        if key.kind is int:
            # bool is an int to Python; `threads = true` is no count
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_THREADS:
                raise UserConfigError(f"{where}: {name} must be a whole number from 1 to {MAX_THREADS}, e.g. "
                                      f"{name} = {key.example} (got {_shown(value)})")
        elif not isinstance(value, str) or not value.strip():
            raise UserConfigError(f"{where}: {name} must be a non-empty string in quotes, e.g. {name} = "
                                  f"{key.example} (got {_shown(value)})")
    if "out" in settings:
        settings["out"] = str(Path(settings["out"]).expanduser())
    return settings


def _located(path: Path, text: str, name: str) -> str:
    """"PATH, line N" for the line that sets ``name`` (``name = ...`` or a ``[name]`` table),
    or the path alone when no line plainly does (a dotted key, say)."""
    quoted = rf"(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}')"
    pattern = re.compile(rf"^\s*(?:{quoted}\s*=|\[\[?\s*{quoted}\s*[.\]])")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return f"{path}, line {number}"
    return str(path)


def _shown(value: Any) -> str:
    """A TOML value as the user wrote it, in words: 'the string "4"', 'a table'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'the string "{value}"' if value.strip() else "an empty string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"  # dates and times


# -- what applies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A setting's value and where it came from."""

    key: str
    value: Any  # None: the built-in default, chosen where it is used (model, threads)
    source: str  # "flag", "env", "config file" or "default"
    where: str | None  # the flag ("--out"), the variable ("TOOLKIT_THREADS"), the file; None for a default


def setting(name: str, given: Any = None, *, flag: str | None = None, default: Any = None,
            path: Path | None = None) -> Setting:
    """``name``'s value from the first that gives it: ``given`` (a flag or an API argument,
    called ``flag`` in messages), the key's environment variables, the file (``path``, default
    ``config_path()``), ``default``. Environment values come back as the strings they are; the
    reader of each (``threads.choose``) checks them."""
    key = KEYS[name]
    if given is not None:
        return Setting(name, given, "flag", flag or f"--{name}")
    for variable in key.env:
        if os.environ.get(variable, "").strip():
            return Setting(name, os.environ[variable].strip(), "env", variable)
    path = path or config_path()
    settings = read_settings(path)
    if name in settings:
        return Setting(name, settings[name], "config file", str(path))
    return Setting(name, default, "default", None)
