"""Sketch control speed, on an ldm model folder with a ControlNet (controlnet/):

1. a sketch-conditioned 64x64 image at 20 steps against the same image without a sketch
   (goal: at most 1.6x), both through our `ldm` generator as `toolkit generate` runs it;
2. our loop against diffusers' `StableDiffusionControlNetPipeline` on the same weights
   (UNet, VAE and ControlNet loaded by diffusers' own `from_pretrained`), the prompt
   embeddings passed in and DPM-Solver++ 2M in both (goal: at most 1.0x). Ours runs
   without the prompt's attention mask here, as diffusers' pipeline takes none: the same work.

Each round runs all three in a rotating order; the figures are the medians of the per-round
ratios with a 95% distribution-free interval.

    python benchmarks/sketch_control.py --model ldm-shapes --repeats 25
    python benchmarks/sketch_control.py --quick          # smoke run: 2 rounds at 4 steps (tests run it)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from text_to_image import dpm_solver, median_interval, timed_both  # noqa: E402  (a sibling script)

from toolkit.components import Conditioning, GenerateArgs, TextEmbedding  # noqa: E402
from toolkit.generation.store import find_model, load_generator  # noqa: E402
from toolkit.host.loading import get_registry  # noqa: E402


def controlnet_pipeline(model):
    """diffusers' StableDiffusionControlNetPipeline around the folder's networks."""
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel

    load = {"dtype": torch.float32}
    pipe = StableDiffusionControlNetPipeline(
        vae=AutoencoderKL.from_pretrained(model.folder / "vae", **load).eval(), text_encoder=None, tokenizer=None,
        unet=UNet2DConditionModel.from_pretrained(model.folder / "unet", **load).eval(),
        controlnet=ControlNetModel.from_pretrained(model.folder / "controlnet", **load).eval(),
        scheduler=dpm_solver(model), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sketch_of(size: int) -> torch.Tensor:
    """A circle and a square outline: ``(1, 1, size, size)`` in [0, 1], 1 = stroke."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    circle = ((x - size * 0.3) ** 2 + (y - size * 0.35) ** 2).sqrt().sub(size * 0.15).abs() < 1
    square = (((x - size * 0.68).abs() - size * 0.14).abs() < 1) & ((y - size * 0.65).abs() <= size * 0.14) | \
             (((y - size * 0.65).abs() - size * 0.14).abs() < 1) & ((x - size * 0.68).abs() <= size * 0.14)
    return (circle | square).float()[None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ldm-shapes")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds at 4 steps")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.steps = 2, 4
    torch.set_num_threads(2)
    registry = get_registry()
    model = load_generator(find_model(args.model, registry), registry)
    sampler, size, steps = registry.get("samplers", "dpmpp-2m"), model.size, args.steps
    scale = model.config.default_guidance_scale
    prompt = "a small red circle in the top left and a large blue square at the bottom"
    text, uncond = model.text.encode(prompt, n=1, height=size, width=size), model.text.encode("", n=1, height=size, width=size)
    plain = [TextEmbedding(e.tokens, e.pooled, None) for e in (text, uncond)]
    with torch.no_grad():
        adapted = [model.adapt(e, model.text_adapter) for e in plain]
    sketch = sketch_of(size)
    pipe = controlnet_pipeline(model)

    def ours(text_pair, with_sketch: bool, seed: int):
        generate = GenerateArgs(n=1, height=size, width=size, generator=torch.Generator().manual_seed(seed), steps=steps,
                                guidance_scale=scale, sampler=sampler)
        cond = Conditioning(text=text_pair[0], negative_text=text_pair[1], sketch=sketch if with_sketch else None)
        return model.generate(cond, generate)

    def theirs(seed: int):
        return pipe(prompt_embeds=adapted[0].tokens, negative_prompt_embeds=adapted[1].tokens, image=sketch,
                    num_inference_steps=steps, guidance_scale=scale, height=size, width=size,
                    generator=torch.Generator().manual_seed(seed), output_type="pt", controlnet_conditioning_scale=1.0).images

    runs = {"sketch": lambda r: ours((text, uncond), True, r), "no sketch": lambda r: ours((text, uncond), False, r),
            "sketch, same work": lambda r: ours(plain, True, r), "diffusers": theirs}
    times = {name: [] for name in runs}
    for r in range(args.repeats + 1):  # the first round warms up and is dropped
        names = list(runs)
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed_both(lambda: runs[name](r))[0])
    times = {name: t[1:] for name, t in times.items()}
    for label, a, b, goal in (("sketch / no sketch", "sketch", "no sketch", 1.6),
                              ("ours / diffusers ControlNet pipeline", "sketch, same work", "diffusers", 1.0)):
        ratios = [x / y for x, y in zip(times[a], times[b])]
        low, high = median_interval(ratios) or (float("nan"), float("nan"))
        print(f"{label}: median {statistics.median(ratios):.3f} (95% interval {low:.3f}-{high:.3f}; goal <= {goal}); "
              f"{statistics.median(times[a]):.3f} s vs {statistics.median(times[b]):.3f} s")


if __name__ == "__main__":
    main()
