"""Shared fixtures.

* ``home``: a private $TOOLKIT_HOME, so tests never see a user's models.
* ``registry``: the installed plugins plus the tiny test plugin, registered in-process.
* ``plugin_site``: the test plugin packages and the example sepia plugin really installed
  (``pip install --target``) into a temporary folder, for subprocess tests.
* ``run_toolkit``: runs ``python -m toolkit`` in a subprocess with that folder on the path.
* ``stages``: tiny trained text-to-image stages (CLIP, autoencoder, denoiser), trained once
  per session for the ldm tests; ``train`` trains one more from a ``model:`` section.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SEPIA = ROOT / "plugins" / "packages" / "toolkit-example-sepia"

sys.path.insert(0, str(FIXTURES / "toolkit-tiny"))  # in-process tests import toolkit_tiny directly

import toolkit_tiny  # noqa: E402
from helpers import TINY_AUTOENCODER, TINY_CLIP, TINY_DENOISER, invoke, pip_install_target, train  # noqa: E402


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
def keys(registry, home: Path) -> Path:
    """`toolkit keys create` run into $TOOLKIT_HOME/keys (signing and watermark keys); returns that folder."""
    from toolkit_plugins.postprocessors import c2pa

    from toolkit.cli import cli

    c2pa.register_commands(cli)  # what `toolkit` does at start-up for every plugin's commands
    result = invoke("keys", "create")
    assert result.exit_code == 0, result.output
    return home / "keys"


@pytest.fixture
def tiny_model(home: Path, registry) -> Path:
    """A 16x16 class- and sketch-conditioned model named 'tinym' in the user folder."""
    return toolkit_tiny.make_model(home / "models" / "tinym", default=True)


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


# -- tiny text-to-image stages ---------------------------------------------------------------

@pytest.fixture(scope="session")
def stages(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """CLIP -> autoencoder -> denoiser over both, each exported by `Trainer.train`."""
    root = tmp_path_factory.mktemp("t2i")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLKIT_HOME", str(root / "home"))
        clip = train(root, "clip", {"conditioner": "text-clip", **TINY_CLIP})
        ae = train(root, "ae", TINY_AUTOENCODER)
        denoiser = train(root, "den", {**TINY_DENOISER, "autoencoder": str(ae), "text_conditioner": "text-clip",
                                       "text_encoder": {"path": str(clip)}})
    return SimpleNamespace(root=root, clip=clip, ae=ae, denoiser=denoiser)
