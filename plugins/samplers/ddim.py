"""DDIM (Song et al. 2020, https://arxiv.org/abs/2010.02502), deterministic (eta = 0).

In the sigma parameterisation DDIM is exactly an Euler step of the probability-flow ODE:
the denoised estimate is kept and the noise it implies is rescaled to the next level.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tqdm.auto import trange

from toolkit.diffusion import to_d


@torch.no_grad()
def sample_ddim(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                disable: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: ``(batch, C, H, W)`` noise scaled by ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> sample, same shape."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in trange(len(sigmas) - 1, disable=True if disable is None else disable):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = x + to_d(x, sigmas[i] * ones, denoised) * (sigmas[i + 1] - sigmas[i])
    return x
