"""The model store: model folders (``config.json`` + safetensors), found by name, offline.

A model folder follows diffusers' ``save_pretrained`` / ``from_pretrained`` convention::

    my-model/
      config.json          {"generator": "ddpm", "accepts": ["class"], "sizes": [[32, 32]],
                            "weights_sha256": {"model.safetensors": "..."}, ...}
      model.safetensors    (sub-folders such as unet/ or vae/ are fine too)

Models are looked up as a path, then in the user folder ($TOOLKIT_HOME/models), then among
the folders plugins ship (``register_models``). ``toolkit.generation.model_folder`` reads
and writes a folder and checks its weights (safetensors only, against their recorded sha256)
before anything here loads it.
"""

from __future__ import annotations

import inspect
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.components import Conditioner, Generator, LoadContext
from toolkit.errors import ModelError, UnknownNameError, UserConfigError
from toolkit.generation.model_folder import CONFIG_NAME, count_parameters, read_config, verify_weights, weights_sha256
from toolkit.generation.user_config import setting, toolkit_home  # toolkit_home: imported from here too
from toolkit.host.registry import Registry, unknown_name_message


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

    @property
    def parameters(self) -> int | None:
        """How many numbers its safetensors files hold (read from their headers, no weights
        loaded), or None when one cannot be read. Weights outside the folder (a text encoder
        that a package ships, say) are not counted."""
        return count_parameters(self.path)

    def sha256(self) -> str:
        return weights_sha256(self.path)


# -- finding models ------------------------------------------------------------------------


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
    """Resolve a model name or folder path to its ``ModelInfo`` (config read, weights not).
    ``None``: ``model`` in config.toml, else the installed model marked default."""
    if name is None:
        configured = setting("model")
        if configured.value is not None:
            try:
                return find_model(configured.value, registry)
            except (UnknownNameError, ModelError) as error:
                raise UserConfigError(f"{configured.where} sets model = \"{configured.value}\": {error} Change it "
                                      "there, or pass --model") from None
        defaults = [m for m in list_models(registry) if m.config.get("default")]
        if not defaults:
            raise UnknownNameError("no default model is installed; pass --model NAME (see `toolkit models`)")
        # A default the user installed wins over the one a plugin ships.
        return min(defaults, key=lambda m: m.source != "user")
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
    the generator with those in its ``LoadContext``. The folder's weights are checked first
    (``verify_weights``: no pickles, every recorded sha256 matches)."""
    key = (str(info.path), info.sha256(), device, id(registry))
    if key in _loaded and _loaded[key].registry is registry:
        _loaded.move_to_end(key)
        return _loaded[key]
    verify_weights(info.path)
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
