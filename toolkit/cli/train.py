"""`toolkit train`: one command for every trainable, the same under `accelerate launch`."""

from __future__ import annotations

import os
import sys

import click

from toolkit.cli.root import CommandContext, cli, console, out, progress_bar


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--resume", metavar="latest|PATH", help="Continue from the run's newest checkpoint, or from a checkpoint folder.")
@click.option("--stop-after", type=click.IntRange(1), help="Leave after N steps with a checkpoint (for jobs with a time limit).")
@click.option("--overwrite", is_flag=True, help="Replace the model folder the run exports to if it exists (output.overwrite=true).")
@click.pass_obj
def train(obj: CommandContext, config: str, overrides: tuple[str, ...], resume: str | None, stop_after: int | None,
          overwrite: bool) -> None:
    """Train a generator from a YAML config; exports a model folder `--model NAME` loads,
    by default $TOOLKIT_HOME/models/NAME. An existing model folder is never replaced
    without --overwrite: such a run is refused before it trains.

    \b
    Examples:
      toolkit train configs/ddpm-digits.yaml
      toolkit train configs/ddpm-digits.yaml train.steps=200 output.dir=runs/try
      toolkit train configs/ddpm-digits.yaml --resume latest
      accelerate launch --multi_gpu --num_processes 2 -m toolkit train configs/ddpm-digits.yaml
      torchrun --nproc_per_node 2 -m toolkit train configs/ddpm-digits.yaml

    \b
    Both start two processes, on a CPU too (accelerate's --multi_gpu means "several
    processes": without it `--num_processes 2` starts one); the run ends by printing
    that its processes hold identical weights.
    """
    from toolkit.generation.store import user_models_dir
    from toolkit.train.config import load_train_config
    from toolkit.train.trainer import Trainer

    cfg = load_train_config(config, (*overrides, "output.overwrite=true") if overwrite else overrides)
    try:
        with progress_bar() as bar:
            trainer = Trainer(cfg, registry=obj.registry, progress=bar if _is_main_process() else None)
            exported = trainer.train(resume=resume, stop_after=stop_after)
    except KeyboardInterrupt:
        console.print(f"interrupted; the checkpoints in {cfg.output.dir}/checkpoints are intact: continue with --resume latest")
        sys.exit(130)
    if exported is not None:
        hint = trainer.model.usage_hint(exported)
        out.print(f"exported model '{cfg.name}' to {exported}; {hint}", highlight=False, markup=False, soft_wrap=True)
        shipped = obj.registry.models.get(cfg.name)
        if shipped is not None and exported.resolve() == (user_models_dir() / cfg.name).resolve():
            console.print(f"--model {cfg.name} now loads this folder rather than the shipped model of that name; "
                          f"delete {exported} to get the shipped one back", highlight=False, markup=False, soft_wrap=True)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


