"""The contract every registered generator passes, with tiny configs so it stays fast:
shapes and value range, seed determinism, save/load round trip, refusing conditioning it
does not accept, and one training step through the trainer's phases."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from toolkit.components import Conditioning, GenerateArgs, Trainable, TrainContext
from toolkit.train.data import collate
from toolkit.errors import UnsupportedRequestError
from toolkit.generation.pipeline import plan
from toolkit.generation.request import GenerationRequest
from toolkit.generation.store import find_model

# A tiny configuration for every trainable generator; a new generator must add one here.
TINY = {
    "ddpm": {"channels": 8, "channel_mults": [1, 2], "attention_levels": [1], "num_train_timesteps": 50, "default_steps": 3},
    "gan": {"latent_dim": 8, "class_dim": 4, "channels": 8, "class_norm": True, "discriminator_norm": "group", "minibatch_std": True,
            "r1_gamma": 1.0, "aux_classifier": 0.5},
    "vae": {"latent_dim": 4, "class_dim": 4, "channels": 8},
    "tiny": {},
    "tiny-diffusion": {},
}


def trainable_generators(registry) -> list[str]:
    return sorted(n for n, e in registry.generators.items() if issubclass(e.obj, Trainable))


# Generators whose tiny model needs other trained stages first; their contract tests live there.
TESTED_ELSEWHERE = {"ldm": "tests/test_text_to_image.py (a denoiser needs a trained autoencoder and text encoder)"}


def test_every_trainable_generator_has_a_tiny_config(registry):
    assert set(trainable_generators(registry)) <= set(TINY) | set(TESTED_ELSEWHERE)


@pytest.fixture(params=sorted(TINY))
def built(request, registry, home):
    name = request.param
    cls = registry.get("generators", name)
    dataset = registry.get("datasets", "digits")(size=8)
    model = cls.from_config(cls.Config.model_validate(TINY[name]), dataset=dataset)
    folder = home / "models" / f"contract-{name}"
    model.save_pretrained(folder)
    return name, cls, model, folder, dataset


def args_for(cls, registry, seed: int, n: int = 3) -> GenerateArgs:
    sampler = registry.get("samplers", cls.default_sampler) if cls.uses_sampler else None
    return GenerateArgs(n=n, height=8, width=8, generator=torch.Generator().manual_seed(seed), steps=3,
                        guidance_scale=cls.default_guidance_scale, sampler=sampler)


def test_shapes_range_and_determinism(built, registry):
    name, cls, _, folder, _ = built
    model = cls.from_pretrained(folder)
    cond = Conditioning(class_labels=torch.tensor([0, 1, 2]))
    a = model.generate(cond, args_for(cls, registry, 0))
    b = model.generate(cond, args_for(cls, registry, 0))
    c = model.generate(cond, args_for(cls, registry, 1))
    assert a.shape == (3, 3, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_save_load_round_trip(built, registry, tmp_path):
    name, cls, _, folder, _ = built
    loaded = cls.from_pretrained(folder)
    loaded.save_pretrained(tmp_path / "again")
    reloaded = cls.from_pretrained(tmp_path / "again")
    cond = Conditioning(class_labels=torch.tensor([1, 1, 1]))
    assert torch.equal(loaded.generate(cond, args_for(cls, registry, 5)), reloaded.generate(cond, args_for(cls, registry, 5)))
    info = find_model(str(folder), registry)
    assert info.generator == name and info.sizes == [(8, 8)]


def test_refuses_conditioning_it_does_not_accept(built, registry):
    name, cls, _, folder, _ = built
    unsupported = sorted({"text", "sketch", "mask", "class"} - find_model(str(folder), registry).accepts)
    white = Image.new("RGB", (8, 8), "white")
    field = {"text": ("prompt", "a red circle"), "sketch": ("sketch", white), "class": ("class_label", 1), "mask": ("mask", white)}
    kind = unsupported[0]
    with pytest.raises(UnsupportedRequestError, match=f"does not accept {kind}"):
        plan(GenerationRequest(model=str(folder), **{field[kind][0]: field[kind][1]}))


def test_a_training_step_lowers_nothing_to_nan(built):
    name, cls, model, _, dataset = built
    batch = collate([dataset[i] for i in range(4)])
    modules = model.training_modules()
    ctx = TrainContext(modules, 0, torch.device("cpu"))
    for phase in model.training_phases():
        loss, logs = phase.loss(batch, ctx)
        loss.backward()
        assert torch.isfinite(loss) and all(isinstance(v, float) for v in logs.values())
