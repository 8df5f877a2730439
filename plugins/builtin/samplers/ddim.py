"""DDIM (Song et al. 2020, https://arxiv.org/abs/2010.02502), deterministic (eta = 0).

In the sigma parameterisation DDIM is exactly an Euler step of the probability-flow ODE:
the denoised estimate is kept and the noise it implies is rescaled to the next level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


def sample_ddim(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                disable: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: ``(batch, C, H, W)`` noise scaled by ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> sample, same shape."""
    from toolkit.families.diffusion import sample_loop

    def update(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return denoised + (sigma_next / sigma) * (x - denoised)

    return sample_loop(update, model, x, sigmas, extra_args, callback, disable)
