"""The sampler contract (``toolkit.components.Sampler``): k-diffusion's signature
``sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, generator=None)``.

The checks drive each sampler with a toy denoiser whose answer is known: it always
predicts the same clean image, so every sampler must end exactly there (the sample at
sigma 0 is the denoised estimate). It wraps a discrete training schedule with
``toolkit.families.diffusion.VPDenoiser``, as the diffusion generators do, so samplers
that read the schedule (``model.alphas_cumprod``, ``model.sigmas``) find it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from toolkit.families.diffusion import VPDenoiser, beta_schedule

from .expect import expect, expect_tensor

SHAPE = (2, 3, 6, 10)  # (batch, channels, height, width): not square, so a swapped axis shows


class ToyDenoiser(VPDenoiser):
    """A VP denoiser over ``predict(x_t, t) -> x_0`` (``(batch, C, H, W)``, ``(batch,)`` ->
    ``(batch, C, H, W)``) that records the ``extra_args`` of each call (``calls``)."""

    def __init__(self, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], num_train_timesteps: int = 1000):
        alphas_cumprod = torch.cumprod(1 - beta_schedule("linear", num_train_timesteps), dim=0)
        super().__init__(self._network, alphas_cumprod, prediction_type="sample")
        self.predict = predict
        self.calls: list[dict[str, Any]] = []

    def _network(self, x_t: torch.Tensor, t: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        self.calls.append(extra_args)
        return self.predict(x_t, t)


def _setup(steps: int, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
           seed: int = 0) -> tuple[ToyDenoiser, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(denoiser, x: noise scaled by sigmas[0], sigmas ``(steps + 1,)``, target): the
    denoiser predicts ``target`` whatever its input unless ``predict`` says otherwise."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(SHAPE, generator=g) * 2 - 1
    model = ToyDenoiser(predict or (lambda x_t, t: target.to(x_t)))
    sigmas = model.get_sigmas(steps)
    return model, torch.randn(SHAPE, generator=g) * sigmas[0], sigmas, target


def check_sampler(name: str, sampler: Callable[..., torch.Tensor], *, steps: int = 4) -> None:
    """Every check below."""
    check_sampler_result(name, sampler, steps=steps)
    check_sampler_callback(name, sampler, steps=steps)
    check_sampler_randomness(name, sampler, steps=steps)


def check_sampler_result(name: str, sampler: Callable[..., torch.Tensor], *, steps: int = 4) -> torch.Tensor:
    """Called with the full signature, the sampler returns x's shape, finite, at the toy
    denoiser's image, and passes ``extra_args`` to every model call. Returns the sample."""
    what = f"sampler '{name}'"
    model, x, sigmas, target = _setup(steps)
    marker = object()
    out = sampler(model, x, sigmas, extra_args={"contract_marker": marker}, callback=None, disable=True,
                  generator=torch.Generator().manual_seed(1))
    expect_tensor(out, f"{what}: result", tuple(x.shape))
    error = float((out - target).abs().max())
    expect(error < 1e-3, f"{what}: a denoiser that always predicts the same image must end at it; off by {error:.3g}")
    expect(bool(model.calls), f"{what}: never called the model")
    expect(all(call.get("contract_marker") is marker for call in model.calls),
           f"{what}: did not pass extra_args to every model call ({model.calls[0]})")
    return out


def check_sampler_callback(name: str, sampler: Callable[..., torch.Tensor], *, steps: int = 4) -> None:
    """``callback`` is called once per step with ``{"i": step, "x": ..., "denoised": ...}``,
    ``i`` counting 0 to steps - 1 (generators turn it into progress)."""
    what = f"sampler '{name}'"
    model, x, sigmas, _ = _setup(steps)
    seen: list[dict[str, Any]] = []
    sampler(model, x, sigmas, callback=seen.append, generator=torch.Generator().manual_seed(1))
    counted = [info.get("i") if isinstance(info, dict) else info for info in seen]
    expect(counted == list(range(steps)), f"{what}: callback must be called once per step with i = 0..{steps - 1}; "
                                          f"got {counted}")
    for info in seen:
        for key in ("x", "denoised"):
            expect_tensor(info.get(key), f"{what}: callback's '{key}' at step {info['i']}", tuple(x.shape))


def check_sampler_randomness(name: str, sampler: Callable[..., torch.Tensor], *, steps: int = 4) -> None:
    """The same ``generator`` seed gives the same sample, and the global RNG is never
    touched: a recipe's seed must reproduce an image whatever ran before it. The denoiser
    here answers according to its input, so the sample depends on every step's noise."""
    what = f"sampler '{name}'"
    runs = []
    for _ in range(2):
        model, x, sigmas, _ = _setup(steps, predict=lambda x_t, t: (0.5 * x_t).tanh())
        before = torch.get_rng_state()
        runs.append(sampler(model, x, sigmas, generator=torch.Generator().manual_seed(7)))
        expect(torch.equal(before, torch.get_rng_state()),
               f"{what}: drew from the global torch RNG; use the generator argument")
    expect(torch.equal(*runs), f"{what}: two runs with the same generator seed differ")
