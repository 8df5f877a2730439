"""Ancestral DDPM sampling (Ho et al. 2020, https://arxiv.org/abs/2006.11239).

Each step samples the posterior q(x_{t-1} | x_t, x_0) with the model's estimate of x_0.
In the sigma parameterisation (x = x_0 + sigma * eps) that posterior is

    x_next = x_0 + (sigma_next / sigma)^2 (x - x_0) + sigma_next * sqrt(1 - (sigma_next / sigma)^2) * z

which is DDPM's posterior mean and variance (beta-tilde) rescaled. Stochastic: it needs
more steps than DDIM (the original paper samples with all 1000).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tqdm.auto import trange



@torch.no_grad()
def sample_ddpm(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                disable: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: ``(batch, C, H, W)`` noise scaled by ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> sample, same shape.
    Fresh noise comes from ``generator``, so a seed reproduces the sample."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in trange(len(sigmas) - 1, disable=True if disable is None else disable):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        ratio = (sigmas[i + 1] / sigmas[i]) ** 2
        x = denoised + ratio * (x - denoised)
        if sigmas[i + 1] > 0:
            noise = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device).to(x)
            x = x + noise * sigmas[i + 1] * (1 - ratio).sqrt()
    return x
