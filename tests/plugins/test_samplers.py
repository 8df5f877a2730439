"""Contract tests every registered sampler passes, on a denoiser whose exact answer is
known: data drawn from N(mu, s^2) has the optimal denoiser D(x, sigma) =
(s^2 x + sigma^2 mu) / (s^2 + sigma^2), so samples must come out with mean mu and std s."""

from __future__ import annotations

import pytest
import torch

from toolkit.families.diffusion import VPDenoiser, beta_schedule
from toolkit.host.loading import get_registry, set_registry

MU, S = 0.3, 0.5


def gaussian_denoiser(prediction_type: str = "epsilon") -> VPDenoiser:
    alphas_cumprod = torch.cumprod(1 - beta_schedule("linear", 1000), dim=0)

    def network(x_t, t, **extra):
        """The exact network output for N(MU, S^2) data, from x_t and a (possibly fractional) t."""
        ab = alphas_cumprod
        i = t.clamp(0, 999)
        a = torch.lerp(ab[i.floor().long()], ab[i.ceil().long()], i.frac().double()).float().reshape(-1, 1, 1, 1)
        sigma2 = (1 - a) / a
        x = x_t / a.sqrt()
        x0 = (S**2 * x + sigma2 * MU) / (S**2 + sigma2)
        eps = (x - x0) / sigma2.sqrt()
        if prediction_type == "epsilon":
            return eps
        if prediction_type == "v_prediction":
            return a.sqrt() * eps - (1 - a).sqrt() * x0
        return x0

    return VPDenoiser(network, alphas_cumprod, prediction_type)


def sampler_names() -> list[str]:
    set_registry(None, None)
    return sorted(get_registry().samplers)


def test_the_shared_samplers_are_registered():
    assert {"ddpm", "ddim", "dpmpp-2m", "euler", "unipc"} <= set(sampler_names())


@pytest.mark.parametrize("name", sampler_names())
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_sampler_recovers_the_data_distribution(name, prediction_type):
    sampler = get_registry().get("samplers", name)
    model = gaussian_denoiser(prediction_type)
    # Second-order solvers need few steps, first-order ones more, ancestral DDPM all of them.
    steps = {"dpmpp-2m": 20, "unipc": 20, "ddpm": 1000}.get(name, 100)
    sigmas = model.get_sigmas(steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, 2, 2, generator=g) * sigmas[0]
    out = sampler(model, x, sigmas, generator=g)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert abs(out.mean().item() - MU) < 0.03 and abs(out.std().item() - S) < 0.03, (out.mean(), out.std())


@pytest.mark.parametrize("name", sampler_names())
def test_sampler_is_deterministic_given_the_generator(name):
    sampler, model = get_registry().get("samplers", name), gaussian_denoiser()
    sigmas = model.get_sigmas(8)
    runs = [sampler(model, torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(1)) * sigmas[0], sigmas,
                    generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    assert torch.equal(*runs)


def test_sigmas_and_timesteps_round_trip():
    model = gaussian_denoiser()
    sigmas = model.get_sigmas(10)
    assert sigmas.shape == (11,) and sigmas[-1] == 0 and (sigmas[:-1].diff() < 0).all()
    t = model.sigma_to_t(model.sigmas[[0, 500, 999]].float())
    assert torch.allclose(t, torch.tensor([0.0, 500.0, 999.0]), atol=1e-3)
