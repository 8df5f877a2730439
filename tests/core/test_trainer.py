"""The trainer on the tiny test generator: exact resume, faults (NaN, a real kill during
a checkpoint write, a corrupt checkpoint), outputs, and a real 2-process gloo run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from toolkit.errors import CheckpointError, ConfigError, TrainingError
from toolkit.train.checkpoints import complete_checkpoints, verify_checkpoint
from toolkit.train.config import load_train_config
from toolkit.train.trainer import Trainer


def write_config(path: Path, run: Path, **sections) -> Path:
    config = {
        "name": "tiny-trained",
        "model": {"generator": "tiny", "two_phase": True},
        "data": {"dataset": "tiny", "size": 8, "batch_size": 2, "hflip": 0.5, "translate": 1},
        "train": {"steps": 12, "lr": 0.01, "warmup_steps": 2, "schedule": "cosine", "grad_accum": 2, "ema_decay": 0.9},
        "output": {"dir": str(run), "checkpoint_every": 4, "keep_last": 2, "log_every": 2, "sample_every": 6,
                   "export_dir": str(run / "export")},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(config))
    return path


def state_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Model weights of a checkpoint or model folder, by file and name."""
    return {f"{f.name}:{k}": v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_interrupted_and_resumed_run_ends_with_identical_weights(registry, tmp_path):
    whole = load_train_config(write_config(tmp_path / "a.yaml", tmp_path / "whole"))
    Trainer(whole).train()
    parts = load_train_config(write_config(tmp_path / "b.yaml", tmp_path / "parts"))
    assert Trainer(parts).train(stop_after=5) is None  # mid-epoch: 2 steps per epoch at grad_accum 2
    assert Trainer(parts).train(resume="latest") is not None
    final = "checkpoints/checkpoint-00000012"
    assert_same(state_tensors(tmp_path / "whole" / final), state_tensors(tmp_path / "parts" / final))
    assert_same(state_tensors(tmp_path / "whole" / "export"), state_tensors(tmp_path / "parts" / "export"))
    assert_same(load_file(tmp_path / "whole" / final / "ema.safetensors"), load_file(tmp_path / "parts" / final / "ema.safetensors"))


def test_outputs_of_a_run(registry, tmp_path):
    run = tmp_path / "run"
    exported = Trainer(load_train_config(write_config(tmp_path / "c.yaml", run))).train()
    assert [p.name for p in complete_checkpoints(run)] == ["checkpoint-00000008", "checkpoint-00000012"]  # keep_last=2
    assert (run / "checkpoints" / "checkpoint-00000012" / "config.yaml").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["channels"] == 8  # resolved defaults
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6, 8, 10, 12]
    assert {"loss", "loss_critic", "lr_net", "lr_critic", "steps_per_s"} <= set(lines[0])
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000006.png", "step-00000012.png"]
    from toolkit import generate

    result = generate(model=str(exported), class_label=1, seed=0)
    assert result.images[0].size == (8, 8)


def test_default_export_is_found_by_name(registry, home, tmp_path):
    from toolkit import generate

    config = load_train_config(write_config(tmp_path / "n.yaml", tmp_path / "run"), ["train.steps=2", "output.export_dir=null"])
    assert Trainer(config).train() == home / "models" / "tiny-trained"
    assert generate(model="tiny-trained", class_label=2, seed=0).plan.model.source == "user"


def test_worker_processes_give_the_same_batches(registry, tmp_path):
    runs = []
    for workers in (0, 2):
        run = tmp_path / f"w{workers}"
        Trainer(load_train_config(write_config(tmp_path / "w.yaml", run), [f"data.num_workers={workers}", "train.steps=4"])).train()
        runs.append(state_tensors(run / "export"))
    assert_same(*runs)


def test_config_errors(registry, tmp_path):
    path = write_config(tmp_path / "d.yaml", tmp_path / "run")
    with pytest.raises(ConfigError, match="train.stepz: Extra inputs are not permitted"):
        load_train_config(path, ["train.stepz=3"])
    with pytest.raises(ConfigError, match="model.colour: Extra inputs are not permitted"):
        Trainer(load_train_config(path, ["model.colour=red"]))
    with pytest.raises(ConfigError, match="train.lr: Input should be greater than 0"):
        load_train_config(path, ["train.lr=-1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="fewer than one batch"):
        Trainer(load_train_config(path, ["data.batch_size=64"]))


def test_nan_loss_skips_steps_then_stops_keeping_the_last_good_checkpoint(registry, tmp_path):
    config = load_train_config(write_config(tmp_path / "e.yaml", tmp_path / "run", model={"generator": "tiny", "nan_from_step": 5},
                                            train={"nan_patience": 3, "steps": 12, "lr": 0.01, "grad_accum": 1},
                                            output={"checkpoint_every": 2, "dir": str(tmp_path / "run")}))
    with pytest.raises(TrainingError, match="NaN or infinite 3 steps in a row .*last good checkpoint .* is intact"):
        Trainer(config).train()
    good = complete_checkpoints(tmp_path / "run")
    assert good[-1].name == "checkpoint-00000004"
    assert verify_checkpoint(good[-1]) == 4
    assert all(torch.isfinite(t).all() for t in state_tensors(good[-1]).values())


def test_corrupt_checkpoint_is_refused(registry, tmp_path):
    config = load_train_config(write_config(tmp_path / "f.yaml", tmp_path / "run"))
    Trainer(config).train(stop_after=4)
    weights = tmp_path / "run" / "checkpoints" / "checkpoint-00000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint-00000004 is corrupt: model.safetensors does not match"):
        Trainer(config).train(resume="latest")


def _env(plugin_site: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(plugin_site), "TOOLKIT_HOME": str(home)}


def test_killed_during_checkpoint_write_leaves_previous_checkpoint_usable(plugin_site, home, tmp_path):
    run = tmp_path / "run"
    # Big enough (40 MB of weights + Adam state) that writing a checkpoint takes a while.
    path = write_config(tmp_path / "g.yaml", run, model={"generator": "tiny", "pad_params": 10_000_000},
                        train={"steps": 1000, "grad_accum": 1}, output={"checkpoint_every": 2, "dir": str(run)})
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "train", str(path)], env=_env(plugin_site, home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = run / "checkpoints"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (complete_checkpoints(run) and list(root.glob(".tmp-checkpoint-*"))):
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)  # mid-write of a checkpoint after the first complete one
    finally:
        process.wait(timeout=60)
    partial = list(root.glob(".tmp-checkpoint-*"))
    assert partial and not (partial[0] / "manifest.json").exists()
    good = complete_checkpoints(run)[-1]
    verify_checkpoint(good)
    result = subprocess.run([sys.executable, "-m", "toolkit", "train", str(path), "train.steps=" + str(int(good.name[-8:]) + 2),
                             "--resume", "latest"], env=_env(plugin_site, home), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resumed from {good}" in result.stdout + result.stderr
    assert not list(root.glob(".tmp-checkpoint-*"))  # cleaned up by the next write


def test_two_processes_gloo_identical_weights_and_rank0_only_outputs(plugin_site, home, tmp_path):
    run = tmp_path / "run"
    path = write_config(tmp_path / "h.yaml", run, train={"steps": 6, "grad_accum": 1}, output={"checkpoint_every": 3, "dir": str(run), "log_every": 1})
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", "-m", "toolkit", "train", str(path)],
        env=_env(plugin_site, home), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights identical on 2 process(es)" in result.stdout
    assert result.stdout.count("exported model") == 1
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # each step logged once: only rank 0 writes logs
    assert [p.name for p in complete_checkpoints(run)] == ["checkpoint-00000003", "checkpoint-00000006"]
    writers = {p.name.split(".")[-2] for p in (run / "logs").rglob("events.out.tfevents.*")}
    assert len(writers) == 1  # TensorBoard files from one process id only
    # Both ranks' RNG states are in the one checkpoint that rank 0 finalised.
    assert {p.name for p in (run / "checkpoints" / "checkpoint-00000006").glob("random_states_*")} == {"random_states_0.pkl", "random_states_1.pkl"}


def test_ctrl_c_stops_with_one_line_and_intact_checkpoints(plugin_site, home, tmp_path):
    run = tmp_path / "run"
    path = write_config(tmp_path / "i.yaml", run, train={"steps": 100000, "grad_accum": 1}, output={"checkpoint_every": 2, "dir": str(run)})
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "train", str(path)], env={**_env(plugin_site, home), "PYTHONFAULTHANDLER": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not complete_checkpoints(run):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hung: faulthandler prints every thread on SIGABRT
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=30)
        pytest.fail(f"training did not stop within 60 s of Ctrl-C; where it was:\n{err[-8000:]}")
    assert process.returncode == 130
    assert "interrupted; the checkpoints in" in err and "Traceback" not in err
    verify_checkpoint(complete_checkpoints(run)[-1])
