"""The `diffusers` generator on tiny random Stable Diffusion 1.x and SDXL pipeline folders.

No weights can be downloaded here, so each test pipeline is built from random weights,
saved with diffusers' own ``save_pretrained`` and loaded back by path: the loading code is
the one a user with real weights relies on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_tiny_sd, text_config, tiny_tokenizer, tiny_unet, tiny_vae

from toolkit.generation import pipeline
from toolkit.errors import ModelError, UnsupportedRequestError

@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory) -> Path:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    root = tmp_path_factory.mktemp("sdxl")
    torch.manual_seed(0)
    tokenizer, vocab = tiny_tokenizer(root / "tok")
    unet = tiny_unet(64, addition_embed_type="text_time", addition_time_embed_dim=8,
                     projection_class_embeddings_input_dim=16 + 6 * 8)
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(), text_encoder=CLIPTextModel(text_config(vocab, 32)),
        text_encoder_2=CLIPTextModelWithProjection(text_config(vocab, 32, projection=16)),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
    pipe.save_pretrained(root / "tiny-sdxl", safe_serialization=True)
    return root / "tiny-sdxl"


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


@pytest.mark.parametrize("which", ["sd_folder", "sdxl_folder"])
def test_a_pipeline_folder_runs_through_the_request_schema(which, request, registry):
    folder = request.getfixturevalue(which)
    result = pipeline.generate(model=str(folder), prompt="a red circle", n=2, seed=3, steps=3, registry=registry)
    assert result.plan.model.generator == "diffusers"
    assert [image.size for image in result.images] == [(16, 16), (16, 16)]
    again = pipeline.generate(model=str(folder), prompt="a red circle", n=2, seed=3, steps=3, registry=registry)
    assert np.array_equal(pixels(result), pixels(again)), "same seed, same pixels"
    other = pipeline.generate(model=str(folder), prompt="a blue square", n=2, seed=3, steps=3, registry=registry)
    assert not np.array_equal(pixels(result), pixels(other)), "the prompt reaches the UNet"
    negative = pipeline.generate(model=str(folder), prompt="a red circle", negative_prompt="blue", n=2, seed=3, steps=3,
                                 registry=registry)
    assert not np.array_equal(pixels(result), pixels(negative)), "the negative prompt reaches the UNet"
    euler = pipeline.generate(model=str(folder), prompt="a red circle", n=1, seed=3, steps=3, sampler="euler", registry=registry)
    assert euler.images[0].size == (16, 16)


def test_our_ddim_matches_diffusers_own_pipeline(sd_folder, registry):
    """Same UNet, same start: our DDIM sampler through VPDenoiser and diffusers' own
    pipeline with its DDIMScheduler (trailing spacing, eta 0) give the same image."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from toolkit.components import Conditioning, GenerateArgs
    from toolkit_plugins.generators.diffusers_pipeline import DiffusersGenerator, DiffusersTextConditioner

    model = DiffusersGenerator.from_pretrained(sd_folder)
    text = DiffusersTextConditioner(model.pipe)
    steps, scale = 5, 3.0
    ours = model.generate(Conditioning(text=text.encode("a red circle", n=1, height=16, width=16),
                                       negative_text=text.encode("", n=1, height=16, width=16)),
                          GenerateArgs(n=1, height=16, width=16, generator=torch.Generator().manual_seed(0), steps=steps,
                                       guidance_scale=scale, sampler=registry.get("samplers", "ddim")))
    # Our start is noise * sigma_max in k-diffusion's scale, i.e. noise * sqrt(1 - a_T) in diffusers'.
    a_t = model.alphas_cumprod[-1].float()
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * (1 - a_t).sqrt()
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing", clip_sample=False,
                                               set_alpha_to_one=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle", negative_prompt="", num_inference_steps=steps, guidance_scale=scale, latents=start,
                  output_type="pt").images  # (1, 3, H, W) in [0, 1]
    assert torch.allclose((ours + 1) / 2, theirs.clamp(0, 1), atol=2e-3), (((ours + 1) / 2 - theirs).abs().max())


def test_folder_listing_and_refusals(sd_folder, registry, tmp_path):
    from toolkit.generation.store import find_model

    info = find_model(str(sd_folder), registry)
    assert info.accepts == {"text", "init_image", "mask"} and (16, 16) in info.sizes
    with pytest.raises(UnsupportedRequestError, match="does not accept class"):
        pipeline.plan(pipeline.parse_request(None, model=str(sd_folder), prompt="x", class_label=1), registry)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        find_model(str(broken), registry)
