"""The page in headless Chromium (Debian's package, .ci/run installs it; Playwright downloads no
browser): draw, type, generate, and find what was drawn in the recipe of the downloaded PNG;
paint a mask; a model hides what it cannot use; the sepia plugin's control; a corrupt upload;
the page at a phone's 390 px and a desktop's 1440 px."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from toolkit.generation.images import open_image
from toolkit.generation.recipe import read_recipe

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it when it runs as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.wait_for_selector("#generate")
    yield page
    page.close()


def stroke(page, surface, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points``, in screen pixels from the middle of the surface's
    canvas (the picture is centred in it; the canvas element is wider)."""
    box = surface.locator("canvas").first.bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    at = [(middle[0] + dx, middle[1] + dy) for dx, dy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in itertools.pairwise(at):
        for t in np.linspace(0, 1, 12)[1:]:
            page.mouse.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    page.mouse.up()


def generate_and_download(page, folder: Path) -> Path:
    """Click Generate, wait for the image, and download the first PNG as a user would."""
    page.locator("#generate").click()
    page.wait_for_selector("#gallery img")
    link = page.locator("#downloads a").first
    link.wait_for()
    path = folder / "downloaded.png"
    path.write_bytes(page.request.get(link.get_attribute("href")).body())
    return path


def grey(data_url: str) -> np.ndarray:
    """A recorded input image, grey, at the model's 16x16 (a conditioner may keep it larger)."""
    return np.asarray(open_image(data_url).convert("L").resize((16, 16), Image.BOX))


def test_draw_type_generate_and_the_sketch_is_in_the_recipe(page, tmp_path):
    pad = page.locator("#sketchpad")
    pad.get_by_role("button", name="Brush", exact=True).click()
    stroke(page, pad, [(-60, -60), (60, 60)])  # a diagonal through the middle, top left to bottom right
    page.locator("#field-prompt textarea").fill("a diagonal line")
    recipe = read_recipe(generate_and_download(page, tmp_path))
    assert recipe["request"]["prompt"] == "a diagonal line" and recipe["model"]["name"] == "tinys"
    sketch = grey(recipe["request"]["sketch"])
    assert sketch[8, 8] < 200 and sketch[2, 13] == 255 and sketch[13, 2] == 255
    assert f"seed {recipe['seed']} · #0" in page.locator("#gallery").inner_text()
    page.screenshot(path=tmp_path / "generated-1440.png", full_page=True)
    assert Image.open(tmp_path / "generated-1440.png").width == 1440


def test_the_painted_layer_becomes_the_mask(page, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (20, 120, 200)).save(photo)
    painter = page.locator("#mask-painter")
    painter.locator("input[type=file]").set_input_files(photo)
    painter.get_by_text("Upload an image").wait_for(state="hidden")  # the picture is on the canvas
    painter.get_by_role("button", name="Brush", exact=True).click()
    stroke(page, painter, [(-40, 0), (40, 0)])  # a horizontal stroke through the middle
    request = read_recipe(generate_and_download(page, tmp_path))["request"]
    assert open_image(request["init_image"]).convert("RGB").getpixel((0, 0)) == (20, 120, 200)
    mask = grey(request["mask"])
    assert mask[8, 8] > 128 and mask[2, 8] == 0 and mask[8, 1] == 0


def test_picking_a_model_hides_what_it_cannot_use(page):
    assert page.locator("#sketchpad").is_visible() and not page.locator("#field-steps").is_visible()
    assert page.locator("#field-class_label").is_visible() and not page.locator("#field-sampler").is_visible()
    page.locator("#model input").click()
    page.get_by_role("option", name="tinyd").click()
    page.locator("#field-steps").wait_for(state="visible")
    assert not page.locator("#sketchpad").is_visible() and not page.locator("#mask-painter").is_visible()
    assert page.locator("#field-sampler").is_visible() and page.locator("#field-class_label").is_visible()
    assert page.locator("#field-steps input[type=number]").input_value() == "4"  # the model's default


def test_the_sepia_plugin_control_reaches_the_request(page, tmp_path):
    strength = page.get_by_label("number input for Sepia strength")
    strength.fill("0.75")
    strength.press("Enter")
    recipe = read_recipe(generate_and_download(page, tmp_path))
    assert [(p["name"], p["options"]) for p in recipe["postprocessors"]] == [("sepia", {"strength": 0.75})]


def test_a_corrupt_upload_shows_a_readable_message_and_the_page_keeps_working(page, app, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    page.get_by_text("Load recipe").click()
    page.locator("#load-recipe input[type=file]").set_input_files(corrupt)
    toast = page.locator(".toast-body").first
    toast.wait_for()
    assert "cannot read" in toast.inner_text() and "Traceback" not in toast.inner_text()
    made, _ = Client(app.url, verbose=False, download_files=str(tmp_path)).predict(
        model="tinyd", prompt="from a recipe", seed=5, api_name="/generate")
    made = made[0]
    page.locator("#load-recipe button[aria-label='Clear']").click()
    page.locator("#load-recipe input[type=file]").set_input_files(made)
    page.wait_for_function("() => document.querySelector('#field-prompt textarea').value !== ''")
    assert page.locator("#field-prompt textarea").input_value() == read_recipe(made)["request"]["prompt"]
    assert page.locator("#model input").input_value().startswith("tinyd")
    assert read_recipe(generate_and_download(page, tmp_path))["model"]["name"] == "tinyd"


@pytest.mark.parametrize("width", [390, 1440])
def test_usable_on_a_phone_and_a_desktop(browser, app, tmp_path, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((app.url, "data:", "blob:")) else None)
    page.goto(app.url)
    button = page.locator("#generate")
    button.wait_for()
    page.wait_for_load_state("networkidle")
    assert elsewhere == []  # no font, script or report from the internet
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing scrolls sideways
    page.screenshot(path=tmp_path / f"app-{width}.png", full_page=True)
    assert Image.open(tmp_path / f"app-{width}.png").width == width
    page.close()
