"""Latency of the web app against the Python API: one image at the default model's size and
20 steps, made through `toolkit app` and through `toolkit.generate` in this process.

It starts `toolkit app` on a free port, times the first (cold) request, then runs rounds
that alternate three ways of making the same image, so all see the same machine load:

* python: ``toolkit.generate(...)`` in this process, the model already loaded;
* api: gradio_client's ``predict`` on ``/generate``, until the PNG is downloaded;
* click: Playwright clicks Generate in headless Chromium; timed in the page, from the click
  event to the new image's load event in the gallery (skipped without Debian's
  /usr/bin/chromium).

Each figure is a median over the rounds; the ratios are the medians of per-round ratios
with a 95% distribution-free interval (as in benchmarks/startup.py). The goal: click / python
at most 1.2.

    python benchmarks/app_latency.py --rounds 15
    python benchmarks/app_latency.py --model ddpm-digits --prompt "" --steps 20
    python benchmarks/app_latency.py --quick       # smoke run: 2 rounds at 4 steps (tests run it)

The app writes its PNGs (and Gradio its uploads) into a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gradio_client import Client
from startup import median_interval

from toolkit import generate
from toolkit.generation.store import find_model
from toolkit.generation.threads import choose as choose_threads
from toolkit.host.loading import get_registry

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_app(out: Path, threads: int) -> tuple[subprocess.Popen, str, float]:
    """`toolkit app` on a free port with ``threads`` torch threads; returns it, its URL and
    the seconds until it answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "app", "--port", str(port), "--out", str(out / "png")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "GRADIO_TEMP_DIR": str(out / "gradio"), "TOOLKIT_THREADS": str(threads)})
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit("`toolkit app` exited before it answered; run it by hand to see why") from None
        time.sleep(0.2)


def lowest_priority(parent: int, spare: int) -> None:
    """Every process under ``parent`` but ``spare`` (the app) to nice 19: Chromium and
    Playwright's driver, since a user's browser runs on the user's machine, not on the
    server's cores."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid in children.get(parent, []) if pid != spare]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            os.setpriority(os.PRIO_PROCESS, pid, 19)
        except OSError:
            pass  # it exited meanwhile


class Page:
    """The app in headless Chromium: the prompt typed once, then one click per image."""

    def __init__(self, url: str, prompt: str, steps: int, app: int):
        from playwright.sync_api import sync_playwright

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        self.page = self.browser.new_page(viewport={"width": 1440, "height": 1000})
        self.page.set_default_timeout(120_000)
        self.page.goto(url)
        self.page.wait_for_selector("#generate")
        # Load events do not bubble, but a listener on the document sees them in the capture phase.
        self.page.evaluate("() => document.addEventListener('load', event => {"
                           " if (event.target.matches && event.target.matches('#gallery img'))"
                           " window.loadedAt = performance.now(); }, true)")
        lowest_priority(os.getpid(), spare=app)
        if prompt:
            self.page.locator("#field-prompt textarea").fill(prompt)
        steps_box = self.page.locator("#field-steps input[type=number]")
        if steps_box.is_visible():
            steps_box.fill(str(steps))
            steps_box.press("Enter")

    def click_to_image(self) -> float:
        """Seconds from the click on Generate to the new image loaded in the gallery, timed
        in the page from the click event to the image's load event: not from Playwright's
        call, whose checks before it clicks (the button visible, and stable for two frames)
        took about 0.1 s here and are no part of what a user waits for."""
        shown = self.page.locator("#gallery img")
        before = shown.first.get_attribute("src") if shown.count() else None
        self.page.evaluate("""() => {
            window.clickedAt = window.loadedAt = null;
            document.querySelector('#generate').addEventListener('click', () => { window.clickedAt = performance.now(); },
                                                                 {capture: true, once: true});
        }""")
        self.page.locator("#generate").click()
        # The time comes from the page's own events, so this poll only has to notice the end:
        # seldom, since each poll is work for the page while it is being timed.
        self.page.wait_for_function(
            "before => { const img = document.querySelector('#gallery img');"
            " return window.loadedAt !== null && img && img.complete && img.src !== before; }", arg=before, polling=250)
        return self.page.evaluate("() => (window.loadedAt - window.clickedAt) / 1000")

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the installed default model")
    parser.add_argument("--prompt", default="a large green triangle in the center")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds at 4 steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 4
    model = find_model(args.model, get_registry()).name
    fields = {"model": model, "steps": args.steps, "seed": 0} | ({"prompt": args.prompt} if args.prompt else {})
    # The app and this process on the same count: each would otherwise choose from how busy
    # the machine looked as it started, and the ratio would measure that choice.
    threads = choose_threads().threads
    out = Path(tempfile.mkdtemp(prefix="app-latency-"))
    process, url, startup = start_app(out, threads)
    try:
        client = Client(url, verbose=False, download_files=str(out / "downloads"))
        started = time.perf_counter()
        client.predict(**fields, api_name="/generate")
        cold = time.perf_counter() - started
        generate(**fields)  # load the model in this process too
        page = Page(url, args.prompt, args.steps, process.pid) if Path(CHROMIUM).is_file() else None
        times: dict[str, list[float]] = {"python": [], "api": [], "click": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            generate(**fields)
            times["python"].append(time.perf_counter() - started)
            started = time.perf_counter()
            client.predict(**fields, api_name="/generate")
            times["api"].append(time.perf_counter() - started)
            if page is not None:
                times["click"].append(page.click_to_image())
        if page is not None:
            page.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(out, ignore_errors=True)
    print(f"model {model}, {args.steps} steps, one image; {args.rounds} rounds; {threads} torch thread(s) in the app and here")
    print(f"app start to first answer: {startup:.1f} s; first request (cold: the model loads): {cold:.2f} s")
    print(f"{'way':8} {'median s':>9} {'/ python (median, 95% interval)':>34}")
    for way, seconds in times.items():
        if not seconds:
            print(f"{way:8} {'skipped: no ' + CHROMIUM:>9}")
            continue
        ratio = median_interval([s / p for s, p in zip(seconds, times["python"])])
        print(f"{way:8} {statistics.median(seconds):9.3f} {ratio[0]:>14.2f}x ({ratio[1]:.2f}-{ratio[2]:.2f})")


if __name__ == "__main__":
    main()
