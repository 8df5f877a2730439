"""Text-to-image speed and quality per sampler, on the shipped latent diffusion models.

1. Ours against diffusers' own loop: the same UNet and autoencoder (the model folder's
   weights, loaded by our `ldm` generator and by diffusers' `from_pretrained`) driven by our
   loop and by diffusers' `StableDiffusionPipeline` with
   the prompt embeddings passed in (`prompt_embeds`, so both skip the text encoder; text
   encoding is timed apart), DPM-Solver++ 2M in both, 20 steps, the model's guidance.
   Latency: one 64x64 image. Throughput: a batch of 16. Ours runs as `toolkit generate`
   runs it (the prompt's attention mask, fully masked positions dropped) and, for the same
   work as diffusers' pipeline (which takes no mask), without the mask. Both run the same
   UNet layers; ours projects the prompt to cross-attention keys and values once per run
   (toolkit/families/cross_attention.py) where diffusers' loop does it at every step. The runs rotate
   their order each round, so background load hits all alike; medians over repeats, and the
   median of each round's ours/diffusers ratio with a 95% interval.
2. Samplers: seconds per image at 4, 8, 20 and 50 steps for each registered sampler, with
   the shapes evaluator's score at each (every attribute right, single- and two-object
   prompts from plugins/builtin/datasets/shapes/prompts/shapes-heldout.jsonl), so a user can pick the fastest
   sampler that keeps quality.

    python benchmarks/text_to_image.py                     # ldm-shapes, 2 threads
    python benchmarks/text_to_image.py --model ldm-shapes-minilm --prompts 40
    python benchmarks/text_to_image.py --quick             # smoke run (tests run it): batch 1 at 4 steps, 2 prompts
    python benchmarks/text_to_image.py --speed-only --batches 1 --repeats 100

The tables print as markdown, ready for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from math import comb
from pathlib import Path

import numpy as np
import torch
from toolkit_plugins.datasets.shapes import ShapesDataset, ShapesEvaluator

from toolkit.components import Conditioning, GenerateArgs, TextEmbedding
from toolkit.eval.prompts import read_prompt_file
from toolkit.generation.store import find_model, load_generator
from toolkit.host.loading import get_registry


def dpm_solver(model):
    """diffusers' DPM-Solver++ 2M on the model's training schedule, as our sampler runs it."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=model.config.num_train_timesteps, trained_betas=(1 - model.alphas_cumprod / torch.cat(
            [torch.ones(1, dtype=torch.float64), model.alphas_cumprod[:-1]])).tolist(),
        prediction_type=model.config.prediction_type, algorithm_type="dpmsolver++", solver_order=2,
        timestep_spacing="trailing", steps_offset=1)


def diffusers_pipeline(model):
    """diffusers' StableDiffusionPipeline around the model folder's UNet and VAE, loaded by
    diffusers' own ``from_pretrained`` as a diffusers user would (no text encoder: the prompt
    embeddings are passed in), with DPM-Solver++ 2M on the model's schedule."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model.folder / "unet", dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(model.folder / "vae", dtype=torch.float32).eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=dpm_solver(model),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ours(model, sampler, text, uncond, n: int, steps: int, scale: float, seed: int) -> torch.Tensor:
    args = GenerateArgs(n=n, height=model.size, width=model.size, generator=torch.Generator().manual_seed(seed),
                        steps=steps, guidance_scale=scale, sampler=sampler)
    return model.generate(Conditioning(text=text, negative_text=uncond), args)


def theirs(pipe, text, uncond, n: int, steps: int, scale: float, seed: int, size: int) -> torch.Tensor:
    """text, uncond: embeddings after the model's text adapter, if it has one (ours adapts inside)."""
    return pipe(prompt_embeds=text.tokens, negative_prompt_embeds=uncond.tokens, num_inference_steps=steps,
                guidance_scale=scale, height=size, width=size, generator=torch.Generator().manual_seed(seed),
                output_type="pt").images


def timed_both(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one call: on a shared virtual machine the
    CPU time moves less with the neighbours' load than the wall clock does."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def timed(fn) -> float:
    return timed_both(fn)[0]


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median: from the k-th smallest to the
    k-th largest value, k the largest with P(Binomial(n, 1/2) < k) <= (1 - level) / 2. None
    when there are too few values (under 6 at 95%)."""
    ordered, n = sorted(values), len(values)
    below, k = 0.0, 0
    while k < n and below + comb(n, k) / 2**n <= (1 - level) / 2:
        below += comb(n, k) / 2**n
        k += 1
    return (ordered[k - 1], ordered[n - k]) if k else None


def against_diffusers(model, repeats: int, batches: list[int], steps: int = 20) -> list[dict]:
    """Ours and diffusers' loop, alternating, at each batch size. Ours runs twice:
    as `toolkit generate` runs it (the prompt's attention mask, positions every prompt masks
    dropped: 9 of 64 keys are left for the prompt below) and without the mask, attending to all
    64 token states as diffusers' pipeline does (it takes no mask), so the same work."""
    registry = get_registry()
    sampler = registry.get("samplers", "dpmpp-2m")
    pipe = diffusers_pipeline(model)
    scale = model.config.default_guidance_scale
    prompt = "a large green triangle in the center"
    rows = []
    encode = [timed(lambda: model.text.embed_prompts([prompt])) for _ in range(repeats)]
    for n in batches:
        text, uncond = model.text.encode(prompt, n=n, height=64, width=64), model.text.encode("", n=n, height=64, width=64)
        unmasked = [TextEmbedding(e.tokens, e.pooled, None) for e in (text, uncond)]
        with torch.no_grad():
            adapted = [model.adapt(e, model.text_adapter) for e in unmasked]
        runs = {"as used": lambda r: ours(model, sampler, text, uncond, n, steps, scale, r),
                "same work": lambda r: ours(model, sampler, *unmasked, n, steps, scale, r),
                "diffusers": lambda r: theirs(pipe, *adapted, n, steps, scale, r, model.size)}
        times, cpu = {name: [] for name in runs}, {name: [] for name in runs}
        for r in range(repeats + 1):  # the first round warms all up and is dropped
            names = list(runs)
            for name in names[r % 3:] + names[: r % 3]:  # rotate the order, so background load hits all alike
                wall, used = timed_both(lambda: runs[name](r))
                times[name].append(wall)
                cpu[name].append(used)
        median = {name: statistics.median(t[1:]) for name, t in times.items()}
        median_cpu = {name: statistics.median(t[1:]) for name, t in cpu.items()}
        with torch.inference_mode():  # how far each of ours is from diffusers' images (ours in [-1, 1], theirs in [0, 1])
            reference = runs["diffusers"](0) * 2 - 1
            gap = {mode: (runs[mode](0) - reference).abs().max().item() * 127.5 for mode in ("same work", "as used")}
        for mode in ("same work", "as used"):
            a, b = median[mode], median["diffusers"]
            # Each round's two runs are seconds apart, so their ratio cancels the slow drift of
            # a shared machine's load that the medians of each column keep.
            paired = sorted(x / y for x, y in zip(times[mode][1:], times["diffusers"][1:]))
            quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
            interval = median_interval(paired)
            rows.append({"batch": n, "mode": mode, "ours_s": a, "diffusers_s": b, "ratio": a / b,
                         "paired_ratio_median_95ci": interval, "ratio_by_cpu_time": median_cpu[mode] / median_cpu["diffusers"],
                         "paired_ratio_median": quartiles[1], "paired_ratio_quartiles": [quartiles[0], quartiles[2]], "ours_images_per_s": n / a,
                         "diffusers_images_per_s": n / b, "ours_runs_s": times[mode][1:], "diffusers_runs_s": times["diffusers"][1:],
                         "max_pixel_difference_levels": gap[mode]})
    rows.append({"text_encoding_s": statistics.median(encode)})
    return rows


def per_sampler(model, prompts: list[dict], steps_list: list[int]) -> list[dict]:
    registry = get_registry()
    evaluator = ShapesEvaluator()
    scale = model.config.default_guidance_scale
    text = model.text.embed_prompts([p["prompt"] for p in prompts])
    uncond = model.text.encode("", n=len(prompts), height=64, width=64)
    rows = []
    for name in sorted(registry.samplers):
        sampler = registry.get("samplers", name)
        for steps in steps_list:
            start = time.perf_counter()
            with torch.inference_mode():
                images = ours(model, sampler, text, uncond, len(prompts), steps, scale, 0)
            seconds = (time.perf_counter() - start) / len(prompts)
            right = [evaluator.evaluate(image, p["caption"]).all_correct for image, p in zip(images, prompts)]
            groups = {}
            for p, ok in zip(prompts, right):
                groups.setdefault(p["group"], []).append(ok)
            rows.append({"sampler": name, "steps": steps, "seconds_per_image": seconds,
                         **{g: float(np.mean(v)) for g, v in groups.items()}})
            print(f"  {name:9s} {steps:3d} steps: {seconds:.3f} s/image, " + ", ".join(f"{g} {np.mean(v):.0%}" for g, v in groups.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ldm-shapes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=30, help="prompts per group (single, two objects) for the sampler table")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1 at 4 steps, 2 prompts per group at 4 steps")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--speed-only", action="store_true", help="only ours against diffusers' loop, no sampler table")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], metavar="N",
                        help="batch sizes for ours against diffusers' loop (default: 1 16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.prompts, args.batches = 1, 2, [1]
    registry = get_registry()
    model = load_generator(find_model(args.model, registry), registry)
    entries = read_prompt_file(ShapesDataset.prompt_sets[ShapesDataset.default_prompt_set])
    prompts = ([e for e in entries if e["group"] == "single object"][: args.prompts]
               + [e for e in entries if e["group"] == "two objects"][: args.prompts])
    print(f"# {args.model}, {args.threads} threads, torch {torch.__version__}")
    speed = against_diffusers(model, args.repeats, args.batches, steps=4 if args.quick else 20)
    print("\n| batch | ours | ours (s) | diffusers' pipeline (s) | ours / diffusers | by CPU time | paired, median (quartiles) "
          "| paired median, 95% interval | ours images/s | diffusers images/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in speed[:-1]:
        low, high = row["paired_ratio_quartiles"]
        interval = row["paired_ratio_median_95ci"]
        ci = "too few repeats" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"
        print(f"| {row['batch']} | {row['mode']} | {row['ours_s']:.3f} | {row['diffusers_s']:.3f} | {row['ratio']:.2f}x | "
              f"{row['ratio_by_cpu_time']:.2f}x | {row['paired_ratio_median']:.2f}x ({low:.2f}-{high:.2f}) | {ci} | "
              f"{row['ours_images_per_s']:.2f} | {row['diffusers_images_per_s']:.2f} |")
    gaps = ", ".join(f"{row['mode']} at batch {row['batch']} {row['max_pixel_difference_levels']:.1f}" for row in speed[:-1])
    print(f"\nlargest pixel difference from diffusers' images, in levels of 255: {gaps}")
    print(f"\ntext encoding, one prompt: {speed[-1]['text_encoding_s'] * 1000:.1f} ms\n")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "threads": args.threads, "speed": speed}, indent=2))
    if args.speed_only:
        return
    steps_list = [4] if args.quick else [4, 8, 20, 50]
    samplers = per_sampler(model, prompts, steps_list)
    groups = [g for g in ("single object", "two objects") if any(g in r for r in samplers)]
    print("\n| sampler | steps | s / image | " + " | ".join(f"{g}: all right" for g in groups) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in groups) + " |")
    for row in samplers:
        print(f"| {row['sampler']} | {row['steps']} | {row['seconds_per_image']:.3f} | "
              + " | ".join(f"{100 * row[g]:.0f}%" for g in groups) + " |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "threads": args.threads, "speed": speed, "samplers": samplers}, indent=2))


if __name__ == "__main__":
    main()
