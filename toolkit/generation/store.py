"""The model store: model folders (``config.json`` + safetensors), found by name, offline.

A model folder follows diffusers' ``save_pretrained`` / ``from_pretrained`` convention::

    my-model/
      config.json          {"generator": "ddpm", "accepts": ["class"], "sizes": [[32, 32]],
                            "weights_sha256": {"model.safetensors": "..."}, ...}
      model.safetensors    (sub-folders such as unet/ or vae/ are fine too)

Models are looked up as a path, then in the user folder ($TOOLKIT_HOME/models), then among
the folders plugins ship (``register_models``). Pickle is never loaded. Weights are checked
against the sha256 recorded at save time, so a truncated or tampered file is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
import torch
from pydantic import BaseModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from toolkit.components import Conditioner, Generator, LoadContext
from toolkit.errors import ModelError, UnknownNameError
from toolkit.generation.files import write_atomic
from toolkit.host.registry import Registry, unknown_name_message

CONFIG_NAME = "config.json"


def toolkit_home() -> Path:
    """Where user data lives: $TOOLKIT_HOME, default the platform's user cache dir."""
    return Path(os.environ.get("TOOLKIT_HOME") or platformdirs.user_cache_dir("toolkit")).expanduser()


def user_models_dir() -> Path:
    return toolkit_home() / "models"


@dataclass
class ModelInfo:
    """A model folder and what its config says it can do; no weights are read."""

    name: str
    path: Path
    config: dict[str, Any]
    source: str  # "path", "user" or the plugin that shipped it

    @property
    def generator(self) -> str:
        return str(self.config.get("generator", "?"))

    @property
    def accepts(self) -> set[str]:
        return set(self.config.get("accepts", []))

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Supported ``(height, width)`` pairs; the first is the default."""
        return [tuple(s) for s in self.config.get("sizes", [])]  # type: ignore[misc]

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def sha256(self) -> str:
        return weights_sha256(self.path)


# -- finding models ------------------------------------------------------------------------


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path} is not valid JSON ({error}); restore the model folder") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return config


def _candidates(registry: Registry) -> dict[str, ModelInfo]:
    """Every model by name: shipped ones first, user ones override them."""
    found: dict[str, ModelInfo] = {}
    for name, entry in registry.models.items():
        found[name] = ModelInfo(name, Path(entry.obj), {}, entry.plugin)
    user = user_models_dir()
    if user.is_dir():
        for folder in sorted(user.iterdir()):
            if (folder / CONFIG_NAME).is_file():
                found[folder.name] = ModelInfo(folder.name, folder, {}, "user")
    return found


def list_models(registry: Registry) -> list[ModelInfo]:
    infos = []
    for info in _candidates(registry).values():
        try:
            info.config = read_config(info.path)
        except ModelError as error:
            info.config = {"generator": "?", "error": str(error)}
        infos.append(info)
    return sorted(infos, key=lambda m: m.name)


def find_model(name: str | None, registry: Registry) -> ModelInfo:
    """Resolve a model name or folder path to its ``ModelInfo`` (config read, weights not)."""
    if name is None:
        defaults = [m for m in list_models(registry) if m.config.get("default")]
        if not defaults:
            raise UnknownNameError("no default model is installed; pass --model NAME (see `toolkit models`)")
        # A default the user installed wins over the one a plugin ships.
        return sorted(defaults, key=lambda m: m.source != "user")[0]
    candidates = _candidates(registry)
    if name in candidates:
        info = candidates[name]
    elif os.sep in name or "/" in name or name.startswith(".") or Path(name).expanduser().is_dir():
        path = Path(name).expanduser().resolve()
        if not path.is_dir():
            raise ModelError(f"model folder not found: {path}")
        info = ModelInfo(path.name, path, {}, "path")
    else:
        raise UnknownNameError(unknown_name_message("model", name, list(candidates)) + " See `toolkit models`.")
    if not (info.path / CONFIG_NAME).is_file():
        for entry in registry.generators.values():
            foreign = entry.obj.foreign_config(info.path)
            if foreign is not None:
                info.config = foreign
                return info
    info.config = read_config(info.path)
    return info


def generator_class(info: ModelInfo, registry: Registry) -> type[Generator]:
    """The registered generator that claims this model folder."""
    for entry in registry.generators.values():
        if entry.obj.claims(info.path, info.config):
            return entry.obj
    raise UnknownNameError(
        f"model '{info.name}' needs generator '{info.generator}', which no installed plugin provides; "
        f"installed generators: {', '.join(sorted(registry.generators)) or 'none'} (see `toolkit plugins`)"
    )


@dataclass
class LoadedModel:
    """A model ready to generate: its generator and the conditioners loaded for it, by kind.
    The generator received the same conditioner objects through its ``LoadContext``."""

    info: ModelInfo
    generator: Generator
    conditioners: dict[str, Conditioner]
    registry: Registry

    def conditioner(self, kind: str) -> Conditioner:
        """The conditioner for ``kind``; a kind without a registered conditioner raises the
        registry's ``UnknownNameError`` here, when a request first needs it."""
        if kind not in self.conditioners:
            self.registry.get("conditioners", conditioner_name(self.info.config, kind))
        return self.conditioners[kind]


_loaded: OrderedDict[tuple[str, str, str, int], LoadedModel] = OrderedDict()
_CACHE_SIZE = 2  # the web app switches between a couple of models; keep memory bounded


def conditioner_name(config: dict[str, Any], kind: str) -> str:
    """The conditioner a model uses for ``kind``: named in its config.json, else the kind."""
    return config.get("conditioners", {}).get(kind, kind)


def load_model(info: ModelInfo, registry: Registry, device: str = "cpu") -> LoadedModel:
    """Load (or reuse) the model: one conditioner per kind it accepts, each loaded once, then
    the generator with those in its ``LoadContext``. Weights are verified by ``load_weights``."""
    key = (str(info.path), info.sha256(), device, id(registry))
    if key in _loaded and _loaded[key].registry is registry:
        _loaded.move_to_end(key)
        return _loaded[key]
    conditioners = {}
    for kind in sorted(info.accepts):
        name = conditioner_name(info.config, kind)
        if name in registry.conditioners:
            conditioners[kind] = registry.conditioners[name].obj.load(info.path, info.config)
    context = LoadContext(registry, conditioners)
    generator = call_with_context(generator_class(info, registry).from_pretrained, info.path, device=device, context=context)
    _loaded[key] = LoadedModel(info, generator, conditioners, registry)
    while len(_loaded) > _CACHE_SIZE:
        _loaded.popitem(last=False)
    return _loaded[key]


def load_generator(info: ModelInfo, registry: Registry, device: str = "cpu") -> Generator:
    """The generator of ``load_model``."""
    return load_model(info, registry, device).generator


def call_with_context(method: Any, *args: Any, context: LoadContext, **kwargs: Any) -> Any:
    """Call a plugin's ``from_pretrained`` / ``from_config``, passing ``context`` only when its
    signature takes it: generators that need nothing from it may leave it out."""
    parameters = inspect.signature(method).parameters
    takes = "context" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return method(*args, **kwargs, context=context) if takes else method(*args, **kwargs)


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


def load_weights(folder: Path, filename: str = "model.safetensors", device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read one safetensors file of a model folder, refusing truncated or altered files."""
    path = folder / filename
    if not path.is_file():
        raise ModelError(f"model folder {folder} is missing {filename}; re-export or re-install the model")
    expected = read_config(folder).get("weights_sha256", {}).get(filename)
    if expected is not None and file_sha256(path) != expected:
        raise ModelError(
            f"{path} does not match the sha256 recorded in {CONFIG_NAME}: the file was truncated or altered; "
            "re-export or re-install the model"
        )
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"{path} is not a readable safetensors file ({error}); re-export or re-install the model") from None


def verify_weights(folder: Path) -> None:
    """Check every weights file config.json records against its sha256: for generators whose
    weights a library loads (diffusers' ``from_pretrained``) rather than ``load_weights``."""
    for filename, expected in read_config(folder).get("weights_sha256", {}).items():
        path = folder / filename
        if not path.is_file():
            raise ModelError(f"model folder {folder} is missing {filename}; re-export or re-install the model")
        if file_sha256(path) != expected:
            raise ModelError(f"{path} does not match the sha256 recorded in {CONFIG_NAME}: the file was truncated or "
                             "altered; re-export or re-install the model")


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
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def square_model_config(generator: str, config: BaseModel, *, num_classes: int, size: int) -> dict[str, Any]:
    """config.json for a model of square ``size`` images with ``num_classes`` classes (0 =
    unconditional): what the pipeline checks, plus the generator's hyper-parameters."""
    return {"generator": generator, "accepts": ["class"] if num_classes else [], "sizes": [[size, size]],
            "num_classes": num_classes, **config.model_dump(mode="json")}


def read_square_model_config(folder: Path, config_cls: type[ConfigT]) -> tuple[ConfigT, int, int]:
    """The inverse of ``square_model_config``: (hyper-parameters, num_classes, size)."""
    saved = read_config(folder)
    config = config_cls.model_validate({k: v for k, v in saved.items() if k in config_cls.model_fields})
    return config, int(saved["num_classes"]), int(saved["sizes"][0][0])


def update_model_config(folder: Path, entries: dict[str, Any]) -> None:
    """Add ``entries`` to a model folder's config.json in one atomic replace (the trainer
    records what the model was trained on, which ``toolkit eval`` reads back)."""
    path = Path(folder) / CONFIG_NAME
    config = {**json.loads(path.read_text()), **entries}
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True))
