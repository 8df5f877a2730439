"""The real app, started as a user starts it (`toolkit app --port FREE`) in a subprocess, once
for all the tests here: the tiny test plugin and the example sepia plugin installed, and
three tiny models in its own $TOOLKIT_HOME.

* ``tinys`` (the default): text, class, sketch, mask and init image, 16x16, one step;
* ``tinyd``: text and class through a sampler;
* ``tinym``: class and sketch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import toolkit_tiny

STARTUP_SECONDS = 180  # importing torch, every plugin and Gradio on a busy 2-core machine


@dataclass
class App:
    url: str
    out_dir: Path  # where the app writes its PNGs
    home: Path
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None and httpx.get(self.url, timeout=10).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("app-home")
    models = home / "models"
    toolkit_tiny.make_model(models / "tinys", default=True, accepts=["class", "init_image", "mask", "sketch", "text"])
    toolkit_tiny.make_model(models / "tinyd", "tiny-diffusion")
    toolkit_tiny.make_model(models / "tinym")
    return home


@pytest.fixture(scope="session")
def app(plugin_site: Path, app_home: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("app")
    port, out_dir, log = free_port(), folder / "out", folder / "app.log"
    path = os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TOOLKIT_HOME": str(app_home), "OMP_NUM_THREADS": "1",
           "GRADIO_TEMP_DIR": str(folder / "gradio")}
    with open(log, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "toolkit", "app", "--port", str(port), "--out", str(out_dir)],
                                   stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"`toolkit app` did not start:\n{log.read_text()}")
        time.sleep(0.5)
    yield App(url, out_dir, app_home, process, log)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
