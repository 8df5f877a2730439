"""Outputs are never overwritten: runs writing into one folder at once each keep every file
(issue #23, item 2), and a file named with --out is replaced only when asked (item 3)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import invoke
from PIL import Image

from toolkit.cli.root import CommandContext, ToolkitGroup
from toolkit.generation.request import PostSpec
from toolkit.host.loading import call_each, get_plugin_manager

PROCESSES = 4
REFUSED = "already exists; pick another --out, or pass --overwrite to replace it"


def in_processes(work, n: int = PROCESSES) -> list[list[str]]:
    """Run ``work()`` in ``n`` forked processes released together; the paths each returned."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(n), context.Queue()

    def child() -> None:
        torch.set_num_threads(1)  # as DataLoader workers do: torch's thread pool does not survive a fork
        try:
            barrier.wait(timeout=60)
            results.put([str(p) for p in work()])
        except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the test
            results.put(f"{type(error).__name__}: {error}")

    processes = [context.Process(target=child) for _ in range(n)]
    for process in processes:
        process.start()
    got = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [g for g in got if isinstance(g, str)]
    assert not errors, errors
    return got


@pytest.fixture
def slow_png_writes(monkeypatch):
    """Each PNG takes 20 ms to write, as a large image or a slow disk would: every process
    then looks for a free name before any of them has written one."""
    save = Image.Image.save

    def slow_save(self, *args, **kwargs):
        time.sleep(0.02)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", slow_save)


def test_concurrent_generate_runs_into_one_folder_keep_every_image(tiny_model, slow_png_writes, tmp_path):
    from toolkit import generate
    from toolkit.generation import pipeline

    result = generate(model="tinym", class_label=7, seed=7, n=8)
    out = tmp_path / "c"
    paths = [p for got in in_processes(lambda: pipeline.save(result, out)) for p in got]
    assert len(paths) == len(set(paths)) == PROCESSES * 8, "two runs were given the same file"
    files = sorted(out.iterdir())
    assert len(files) == PROCESSES * 8 and {str(f) for f in files} == set(paths)  # no temporary file left either
    assert all(Image.open(f).size == (16, 16) for f in files)


def test_concurrent_post_runs_into_one_folder_keep_every_file(registry, slow_png_writes, tmp_path):
    from toolkit.generation.post import postprocess_file

    Image.new("RGB", (8, 8), "red").save(tmp_path / "photo.png")
    out = tmp_path / "big"
    chain = [PostSpec.parse("upscale-lanczos:scale=2")]
    paths = [p for got in in_processes(lambda: [postprocess_file(tmp_path / "photo.png", chain, out)[0]]) for p in got]
    assert len(set(paths)) == PROCESSES and sorted(str(f) for f in out.iterdir()) == sorted(paths)
    assert {Path(p).name for p in paths} == {"photo-post.png", *(f"photo-post-{k}.png" for k in (1, 2, 3))}


def test_dataset_preview_refuses_an_existing_out_file(registry, tmp_path):
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"mine")
    result = invoke("dataset", "preview", "tiny", "-n", "2", "--out", str(existing))
    assert result.exit_code == 1 and existing.read_bytes() == b"mine"
    assert result.stderr.strip() == f"Error: {existing} {REFUSED}"  # one line, saying what to do
    result = invoke("dataset", "preview", "tiny", "-n", "2", "--out", str(existing), "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(existing).format == "PNG"


def test_interpolate_refuses_an_existing_out_file(registry, tmp_path):
    # A group of its own with the commands plugins add, as `toolkit.cli.main` adds them to `cli`.
    group = ToolkitGroup()
    call_each(get_plugin_manager(), registry, "register_commands", cli=group)

    def interpolate(*extra: str):
        args = ["interpolate", "--model", "gan-digits", "--class", "3", "--frames", "2", "--out", str(existing), *extra]
        return CliRunner().invoke(group, args, obj=CommandContext(registry=registry))

    existing = tmp_path / "existing.png"
    existing.write_bytes(b"mine")
    result = interpolate()
    assert result.exit_code == 1 and existing.read_bytes() == b"mine"
    assert result.stderr.strip() == f"Error: {existing} {REFUSED}"  # one line, saying what to do
    result = interpolate("--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(existing).size == (2 * 16 * 4 + 3 * 2, 16 * 4 + 2 * 2)  # two frames, zoomed 4x, padded
