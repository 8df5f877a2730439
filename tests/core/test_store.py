"""Model folders: save/load round trip, look-up order, refusal of damaged weights."""

from __future__ import annotations

import json

import pytest
import toolkit_tiny
import torch

from toolkit.errors import ModelError, UnknownNameError
from toolkit.generation.model_folder import load_weights, save_model_folder, weights_sha256
from toolkit.generation.store import find_model, list_models


def test_round_trip_and_no_pickle(tmp_path):
    folder = save_model_folder(tmp_path / "m", {"generator": "tiny", "sizes": [[8, 8]]}, {"model.safetensors": {"w": torch.arange(6.0)}})
    assert torch.equal(load_weights(folder)["w"], torch.arange(6.0))
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not list(tmp_path.glob(".m.*"))  # no temporary folder left behind


def test_truncated_and_tampered_weights_are_refused(tmp_path):
    folder = save_model_folder(tmp_path / "m", {"generator": "tiny"}, {"model.safetensors": {"w": torch.randn(100)}})
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-20])
    with pytest.raises(ModelError, match="truncated or altered"):
        load_weights(folder)
    tampered = bytearray(data)
    tampered[-1] ^= 1
    weights.write_bytes(bytes(tampered))
    with pytest.raises(ModelError, match="truncated or altered"):
        load_weights(folder)
    # Without a recorded hash (a foreign folder), safetensors' own checks still refuse truncation.
    config = json.loads((folder / "config.json").read_text())
    config.pop("weights_sha256")
    (folder / "config.json").write_text(json.dumps(config))
    weights.write_bytes(data[:-20])
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_weights(folder)


def test_corrupt_model_refused_at_generate(tiny_model):
    from toolkit import generate

    weights = tiny_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated or altered"):
        generate(model="tinym")


def test_lookup_by_name_path_and_unknown(tiny_model, registry, tmp_path):
    assert find_model("tinym", registry).source == "user"
    elsewhere = toolkit_tiny.make_model(tmp_path / "elsewhere")
    assert find_model(str(elsewhere), registry).source == "path"
    with pytest.raises(UnknownNameError, match="Did you mean 'tinym'"):
        find_model("tinyn", registry)
    listed = {m.name: m for m in list_models(registry)}
    assert listed["tinym"].accepts == {"class", "sketch"} and listed["tinym"].size_bytes > 0


def test_save_replaces_existing_folder_atomically(tmp_path):
    folder = save_model_folder(tmp_path / "m", {"generator": "a"}, {"model.safetensors": {"w": torch.zeros(2)}})
    before = weights_sha256(folder)
    save_model_folder(folder, {"generator": "a"}, {"model.safetensors": {"w": torch.ones(2)}})
    assert weights_sha256(folder) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
