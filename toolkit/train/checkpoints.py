"""Training checkpoints: written atomically, verified before resuming, the last K kept.

A checkpoint is written into ``checkpoints/.tmp-checkpoint-NNNNNNNN`` and renamed to
``checkpoints/checkpoint-NNNNNNNN`` only once every file and a ``manifest.json`` of their
sha256 are on disk. A process killed half-way leaves only a temporary folder, which is
ignored (and cleaned up by the next checkpoint), so the previous checkpoint stays usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

from toolkit.errors import CheckpointError
from toolkit.generation.store import file_sha256

MANIFEST = "manifest.json"
PREFIX = "checkpoint-"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / MANIFEST).is_file())


def write_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep_last: int,
                     extra_files: dict[str, str]) -> Path:
    """Save the full training state (models, optimizers, schedulers, RNGs, registered
    objects) for ``step``. Called on every process; only the main process renames/prunes."""
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
        for name, text in extra_files.items():
            (tmp / name).write_text(text)
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
    except json.JSONDecodeError:
        raise CheckpointError(f"{manifest_path} is corrupt; resume from an earlier checkpoint") from None
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} is missing {name}; resume from an earlier checkpoint")
        if file_sha256(path) != expected:
            raise CheckpointError(
                f"checkpoint {folder} is corrupt: {name} does not match its recorded sha256; "
                "resume from an earlier checkpoint (--resume PATH)"
            )
    return int(manifest["step"])


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
