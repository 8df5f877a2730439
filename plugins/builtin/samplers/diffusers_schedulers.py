"""diffusers' schedulers behind k-diffusion's calling convention.

The adapter builds the scheduler from the denoiser's own training schedule
(``model.alphas_cumprod``, which ``toolkit.families.diffusion.VPDenoiser`` exposes) with
"trailing" timestep spacing, asks the denoiser for x_0 (``prediction_type="sample"``) and
converts between the sigma parameterisation and the scheduler's space. The number of steps
comes from ``sigmas``; their spacing is the scheduler's own.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any, Callable

from toolkit.errors import UnsupportedRequestError

if TYPE_CHECKING:
    import torch

# The scheduler class by name: diffusers (and torch) are imported at the first sampling run, not
# when the plugins load, because importing them is most of every `toolkit` command's start. Which
# space each scheduler's `sample` lives in: "ve" = x_0 + sigma * eps, "vp" = x_t.
SCHEDULERS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "dpmpp-2m": ("DPMSolverMultistepScheduler", "vp", {"algorithm_type": "dpmsolver++", "solver_order": 2},
                 "DPM-Solver++(2M) from diffusers (Lu et al. 2022)"),
    "euler": ("EulerDiscreteScheduler", "ve", {}, "Euler from diffusers (Karras et al. 2022)"),
    "unipc": ("UniPCMultistepScheduler", "vp", {"solver_order": 2}, "UniPC from diffusers (Zhao et al. 2023)"),
}


def make_sampler(name: str) -> Callable[..., torch.Tensor]:
    class_name, space, options, _ = SCHEDULERS[name]

    def sample(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
               extra_args: dict[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
               disable: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: ``(batch, C, H, W)`` noise scaled by ``sigmas[0]``; sigmas: ``(steps + 1,)`` -> sample."""
        import torch

        alphas_cumprod = getattr(model, "alphas_cumprod", None)
        if alphas_cumprod is None:
            raise UnsupportedRequestError(f"sampler '{name}' needs a model with a discrete training schedule; use ddim or ddpm")
        with torch.no_grad():
            previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
            scheduler_cls = getattr(importlib.import_module("diffusers"), class_name)
            scheduler = scheduler_cls(
                num_train_timesteps=len(alphas_cumprod), trained_betas=(1 - alphas_cumprod / previous).tolist(),
                prediction_type="sample", timestep_spacing="trailing", **options,
            )
            scheduler.set_timesteps(len(sigmas) - 1, device=x.device)
            # Stochastic schedulers take the generator; deterministic ones (UniPC) have no such argument.
            noise = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
            extra_args = extra_args or {}
            ones = x.new_ones(x.shape[0])
            sample_ = x if space == "ve" else x / (1 + sigmas[0] ** 2).sqrt()
            for i, t in enumerate(scheduler.timesteps):
                sigma = model.sigmas[int(t)].to(x)
                x_ve = sample_ if space == "ve" else sample_ * (1 + sigma**2).sqrt()
                scheduler.scale_model_input(sample_, t)  # keeps the scheduler's step bookkeeping
                denoised = model(x_ve, sigma * ones, **extra_args)
                if callback is not None:
                    callback({"x": x_ve, "i": i, "sigma": sigma, "denoised": denoised})
                sample_ = scheduler.step(denoised, t, sample_, **noise).prev_sample
            return sample_

    sample.__doc__ = SCHEDULERS[name][3]
    return sample
