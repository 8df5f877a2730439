"""Scriptable output and the CPU threads: each command's ``--json`` is one JSON document on
stdout with the keys scripts read; a post-processor's shortfall still exits 3 after it;
``--threads``/``TOOLKIT_THREADS`` are checked and shown by ``--debug``; the default count
from affinity, cgroup quota and busy CPUs; progress lines where stderr is not a terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import toolkit_tiny
import torch
from helpers import invoke  # tests/ is on sys.path
from PIL import Image

from toolkit.cli import cli, root
from toolkit.eval.classifier import train_classifier
from toolkit.generation import threads
from toolkit.generation.model_folder import update_model_config
from toolkit.host.loading import call_each, get_plugin_manager, get_registry

GENERATE_KEYS = {"model", "seed", "chain", "request", "images", "post", "shortfalls", "device", "threads", "seconds"}


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    """torch's thread count and the module's choice as they were before each test."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_chosen", threads._chosen)
    monkeypatch.delenv("TOOLKIT_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def document(result) -> dict:
    """stdout must be exactly one JSON document."""
    return json.loads(result.stdout)


# -- --json ------------------------------------------------------------------------------------


def test_generate_json(tiny_model, tmp_path):
    result = invoke("generate", "--model", "tinym", "--class", "3", "-n", "2", "--seed", "5", "--post", "invert",
                    "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    doc = document(result)
    assert GENERATE_KEYS <= set(doc)
    assert (doc["model"], doc["seed"], doc["request"]["class_label"], doc["shortfalls"]) == ("tinym", 5, 3, [])
    assert [image["index"] for image in doc["images"]] == [0, 1] and all(Path(i["path"]).is_file() for i in doc["images"])
    assert [p["name"] for p in doc["post"]] == ["invert"] and doc["threads"] == torch.get_num_threads()
    assert set(doc["seconds"]) == {"plan", "generate", "save", "total"}
    assert "chain: tinym" in result.stderr  # the human lines stay on stderr

    replayed = invoke("generate", "--replay", doc["images"][1]["path"], "--out", str(tmp_path / "again"), "--json")
    assert replayed.exit_code == 0, replayed.output
    again = document(replayed)
    assert again["identical"] is True and (again["seed"], again["index"]) == (5, 1) and Path(again["path"]).is_file()


def test_post_json_reports_a_fragile_watermark_and_exits_3(registry, tmp_path):
    white = tmp_path / "white.png"
    Image.new("RGB", (256, 256), "white").save(white)
    result = invoke("post", str(white), "--post", "watermark", "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 3, result.output
    doc = document(result)
    assert set(doc) == {"images", "shortfalls", "seconds"}
    (image,) = doc["images"]
    assert image["source"] == str(white) and Path(image["path"]).is_file()
    record = image["post"][0]["record"]
    assert record["readable"] == [True] and record["fragile_to"][0] and record["payload"]
    assert doc["shortfalls"] == image["shortfalls"] and doc["shortfalls"][0].startswith("watermark: ")
    assert "Incomplete: watermark:" in result.stderr


def test_interpolate_json(registry, tmp_path):
    call_each(get_plugin_manager(), get_registry(), "register_commands", cli=cli)
    result = invoke("interpolate", "--model", "gan-digits", "--class", "3", "--frames", "2", "--zoom", "1",
                    "--out", str(tmp_path / "i.png"), "--json")
    assert result.exit_code == 0, result.output
    doc = document(result)
    assert doc["path"] == str(tmp_path / "i.png") and Path(doc["path"]).is_file()
    assert (doc["model"], doc["class_label"], doc["frames"]) == ("gan-digits", 3, 2)
    assert doc["from"] == {"seed": 0, "image": None} and doc["to"] == {"seed": 1, "image": None}
    assert "total" in doc["seconds"]


def test_eval_json(registry, home, tmp_path):
    train_classifier("tiny", 8, steps=2, batch_size=4, registry=registry)
    folder = toolkit_tiny.make_model(home / "models" / "tiny-uncond", num_classes=3, accepts=["sketch"])
    update_model_config(folder, {"dataset": {"name": "tiny", "size": 8, "options": {}}})
    out = tmp_path / "report.json"
    result = invoke("eval", "--model", "tiny-uncond", "--n-per-class", "2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = document(result)
    assert doc["path"] == str(out) and doc["report"] == json.loads(out.read_text())
    assert (doc["report"]["model"], doc["report"]["seed"], doc["report"]["n"]) == ("tiny-uncond", 0, 6)
    assert "seconds" in doc["report"] and "tiny-uncond" in result.stderr  # the table, on stderr


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "99999"])
def test_threads_option_refuses_what_is_not_a_count(value):
    result = invoke("--threads", value, "models")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for '--threads'"), result.stderr


def test_threads_variable_is_checked_and_the_option_wins(monkeypatch):
    monkeypatch.setenv("TOOLKIT_THREADS", "lots")
    result = invoke("models")
    assert result.exit_code == 1 and result.stderr.startswith("Error: TOOLKIT_THREADS: 'lots' is not a number")
    monkeypatch.setenv("TOOLKIT_THREADS", "2")
    assert "threads: 2 (from TOOLKIT_THREADS)" in invoke("--debug", "models").stderr
    assert "threads: 1 (from --threads)" in invoke("--debug", "--threads", "1", "models").stderr
    assert torch.get_num_threads() == 1


def test_debug_shows_the_default_and_why(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(threads, "_measure_busy", lambda cpus: 1.0)
    monkeypatch.setattr(threads, "_torch_default", 4)
    result = invoke("--debug", "models")
    assert "threads: 3 (default: 4 CPUs usable, 1.0 busy with other processes; choose with --threads or " \
           "TOOLKIT_THREADS)" in result.stderr
    assert torch.get_num_threads() == 3


def test_cgroup_quota(tmp_path):
    own = tmp_path / "self-cgroup"
    own.write_text("0::/\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path, own) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path, own) == 1.5
    # A lower quota further up the tree counts, from the process's own cgroup up.
    (tmp_path / "user.slice" / "job").mkdir(parents=True)
    (tmp_path / "user.slice" / "cpu.max").write_text("50000 100000\n")
    (tmp_path / "user.slice" / "job" / "cpu.max").write_text("max 100000\n")
    own.write_text("0::/user.slice/job\n")
    assert threads.cgroup_cpu_limit(tmp_path, own) == 0.5

    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    own.write_text("4:memory:/x\n1:cpu,cpuacct:/\n")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(v1, own) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert threads.cgroup_cpu_limit(v1, own) == 2.0
    assert threads.cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


def test_default_count_from_affinity_quota_and_busy_cpus():
    eight = set(range(8))
    assert threads.usable_cpus(eight, None) == 8
    assert threads.usable_cpus(eight, 1.5) == 2 and threads.usable_cpus(eight, 0.5) == 1
    assert threads.default_threads(cpus={0, 1}, busy=0.05) == 2  # quiet
    assert threads.default_threads(cpus={0, 1}, busy=1.0) == 1  # one other busy process
    assert threads.default_threads(cpus={0, 1}, busy=2.0) == 1  # never 0
    assert threads.default_threads(cpus=eight, busy=3.0, ceiling=4) == 4  # torch's default is the most
    assert threads.default_threads(cpus=eight, limit=2.0, busy=0.0) == 2  # a container's quota on a big host


def test_busy_cpus_are_measured_without_this_process():
    start = threads.CpuSample(0.0, {0: 0, 1: 0}, {0: 0, 1: 0}, own=0.0)
    end = threads.CpuSample(1.0, {0: 100, 1: 50}, {0: 100, 1: 100}, own=0.5)  # 1.5 CPUs busy, 0.5 ours
    assert threads.busy_elsewhere(start, end, {0, 1}) == pytest.approx(1.0)
    assert threads.busy_elsewhere(start, end, {1}) == pytest.approx(0.0)


def test_cpu_sample_reads_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 0 9 9 0 0 0 0 0 0\ncpu0 10 1 2 30 4 0 0 0 0 0\ncpu3 1 0 0 5 0 0 0 0 0 0\nintr 1 2\n")
    sample = threads.CpuSample.now(stat)
    assert sample.total == {0: 47, 3: 6} and sample.busy == {0: 13, 3: 1}
    assert threads.CpuSample.now(tmp_path / "missing") is None


def test_the_api_keeps_a_count_the_program_set(monkeypatch):
    monkeypatch.setattr(threads, "_chosen", None)
    monkeypatch.setattr(threads, "_torch_default", torch.get_num_threads())
    torch.set_num_threads(torch.get_num_threads() + 1)
    choice = threads.choose_once()
    assert choice.source == "torch.set_num_threads" and choice.threads == torch.get_num_threads()


def test_a_replay_that_differs_names_the_thread_count_it_was_made_with():
    from toolkit.cli.generate import _why_different

    torch.set_num_threads(1)
    assert "replay with `toolkit --threads 3 generate --replay ...`" in _why_different({"threads": 3, "versions": {}})
    assert "threads" not in _why_different({"threads": 1, "versions": {}})  # the same count: something else


# -- progress without a terminal -----------------------------------------------------------------


def test_progress_is_a_plain_line_every_few_seconds_without_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("TOOLKIT_PROGRESS", raising=False)
    monkeypatch.setattr(root, "PROGRESS_EVERY", 0.05)
    assert not root.console.is_terminal
    with root.progress_bar() as bar:
        task = bar.add_task("counting", total=4)
        for _ in range(4):
            time.sleep(0.08)
            bar.update(task, advance=1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("counting: ") and "elapsed" in line for line in lines), lines
    assert lines[-1].startswith("counting: 4/4 (100%)")

    monkeypatch.setenv("TOOLKIT_PROGRESS", "0")
    with root.progress_bar() as bar:
        task = bar.add_task("silent", total=1)
        time.sleep(0.12)
        bar.update(task, advance=1)
    assert capsys.readouterr().err == ""

