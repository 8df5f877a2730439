"""Every registered sampler, the tiny test plugin's included, passes the checks of
``toolkit.contracts`` on a toy denoiser: the full k-diffusion signature, the sample at
sigma 0 where the denoiser says, extra_args passed on, one callback per step, and
randomness only from the generator it is given. (test_samplers.py checks the shared
samplers' accuracy on a denoiser with a known data distribution.) The checks themselves
catch a sampler that breaks them."""

from __future__ import annotations

import pytest
import toolkit_tiny
import torch

from toolkit.contracts import check_sampler_callback, check_sampler_randomness, check_sampler_result
from toolkit.host.loading import plugins_with_extra

# Samplers whose contract is checked in another file, with where and why. None yet.
TESTED_ELSEWHERE: dict[str, str] = {}
# Known breaches, one (sampler, check) each: they fail here until fixed, and pass the suite meanwhile.
# Components known to break one check, with why: each is an xfail(strict) until fixed.
KNOWN_BREACHES: dict[tuple[str, str], str] = {}


def params(check: str) -> list:
    """The samplers the ``registry`` fixture holds (known at collection time), each marked
    xfail where ``KNOWN_BREACHES`` lists it for ``check``."""
    _, registry = plugins_with_extra([("tiny", toolkit_tiny)])
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREACHES[(name, check)]))
            if (name, check) in KNOWN_BREACHES else name
            for name in sorted(set(registry.samplers) - set(TESTED_ELSEWHERE))]


def test_every_registered_sampler_is_checked(registry):
    checked = {p if isinstance(p, str) else p.values[0] for p in params("result")}
    assert set(registry.samplers) == checked | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize("name", params("result"))
def test_sampler_ends_where_the_denoiser_points(name, registry):
    check_sampler_result(name, registry.get("samplers", name))


@pytest.mark.parametrize("name", params("callback"))
def test_sampler_reports_each_step(name, registry):
    check_sampler_callback(name, registry.get("samplers", name))


@pytest.mark.parametrize("name", params("randomness"))
def test_sampler_draws_only_from_its_generator(name, registry):
    check_sampler_randomness(name, registry.get("samplers", name))


# -- the checks catch what they are meant to ------------------------------------------------


def global_rng_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, generator=None):
    """Euler steps with fresh noise from the global RNG, and no extra_args passed on."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i].expand(x.shape[0]))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = denoised + (x - denoised) * sigmas[i + 1] / sigmas[i] + 0.01 * sigmas[i + 1] * torch.randn_like(x)
    return x


def test_the_checks_catch_a_broken_sampler():
    with pytest.raises(AssertionError, match="did not pass extra_args to every model call"):
        check_sampler_result("global-rng-euler", global_rng_euler)
    with pytest.raises(AssertionError, match="drew from the global torch RNG"):
        check_sampler_randomness("global-rng-euler", global_rng_euler)
    check_sampler_callback("global-rng-euler", global_rng_euler)  # this part it keeps
