"""Training checkpoints: written atomically, verified before resuming, the last K kept.

A checkpoint is written into ``checkpoints/.tmp-checkpoint-NNNNNNNN`` and renamed to
``checkpoints/checkpoint-NNNNNNNN`` only once every file and a ``manifest.json`` of their
sha256 are on disk. A process killed half-way leaves only a temporary folder, which is
ignored (and cleaned up by the next checkpoint), so the previous checkpoint stays usable.

Resuming a checkpoint runs none of its code: the networks are safetensors, the trainer's
own state (where the run is, the EMA weights) is JSON and safetensors, and what Accelerate
pickles (optimizer, scheduler and RNG states) is read with ``weights_only=True``, which
refuses anything but tensors, numbers and containers of them. The manifest catches a
damaged checkpoint, not a forged one: whoever writes a checkpoint writes its manifest.

    checkpoint-00000500/
      model.safetensors, model_1.safetensors ...   the networks (Accelerate)
      optimizer.bin, scheduler.bin ...             their states (Accelerate, torch pickles)
      random_states_0.pkl ...                      each process's RNG states (Accelerate)
      trainer_state.json, ema.safetensors          the trainer's own state
      config.yaml, manifest.json
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import load as accelerate_load
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from toolkit.errors import CheckpointError
from toolkit.generation.model_folder import file_sha256

MANIFEST = "manifest.json"
PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
EMA_WEIGHTS = "ema.safetensors"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).is_file())


def write_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep_last: int,
                     extra_files: dict[str, str | bytes]) -> Path:
    """Save the full training state for ``step``: Accelerate's (models, optimizers,
    schedulers, RNGs) and ``extra_files`` (the trainer's own state, ``trainer_state_files``).
    Called on every process; only the main process writes the extra files and renames/prunes."""
    root = checkpoint_root(run_dir)
    tmp = root / f".tmp-{PREFIX}{step:08d}"
    final = root / f"{PREFIX}{step:08d}"
    if accelerator.is_main_process:
        for stale in root.glob(f".tmp-{PREFIX}*") if root.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)  # left by a run killed mid-write
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, content in extra_files.items():
            (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in files}
        _write_synced(tmp / MANIFEST, json.dumps({"step": step, "files": manifest}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def verify_checkpoint(folder: Path) -> int:
    """Check every file against the manifest; returns the checkpoint's step."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{folder} is not a complete checkpoint (no {MANIFEST}); resume from another one")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{manifest_path} is corrupt; resume from an earlier checkpoint") from None
    files, step = (manifest.get("files"), manifest.get("step")) if isinstance(manifest, dict) else (None, None)
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
            and isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        raise CheckpointError(f"{manifest_path} is not a checkpoint manifest (it needs \"step\" and \"files\"); "
                              "resume from an earlier checkpoint")
    for name, expected in files.items():
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise CheckpointError(f"{manifest_path} names {name}, outside the checkpoint; "
                                  "resume from an earlier checkpoint")
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} is missing {name}; resume from an earlier checkpoint")
        if file_sha256(path) != expected:
            raise CheckpointError(
                f"checkpoint {folder} is corrupt: {name} does not match its recorded sha256; "
                "resume from an earlier checkpoint (--resume PATH)"
            )
    return step


def resolve_resume(run_dir: Path, resume: str) -> Path:
    """``latest`` -> the newest complete checkpoint of the run; otherwise a checkpoint path."""
    if resume == "latest":
        found = complete_checkpoints(run_dir)
        if not found:
            raise CheckpointError(f"no checkpoint to resume from in {checkpoint_root(run_dir)}; start without --resume")
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {path}")
    return path


# -- the trainer's own state: JSON and safetensors, never a pickle ------------------------------


def trainer_state_files(state: dict[str, int], emas: dict[str, Any]) -> dict[str, str | bytes]:
    """A checkpoint's files for the trainer's own state: ``state`` (where the run is) and
    each EMA's settings as JSON, the EMAs' weights as safetensors (``NAME.I``: the I-th
    parameter of the module NAME). ``emas``: diffusers ``EMAModel`` by module name."""
    settings, tensors = {}, {}
    for name, ema in emas.items():
        saved = ema.state_dict()
        for i, tensor in enumerate(saved.pop("shadow_params")):
            tensors[f"{name}.{i}"] = tensor.detach().cpu().contiguous()
        settings[name] = saved
    files: dict[str, str | bytes] = {TRAINER_STATE: json.dumps({"state": state, "ema": settings}, indent=1)}
    if emas:
        files[EMA_WEIGHTS] = safetensors_bytes(tensors)
    return files


def load_trainer_state(folder: Path, state: Any, emas: dict[str, Any], device: torch.device | str) -> None:
    """Read back what ``trainer_state_files`` wrote into ``state`` (anything with
    ``load_state_dict``) and each EMA (its weights onto ``device``)."""
    try:
        saved = json.loads((folder / TRAINER_STATE).read_text())
        tensors = load_file(folder / EMA_WEIGHTS, device=str(device)) if emas else {}
        for name, ema in emas.items():
            shadow = [tensors[f"{name}.{i}"] for i in range(len(ema.shadow_params))]
            ema.load_state_dict({**saved["ema"][name], "shadow_params": shadow})
        state.load_state_dict(saved["state"])
    except (OSError, json.JSONDecodeError, SafetensorError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {folder} has no usable trainer state ({type(error).__name__}: {error}); "
                              "was it made with the same config? Resume from another checkpoint") from None


def check_resumable(folder: Path, process_index: int) -> None:
    """Refuse, before Accelerate reads anything, a checkpoint that holds what resume will
    not load: pickled trainer state (``custom_checkpoint_*.pkl``, which Accelerate reads
    with ``weights_only=False``: it could run code), or this process's RNG states in a
    form ``weights_only=True`` refuses (Accelerate would skip them silently, and the run
    would not continue exactly)."""
    pickled = sorted(p.name for p in folder.glob("custom_checkpoint_*.pkl"))
    if pickled:
        raise CheckpointError(
            f"checkpoint {folder} holds pickled trainer state ({', '.join(pickled)}), which --resume does not load: "
            "a pickle could run code. It was written by an older toolkit or by someone else: resume from a "
            "checkpoint this toolkit wrote, or start the run again")
    rng = folder / f"random_states_{process_index}.pkl"
    if rng.is_file():
        try:
            accelerate_load(rng, weights_only=True)
        except pickle.UnpicklingError as error:
            raise unsafe_pickle(folder, error) from None


def unsafe_pickle(folder: Path, error: Exception) -> CheckpointError:
    """The error for a checkpoint whose pickled state ``weights_only=True`` refuses."""
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    reason = f"it refers to {found.group(1)}" if found else type(error).__name__
    return CheckpointError(
        f"checkpoint {folder} holds pickled state that is not only tensors and numbers ({reason}); --resume refuses "
        "to load it, since it could run code: resume from a checkpoint your own run wrote")
