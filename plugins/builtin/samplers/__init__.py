"""Samplers shared by every diffusion generator, all with k-diffusion's signature
``sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, generator=None)``.

    ddpm.py                  ancestral DDPM (ours)
    ddim.py                  deterministic DDIM (ours)
    diffusers_schedulers.py  DPM-Solver++, Euler and UniPC from diffusers, adapted
"""

from toolkit import hookimpl

from .ddim import sample_ddim
from .ancestral import sample_ddpm
from .diffusers_schedulers import SCHEDULERS, make_sampler


@hookimpl
def register_samplers(register):
    register("ddpm", sample_ddpm, "ancestral DDPM (Ho et al. 2020): stochastic, needs more steps")
    register("ddim", sample_ddim, "deterministic DDIM (Song et al. 2020)")
    for name, (_, _, _, description) in SCHEDULERS.items():
        register(name, make_sampler(name), description)
