"""Weights are safetensors only, checked against a recorded sha256, with no way around it
(issue #23, item 5): pickle weights are refused with the conversion to run, and a folder
without a record loads with a warning until `toolkit models --verify` records it."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import toolkit_tiny
import torch
from helpers import invoke
from safetensors.torch import load_file, save_file

from toolkit import generate
from toolkit.errors import ModelError, ToolkitWarning
from toolkit.generation.model_folder import file_sha256, verify_weights

SHIPPED = Path(__file__).resolve().parents[2] / "plugins" / "builtin" / "weights" / "models"
UNET = "unet/diffusion_pytorch_model"


def test_a_model_folder_with_pickle_weights_is_refused_naming_the_conversion(registry, tmp_path):
    """The shipped ldm-shapes with its UNet as a torch pickle and no record of it: diffusers
    would load the pickle (no safetensors there), so the folder is refused first."""
    folder = Path(shutil.copytree(SHIPPED / "ldm-shapes", tmp_path / "pickled"))
    torch.save(load_file(folder / f"{UNET}.safetensors"), folder / f"{UNET}.bin")
    (folder / f"{UNET}.safetensors").unlink()
    config = json.loads((folder / "config.json").read_text())
    del config["weights_sha256"][f"{UNET}.safetensors"]
    (folder / "config.json").write_text(json.dumps(config))
    convert = (rf"safetensors.torch.save_file\(torch.load\('.*pickled/{UNET}.bin', weights_only=True\), "
               rf"'.*pickled/{UNET}.safetensors'\)")
    with pytest.raises(ModelError, match=rf"holds pickle weights \({UNET}.bin\) and no safetensors.*{convert}"):
        generate(model=str(folder), prompt="a red circle", n=1, steps=1, seed=0)


def test_a_folder_without_recorded_sha256_warns_until_verify_records_it(registry, home, tmp_path):
    folder = toolkit_tiny.make_model(tmp_path / "mine")
    config = json.loads((folder / "config.json").read_text())
    del config["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.warns(ToolkitWarning, match=r"no recorded sha256 \(model.safetensors\), loaded unverified.*"
                                            r"`toolkit models --verify .*mine` records them"):
        generate(model=str(folder), class_label=1, seed=0)

    result = invoke("models", "--verify", str(folder))
    assert result.exit_code == 0, result.output
    assert "recorded the sha256 of 1 file(s) that had none: model.safetensors" in result.stdout
    recorded = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert recorded == {"model.safetensors": file_sha256(folder / "model.safetensors")}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ToolkitWarning)
        assert verify_weights(folder) == []  # recorded: loads without a word

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    result = invoke("models", "--verify", str(folder))
    assert result.exit_code == 1 and "FAILED" in result.stdout and "truncated or altered" in result.stdout
    with pytest.raises(ModelError, match="truncated or altered"):
        generate(model=str(folder), class_label=1, seed=0)
    shipped = invoke("models", "--verify")
    assert shipped.exit_code == 0 and "ddpm-digits: ok" in shipped.stdout and "ldm-shapes: ok" in shipped.stdout


def test_a_folder_of_another_layout_records_its_sha256_beside_the_weights(tmp_path):
    """A diffusers pipeline folder has no config.json of ours: its record is weights_sha256.json."""
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    save_file({"w": torch.zeros(3)}, folder / f"{UNET}.safetensors")
    with pytest.warns(ToolkitWarning, match="no recorded sha256"):
        assert verify_weights(folder) == [f"{UNET}.safetensors"]
    assert verify_weights(folder, record=True) == [f"{UNET}.safetensors"]
    assert json.loads((folder / "weights_sha256.json").read_text()) == {
        f"{UNET}.safetensors": file_sha256(folder / f"{UNET}.safetensors")}
    save_file({"w": torch.ones(3)}, folder / f"{UNET}.safetensors")
    with pytest.raises(ModelError, match="truncated or altered"):
        verify_weights(folder)

    (folder / "text_encoder").mkdir()
    torch.save({"w": torch.zeros(3)}, folder / "text_encoder" / "pytorch_model.bin")
    convert = r"DiffusionPipeline as P; P.from_pretrained\('.*sd'\).save_pretrained\('.*sd', safe_serialization=True\)"
    with pytest.raises(ModelError, match=rf"\(text_encoder/pytorch_model.bin\).*{convert}"):
        verify_weights(folder)
