"""Noise schedules, and the wrapper that lets every sampler drive every diffusion model.

Diffusion generators train a network on ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` with
a discrete schedule ``a_t`` (alphas_cumprod). Samplers use k-diffusion's convention
instead: a denoiser ``D(x, sigma) -> x_0`` on ``x = x_0 + sigma * eps``. The two are the
same process up to a scale, ``x = x_t / sqrt(a_t)`` and ``sigma = sqrt((1 - a_t) / a_t)``
(Karras et al. 2022, https://arxiv.org/abs/2206.00364), which ``VPDenoiser`` converts.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from tqdm.auto import trange

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def beta_schedule(name: str, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Betas of shape ``(num_train_timesteps,)``.

    linear: Ho et al. 2020 (https://arxiv.org/abs/2006.11239), 1e-4 to 0.02 at T = 1000.
    cosine: Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672), s = 0.008.
    """
    if name == "linear":
        scale = 1000 / num_train_timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_train_timesteps, dtype=torch.float64)
    if name == "cosine":
        steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
        alphas_cumprod = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
        return betas.clamp(max=0.999)
    raise ValueError(f"unknown beta schedule '{name}'; use 'linear' or 'cosine'")


class VPDenoiser:
    """k-diffusion's denoiser interface over a network trained on a discrete VP schedule.

    ``network(x_t, t, **extra_args)`` predicts epsilon, v or x_0 (``prediction_type``) from
    ``x_t`` of shape ``(batch, C, H, W)`` and float timesteps ``t`` of shape ``(batch,)``.
    """

    def __init__(self, network: Callable[..., torch.Tensor], alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                 clip_denoised: float | None = None):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, not {prediction_type!r}")
        self.network = network
        self.prediction_type = prediction_type
        # x_0 = x - sigma * eps multiplies any error in eps by sigma (~2e4 at the cosine schedule's
        # last step), so DDPM clips x_0 to the data range (Ho et al. 2020, "clip_sample" in diffusers).
        self.clip_denoised = clip_denoised
        self.alphas_cumprod = alphas_cumprod.double()  # (T,) the training schedule; diffusers adapters read it
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()  # (T,) increasing
        self.log_sigmas = self.sigmas.log()

    @property
    def num_train_timesteps(self) -> int:
        return len(self.sigmas)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep for each sigma, interpolated in log-sigma: ``(batch,)``."""
        log_sigma = sigma.double().clamp(min=self.sigmas[0]).log()
        index = torch.searchsorted(self.log_sigmas.to(sigma.device), log_sigma).clamp(1, len(self.sigmas) - 1)
        low, high = self.log_sigmas.to(sigma.device)[index - 1], self.log_sigmas.to(sigma.device)[index]
        w = ((log_sigma - low) / (high - low)).clamp(0, 1)
        return (index - 1 + w).float()

    def get_sigmas(self, steps: int) -> torch.Tensor:
        """``steps`` noise levels evenly spaced in training time from the noisiest, then 0:
        shape ``(steps + 1,)`` ("trailing" spacing, so the first step is pure noise)."""
        t = torch.linspace(self.num_train_timesteps - 1, 0, steps + 1, dtype=torch.float64)[:-1]
        sigmas = torch.exp(torch.lerp(self.log_sigmas[t.floor().long()], self.log_sigmas[t.ceil().long()], t.frac()))
        return torch.cat([sigmas, sigmas.new_zeros(1)]).float()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        """x: ``(batch, C, H, W)`` at noise level sigma ``(batch,)`` -> denoised, same shape as x."""
        s = sigma.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        c_in = 1 / (s**2 + 1).sqrt()
        out = self.network(x * c_in, self.sigma_to_t(sigma), **extra_args)
        if self.prediction_type == "epsilon":
            denoised = x - s * out
        elif self.prediction_type == "v_prediction":
            denoised = x / (s**2 + 1) - out * s / (s**2 + 1).sqrt()
        else:
            denoised = out
        return denoised if self.clip_denoised is None else denoised.clamp(-self.clip_denoised, self.clip_denoised)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE's derivative dx/dsigma, same shape as ``x``."""
    return (x - denoised) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample_loop(update: Update, model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                disable: bool | None = None) -> torch.Tensor:
    """The loop single-step samplers share: denoise at each sigma, report, then
    ``x = update(x, denoised, sigma, sigma_next)``. x: ``(batch, C, H, W)``; sigmas: ``(steps + 1,)``."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in trange(len(sigmas) - 1, disable=True if disable is None else disable):
        denoised = model(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = update(x, denoised, sigmas[i], sigmas[i + 1])
    return x
