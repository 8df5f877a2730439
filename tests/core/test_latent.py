"""GAN and VAE specifics: truncation, interpolation, the VAE's encoder, and the request
field that only latent-variable models take."""

from __future__ import annotations

import pytest
import torch
from toolkit_plugins.generators.gan import GANConfig, GANGenerator
from toolkit_plugins.generators.gan_discriminator import diff_augment
from toolkit_plugins.generators.vae import VAEConfig, VAEGenerator

from toolkit.components import Conditioning, GenerateArgs
from toolkit.errors import UnsupportedRequestError
from toolkit.families.conv_decoder import ClassGroupNorm
from toolkit.families.latent import sample_latents, slerp
from toolkit.generation.pipeline import plan
from toolkit.generation.request import GenerationRequest


def test_truncation_bounds_every_latent_and_is_seeded():
    z = sample_latents(500, 16, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    assert torch.equal(z, sample_latents(500, 16, torch.Generator().manual_seed(0), truncation=0.5))
    assert sample_latents(500, 16, torch.Generator().manual_seed(0)).abs().max() > 2  # untruncated


def test_slerp_ends_at_both_latents_and_keeps_the_norm():
    z0, z1 = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    path = slerp(z0, z1, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    # A straight line would dip to ~0.7 of the norm in the middle; the arc stays near it.
    assert path[2].norm() > 0.95 * min(z0.norm(), z1.norm())


def test_class_group_norm_starts_as_group_norm_and_learns_a_gain_per_class():
    x, labels = torch.randn(4, 16, 5, 5), torch.tensor([0, 1, 2, 1])
    norm = ClassGroupNorm(8, 16, num_classes=3)
    assert torch.allclose(norm(x, labels), torch.nn.GroupNorm(8, 16)(x), atol=1e-6)
    with torch.no_grad():
        norm.gain.weight[1] = 2.0
    out = norm(x, labels)
    assert torch.allclose(out[[1, 3]], 2 * torch.nn.GroupNorm(8, 16)(x)[[1, 3]], atol=1e-5)
    assert torch.allclose(out[[0, 2]], torch.nn.GroupNorm(8, 16)(x)[[0, 2]], atol=1e-6)


@pytest.fixture(params=["gan", "vae"])
def latent_model(request, registry):
    dataset = registry.get("datasets", "digits")(size=8)
    if request.param == "gan":
        return GANGenerator.from_config(GANConfig(latent_dim=8, class_dim=4, channels=8), dataset=dataset)
    return VAEGenerator.from_config(VAEConfig(latent_dim=4, class_dim=4, channels=8), dataset=dataset)


def test_interpolation_starts_and_ends_at_the_decoded_latents(latent_model):
    z0, z1 = torch.randn(2, latent_model.latent_dim, generator=torch.Generator().manual_seed(2))
    labels = torch.full((6,), 3)
    with torch.no_grad():
        frames = latent_model.interpolate(z0, z1, 6, labels)
        ends = latent_model.decode(torch.stack([z0, z1]), labels[:2]).clamp(-1, 1)
    assert frames.shape == (6, 3, 8, 8)
    assert torch.allclose(frames[0], ends[0], atol=1e-5) and torch.allclose(frames[-1], ends[1], atol=1e-5)


def test_without_a_class_each_image_gets_a_seeded_random_one(latent_model):
    args = lambda: GenerateArgs(n=8, height=8, width=8, generator=torch.Generator().manual_seed(4))  # noqa: E731
    labels = latent_model.labels_for(Conditioning(), 8, torch.Generator().manual_seed(4))
    assert labels.shape == (8,) and len(set(labels.tolist())) > 1
    with torch.no_grad():
        assert torch.equal(latent_model.generate(Conditioning(), args()), latent_model.generate(Conditioning(), args()))


def test_vae_encodes_to_the_latent_size_and_needs_the_class():
    from toolkit_plugins.datasets.digits import DigitsDataset

    vae = VAEGenerator.from_config(VAEConfig(latent_dim=4, class_dim=4, channels=8), dataset=DigitsDataset(size=8))
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    mean, logvar = vae.encode(images, torch.tensor([0, 1, 2]))
    assert mean.shape == logvar.shape == (3, 4)
    with pytest.raises(ValueError, match="class"):
        vae.encode(images)


def test_diff_augment_shifts_by_whole_pixels_within_bounds():
    x = torch.zeros(16, 3, 16, 16)
    x[:, :, 8, 8] = 1.0
    shifted = diff_augment(x, 0.125)  # up to 2 pixels
    for image in shifted:
        (ys, xs) = torch.nonzero(image[0], as_tuple=True)
        assert len(ys) == 1 and abs(int(ys) - 8) <= 2 and abs(int(xs) - 8) <= 2


def test_truncation_is_refused_by_models_without_a_latent(registry, tiny_model):
    with pytest.raises(UnsupportedRequestError, match="--truncation applies to models that sample a latent"):
        plan(GenerationRequest(model="tinym", truncation=0.7))


def test_truncation_reaches_a_gan(registry, home):
    dataset = registry.get("datasets", "digits")(size=8)
    gan = GANGenerator.from_config(GANConfig(latent_dim=8, class_dim=4, channels=8, default_truncation=0.8), dataset=dataset)
    gan.save_pretrained(home / "models" / "g")
    assert plan(GenerationRequest(model="g")).request.truncation == 0.8  # the model's default
    assert plan(GenerationRequest(model="g", truncation=0.3)).request.truncation == 0.3


def test_interpolate_command_writes_a_strip_and_refuses_what_it_cannot_do(run_toolkit, tmp_path):
    out = tmp_path / "strip.png"
    result = run_toolkit("interpolate", "--model", "gan-digits", "--class", "3", "--frames", "5", "--zoom", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    from PIL import Image

    assert Image.open(out).size == (5 * 32 + 6 * 2, 32 + 2 * 2)  # 5 frames of 16x16 enlarged 2x, 2 px gaps
    cases = [(["--model", "ddpm-digits"], "has no latent space to walk"),
             (["--model", "gan-digits", "--from-image", str(out)], "have no encoder"),
             (["--model", "gan-digits", "--class", "10"], "has classes 0-9")]
    for args, message in cases:
        failed = run_toolkit("interpolate", *args, "--out", str(tmp_path / "no.png"))
        assert failed.returncode != 0 and message in failed.stderr and not (tmp_path / "no.png").exists()


def test_vae_interpolates_between_two_real_images(run_toolkit, tmp_path):
    from toolkit_plugins.datasets.digits import DigitsDataset

    from toolkit.generation.images import tensor_to_pil

    digits = DigitsDataset(size=16)
    sevens = [i for i in range(len(digits)) if digits[i]["class_label"] == 7][:2]
    for name, index in zip("ab", sevens):
        tensor_to_pil(digits[index]["image"][None])[0].save(tmp_path / f"{name}.png")
    result = run_toolkit("interpolate", "--model", "vae-digits", "--class", "7", "--from-image", str(tmp_path / "a.png"),
                         "--to-image", str(tmp_path / "b.png"), "--frames", "4", "--out", str(tmp_path / "strip.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "strip.png").is_file()


def test_vae_gmm_prior_is_fitted_at_export_saved_and_sampled_per_class(registry, tmp_path):
    from toolkit_plugins.datasets.digits import DigitsDataset

    dataset = DigitsDataset(size=8)
    vae = VAEGenerator.from_config(VAEConfig(latent_dim=4, class_dim=4, channels=8, prior="gmm", prior_components=2), dataset=dataset)
    vae.prepare_export(dataset)
    assert vae.mixture["weights"].shape == (10, 2) and vae.mixture["scale_tril"].shape == (10, 2, 4, 4)
    vae.save_pretrained(tmp_path / "v")
    loaded = VAEGenerator.from_pretrained(tmp_path / "v")
    labels = torch.full((2000,), 3)
    z = loaded.draw_latents(2000, labels, torch.Generator().manual_seed(0))
    assert torch.equal(z, loaded.draw_latents(2000, labels, torch.Generator().manual_seed(0)))
    # Class 3's draws follow class 3's mixture: their mean is its components' weighted mean.
    expected = (vae.mixture["weights"][3, :, None] * vae.mixture["means"][3]).sum(0)
    assert torch.allclose(z.mean(0), expected, atol=0.1 * float(z.std()))
