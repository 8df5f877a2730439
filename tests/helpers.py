"""Helpers the tests share (imported as ``helpers``: tests/ is on sys.path under pytest).
Fixtures live in conftest.py; plain functions and constants here, since several folders
have a conftest.py and ``import conftest`` would find whichever was loaded last."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from click.testing import CliRunner
from PIL import Image

from toolkit.cli import cli
from toolkit.train.config import validate_train_config
from toolkit.train.trainer import Trainer


def pip_install_target(target: Path, *packages: Path) -> Path:
    """Really install plugin packages (entry points and all) into a folder of their own.

    Each package is built from a copy: setuptools writes egg-info into the source folder,
    which would make the in-process copy of toolkit_tiny look installed too."""
    sources = target.parent / f"{target.name}-src"
    packages = tuple(Path(shutil.copytree(p, sources / p.name, ignore=shutil.ignore_patterns("*.egg-info", "build"))) for p in packages)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, packages)],
        check=True, capture_output=True, text=True,
    )
    return target


# -- tiny text-to-image stages -------------------------------------------------------------

TINY_CLIP = {"embed_dim": 16, "vision_width": 32, "vision_layers": 1, "patch_size": 8, "text_width": 16,
             "text_layers": 1, "text_heads": 2, "context_length": 24}
TINY_AUTOENCODER = {"generator": "ldm", "stage": "autoencoder", "ae_channels": [8, 16]}
TINY_DENOISER = {"generator": "ldm", "stage": "denoiser", "unet_channels": [16, 32], "attention_heads": 2,
                 "num_train_timesteps": 100, "default_steps": 3}

def train_config(root: Path, name: str, model: dict, steps: int = 3) -> dict:
    return {
        "name": name,
        "model": model,
        "data": {"dataset": "shapes", "size": 32, "batch_size": 4},
        "train": {"steps": steps, "lr": 1e-3, "ema_decay": None},
        "output": {"dir": str(root / name), "checkpoint_every": 1000, "sample_every": 1000, "log_every": 1,
                   "export_dir": str(root / name / "model")},
    }


def train(root: Path, name: str, model: dict, steps: int = 3) -> Path:
    exported = Trainer(validate_train_config(train_config(root, name, model, steps))).train()
    assert exported == root / name / "model"
    return exported


def invoke(*args: str):
    """Run ``toolkit ARGS...`` in this process, as the command line would."""
    return CliRunner().invoke(cli, list(args), obj={})


# -- images for the watermark tests -------------------------------------------------------


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: a scikit-image photo resized to (width, height)."""
    a = getattr(skimage.data, name)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    return np.asarray(Image.fromarray(a).resize(size, Image.LANCZOS))


def shapes_like(size: int, seed: int = 0) -> np.ndarray:
    """What the shapes models make, upscaled: a near-white field with one soft coloured blob."""
    rng = np.random.default_rng(seed)
    small = np.full((32, 32, 3), 238.0) + rng.normal(0, 1.5, (32, 32, 3))
    cy, cx = rng.integers(6, 26, 2)
    yy, xx = np.mgrid[:32, :32]
    blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < 12
    small[blob] = rng.integers(20, 200, 3)
    return np.asarray(Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))


def chunks(data: bytes):
    """(type, body) of each chunk of the PNG file ``data``."""
    i = 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        yield data[i + 4:i + 8], data[i + 8:i + 8 + length]
        i += 12 + length


# -- tiny Stable Diffusion folders (no weights can be downloaded here) ----------------------

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_tokenizer(folder: Path):
    """A CLIP tokenizer over single letters (BPE with no merges): enough to tell prompts apart."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16), len(vocab)


def text_config(vocab: int, hidden: int, projection: int | None = None):
    from transformers import CLIPTextConfig

    extra = {"projection_dim": projection} if projection else {}
    return CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, sample_size=16)


def tiny_unet(cross: int, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross,
                                attention_head_dim=4, norm_num_groups=8, **extra)


def save_tiny_sd(folder: Path) -> Path:
    """A tiny random Stable Diffusion 1.x pipeline (16x16 images), saved by diffusers' own
    ``save_pretrained`` into ``folder``, as a user's SD folder would be."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:  # the pipeline saves its own copy of the tokenizer
        tokenizer, vocab = tiny_tokenizer(Path(scratch))
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(), text_encoder=CLIPTextModel(text_config(vocab, 32)), tokenizer=tokenizer, unet=tiny_unet(32),
        scheduler=DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
