"""One trainer for every generator, through HF Accelerate.

The generator supplies its networks, its loss phases and a preview function
(``toolkit.components.Trainable``); the trainer does the rest: devices, mixed precision,
gradient accumulation and clipping, LR warm-up and schedule, EMA, checkpoints with exact
resume, NaN handling, progress, TensorBoard + JSONL metrics, sample grids and the export
to a model folder.

Single process (CPU or one GPU)::

    toolkit train configs/ddpm-digits.yaml

Data-parallel, same command under a launcher::

    accelerate launch --multi_gpu --num_processes 4 -m toolkit train configs/ddpm-digits.yaml
    torchrun --nproc_per_node 4 -m toolkit train configs/ddpm-digits.yaml
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from pydantic import ValidationError

from toolkit.components import LoadContext, Phase, Trainable, TrainContext, build_dataset
from toolkit.errors import CheckpointError, ConfigError, TrainingError
from toolkit.generation.images import make_grid, save_atomic, tensor_to_pil
from toolkit.generation.store import call_with_context
from toolkit.host.loading import get_registry
from toolkit.host.registry import Registry
from toolkit.train.checkpoints import (
    check_resumable,
    load_trainer_state,
    resolve_resume,
    trainer_state_files,
    unsafe_pickle,
    verify_checkpoint,
    write_checkpoint,
)
from toolkit.train.config import TrainConfig, dump_yaml
from toolkit.train.data import make_dataloader
from toolkit.train.export import check_export_folder, export_model
from toolkit.train.interrupt import ctrl_c_between_batches


@dataclass
class TrainState:
    """Where the run is; saved in every checkpoint so a resume continues mid-epoch."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    nan_streak: int = 0

    def state_dict(self) -> dict[str, int]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in vars(self):
            setattr(self, key, int(state[key]))


def trainable_name(model: dict[str, Any]) -> tuple[str, str]:
    """(registry kind, name) of what a config's ``model:`` section trains: most configs train
    a generator (``generator: ddpm``); a text encoder trained on its own names a conditioner
    (``conditioner: text-clip``), which a latent diffusion model then reuses frozen."""
    if "conditioner" in model:
        return "conditioners", str(model["conditioner"])
    if "generator" not in model:
        raise ConfigError("the model: section needs 'generator: NAME' (or 'conditioner: NAME' for a text encoder)")
    return "generators", str(model["generator"])


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


class Trainer:
    def __init__(self, config: TrainConfig, *, registry: Registry | None = None, progress: Any = None):
        self.config = config
        self.registry = registry or get_registry()
        self.progress = progress
        t, out = config.train, config.output
        self.run_dir = Path(out.dir)
        self.accelerator = Accelerator(
            # Without an accelerator, say so: accelerate then runs torchrun/launch processes on gloo.
            cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),
            mixed_precision=_mixed_precision(t.mixed_precision),
            log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir / "logs")),
        )
        set_seed(t.seed)  # identical initial weights on every process

        kind, name = trainable_name(config.model)
        cls = self.registry.get(kind, name)
        if not issubclass(cls, Trainable):
            raise ConfigError(f"{kind[:-1]} '{name}' cannot be trained by `toolkit train` (it is not Trainable)")
        try:
            self.model_config = cls.Config.model_validate({k: v for k, v in config.model.items() if k not in ("generator", "conditioner")})
        except ValidationError as error:
            problems = "; ".join(f"model.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ConfigError(problems) from None

        d = config.data
        self.dataset = build_dataset(self.registry, d.dataset, split=d.split, size=d.size, seed=t.seed, options=d.options)
        if len(self.dataset) < d.batch_size * self.accelerator.num_processes:
            raise ConfigError(f"dataset '{d.dataset}' has {len(self.dataset)} samples, fewer than one batch; lower data.batch_size")
        self.model = call_with_context(cls.from_config, self.model_config, dataset=self.dataset,
                                       context=LoadContext(self.registry))
        self.state = TrainState()
        self._build()

    # -- set-up --------------------------------------------------------------------------

    def _build(self) -> None:
        t, acc = self.config.train, self.accelerator
        modules = self.model.training_modules()
        self.phases: list[Phase] = self.model.training_phases()
        self.optimizers, self.schedulers = [], []
        for phase in self.phases:
            params = [p for name in phase.modules for p in modules[name].parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=phase.lr or t.lr, betas=phase.betas or t.betas, weight_decay=t.weight_decay)
            self.optimizers.append(opt)
            self.schedulers.append(get_scheduler(
                f"{t.schedule}_with_warmup" if t.schedule == "constant" else t.schedule,
                opt, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps,
            ))
        self.emas = {
            name: EMAModel(modules[name].parameters(), decay=t.ema_decay, use_ema_warmup=True, power=3 / 4)
            for name in (self.model.ema_modules if t.ema_decay else ())
        }
        loader, _ = make_dataloader(self.dataset, self.config.data, t.seed)
        names = list(modules)
        prepared = acc.prepare(*modules.values(), *self.optimizers, *self.schedulers, loader)
        self.modules = dict(zip(names, prepared[: len(names)]))
        self.optimizers = list(prepared[len(names): len(names) + len(self.optimizers)])
        self.schedulers = list(prepared[len(names) + len(self.optimizers): -1])
        self.loader = prepared[-1]
        for ema in self.emas.values():
            ema.to(acc.device)  # saved and resumed by the trainer itself (checkpoints.trainer_state_files), not pickled
        set_seed(t.seed, device_specific=True)  # different noise on each process from here on

    # -- the loop ------------------------------------------------------------------------

    def train(self, resume: str | None = None, stop_after: int | None = None) -> Path | None:
        """Run to ``train.steps``; returns the exported model folder (main process).

        ``stop_after``: leave after this many steps of this invocation, with a checkpoint
        and without exporting (jobs with a time limit resume later with ``resume="latest"``).
        """
        acc, t = self.accelerator, self.config.train
        check_export_folder(self.config)
        if resume:
            self._resume(resume)
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_yaml(self.config, self.model_config))
        acc.init_trackers("train", config=_flat(self.config.model_dump(mode="json")))
        last = min(t.steps, self.state.step + stop_after) if stop_after else t.steps
        with ctrl_c_between_batches() as interrupted:
            self._loop(last, interrupted)
        self.check_replicas_agree()
        exported = None
        if self.state.step < t.steps:
            acc.print(f"stopped at step {self.state.step} of {t.steps}; continue with --resume latest")
        elif acc.is_main_process:
            exported = self.export()
        acc.end_training()  # closes trackers and the process group: collectives end before it
        return exported

    def _loop(self, last: int, interrupted: threading.Event) -> None:
        """Optimizer steps until step ``last``, with logs, samples and checkpoints on their
        schedules; raises KeyboardInterrupt before the next batch once ``interrupted`` is set."""
        acc, t, out = self.accelerator, self.config.train, self.config.output
        metrics_path = self.run_dir / "metrics.jsonl"
        started, steps_at_start = time.perf_counter(), self.state.step
        task = self.progress.add_task(f"training {self.config.name}", total=t.steps, completed=self.state.step) if self.progress else None
        micro: list[Any] = []  # the batches of one optimizer step (train.grad_accum)
        while self.state.step < t.steps:
            loader = acc.skip_first_batches(self.loader, self.state.batches_in_epoch) if self.state.batches_in_epoch else self.loader
            loader.set_epoch(self.state.epoch)  # accelerate's loaders pass it on to our EpochSampler
            for batch in loader:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                self.state.batches_in_epoch += 1
                micro.append(batch)
                if len(micro) < t.grad_accum:
                    continue
                logs = self._optimizer_step(micro)
                micro = []
                if logs is None:
                    continue
                self.state.step += 1
                step = self.state.step
                rate = (step - steps_at_start) / max(time.perf_counter() - started, 1e-9)
                if step % out.log_every == 0 or step == t.steps:
                    logs |= {f"lr_{p.name}": sch.get_last_lr()[0] for p, sch in zip(self.phases, self.schedulers)}
                    logs["steps_per_s"] = rate
                    acc.log(logs, step=step)
                    if acc.is_main_process:
                        with open(metrics_path, "a") as f:
                            f.write(json.dumps({"step": step, "time": time.time(), **logs}) + "\n")
                if task is not None:
                    shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k.startswith("loss"))
                    self.progress.update(task, completed=step, description=f"training {self.config.name} {shown}")
                if step % out.sample_every == 0 or step == t.steps:
                    self.write_samples()
                if step % out.checkpoint_every == 0 or step == last:
                    self.save_checkpoint()
                if step >= last:
                    break
            else:
                self.state.epoch += 1
                self.state.batches_in_epoch = 0
            if self.state.step >= last:
                break

    def check_replicas_agree(self) -> str:
        """Data-parallel processes must end with identical weights; a mismatch means the
        run is broken (say, a module changed outside the optimizer), so fail loudly."""
        acc = self.accelerator
        digest = hashlib.sha256()
        for name in sorted(self.modules):
            for tensor in acc.unwrap_model(self.modules[name]).state_dict().values():
                digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        code = torch.tensor([int(digest.hexdigest()[:15], 16)], device=acc.device)
        codes = acc.gather(code).tolist()
        if len(set(codes)) != 1:
            raise TrainingError(f"the {acc.num_processes} processes ended with different weights ({codes}); report this as a bug")
        acc.print(f"weights identical on {acc.num_processes} process(es): {digest.hexdigest()[:16]}")
        return digest.hexdigest()

    def _optimizer_step(self, micro: list[dict[str, Any]]) -> dict[str, float] | None:
        """Every phase over the accumulated micro-batches; None when the step was skipped."""
        acc, t = self.accelerator, self.config.train
        ctx = TrainContext(self.modules, self.state.step, acc.device)
        logs: dict[str, float] = {}
        for phase, opt, sched in zip(self.phases, self.optimizers, self.schedulers):
            opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(micro):
                with acc.autocast():
                    loss, parts = phase.loss(batch, ctx)
                # Decide together: one process skipping backward while others run it would hang DDP.
                finite = acc.reduce(torch.isfinite(loss.detach()).float().reshape(1), reduction="sum").item() == acc.num_processes
                if not finite:
                    return self._skip_step(phase.name, loss)
                acc.backward(loss / len(micro))
                for k, v in parts.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / len(micro)
            if t.grad_clip is not None:
                acc.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], t.grad_clip)
            opt.step()
            sched.step()
        self.state.nan_streak = 0
        for name, ema in self.emas.items():
            ema.step(acc.unwrap_model(self.modules[name]).parameters())
        return logs

    def _skip_step(self, phase: str, loss: torch.Tensor) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.state.nan_streak += 1
        self.accelerator.print(f"warning: non-finite loss ({loss.item()}) in phase '{phase}' at step {self.state.step + 1}; step skipped")
        if self.state.nan_streak >= self.config.train.nan_patience:
            raise TrainingError(
                f"the loss was NaN or infinite {self.state.nan_streak} steps in a row (phase '{phase}', step "
                f"{self.state.step + 1}); stopped. The last good checkpoint in {self.run_dir / 'checkpoints'} is "
                "intact: lower train.lr or enable train.grad_clip, then resume with --resume latest"
            )
        return None

    # -- checkpoints, samples, export ----------------------------------------------------

    def save_checkpoint(self) -> Path:
        own = trainer_state_files(self.state.state_dict(), self.emas) if self.accelerator.is_main_process else {}
        return write_checkpoint(self.accelerator, self.run_dir, self.state.step, self.config.output.keep_last,
                                {"config.yaml": dump_yaml(self.config, self.model_config), **own})

    def _resume(self, resume: str) -> None:
        """Load a checkpoint without running any code from it (see ``toolkit.train.checkpoints``)."""
        acc = self.accelerator
        folder = resolve_resume(self.run_dir, resume)
        step = verify_checkpoint(folder)
        check_resumable(folder, acc.process_index)
        try:
            acc.load_state(str(folder), load_kwargs={"weights_only": True})
        except pickle.UnpicklingError as error:
            raise unsafe_pickle(folder, error) from None
        except Exception as error:  # noqa: BLE001 - torch/accelerate raise many kinds here
            raise ConfigError(f"cannot load checkpoint {folder} into this model ({error}); was it made with the same config?") from None
        load_trainer_state(folder, self.state, self.emas, acc.device)
        if self.state.step != step:
            raise CheckpointError(f"checkpoint {folder}: its manifest says step {step}, its trainer state step "
                                  f"{self.state.step}; resume from another checkpoint")
        self.accelerator.print(f"resumed from {folder} at step {step} (epoch {self.state.epoch}, batch {self.state.batches_in_epoch})")

    def _with_ema(self, fn: Any) -> Any:
        """Run ``fn`` with the EMA weights swapped into the modules, then swap back."""
        for name, ema in self.emas.items():
            params = list(self.accelerator.unwrap_model(self.modules[name]).parameters())
            ema.store(params)
            ema.copy_to(params)
        try:
            return fn()
        finally:
            for name, ema in self.emas.items():
                ema.restore(list(self.accelerator.unwrap_model(self.modules[name]).parameters()))

    def write_samples(self, n: int = 16) -> Path | None:
        if not self.accelerator.is_main_process:
            return None

        def sample() -> torch.Tensor:
            with torch.no_grad():
                return self.model.preview(n, torch.Generator(self.accelerator.device).manual_seed(1234))

        grid = make_grid(tensor_to_pil(self._with_ema(sample)), columns=int(math.ceil(math.sqrt(n))))
        return save_atomic(grid, self.run_dir / "samples" / f"step-{self.state.step:08d}.png")

    def export(self) -> Path:
        """The model folder, from the EMA weights (``toolkit.train.export``)."""
        return export_model(self.model, self.dataset, self.config, self._with_ema)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TensorBoard's hparams take flat scalars only."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flat(value, f"{name}.")
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
