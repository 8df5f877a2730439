"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file where a
finished one (or an earlier output) was: every file the toolkit writes goes through here.

A file is written under a temporary name in its folder, then given its name in one step:
``os.replace`` where it may replace a file, a hard link where it must not (the link fails
if the name is taken, even by another process a moment earlier, so two runs writing into
one folder never overwrite each other's files). Also what a generated image's file name
says it shows (``file_subject``)."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from toolkit.errors import OutputExistsError


def ordinary_permissions() -> int:
    """What ``open()`` would give a new file: 0o666 less the umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", *, permissions: int | None = None,
                replace: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` (a unique name in the same folder, so the final
    rename is atomic); when the block ends without an error it becomes ``path``. On any
    error the temporary file is removed and ``path`` is left as it was.

    permissions: the finished file's mode; default that of an ordinary new file.
    replace: False raises ``FileExistsError`` rather than replace an existing ``path``
    (decided when the file is finished, atomically).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, ordinary_permissions() if permissions is None else permissions)
        if replace:
            os.replace(tmp, path)
        else:
            claim(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str, *, permissions: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through ``atomic_file``."""
    with atomic_file(path, "w" if isinstance(data, str) else "wb", permissions=permissions) as f:
        f.write(data)
    return Path(path)


def refuse_existing(path: str | Path, *, overwrite: bool = False) -> None:
    """Raise ``OutputExistsError`` if ``path`` (a file the user named with ``--out``) exists
    and ``overwrite`` is not set: called before the work, so nothing is computed for nothing."""
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} already exists; pick another --out, or pass --overwrite to replace it")


def claim(tmp: str | Path, path: Path) -> None:
    """Give the finished file ``tmp`` the name ``path`` unless something already has it
    (``FileExistsError``), in one step: a hard link, which fails on a taken name. Where the
    filesystem has no hard links, the name is claimed by an exclusive create and filled by
    a rename. The caller removes ``tmp``."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network filesystems)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.replace(tmp, path)


def write_new(folder: str | Path, stem: str, suffix: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a new file in ``folder`` under the first free name of ``STEM.SUFFIX``,
    ``STEM-1.SUFFIX``, ``STEM-2.SUFFIX``...; returns its path. ``write`` fills the file once,
    under a temporary name; each name is then claimed atomically (``claim``), so
    processes writing the same names into one folder at once each get their own, and no
    existing file is ever replaced."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, ordinary_permissions())
        k = 0
        while True:
            path = folder / (f"{stem}{suffix}" if k == 0 else f"{stem}-{k}{suffix}")
            k += 1
            if os.path.lexists(path):  # a shortcut only: claim() is what decides
                continue
            try:
                claim(tmp, path)
                return path
            except FileExistsError:
                continue
    finally:
        Path(tmp).unlink(missing_ok=True)


# -- names ---------------------------------------------------------------------------------


SUBJECT_CHARS = 48  # a file name says what is in it, not the whole prompt


def file_subject(request: Any, model_config: dict[str, Any]) -> str:
    """What a file name says the image shows (``request``: a GenerationRequest): the prompt as a slug (its first
    ``SUBJECT_CHARS`` characters, whole words), or the class (by the name the model's
    dataset gave it), or nothing."""
    if request.prompt:
        words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKD", request.prompt).encode("ascii", "ignore").decode().lower())
        slug = ""
        for word in words:
            if len(slug) + len(word) + 1 > SUBJECT_CHARS:
                break
            slug = f"{slug}-{word}" if slug else word
        return (slug or words[0][:SUBJECT_CHARS]) if words else ""
    if request.class_label is not None:
        names = (model_config.get("dataset") or {}).get("class_names") or []
        name = names[request.class_label] if request.class_label < len(names) else str(request.class_label)
        return f"class-{re.sub(r'[^a-z0-9]+', '-', str(name).lower()).strip('-') or request.class_label}"
    return ""
