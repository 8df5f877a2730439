"""Generator speed: our DDPM UNet against diffusers' UNet2DModel, and every sampler.

1. Training throughput: images/s for one forward + backward + AdamW step at batch 64,
   fp32 on the CPU, for our UNet as the `ddpm` generator trains it (plugins/builtin/generators/ddpm.py) with the architectures in
   ARCHITECTURES below and for diffusers' `UNet2DModel` built to the same design (same
   widths, levels, attention and class embedding, so the parameter counts match). The
   two models alternate, A/B then B/A, so background load hits both alike; figures are
   medians over repeats, by wall time and by this process's CPU time (all its threads),
   which other programs on a shared machine disturb less (with one thread; several threads
   spin while they wait for each other, which inflates CPU time as well).
2. Sampling: seconds per batch of 16 images at 20 steps for every registered sampler, on
   the shipped models (ddpm-digits, and ddpm-shapes where installed), through the
   generator's own `generate` with the model's default guidance scale.

    python benchmarks/generators.py                    # full run, 2 threads, ~10 min on 2 cores
    python benchmarks/generators.py --quick            # smoke run (tests run it)
    python benchmarks/generators.py --threads 4 --json results.json

The tables print as markdown, ready for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import diffusers
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from toolkit_plugins.generators.ddpm import DDPMConfig, DDPMGenerator
from torch import nn

from toolkit.components import Conditioning, GenerateArgs
from toolkit.errors import UnknownNameError
from toolkit.generation.store import find_model, load_generator
from toolkit.host.loading import get_registry


@dataclass(frozen=True)
class Architecture:
    """One row of the training benchmark: a UNet design and the images it trains on."""

    name: str
    size: int  # images are size x size
    num_classes: int
    channels: int = 32  # the ddpm-digits widths (configs/ddpm-digits.yaml)
    channel_mults: tuple[int, ...] = (1, 2, 2)
    attention_levels: tuple[int, ...] = (2,)
    layers_per_level: int = 1


ARCHITECTURES = [
    Architecture("ddpm-digits", size=16, num_classes=10),
    Architecture("ddpm-shapes", size=32, num_classes=5, channels=16, channel_mults=(1, 2, 4)),  # configs/ddpm-shapes.yaml
]
SAMPLED_MODELS = ["ddpm-digits", "ddpm-shapes"]  # shipped models to sample from, when installed


# -- the two models -----------------------------------------------------------------------


def our_unet(arch: Architecture) -> nn.Module:
    """Our UNet as the `ddpm` generator builds it for training (in its memory format)."""
    config = DDPMConfig(channels=arch.channels, channel_mults=arch.channel_mults,
                        attention_levels=arch.attention_levels, layers_per_level=arch.layers_per_level)
    return DDPMGenerator(config, num_classes=arch.num_classes, size=arch.size).unet


def diffusers_unet(arch: Architecture) -> nn.Module:
    """UNet2DModel with our design: the same widths, layers_per_level resnets per level going
    down and one more coming up, attention at the same levels and in the middle, GroupNorm(8), 32-channel
    attention heads, a 4x-width time embedding, and one class embedding more than there are
    classes (ours keeps the extra one as "no class" for classifier-free guidance)."""
    levels = range(len(arch.channel_mults))
    down = tuple("AttnDownBlock2D" if i in arch.attention_levels else "DownBlock2D" for i in levels)
    up = tuple("AttnUpBlock2D" if i in arch.attention_levels else "UpBlock2D" for i in reversed(levels))
    return UNet2DModel(
        sample_size=arch.size, block_out_channels=tuple(arch.channels * m for m in arch.channel_mults),
        layers_per_block=arch.layers_per_level, down_block_types=down, up_block_types=up,
        norm_num_groups=8, attention_head_dim=32, num_class_embeds=arch.num_classes + 1,
    )


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- 1. training throughput -----------------------------------------------------------------


def make_step(model: nn.Module, forward, batch: dict[str, torch.Tensor]):
    """One training step on a fixed batch: epsilon loss, backward, AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = F.mse_loss(forward(model, batch["x_t"], batch["t"], batch["labels"]), batch["noise"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def ours_forward(model, x_t, t, labels):
    return model(x_t, t.float(), labels)


def diffusers_forward(model, x_t, t, labels):
    return model(x_t, t, class_labels=labels).sample


def time_steps(step, warmup: int, steps: int, batch_size: int) -> tuple[float, float]:
    """Images per second after ``warmup`` untimed steps: (by wall time, by CPU time)."""
    for _ in range(warmup):
        step()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    images = batch_size * steps
    return images / (time.perf_counter() - start), images / (time.process_time() - cpu)


def bench_training(arch: Architecture, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    b = args.batch_size
    batch = {"x_t": torch.randn(b, 3, arch.size, arch.size), "noise": torch.randn(b, 3, arch.size, arch.size),
             "t": torch.randint(0, 1000, (b,)), "labels": torch.randint(0, arch.num_classes, (b,))}
    ours, theirs = our_unet(arch), diffusers_unet(arch)
    steps = {"ours": make_step(ours, ours_forward, batch), "diffusers": make_step(theirs, diffusers_forward, batch)}
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "diffusers": []}
    for k in range(args.repeats):
        # Alternate which model goes first, so neither always gets the warmer machine.
        for name in ("ours", "diffusers") if k % 2 == 0 else ("diffusers", "ours"):
            results[name].append(time_steps(steps[name], args.warmup, args.steps, b))
        print(f"  {arch.name} repeat {k + 1}: ours {results['ours'][-1][0]:.1f} img/s, "
              f"diffusers {results['diffusers'][-1][0]:.1f} img/s", flush=True)
    ours_wall, theirs_wall = (statistics.median(r[0] for r in results[n]) for n in ("ours", "diffusers"))
    ours_cpu, theirs_cpu = (statistics.median(r[1] for r in results[n]) for n in ("ours", "diffusers"))
    return {**asdict(arch), "params_ours": parameter_count(ours), "params_diffusers": parameter_count(theirs),
            "images_per_s_ours": ours_wall, "images_per_s_diffusers": theirs_wall, "ratio": ours_wall / theirs_wall,
            "images_per_cpu_s_ours": ours_cpu, "images_per_cpu_s_diffusers": theirs_cpu,
            "ratio_cpu": ours_cpu / theirs_cpu,
            "runs": results}


# -- 2. sampling ------------------------------------------------------------------------------


def bench_sampling(model_name: str, registry, args: argparse.Namespace) -> list[dict]:
    info = find_model(model_name, registry)
    model = load_generator(info, registry)
    height, width = info.sizes[0]
    num_classes = info.config.get("num_classes", 0)
    guidance = info.config.get("default_guidance_scale", type(model).default_guidance_scale)
    labels = torch.arange(args.n) % num_classes if num_classes else None
    samplers = list(registry.samplers)

    def generate(sampler_name: str, steps: int) -> float:
        gen_args = GenerateArgs(n=args.n, height=height, width=width, generator=torch.Generator().manual_seed(0),
                                steps=steps, guidance_scale=guidance, sampler=registry.get("samplers", sampler_name),
                                sampler_name=sampler_name)
        start = time.perf_counter()
        with torch.inference_mode():  # as toolkit.generation.pipeline runs it
            model.generate(Conditioning(class_labels=labels), gen_args)
        return time.perf_counter() - start

    for name in samplers:
        generate(name, 2)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in samplers}
    for k in range(args.sample_repeats):
        # Rotate the order, so background load does not always hit the same sampler.
        for name in samplers[k % len(samplers):] + samplers[:k % len(samplers)]:
            times[name].append(generate(name, args.sample_steps))
        print(f"  {model_name} repeat {k + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()),
              flush=True)
    rows = []
    for name in samplers:
        seconds = statistics.median(times[name])
        rows.append({"model": model_name, "size": f"{height}x{width}", "sampler": name, "steps": args.sample_steps,
                     "images": args.n, "guidance_scale": guidance, "s_per_batch": seconds,
                     "ms_per_image": 1000 * seconds / args.n, "runs": times[name]})
    return rows


# -- report -----------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_name(), "cores_available": cores, "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0],  # 1-minute; above cores - threads, others compete for the CPU
            "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version()}


def markdown(env: dict, training: list[dict], sampling: list[dict], notes: list[str], args: argparse.Namespace) -> str:
    lines = [f"CPU: {env['cpu']} ({env['cores_available']} cores available), torch threads: {env['torch_threads']}; "
             f"torch {env['torch']}, diffusers {env['diffusers']}, Python {env['python']}; "
             f"load average {env['load_average']:.1f} at the start, {env['load_average_end']:.1f} at the end", ""]
    if training:
        lines += [f"Training, fp32, batch {args.batch_size}: images/s for forward + backward + AdamW, median of "
                  f"{args.repeats} x {args.steps} steps (ratio by CPU time in the last column)", "",
                  "| architecture | size | classes | params, ours | params, diffusers | ours img/s | diffusers img/s "
                  "| ours / diffusers | by CPU time |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['size']}x{r['size']} | {r['num_classes']} | {r['params_ours']:,} | "
                  f"{r['params_diffusers']:,} | {r['images_per_s_ours']:.1f} | {r['images_per_s_diffusers']:.1f} | "
                  f"{r['ratio']:.2f}x | {r['ratio_cpu']:.2f}x |" for r in training]
        lines.append("")
    if sampling:
        lines += [f"Sampling {args.n} images at {args.sample_steps} steps with the model's default guidance scale, "
                  f"median of {args.sample_repeats}", "",
                  "| model | size | sampler | s / batch | ms / image |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['size']} | {r['sampler']} | {r['s_per_batch']:.2f} | {r['ms_per_image']:.1f} |"
                  for r in sampling]
        lines.append("")
    lines += [f"Note: {note}" for note in notes]
    return "\n".join(lines).rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps before each timed run")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=6, help="timed runs per model (alternating order)")
    parser.add_argument("--n", type=int, default=16, help="images per sampling batch")
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--sample-repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 8, 2 x 1 training steps, 2 images sampled at 2 steps once")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.warmup, args.steps, args.repeats = 8, 1, 1, 2
        args.n, args.sample_steps, args.sample_repeats = 2, 2, 1

    torch.set_num_threads(args.threads)
    env = environment()
    print(f"torch {env['torch']}, torch threads: {env['torch_threads']}; "
          f"CPU: {env['cpu']} ({env['cores_available']} cores)", flush=True)

    training = [bench_training(arch, args) for arch in ARCHITECTURES]
    registry = get_registry()
    sampling, notes = [], []
    for name in SAMPLED_MODELS:
        try:
            sampling += bench_sampling(name, registry, args)
        except UnknownNameError:
            notes.append(f"model '{name}' is not installed: its sampling rows are skipped.")

    env["load_average_end"] = os.getloadavg()[0]
    # By the end our own threads count in the load average too.
    busiest = max(env["load_average"], env["load_average_end"] - env["torch_threads"])
    if busiest > env["cores_available"] - env["torch_threads"] + 0.5:
        notes.append(f"other programs were running (load average up to {busiest:.1f} "
                     f"on {env['cores_available']} cores): "
                     "wall-clock figures (and with several threads, CPU-time ones too) are unreliable; "
                     "rerun on a quiet machine.")

    print()
    print(markdown(env, training, sampling, notes, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "settings": vars(args), "training": training, "sampling": sampling,
                       "notes": notes}, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
