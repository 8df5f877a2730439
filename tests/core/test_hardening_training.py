"""Training never replaces a model folder it was not told to, and resuming a checkpoint runs
none of the code a crafted checkpoint may carry (issue #23, items 1 and 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import invoke

from toolkit.errors import ToolkitError
from toolkit.generation.model_folder import file_sha256
from toolkit.generation.store import user_models_dir
from toolkit.train.checkpoints import complete_checkpoints
from toolkit.train.config import load_train_config, validate_train_config
from toolkit.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(run: Path, **output) -> dict:
    """Two steps of the tiny test generator, with an EMA and a checkpoint at every step."""
    return {
        "name": "tiny-hardened",
        "model": {"generator": "tiny", "two_phase": True},
        "data": {"dataset": "tiny", "size": 8, "batch_size": 2},
        "train": {"steps": 2, "lr": 0.01, "ema_decay": 0.9},
        "output": {"dir": str(run), "checkpoint_every": 1, "sample_every": 100, "log_every": 1,
                   "export_dir": str(run / "export"), **output},
    }


# -- item 1: an export never replaces an existing model folder unless told to ------------------


def test_an_existing_model_folder_is_refused_before_training_and_replaced_only_with_overwrite(registry, tmp_path):
    shipped = tmp_path / "models" / "tiny-hardened"  # stands for plugins/builtin/weights/models/NAME
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text('{"generator": "tiny"}')
    run = tmp_path / "run"
    config = tiny_config(run, export_dir=str(shipped))
    with pytest.raises(ToolkitError, match=r"model folder .*tiny-hardened already exists.*pass --overwrite"):
        Trainer(validate_train_config(config)).train()
    assert not complete_checkpoints(run) and not (run / "metrics.jsonl").exists()  # refused before step 1
    assert (shipped / "config.json").read_text() == '{"generator": "tiny"}'

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke("train", str(path))
    assert result.exit_code == 1 and "--overwrite" in result.stderr and "Traceback" not in result.output

    result = invoke("train", str(path), "--overwrite")
    assert result.exit_code == 0, result.output
    saved = json.loads((shipped / "config.json").read_text())
    assert saved["dataset"]["name"] == "tiny" and "model.safetensors" in saved["weights_sha256"]
    # Staged beside its place and renamed in: no temporary folder is left behind.
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["tiny-hardened"]


def test_shipped_configs_export_to_the_users_model_folder(home):
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        output = load_train_config(path).output
        folder = (output.export_dir or user_models_dir() / load_train_config(path).name).resolve()
        assert not folder.is_relative_to(ROOT / "plugins"), f"{path.name} exports into the shipped models: {folder}"
        assert not output.overwrite, path.name
    readme = (ROOT / "configs" / "README.md").read_text()
    assert "output.export_dir=plugins/builtin/weights/models/NAME --overwrite" in readme


# -- item 4: a crafted checkpoint cannot run code on --resume -----------------------------------


class RunsCode:
    """Unpickling this calls ``exec``: a marker file appears if the pickle is ever loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize("planted", ["custom_checkpoint_0.pkl", "optimizer.bin", "random_states_0.pkl",
                                     "pytorch_model.bin"])
def test_a_crafted_checkpoint_is_refused_without_running_its_code(registry, tmp_path, planted):
    run = tmp_path / "run"
    config = validate_train_config(tiny_config(run))
    Trainer(config).train(stop_after=1)
    checkpoint = complete_checkpoints(run)[-1]
    written = {p.name for p in checkpoint.iterdir()}
    marker = tmp_path / "code-ran"
    torch.save({"state": RunsCode(marker)}, checkpoint / planted)
    if planted == "pytorch_model.bin":  # Accelerate falls back to a torch pickle without the safetensors
        (checkpoint / "model.safetensors").unlink()
    manifest = json.loads((checkpoint / "manifest.json").read_text())  # the attacker rewrites the manifest too
    manifest["files"] = {p.relative_to(checkpoint).as_posix(): file_sha256(p) for p in sorted(checkpoint.rglob("*"))
                         if p.is_file() and p.name != "manifest.json"}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))

    try:
        Trainer(config).train(resume="latest")
        said = "resumed"
    except ToolkitError as error:
        said = str(error)
    assert not marker.exists(), f"resuming ran the code planted in {planted}"
    assert "could run code" in said, said  # refused, one line saying why
    # The trainer's own state is JSON and safetensors, not a pickle Accelerate would load in full.
    assert {"trainer_state.json", "ema.safetensors"} <= written
    assert not any(name.startswith("custom_checkpoint_") for name in written)

