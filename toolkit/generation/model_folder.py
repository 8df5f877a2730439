"""A model folder on disk: its config.json (the fields every generator shares, checked), its
weights' sha256 (checked before loading, recorded at save time or by ``toolkit models
--verify``), and writing one atomically. ``toolkit.generation.store`` finds and loads models
from these folders; trainers and plugins write them with ``save_model_folder``.

Pickle is never loaded: a folder whose only weights are pickles is refused, with the
conversion to run. A truncated or tampered file is refused; a folder made elsewhere with no
record loads with a warning until ``toolkit models --verify`` records it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError

from toolkit.errors import ModelError, ToolkitWarning
from toolkit.generation.files import write_atomic

if TYPE_CHECKING:  # safetensors.torch imports torch: only reading and writing weights need it
    import torch

CONFIG_NAME = "config.json"
# What a folder of another library's layout (a diffusers pipeline: no config.json of ours)
# records its weights' sha256 in, once `toolkit models --verify` has been run on it.
WEIGHTS_RECORD = "weights_sha256.json"
# Weights in torch's pickle format: loading one can run any code it carries, so none is loaded.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})

# -- config.json -----------------------------------------------------------------------------


Side = Annotated[int, Field(ge=8, le=4096)]  # as a request's --width and --height


class CommonConfig(BaseModel):
    """The config.json fields the store and the pipeline read, whatever the generator, with
    their types and bounds. Every other field is the generator's, checked by its own Config."""

    model_config = ConfigDict(extra="allow")

    generator: str | None = None
    accepts: list[str] = Field(default_factory=list)
    sizes: list[tuple[Side, Side]] = Field(default_factory=list)  # (height, width) pairs, the default first
    num_classes: int = Field(0, ge=0, le=100_000)
    default: bool = False
    conditioners: dict[str, str] = Field(default_factory=dict)
    weights_sha256: dict[str, str] = Field(default_factory=dict)
    default_sampler: str | None = None
    default_steps: int | None = Field(None, ge=1, le=1000)
    default_guidance_scale: float | None = Field(None, ge=0, le=50)
    default_truncation: float | None = Field(None, gt=0, le=10)


def read_config(folder: Path) -> dict[str, Any]:
    """A model folder's config.json, its common fields checked (``CommonConfig``)."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ModelError(f"{path} is not valid JSON ({type(error).__name__}: {error}); "
                         "restore the model folder") from None
    except OSError as error:
        raise ModelError(f"cannot read {path} ({error.strerror}); restore the model folder") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object")
    try:
        CommonConfig.model_validate(config)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise ModelError(f"{path} is not a valid model config ({problems}); "
                         "restore the model folder or re-export it") from None
    return config


# -- weights ---------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_hashes: dict[tuple, str] = {}


def weights_sha256(folder: Path) -> str:
    """One hash over every safetensors file in the folder (names and bytes), stable across
    machines: what recipes record to say exactly which weights made an image. Remembered
    per (file, size, mtime), since every generate asks and large models take a while."""
    files = sorted(folder.rglob("*.safetensors"))
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _hashes:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(file_sha256(path).encode())
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def count_parameters(folder: Path) -> int | None:
    """How many numbers the folder's safetensors files hold (every tensor's elements,
    buffers such as a prior's means included), or None when one of them cannot be read.
    Only the files' headers are read, through numpy's side of safetensors: no torch."""
    from safetensors import safe_open

    try:
        total = 0
        for path in sorted(Path(folder).rglob("*.safetensors")):
            with safe_open(path, framework="numpy") as f:
                total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118 (not a dict)
        return total
    except (OSError, SafetensorError, ValueError):
        return None


def load_weights(folder: Path, filename: str = "model.safetensors", device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read one safetensors file of a model folder, refusing truncated or altered files (one
    without a recorded sha256 loads with a ``ToolkitWarning``, see ``verify_weights``)."""
    path = folder / filename
    if not path.is_file():
        raise ModelError(f"model folder {folder} is missing {filename}; re-export or re-install the model")
    recorded = recorded_weights(folder)
    if filename not in recorded:
        _warn_unverified(folder, unrecorded_weights(folder, recorded))
    elif file_sha256(path) != recorded[filename]:
        raise ModelError(
            f"{path} does not match the sha256 recorded in {CONFIG_NAME}: the file was truncated or altered; "
            "re-export or re-install the model"
        )
    from safetensors.torch import load_file

    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"{path} is not a readable safetensors file ({error}); re-export or re-install the model") from None


def recorded_weights(folder: Path) -> dict[str, str]:
    """The sha256 recorded for a model folder's weights files, by path inside the folder:
    config.json's ``weights_sha256`` (``save_model_folder`` writes it), or for a folder
    without a config.json of ours, its ``weights_sha256.json``. Empty when none is recorded."""
    if (folder / CONFIG_NAME).is_file():
        return dict(read_config(folder).get("weights_sha256") or {})
    path = folder / WEIGHTS_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise ModelError(f"{path} is unreadable ({error}); delete it and record again with "
                         f"`toolkit models --verify {folder}`") from None
    if not isinstance(record, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in record.items()):
        raise ModelError(f"{path} must map file names to sha256 strings; delete it and record again with "
                         f"`toolkit models --verify {folder}`")
    return record


def unrecorded_weights(folder: Path, recorded: dict[str, str]) -> list[str]:
    """The folder's safetensors files (paths inside it) with no sha256 in ``recorded``."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors"))
    return sorted(name for name in names if name not in recorded)


def _warn_unverified(folder: Path, files: list[str]) -> None:
    if files:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        # One text per folder from this one line: Python shows it once, however many loads ask.
        said = (f"model folder {folder} has weights with no recorded sha256 ({shown}), loaded unverified; "
                f"once you trust them, `toolkit models --verify {folder}` records them")
        warnings.warn(ToolkitWarning(said), stacklevel=1)


def refuse_pickle_weights(folder: Path) -> None:
    """``ModelError`` naming the conversion if the folder holds pickle weights with no
    safetensors beside them: the only weights a library could load there would be a pickle.
    Where safetensors sit beside them, the pickles are never read (every load asks for
    safetensors: ``load_weights``, and ``use_safetensors=True`` for diffusers and transformers)."""
    pickles = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.suffix in PICKLE_SUFFIXES and p.is_file() and not any(p.parent.glob("*.safetensors")))
    if not pickles:
        return
    if (folder / "model_index.json").is_file():
        how = (f"python -c \"from diffusers import DiffusionPipeline as P; P.from_pretrained('{folder}')"
               f".save_pretrained('{folder}', safe_serialization=True)\"")
    else:
        how = pickle_conversion(folder / pickles[0]) + (", and the same for each other one" if len(pickles) > 1 else "")
    raise ModelError(f"model folder {folder} holds pickle weights ({', '.join(pickles[:3])}) and no safetensors beside "
                     f"them; toolkit loads only safetensors, since a pickle can run code. Convert them once, where you "
                     f"trust them: {how}")


def pickle_conversion(source: Path) -> str:
    """The command that writes a pickle weights file (a plain state dict) as safetensors
    beside it, under the name diffusers and transformers read (other files keep their stem)."""
    name = {"diffusion_pytorch_model.bin": "diffusion_pytorch_model.safetensors",
            "pytorch_model.bin": "model.safetensors"}.get(source.name, f"{source.stem}.safetensors")
    return (f"python -c \"import torch, safetensors.torch; safetensors.torch.save_file(torch.load('{source}', "
            f"weights_only=True), '{source.with_name(name)}')\"")


def verify_weights(folder: Path, *, record: bool = False) -> list[str]:
    """Check a model folder's weights before anything loads them (``load_model`` calls it for
    every model; generators whose weights a library loads call it too): pickle weights are
    refused (``refuse_pickle_weights``); every file with a recorded sha256 must be there
    and match it; files without one load unverified, said in one ``ToolkitWarning``, or,
    with ``record`` (``toolkit models --verify``, once the user trusts the folder), get
    their sha256 recorded. Returns the files that had no recorded sha256."""
    folder = Path(folder)
    refuse_pickle_weights(folder)
    recorded = recorded_weights(folder)
    record_file = CONFIG_NAME if (folder / CONFIG_NAME).is_file() else WEIGHTS_RECORD
    for filename, expected in recorded.items():
        path = folder / filename
        if not path.is_file():
            raise ModelError(f"model folder {folder} is missing {filename}; re-export or re-install the model")
        if file_sha256(path) != expected:
            raise ModelError(f"{path} does not match the sha256 recorded in {record_file}: the file was truncated or "
                             "altered; re-export or re-install the model")
    missing = unrecorded_weights(folder, recorded)
    if missing and record:
        hashes = {**recorded, **{name: file_sha256(folder / name) for name in missing}}
        if record_file == CONFIG_NAME:
            update_model_config(folder, {"weights_sha256": hashes})
        else:
            write_atomic(folder / WEIGHTS_RECORD, json.dumps(hashes, indent=2, sort_keys=True))
    elif missing:
        _warn_unverified(folder, missing)
    return missing


def save_model_folder(
    folder: Path,
    config: dict[str, Any],
    weights: dict[str, dict[str, torch.Tensor]],
    *,
    extra_files: dict[str, str | bytes] | None = None,
) -> Path:
    """Write a model folder atomically: everything goes to a temporary sibling first and
    replaces ``folder`` in one rename, so a crash never leaves a half-written model.

    weights: ``{"model.safetensors": {tensor_name: tensor}}``, sub-paths allowed ("unet/x.safetensors").
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes an owner-only folder; a model folder is an ordinary one
    try:
        hashes = {}
        for filename, tensors in weights.items():
            target = tmp / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, target)
            hashes[filename] = file_sha256(target)
        for filename, content in (extra_files or {}).items():
            target = tmp / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        (tmp / CONFIG_NAME).write_text(json.dumps({**config, "weights_sha256": hashes}, indent=2, sort_keys=True))
        place_folder(tmp, folder, replace=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def place_folder(finished: Path, folder: Path, *, replace: bool) -> None:
    """Give the finished folder ``finished`` (in the same parent folder) the name ``folder``
    by renames, so ``folder`` is never seen half-written. An existing ``folder`` is moved
    aside and deleted only with ``replace``; without it, ``FileExistsError`` (also when
    another process creates ``folder`` meanwhile: the rename onto it fails)."""
    old = None
    if os.path.lexists(folder):
        if not replace:
            raise FileExistsError(errno.EEXIST, "model folder exists", str(folder))
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    try:
        finished.rename(folder)
    except OSError as error:  # ENOTEMPTY or EEXIST: another process made it meanwhile
        if os.path.lexists(folder):
            raise FileExistsError(errno.EEXIST, "model folder exists", str(folder)) from error
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def square_model_config(generator: str, config: BaseModel, *, num_classes: int, size: int) -> dict[str, Any]:
    """config.json for a model of square ``size`` images with ``num_classes`` classes (0 =
    unconditional): what the pipeline checks, plus the generator's hyper-parameters."""
    return {"generator": generator, "accepts": ["class"] if num_classes else [], "sizes": [[size, size]],
            "num_classes": num_classes, **config.model_dump(mode="json")}


def read_square_model_config(folder: Path, config_cls: type[ConfigT]) -> tuple[ConfigT, int, int]:
    """The inverse of ``square_model_config``: (hyper-parameters, num_classes, size)."""
    saved = read_config(folder)
    try:
        config = config_cls.model_validate({k: v for k, v in saved.items() if k in config_cls.model_fields})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise ModelError(f"{folder / CONFIG_NAME} has values its generator refuses ({problems}); "
                         "restore the model folder or re-export it") from None
    if "num_classes" not in saved or not saved.get("sizes"):
        raise ModelError(f"{folder / CONFIG_NAME} records no num_classes or sizes; re-export the model")
    return config, int(saved["num_classes"]), int(saved["sizes"][0][0])


def update_model_config(folder: Path, entries: dict[str, Any]) -> None:
    """Add ``entries`` to a model folder's config.json in one atomic replace (the trainer
    records what the model was trained on, which ``toolkit eval`` reads back)."""
    path = Path(folder) / CONFIG_NAME
    config = {**json.loads(path.read_text()), **entries}
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True))
