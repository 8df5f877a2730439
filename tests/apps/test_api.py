"""The app's HTTP API through gradio_client, against the real `toolkit app` process: the PNG
that comes back is the one the CLI writes, recipe inside; eight clients at once; bad input
gets a readable message and the app keeps serving; no client path is read from disk."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import toolkit_tiny
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from toolkit.generation import pipeline
from toolkit.generation.recipe import read_recipe
from toolkit.host.loading import plugins_with_extra

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_registry():
    """The Python API in this process, on the same plugins, to check the app's pixels."""
    return plugins_with_extra([("tiny", toolkit_tiny)])[1]


def client(app, folder: Path) -> Client:
    return Client(app.url, verbose=False, download_files=str(folder))


def sketch_png(folder: Path) -> Path:
    image = Image.new("RGB", (16, 16), "white")
    ImageDraw.Draw(image).line([(2, 13), (13, 2)], fill="black", width=2)
    image.save(folder / "sketch.png")
    return folder / "sketch.png"


def test_the_png_that_comes_back_is_the_cli_png_with_its_recipe(app, tmp_path, local_registry):
    files, info = client(app, tmp_path).predict(model="tinyd", prompt="two words", seed=11, steps=3, n=2,
                                                api_name="/generate")
    assert [Path(f).name for f in files] == ["tinyd-two-words-11-00.png", "tinyd-two-words-11-01.png"] and info["seed"] == 11
    for file, entry in zip(files, info["images"]):
        assert Path(file).read_bytes() == (app.out_dir / entry["file"]).read_bytes()  # not re-encoded
        assert str(tmp_path) in file  # downloaded here, not read from the server's folder
    recipe = read_recipe(files[1])
    assert recipe["model"]["name"] == "tinyd" and recipe["seed"] == 11 and recipe["index"] == 1
    assert {k: recipe["request"][k] for k in ("model", "prompt", "seed", "steps")} == \
        {"model": "tinyd", "prompt": "two words", "seed": 11, "steps": 3}
    local = pipeline.generate(model=str(app.home / "models" / "tinyd"), prompt="two words", seed=11, steps=3, n=2,
                              registry=local_registry)
    assert np.array_equal(np.asarray(Image.open(files[1]).convert("RGB")), np.asarray(local.images[1]))


def test_a_prompt_and_a_sketch_file(app, tmp_path):
    files, _ = client(app, tmp_path).predict(prompt="a line", sketch=handle_file(str(sketch_png(tmp_path))),
                                                seed=4, api_name="/generate")
    request = read_recipe(files[0])["request"]
    assert request["model"] == "tinys" and request["prompt"] == "a line"
    recorded = pipeline.open_image(request["sketch"]).convert("L")  # as the sketch conditioner keeps it
    sketch = np.asarray(recorded.resize((16, 16), Image.BOX))  # at the model's size, as it was drawn
    assert sketch[13, 2] < 128 and sketch[2, 2] == 255  # the stroke, where it was drawn


def test_eight_clients_at_once_then_a_ninth(app, tmp_path, local_registry):
    def one(seed: int) -> tuple[int, list[str]]:
        files, _ = client(app, tmp_path / str(seed)).predict(model="tinyd", class_label=seed % 10, seed=seed, steps=2,
                                                            api_name="/generate")
        return seed, files

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(100, 108)))
    for seed, files in results:
        recipe = read_recipe(files[0])
        assert recipe["seed"] == seed and recipe["request"]["class_label"] == seed % 10
        local = pipeline.generate(model=str(app.home / "models" / "tinyd"), class_label=seed % 10, seed=seed, steps=2,
                                  registry=local_registry)
        assert np.array_equal(np.asarray(Image.open(files[0]).convert("RGB")), np.asarray(local.images[0]))
    ninth, _ = client(app, tmp_path / "ninth").predict(model="tinym", seed=1, api_name="/generate")
    assert read_recipe(ninth[0])["model"]["name"] == "tinym"


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (20000, 20000), 1).save(path)  # 400 megapixels in under 100 kB
    return path


def test_bad_input_gets_one_readable_line_and_the_app_keeps_serving(app, tmp_path, huge_png):
    api = client(app, tmp_path)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    cases = [
        ({"sketch": handle_file(str(corrupt))}, "cannot read the sketch data as an image"),
        ({"sketch": handle_file(str(huge_png))}, "is over the limit of 40 megapixels"),
        ({"steps": 5000, "model": "tinyd"}, "--steps: Input should be less than or equal to 1000 (got 5000)"),
        ({"model": str(app.home / "models" / "tinyd")}, "unknown model"),
        ({"post": [{"name": "safety", "options": {"policy": "/etc/passwd"}}]}, "option 'policy' cannot be set"),
        ({"model": "tinym", "prompt": "words"}, "does not accept text"),
        ({"model": "tinyd", "prompt": "gruesome gore", "post": [{"name": "safety"}]},
         "prompt refused by the default safety policy"),
    ]
    for fields, message in cases:
        with pytest.raises(AppError) as caught:
            api.predict(**fields, api_name="/generate")
        text = str(caught.value)
        assert message in text and "Traceback" not in text and "\n" not in text
    _, info = api.predict(model="tinyd", prompt="calm", seed=2, post=[{"name": "safety"}], api_name="/generate")
    assert info["post"][0]["name"] == "safety" and info["post"][0]["record"]["summary"].startswith("images not checked")
    assert app.alive()


def test_no_path_a_client_names_is_read_from_the_server(app):
    call = f"{app.url}gradio_api/call/generate"
    leaked = {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}
    event = httpx.post(call, json={"data": [None, None, None, None, leaked] + [None] * 13}, timeout=30).json()
    stream = httpx.get(f"{call}/{event['event_id']}", timeout=60).text
    assert "event: error" in stream and Path("/etc/hostname").read_text().strip() not in stream
    assert httpx.get(f"{app.url}gradio_api/file=/etc/passwd", timeout=10).status_code in (403, 404)
    assert app.alive()


def test_models_and_recipes(app, tmp_path):
    api = client(app, tmp_path)
    models = {m["name"]: m for m in api.predict(api_name="/models")}
    assert models["tinys"]["accepts"] == ["class", "init_image", "mask", "sketch", "text"]
    assert models["tinyd"]["defaults"] == {"sampler": "tiny-euler", "steps": 4, "guidance_scale": 1.0}
    files, _ = api.predict(model="tinyd", prompt="again", seed=9, api_name="/generate")
    request = api.predict(handle_file(files[0]), api_name="/recipe")
    assert request == read_recipe(files[0])["request"]
    again, _ = api.predict(**{k: v for k, v in request.items() if v is not None}, api_name="/generate")
    assert np.array_equal(np.asarray(Image.open(again[0])), np.asarray(Image.open(io.BytesIO(Path(files[0]).read_bytes()))))


def test_a_port_in_use_is_one_line(app):
    port = app.url.rstrip("/").rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "toolkit", "app", "--port", port], capture_output=True, text=True,
                            check=False, env={**os.environ, "TOOLKIT_HOME": str(app.home)}, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: cannot serve on 127.0.0.1:{port} (Cannot find empty port in range: " \
        f"{port}-{port}); pick another --port or --host"
    assert app.alive()
