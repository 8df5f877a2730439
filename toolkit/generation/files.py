"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file where a
finished one (or an earlier output) was: every file the toolkit writes goes through here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def ordinary_permissions() -> int:
    """What ``open()`` would give a new file: 0o666 less the umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", *, permissions: int | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` (a unique name in the same folder, so the final
    rename is atomic); when the block ends without an error it replaces ``path``. On any
    error the temporary file is removed and ``path`` is left as it was.

    permissions: the finished file's mode; default that of an ordinary new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, ordinary_permissions() if permissions is None else permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str, *, permissions: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through ``atomic_file``."""
    with atomic_file(path, "w" if isinstance(data, str) else "wb", permissions=permissions) as f:
        f.write(data)
    return Path(path)
