"""Inpainting (``toolkit.families.inpainting``) through the mask and init-image conditioners,
the ddpm generator and the diffusers generator: outside the mask every output pixel is the
input's, the edge cases behave as documented, and the figures of ``toolkit.eval.inpainting``
measure what they say. Tiny models and a few steps keep it fast."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_diffusers_generator import sd_folder  # noqa: F401  (a module fixture: the tiny SD pipeline folder)

from toolkit.components import Conditioning
from toolkit.errors import ImageInputError, InvalidRequestError, ToolkitWarning, UnsupportedRequestError
from toolkit.eval.inpainting import seam_gradient, seam_pairs
from toolkit.families.inpainting import Inpainting, KnownRegionDenoiser, inpainting_inputs, sample_resampled, seamless_fill
from toolkit.generation import pipeline
from toolkit.generation.images import pil_to_tensor, tensor_to_pil

SIZE = 8


@pytest.fixture
def ddpm_folder(registry, home):
    """A tiny class-conditional ddpm model (8x8, untrained) in the user folder."""
    cls = registry.get("generators", "ddpm")
    dataset = registry.get("datasets", "digits")(size=SIZE)
    config = cls.Config(channels=8, channel_mults=(1, 2), attention_levels=(1,), num_train_timesteps=50, default_steps=4)
    folder = home / "models" / "tiny-ddpm"
    cls.from_config(config, dataset=dataset).save_pretrained(folder)
    return folder


def picture(size: int = SIZE, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def box_mask(size: int = SIZE, value: int = 255) -> Image.Image:
    """Black with a ``value`` box over rows and columns size/4 to 3*size/4."""
    mask = Image.new("L", (size, size), 0)
    mask.paste(value, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# -- the shared pieces -----------------------------------------------------------------------


def test_every_8_bit_level_survives_the_composite_exactly():
    """An init image decoded from 8 bits is k / 127.5 - 1; where the mask is 0 the composite
    is that value, and tensor_to_pil rounds it back to k, whatever was generated there."""
    levels = np.arange(256, dtype=np.uint8)
    image = Image.fromarray(np.stack([levels.reshape(16, 16)] * 3, axis=-1))
    init = pil_to_tensor(image)
    generated = torch.rand(init.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = Inpainting(torch.zeros(1, 1, 16, 16), init).composite(generated)
    assert np.array_equal(np.asarray(tensor_to_pil(out)[0]), np.asarray(image))
    redrawn = Inpainting(torch.ones(1, 1, 16, 16), init).composite(generated)
    assert torch.equal(redrawn, generated)


def test_the_wrapped_denoiser_keeps_the_known_region_and_the_schedule():
    known = torch.full((2, 3, 4, 4), 0.25)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1.0
    mask[:, :, 2, 0] = 0.5

    class Denoiser:
        sigmas = torch.tensor([0.1, 1.0])

        def __call__(self, x, sigma):
            return torch.full_like(x, -0.75)

    wrapped = KnownRegionDenoiser(Denoiser(), known, mask)
    out = wrapped(torch.randn(2, 3, 4, 4), torch.ones(2))
    assert (out[:, :, :2] == -0.75).all() and (out[:, :, 3] == 0.25).all()
    assert torch.allclose(out[:, :, 2, 0], torch.tensor(-0.25))
    assert wrapped.sigmas is Denoiser.sigmas, "samplers read the wrapped denoiser's schedule through the wrapper"


def test_with_ddim_the_known_region_stays_the_init_image_plus_the_starting_noise(registry):
    """The module docstring's claim: no re-noising is needed, each step's x outside the mask
    is ``init + sigma * starting noise`` when sampling starts from ``start(noise)``."""
    known = torch.rand(1, 3, 6, 6) * 2 - 1
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 1:4, 1:4] = 1
    model = KnownRegionDenoiser(lambda x, sigma: torch.tanh(x), known, mask)
    sigmas = torch.tensor([8.0, 3.0, 1.0, 0.3, 0.0])
    noise = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    seen = []
    out = registry.get("samplers", "ddim")(model, model.start(noise * sigmas[0]), sigmas, callback=lambda info: seen.append(info))
    outside = mask.expand_as(known) == 0
    for info in seen:
        assert torch.allclose(info["x"][outside], (known + info["sigma"] * noise)[outside], atol=1e-5)
    assert torch.allclose(out[outside], known[outside], atol=1e-6)


def test_inputs_edge_cases():
    init, mask = torch.zeros(2, 3, 4, 4), torch.ones(2, 1, 4, 4)
    assert inpainting_inputs(Conditioning(), 2, 4, 4) is None
    with pytest.raises(InvalidRequestError, match="--init-image needs a --mask"):
        inpainting_inputs(Conditioning(init_image=init), 2, 4, 4)
    with pytest.raises(ValueError, match=r"expected \(2, 1, 4, 4\)"):
        inpainting_inputs(Conditioning(init_image=init, mask=torch.ones(2, 1, 4, 5)), 2, 4, 4)
    assert not inpainting_inputs(Conditioning(init_image=init, mask=mask), 2, 4, 4).keeps_everything
    with pytest.warns(ToolkitWarning, match="the mask is all black"):
        assert inpainting_inputs(Conditioning(init_image=init, mask=mask * 0), 2, 4, 4).keeps_everything


def test_a_latent_cell_is_redrawn_when_any_of_its_pixels_is():
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, 5, 2] = 0.3
    small = Inpainting(mask, torch.zeros(1, 3, 8, 8)).mask_at(4, 4)
    assert small.shape == (1, 1, 4, 4) and small[0, 0, 2, 1] == pytest.approx(0.3) and small.sum() == pytest.approx(0.3)


def test_resampling_without_rounds_is_the_plain_sampler(registry):
    sampler = registry.get("samplers", "ddpm")
    model = lambda x, sigma: torch.tanh(x)
    sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.0])
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    plain = sampler(model, x, sigmas, generator=torch.Generator().manual_seed(1))
    calls = []
    same = sample_resampled(sampler, model, x, sigmas, resample=0, jump=2, generator=torch.Generator().manual_seed(1),
                            progress=lambda done, total: calls.append((done, total)))
    assert torch.equal(plain, same) and calls[-1] == (5, 5)
    calls.clear()
    sample_resampled(sampler, model, x, sigmas, resample=2, jump=2, generator=torch.Generator().manual_seed(1),
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (2 * 3 + 2 * 3 + 1, 13), "two resampled segments of two steps, then the last one once"


# -- the conditioners --------------------------------------------------------------------------


def test_the_mask_conditioner_reads_grey_transparency_jpeg_noise_and_16_bit(registry):
    mask = registry.get("conditioners", "mask")()
    levels = np.array([[0, 5, 128, 250]], dtype=np.uint8).repeat(4, axis=0)
    out = mask.encode(Image.fromarray(levels), n=2, height=4, width=4)
    assert out.shape == (2, 1, 4, 4) and out.dtype == torch.float32
    assert out[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 128 / 255, 1.0]), "near black/white snap; grey is soft"
    brush = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    brush.paste((255, 255, 255, 255), (0, 0, 2, 4))
    assert mask.encode(brush, n=1, height=4, width=4)[0, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0], "transparent = keep"
    deep = Image.fromarray(levels.astype(np.uint16) * 257)
    assert torch.equal(mask.encode(deep, n=1, height=4, width=4), out[:1])


def test_a_mask_of_another_size_is_area_resized_with_one_warning(registry):
    mask = registry.get("conditioners", "mask")()
    big = np.zeros((16, 16), dtype=np.uint8)
    big[4:11, 4:12] = 255  # rows 4-10: row 5 at half size (rows 10 and 11 here) is half covered
    with pytest.warns(ToolkitWarning, match="the mask is 16x16; resized to 8x8, the image size, by area averaging"):
        out = mask.encode(Image.fromarray(big), n=1, height=8, width=8)[0, 0]
    assert out[2, 3] == 1.0 and out[5, 3] == pytest.approx(128 / 255, abs=1 / 255) and out[6].sum() == 0
    with pytest.raises(ImageInputError, match="crop it to a 8:8 aspect ratio"):
        mask.encode(Image.new("L", (16, 8)), n=1, height=8, width=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right size: no warning
        mask.encode(Image.fromarray(big[::2, ::2]), n=1, height=8, width=8)


def test_an_init_image_of_another_size_is_resized_with_one_warning(registry):
    init = registry.get("conditioners", "init_image")()
    with pytest.warns(ToolkitWarning, match="the init image is 16x16; resized to 8x8"):
        assert init.encode(picture(16), n=2, height=8, width=8).shape == (2, 3, 8, 8)


# -- the ddpm generator ------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "euler"])
def test_ddpm_keeps_every_pixel_outside_the_mask(ddpm_folder, registry, sampler):
    """With the resampling sampler (ddpm) and one that cannot resample (euler)."""
    init = picture()
    result = pipeline.generate(model=str(ddpm_folder), class_label=3, init_image=init, mask=box_mask(), n=2, seed=0,
                               sampler=sampler, registry=registry)
    keep = np.asarray(box_mask()) == 0
    for image in result.images:
        assert np.abs(pixels(image) - pixels(init))[keep].max() == 0
        assert np.abs(pixels(image) - pixels(init))[~keep].max() > 0, "the masked box is redrawn"


def test_ddpm_soft_mask_blends(ddpm_folder, registry):
    init = picture()
    hard = pipeline.generate(model=str(ddpm_folder), class_label=3, init_image=init, mask=box_mask(), seed=0,
                             registry=registry)
    soft = pipeline.generate(model=str(ddpm_folder), class_label=3, init_image=init, mask=box_mask(value=128), seed=0,
                             registry=registry)
    inside = np.asarray(box_mask()) > 0
    a, h, s = pixels(init)[inside], pixels(hard.images[0])[inside], pixels(soft.images[0])[inside]
    assert np.abs(s - a).mean() < np.abs(h - a).mean(), "half a mask changes the pixels less than a full one"


def test_ddpm_edge_cases(ddpm_folder, registry):
    init = picture()
    with pytest.warns(ToolkitWarning, match="all black"):
        black = pipeline.generate(model=str(ddpm_folder), class_label=3, init_image=init, mask=Image.new("L", (SIZE, SIZE)),
                                  seed=0, registry=registry)
    assert np.array_equal(pixels(black.images[0]), pixels(init))
    for sampler in ("ddpm", "euler"):
        plain = pipeline.generate(model=str(ddpm_folder), class_label=3, seed=5, sampler=sampler, registry=registry)
        white = pipeline.generate(model=str(ddpm_folder), class_label=3, seed=5, sampler=sampler, init_image=init,
                                  mask=Image.new("L", (SIZE, SIZE), 255), registry=registry)
        assert np.array_equal(pixels(plain.images[0]), pixels(white.images[0])), "an all-white mask is plain generation"
    with pytest.raises(InvalidRequestError, match="pass --init-image too"):
        pipeline.plan(pipeline.parse_request(None, model=str(ddpm_folder), mask=box_mask()), registry)
    with pytest.raises(InvalidRequestError, match="--init-image needs a --mask"):
        pipeline.generate(model=str(ddpm_folder), class_label=3, init_image=init, registry=registry)


def test_ddpm_inpainting_replays_bit_for_bit(ddpm_folder, registry, tmp_path):
    result = pipeline.generate(model=str(ddpm_folder), class_label=2, init_image=picture(), mask=box_mask(), seed=4,
                               registry=registry)
    path = pipeline.save(result, tmp_path)[0]
    again, _ = pipeline.replay(path, registry=registry)
    assert np.array_equal(pixels(again), pixels(Image.open(path)))


def test_the_shipped_ddpm_models_accept_inpainting(registry):
    for name in ("ddpm-digits", "ddpm-shapes"):
        assert {"init_image", "mask"} <= pipeline.find_model(name, registry).accepts


# -- the diffusers generator -------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "ddim"])
def test_a_diffusers_pipeline_inpaints_in_latent_space(sd_folder, registry, sampler):  # noqa: F811
    init, mask = picture(16, seed=2), box_mask(16)
    result = pipeline.generate(model=str(sd_folder), prompt="a red circle", init_image=init, mask=mask, n=2, seed=1,
                               steps=3, sampler=sampler, registry=registry)
    keep = np.asarray(mask) == 0
    for image in result.images:
        assert image.size == (16, 16)
        assert np.abs(pixels(image) - pixels(init))[keep].max() == 0
        assert np.abs(pixels(image) - pixels(init))[~keep].max() > 0
    assert {"init_image", "mask", "text"} == pipeline.find_model(str(sd_folder), registry).accepts


def test_a_model_without_inpainting_refuses_a_mask(registry):
    with pytest.raises(UnsupportedRequestError, match="does not accept init_image, mask"):
        pipeline.plan(pipeline.parse_request(None, model="gan-digits", class_label=1, init_image=picture(16),
                                             mask=box_mask(16)), registry)


# -- the figures -------------------------------------------------------------------------------


def test_the_seam_is_measured_across_the_mask_border_only():
    mask = np.zeros((6, 6), np.float32)
    mask[2:4, 2:4] = 1
    inside, outside = seam_pairs(mask)
    assert len(inside) == len(outside) == 8, "two pairs on each side of a 2x2 box"
    image = np.zeros((6, 6, 3), np.uint8)
    image[2:4, 2:4] = 90  # a step of 90 levels exactly at the border
    image[0, :] = 255  # far from the border: not counted
    assert seam_gradient(image, (inside, outside)) == pytest.approx(90.0)


def test_the_evaluation_reports_exact_outsides_and_a_seam(ddpm_folder, registry):
    """On a dataset without masks (digits: a centred box), with a feathered edge."""
    from toolkit.eval.inpainting import evaluate_inpainting
    from toolkit.generation.model_folder import update_model_config

    update_model_config(ddpm_folder, {"dataset": {"name": "digits", "size": SIZE, "options": {}, "seed": 0}})
    report = evaluate_inpainting(str(ddpm_folder), n=3, steps=2, feather=1, registry=registry, examples=2)
    assert report["outside_max_difference"] == 0 and report["images_changed_outside"] == 0
    assert report["conditioning"] == ["class_label"] and report["seam"] >= 0 and report["seam_unedited"] >= 0
    mask = report["examples"][0][1]
    assert mask.getpixel((0, 0)) == 0 and mask.getpixel((SIZE // 2, SIZE // 2)) == 255
    assert 0 < mask.getpixel((1, SIZE // 2)) < 255, "feathered: grey just outside the box"


def test_eval_inpainting_command_prints_the_figures_and_writes_the_report(ddpm_folder, tmp_path):
    from helpers import invoke

    from toolkit.generation.model_folder import update_model_config

    update_model_config(ddpm_folder, {"dataset": {"name": "digits", "size": SIZE, "options": {}, "seed": 0}})
    out = tmp_path / "inpainting.json"
    result = invoke("eval", "--model", str(ddpm_folder), "--inpainting", "2", "--steps", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "outside max difference" in result.output and "seam" in result.output
    report = json.loads(out.read_text())
    assert report["n"] == 2 and report["outside_max_difference"] == 0 and report["feather"] == 0


def test_seamless_fill_meets_the_kept_pixels_and_keeps_the_generated_gradients():
    """Poisson blending: a generated region that is the init image plus an even offset (a
    decoder's tone error) comes back as the init image; an object drawn inside keeps its
    edges (its step to the background) exactly; nothing outside the region changes."""
    torch.manual_seed(0)
    init = torch.rand(1, 3, 16, 16) * 2 - 1
    region = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    region[..., 4:12, 5:11] = True
    offset = init + 0.2
    filled = seamless_fill(offset, init, region)
    assert torch.allclose(filled[region.expand_as(filled)], init[region.expand_as(init)], atol=1e-2)
    assert torch.equal(filled[~region.expand_as(filled)], offset[~region.expand_as(offset)])

    flat = torch.full((1, 3, 16, 16), 0.6)
    drawn = flat.clone()
    drawn[..., 6:10, 7:9] = -0.4  # an object inside the region, 1.0 below its background
    generated = drawn + 0.1  # the whole redrawn tone 0.1 off the kept one
    filled = seamless_fill(generated, flat, region)
    inside = filled[0, 0, 4:12, 5:11]
    assert torch.allclose(inside[0, 0], torch.tensor(0.6, dtype=inside.dtype), atol=2e-2)  # meets the border
    assert torch.allclose(inside[2:6, 2:4] - inside[0, 0], torch.tensor(-1.0, dtype=inside.dtype), atol=2e-2)

    everything = torch.ones(1, 1, 16, 16, dtype=torch.bool)  # nothing kept: nothing to meet
    assert torch.equal(seamless_fill(generated, flat, everything), generated)
