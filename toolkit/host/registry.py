"""What the plugins registered, by kind and name, and who registered it."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.components import (
    CONDITIONING_KINDS,
    Conditioner,
    Dataset,
    Generator,
    PostProcessor,
    SafetyClassifier,
    Stage,
    describe,
)
from toolkit.errors import DuplicateComponentError, PluginError, UnknownNameError

KINDS = ("generators", "conditioners", "samplers", "postprocessors", "datasets", "models", "eval_classifiers",
         "safety_classifiers")


@dataclass
class Entry:
    """One registered component."""

    name: str
    obj: Any  # a class, a sampler function, or a model or classifier folder Path
    plugin: str  # the plugin (entry-point name) that registered it
    description: str = ""


@dataclass
class PluginInfo:
    """One plugin as `toolkit plugins` shows it."""

    name: str
    package: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None  # set when the plugin is broken: it contributes nothing
    builtin: bool = False  # an entry point of the toolkit distribution itself: wins name clashes
    replaces: list[str] = field(default_factory=list)  # built-in components it replaces (TOOLKIT_PLUGIN_OVERRIDES)

    @property
    def ok(self) -> bool:
        return self.error is None


class Registry:
    """Components by kind and name. Built once by ``toolkit.host.loading.get_registry()``."""

    def __init__(self) -> None:
        self.generators: dict[str, Entry] = {}
        self.conditioners: dict[str, Entry] = {}
        self.samplers: dict[str, Entry] = {}
        self.postprocessors: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        self.models: dict[str, Entry] = {}
        self.eval_classifiers: dict[str, Entry] = {}
        self.safety_classifiers: dict[str, Entry] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._replaced: dict[tuple[str, str], Entry] = {}  # built-ins an override replaced, restored by drop()

    # -- registration ------------------------------------------------------------------

    def stage(self, kind: str, plugin: str) -> tuple[Any, list[Entry]]:
        """A ``register`` callback for one plugin and kind, and the list it fills.

        Entries are committed by ``commit`` only when the plugin's hook returned without
        error, so a plugin failing half-way through contributes nothing.
        """
        staged: list[Entry] = []
        validate = _VALIDATORS[kind]

        def register(obj: Any, *args: Any, **kwargs: Any) -> None:
            staged.append(validate(obj, plugin, *args, **kwargs))

        return register, staged

    def commit(self, kind: str, staged: list[Entry], *, may_replace_builtins: bool = False) -> None:
        """Add one plugin's staged entries, all or none. A name already taken is refused,
        naming both plugins; a built-in's name is refused with how to allow the replacement,
        which ``may_replace_builtins`` (the user's TOOLKIT_PLUGIN_OVERRIDES) grants."""
        table: dict[str, Entry] = getattr(self, kind)
        seen: set[str] = set()
        replaced = []
        for entry in staged:
            other = table.get(entry.name)
            newcomer_on_builtin = other is not None and self._builtin(other.plugin) and not self._builtin(entry.plugin)
            if newcomer_on_builtin and entry.name not in seen:
                if not may_replace_builtins:
                    raise DuplicateComponentError(
                        f"{kind[:-1]} '{entry.name}' is built in (plugin '{other.plugin}'); plugin '{entry.plugin}' "
                        f"may not replace it unless you allow it with TOOLKIT_PLUGIN_OVERRIDES={entry.plugin}"
                    )
                replaced.append(other)
            elif other is not None or entry.name in seen:
                owner = other.plugin if other is not None else entry.plugin
                raise DuplicateComponentError(
                    f"{kind[:-1]} '{entry.name}' is registered by both plugin '{owner}' and plugin "
                    f"'{entry.plugin}'; uninstall one of them or leave one out with TOOLKIT_PLUGINS"
                )
            seen.add(entry.name)
        for other in replaced:
            self._replaced[(kind, other.name)] = other
            newcomer = self.plugins.setdefault(staged[0].plugin, PluginInfo(staged[0].plugin))
            newcomer.replaces.append(f"{kind[:-1]} '{other.name}' of plugin '{other.plugin}'")
        for entry in staged:
            table[entry.name] = entry

    def drop(self, plugin: str) -> None:
        """Remove everything ``plugin`` registered (it broke), putting back built-ins it replaced."""
        for kind in KINDS:
            table: dict[str, Entry] = getattr(self, kind)
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]
                if (kind, name) in self._replaced:
                    table[name] = self._replaced.pop((kind, name))
        if plugin in self.plugins:
            self.plugins[plugin].replaces.clear()

    def _builtin(self, plugin: str) -> bool:
        return plugin in self.plugins and self.plugins[plugin].builtin

    # -- look-up -----------------------------------------------------------------------

    def get(self, kind: str, name: str) -> Any:
        """The registered object, or an ``UnknownNameError`` listing close matches."""
        table: dict[str, Entry] = getattr(self, kind)
        if name in table:
            return table[name].obj
        raise UnknownNameError(unknown_name_message(kind[:-1], name, list(table)))


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    available = ", ".join(sorted(known)) or "none installed"
    return f"unknown {what} '{name}'.{hint} Available: {available}."


# -- validation of what plugins register -------------------------------------------------


def _check_class(obj: Any, base: type, plugin: str, kind: str) -> None:
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"plugin '{plugin}' registered {obj!r} as a {kind}; expected a subclass of {base.__name__}")
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise PluginError(f"plugin '{plugin}': {obj.__name__} has no 'name' class attribute")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise PluginError(f"plugin '{plugin}': {kind} '{obj.name}' does not implement {missing}")


def _generator(obj: Any, plugin: str) -> Entry:
    _check_class(obj, Generator, plugin, "generator")
    unknown = set(obj.accepts) - set(CONDITIONING_KINDS)
    if unknown:
        raise PluginError(f"plugin '{plugin}': generator '{obj.name}' accepts unknown kinds {sorted(unknown)}")
    return Entry(obj.name, obj, plugin, describe(obj))


def _conditioner(obj: Any, plugin: str) -> Entry:
    _check_class(obj, Conditioner, plugin, "conditioner")
    if obj.kind not in CONDITIONING_KINDS:
        raise PluginError(f"plugin '{plugin}': conditioner '{obj.name}' has kind '{obj.kind}', not one of {CONDITIONING_KINDS}")
    return Entry(obj.name, obj, plugin, describe(obj))


def _sampler(name: Any, plugin: str, fn: Any = None, description: str = "") -> Entry:
    if not isinstance(name, str) or not callable(fn):
        raise PluginError(f"plugin '{plugin}': register a sampler as register(name, function, description)")
    return Entry(name, fn, plugin, description or describe(fn))


def _postprocessor(obj: Any, plugin: str) -> Entry:
    _check_class(obj, PostProcessor, plugin, "post-processor")
    if not isinstance(getattr(obj, "stage", None), Stage):
        raise PluginError(f"plugin '{plugin}': post-processor '{obj.name}' needs a 'stage' (toolkit.components.Stage)")
    return Entry(obj.name, obj, plugin, describe(obj))


def _dataset(obj: Any, plugin: str) -> Entry:
    _check_class(obj, Dataset, plugin, "dataset")
    return Entry(obj.name, obj, plugin, describe(obj))


def _model(path: Any, plugin: str) -> Entry:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise PluginError(f"plugin '{plugin}' registered model folder {folder} which has no config.json")
    return Entry(folder.name, folder, plugin, "")


def _eval_classifier(path: Any, plugin: str) -> Entry:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise PluginError(f"plugin '{plugin}' registered evaluation classifier folder {folder} which has no config.json")
    return Entry(folder.name, folder, plugin, "")


def _safety_classifier(obj: Any, plugin: str) -> Entry:
    _check_class(obj, SafetyClassifier, plugin, "safety classifier")
    if obj.concepts is not None and not (isinstance(obj.concepts, tuple) and all(isinstance(c, str) for c in obj.concepts)):
        raise PluginError(f"plugin '{plugin}': safety classifier '{obj.name}' needs 'concepts' as a tuple of names or None")
    return Entry(obj.name, obj, plugin, describe(obj))


_VALIDATORS = {
    "generators": _generator,
    "conditioners": _conditioner,
    "samplers": _sampler,
    "postprocessors": _postprocessor,
    "datasets": _dataset,
    "models": _model,
    "eval_classifiers": _eval_classifier,
    "safety_classifiers": _safety_classifier,
}
