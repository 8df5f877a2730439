"""Trainer overhead: `toolkit train`'s loop against a plain hand-written PyTorch loop.

Same model, same data, same batch size, same work per step (forward, backward, gradient
clipping, AdamW, LR schedule, EMA update), measured in one run, alternating the two
loops (and which goes first); the figures are medians over repeats. Two clocks: wall
time, and this process's CPU time (all its threads), which other programs on a shared
machine disturb much less. The trainer runs with its default logging (metrics every 10
steps to TensorBoard and JSONL) and exports its model folder at the end (untimed, like
the final checkpoint); everything it writes goes to a temporary folder.

    python benchmarks/trainer_overhead.py                 # digits at 32x32, batch 64
    python benchmarks/trainer_overhead.py --steps 200 --repeats 3
    python benchmarks/trainer_overhead.py --quick         # smoke run (tests run it)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from pydantic import BaseModel, ConfigDict
from torch import nn

from toolkit import hookimpl
from toolkit.components import Conditioning, GenerateArgs, Generator, Phase, Trainable
from toolkit.generation.model_folder import save_model_folder
from toolkit.host.loading import plugins_with_extra, set_registry
from toolkit.train.config import validate_train_config
from toolkit.train.data import make_dataloader
from toolkit.train.trainer import Trainer


def make_net(width: int) -> nn.Module:
    """A small denoising conv net: noisy image (B, 3, H, W) -> clean image (B, 3, H, W)."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
    for _ in range(4):
        layers += [nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)]
    layers += [nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, 3, 3, padding=1)]
    return nn.Sequential(*layers)


def denoise_loss(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    noisy = images + 0.5 * torch.randn_like(images)
    return (net(noisy) - images).pow(2).mean()


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 64


class BenchGenerator(Generator, Trainable):
    """The benchmark's model as a trainable generator plugin."""

    name = "bench-denoiser"
    Config = BenchConfig
    ema_modules = ("net",)

    def __init__(self, config: BenchConfig):
        self.config, self.net = config, make_net(config.width)

    @classmethod
    def from_config(cls, config, *, dataset=None):
        return cls(config)

    @classmethod
    def from_pretrained(cls, folder, *, device="cpu"):
        raise NotImplementedError("benchmark model: never loaded")

    def save_pretrained(self, folder):
        """A real model folder (config.json and weights): the trainer's export adds to its config."""
        save_model_folder(folder, {"generator": self.name, **self.config.model_dump()}, {"model.safetensors": self.net.state_dict()})

    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        return self.net(torch.randn(args.n, 3, args.height, args.width, generator=args.generator)).clamp(-1, 1)

    def training_modules(self):
        return {"net": self.net}

    def training_phases(self):
        def loss(batch, ctx):
            value = denoise_loss(ctx.modules["net"], batch["image"])
            return value, {"loss": value.item()}

        return [Phase("main", ("net",), loss)]

    def preview(self, n, generator):
        return torch.zeros(n, 3, 8, 8)


def config_for(args: argparse.Namespace, run_dir: Path) -> dict:
    return {
        "name": "bench",
        "model": {"generator": BenchGenerator.name, "width": args.width},
        "data": {"dataset": args.dataset, "size": args.size, "batch_size": args.batch_size},
        "train": {"steps": args.steps, "lr": 2e-4, "warmup_steps": 10, "schedule": "cosine", "grad_clip": 1.0, "ema_decay": 0.999},
        "output": {"dir": str(run_dir), "checkpoint_every": 10**9, "sample_every": 10**9, "log_every": 10,
                   "export_dir": str(run_dir / "model")},  # never $TOOLKIT_HOME/models
    }


def run_trainer(args: argparse.Namespace, workdir: Path, k: int) -> tuple[float, float]:
    run_dir = workdir / f"trainer-{k}"
    trainer = Trainer(validate_train_config(config_for(args, run_dir)))
    trainer.save_checkpoint = lambda: None  # measure the loop, not the final checkpoint write
    export, ends = trainer.export, []

    def export_untimed() -> Path:  # the loop ends here; the export runs, so this benchmark checks it, untimed
        ends.extend((time.perf_counter(), time.process_time()))
        return export()

    trainer.export = export_untimed
    start, cpu = time.perf_counter(), time.process_time()
    assert trainer.train() == run_dir / "model"
    return args.steps / (ends[0] - start), args.steps / (ends[1] - cpu)


def run_plain(args: argparse.Namespace, dataset) -> tuple[float, float]:
    """What a careful person writes by hand: the same work, no framework."""
    torch.manual_seed(0)
    cfg = validate_train_config(config_for(args, Path("unused")))
    net = make_net(args.width)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=0.0)  # the trainer's default
    sched = get_scheduler("cosine", opt, num_warmup_steps=10, num_training_steps=args.steps)
    ema = EMAModel(net.parameters(), decay=0.999, use_ema_warmup=True, power=3 / 4)
    loader, _ = make_dataloader(dataset, cfg.data, seed=0)
    step, start, cpu = 0, time.perf_counter(), time.process_time()
    while step < args.steps:
        for batch in loader:
            loss = denoise_loss(net, batch["image"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            ema.step(net.parameters())
            loss.item()  # the hand loop also reads the loss to print it
            step += 1
            if step == args.steps:
                break
    return args.steps / (time.perf_counter() - start), args.steps / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: width 32, batch 16, 12 steps x 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.width, args.batch_size, args.steps, args.repeats = 32, 16, 12, 2

    plugin = types.ModuleType("bench_plugin")
    plugin.register_generators = hookimpl(lambda register: register(BenchGenerator))
    pm, registry = plugins_with_extra([("bench", plugin)])
    set_registry(pm, registry)
    dataset = registry.get("datasets", args.dataset)(split="train", size=args.size, seed=0)
    params = sum(p.numel() for p in make_net(args.width).parameters())
    print(f"model: {params / 1e6:.2f} M parameters; data: {args.dataset} {args.size}x{args.size}, batch {args.batch_size}; "
          f"{args.steps} steps x {args.repeats} repeats; torch {torch.__version__}, {torch.get_num_threads()} threads")

    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run_plain(argparse.Namespace(**{**vars(args), "steps": 10}), dataset)  # warm-up
        for k in range(args.repeats):
            # Alternate which loop goes first, so neither always gets the warmer machine.
            if k % 2 == 0:
                plain.append(run_plain(args, dataset))
                ours.append(run_trainer(args, Path(tmp), k))
            else:
                ours.append(run_trainer(args, Path(tmp), k))
                plain.append(run_plain(args, dataset))
            print(f"  repeat {k + 1}: plain {plain[-1][0]:.2f} steps/s ({plain[-1][1]:.3f} per CPU-s), "
                  f"toolkit trainer {ours[-1][0]:.2f} steps/s ({ours[-1][1]:.3f} per CPU-s)", flush=True)
    for i, clock in enumerate(("wall time", "CPU time")):
        p, o = statistics.median(r[i] for r in plain), statistics.median(r[i] for r in ours)
        unit = "steps/s" if i == 0 else "steps per CPU-second"
        print(f"{clock:9}: plain PyTorch loop {p:.3f} {unit}, toolkit trainer {o:.3f} {unit}: "
              f"trainer overhead {(p / o - 1) * 100:+.1f}% (median of {args.repeats})")


if __name__ == "__main__":
    sys.exit(main())
