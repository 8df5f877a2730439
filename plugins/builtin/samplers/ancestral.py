"""Ancestral DDPM sampling (Ho et al. 2020, https://arxiv.org/abs/2006.11239).

Each step samples the posterior q(x_{t-1} | x_t, x_0) with the model's estimate of x_0.
In the sigma parameterisation (x = x_0 + sigma * eps) that posterior is

    x_next = x_0 + (sigma_next / sigma)^2 (x - x_0) + sigma_next * sqrt(1 - (sigma_next / sigma)^2) * z

which is DDPM's posterior mean and variance (beta-tilde) rescaled. Stochastic: it needs
more steps than DDIM (the original paper samples with all 1000).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


def sample_ddpm(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                disable: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: ``(batch, C, H, W)`` noise scaled by ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> sample, same shape.
    Fresh noise comes from ``generator``, so a seed reproduces the sample."""
    import torch

    from toolkit.families.diffusion import sample_loop

    def update(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        ratio = (sigma_next / sigma) ** 2
        x = denoised + ratio * (x - denoised)
        if sigma_next == 0:
            return x
        noise = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device).to(x)
        return x + noise * sigma_next * (1 - ratio).sqrt()

    return sample_loop(update, model, x, sigmas, extra_args, callback, disable)
