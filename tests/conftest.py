"""Shared fixtures.

* ``home``: a private $TOOLKIT_HOME, so tests never see a user's models.
* ``registry``: the installed plugins plus the tiny test plugin, registered in-process.
* ``plugin_site``: the test plugin packages and the example sepia plugin really installed
  (``pip install --target``) into a temporary folder, for subprocess tests.
* ``run_toolkit``: runs ``python -m toolkit`` in a subprocess with that folder on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SEPIA = ROOT / "plugins" / "packages" / "toolkit-example-sepia"

sys.path.insert(0, str(FIXTURES / "toolkit-tiny"))  # in-process tests import toolkit_tiny directly

import toolkit_tiny  # noqa: E402

from toolkit.host.loading import plugins_with_extra, set_registry  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "toolkit-home"
    (folder / "models").mkdir(parents=True)
    monkeypatch.setenv("TOOLKIT_HOME", str(folder))
    return folder


@pytest.fixture
def registry(home: Path):
    pm, reg = plugins_with_extra([("tiny", toolkit_tiny)])
    set_registry(pm, reg)
    yield reg
    set_registry(None, None)


@pytest.fixture
def tiny_model(home: Path, registry) -> Path:
    """A 16x16 class- and sketch-conditioned model named 'tinym' in the user folder."""
    return toolkit_tiny.make_model(home / "models" / "tinym", default=True)


def pip_install_target(target: Path, *packages: Path) -> Path:
    """Really install plugin packages (entry points and all) into a folder of their own.

    Each package is built from a copy: setuptools writes egg-info into the source folder,
    which would make the in-process copy of toolkit_tiny look installed too."""
    sources = target.parent / f"{target.name}-src"
    packages = tuple(Path(shutil.copytree(p, sources / p.name, ignore=shutil.ignore_patterns("*.egg-info", "build"))) for p in packages)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, packages)],
        check=True, capture_output=True, text=True,
    )
    return target


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny plugin, two broken plugins and the example sepia plugin, installed."""
    names = ("toolkit-tiny", "toolkit-broken-import", "toolkit-broken-register")
    return pip_install_target(tmp_path_factory.mktemp("site"), *(FIXTURES / n for n in names), SEPIA)


@pytest.fixture
def run_toolkit(plugin_site: Path, home: Path):
    def run(*args: str, env: dict[str, str] | None = None, check: bool = False,
            extra_path: Path | None = None) -> subprocess.CompletedProcess:
        path = os.pathsep.join(str(p) for p in (plugin_site, extra_path) if p)
        full_env = {**os.environ, "PYTHONPATH": path, "TOOLKIT_HOME": str(home), **(env or {})}
        result = subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, env=full_env, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"toolkit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run
