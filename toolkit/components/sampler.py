"""Samplers follow k-diffusion's calling convention, so they are interchangeable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import torch


class Denoiser(Protocol):
    """A model wrapped to predict the clean image: ``denoised = model(x, sigma, **extra_args)``.

    x: ``(batch, channels, height, width)`` noisy input; sigma: ``(batch,)`` noise levels.
    Returns the denoised estimate, same shape as ``x``.
    """

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor: ...


class Sampler(Protocol):
    """Every sampler has k-diffusion's signature, so they are interchangeable:

    ``sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, generator=None) -> x``

    x: ``(batch, channels, height, width)`` initial noise already scaled by ``sigmas[0]``.
    sigmas: ``(steps + 1,)`` decreasing noise levels ending in 0.
    Returns the sample at ``sigmas[-1]``, same shape as ``x``.
    """

    def __call__(
        self,
        model: Denoiser,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        extra_args: dict[str, Any] | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        disable: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...
