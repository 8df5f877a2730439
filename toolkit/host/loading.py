"""Finding, loading and calling plugins.

Every plugin, built-in or not, is an entry point in the ``toolkit`` group. Each one is
imported and each of its hooks called on its own, so a plugin that raises (or calls
``sys.exit()``) is recorded as broken (``toolkit plugins`` shows its error) and everything
else keeps working. Code a plugin runs later (a post-processor's ``process``, say) runs under
``blame``, so its failure is reported as that plugin's, in one line.

Built-ins (the entry points of the toolkit distribution itself) load first and win a name
clash: a plugin registering a component under a built-in's name is the broken one, unless
the user lets it replace the built-in with ``TOOLKIT_PLUGIN_OVERRIDES``.

Environment variables:

* ``TOOLKIT_PLUGINS=a,b``: load only these plugins (empty: load none).
* ``TOOLKIT_STRICT_PLUGINS=1``: a broken plugin raises instead of being skipped.
* ``TOOLKIT_TRACE_PLUGINS=1``: log every hook call to stderr.
* ``TOOLKIT_PLUGIN_OVERRIDES=a,b``: these plugins may replace built-in components of the
  same name (``toolkit plugins`` shows what each replaces).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Iterable

import pluggy

from toolkit import DISTRIBUTION
from toolkit.errors import PluginError, ToolkitError, ToolkitWarning
from toolkit.host import hookspecs
from toolkit.host.registry import KINDS, PluginInfo, Registry

ENTRY_POINT_GROUP = "toolkit"
BUILTIN_DISTRIBUTION = DISTRIBUTION  # the built-ins are this distribution's own entry points
_REGISTER_HOOKS = {f"register_{kind}": kind for kind in KINDS}

_lock = threading.Lock()
_registry: Registry | None = None
_pm: pluggy.PluginManager | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _names(variable: str) -> set[str] | None:
    """The comma-separated names in an environment variable; None when it is not set."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _allow_list() -> set[str] | None:
    return _names("TOOLKIT_PLUGINS")


def _overrides() -> set[str]:
    return _names("TOOLKIT_PLUGIN_OVERRIDES") or set()


def _trace(message: str) -> None:
    if _env_flag("TOOLKIT_TRACE_PLUGINS"):
        print(f"[toolkit trace] {message}", file=sys.stderr)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("toolkit")
    pm.add_hookspecs(hookspecs)
    return pm


def _fail(info: PluginInfo, error: BaseException) -> None:
    info.error = f"{type(error).__name__}: {error}"
    _trace(f"plugin '{info.name}' is broken: {info.error}")
    if _env_flag("TOOLKIT_STRICT_PLUGINS"):
        raise PluginError(f"plugin '{info.name}' failed: {info.error}") from error


def load_entry_points(pm: pluggy.PluginManager, registry: Registry) -> None:
    """Import each ``toolkit`` entry point on its own and register it with ``pm``, the
    built-ins first. An entry point whose name another package's plugin already has is
    recorded as broken under ``NAME (PACKAGE)``: a name never passes to another package."""
    allowed = _allow_list()
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(found, key=lambda e: (_package(e) != BUILTIN_DISTRIBUTION, e.name)):
        if allowed is not None and ep.name not in allowed:
            continue
        dist, package = getattr(ep, "dist", None), _package(ep)
        info = PluginInfo(ep.name, package=package, version=dist.version if dist else None,
                          builtin=package == BUILTIN_DISTRIBUTION)
        taken = registry.plugins.get(ep.name)
        if taken is not None:
            if taken.package == info.package:  # the same distribution seen twice on sys.path
                continue
            info.name = f"{ep.name} ({info.package})"
            registry.plugins[info.name] = info
            _fail(info, PluginError(f"plugin name '{ep.name}' is taken by package '{taken.package}'; "
                                    f"the entry point of package '{info.package}' needs another name"))
            continue
        add_plugin(pm, registry, info, ep.load)
    unknown = (allowed or set()) - {ep.name for ep in found}
    if unknown:
        installed = ", ".join(sorted({ep.name for ep in found})) or "none"
        warnings.warn(f"TOOLKIT_PLUGINS names {', '.join(sorted(unknown))}, which no installed plugin is called; "
                      f"installed: {installed}", ToolkitWarning, stacklevel=2)


def _package(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist else None


def add_plugin(pm: pluggy.PluginManager, registry: Registry, info: PluginInfo, load: Callable[[], Any]) -> None:
    """Register one plugin; an import error or a hook matching no spec marks it broken. A
    name already registered (an installed plugin passed again, say) is left as it is."""
    if info.name in registry.plugins:
        _trace(f"plugin '{info.name}' is already registered; skipped")
        return
    registry.plugins[info.name] = info
    try:
        module = load()
        pm.register(module, name=info.name)
        pm.check_pending()  # an @hookimpl matching no spec (a typo) is a plugin bug: report it
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - any import-time failure, sys.exit() too, isolates the plugin
        if pm.has_plugin(info.name):
            pm.unregister(name=info.name)
        _fail(info, error)
        return
    info.hooks = sorted(impl.name for impl in pm.get_hookcallers(module) or [])
    _trace(f"loaded plugin '{info.name}' hooks={info.hooks}")


def call_each(pm: pluggy.PluginManager, registry: Registry, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name`` on its own, isolating failures.

    A failing implementation (one that raises or calls ``sys.exit()``) marks its plugin
    broken; what the plugin registered through that hook is dropped, and so is everything
    it registered before (a broken plugin contributes nothing). Built-ins are called first,
    so a name they register is theirs.
    """
    kind = _REGISTER_HOOKS.get(hook_name)
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    for impl in sorted(impls, key=lambda i: not registry.plugins.get(i.plugin_name, PluginInfo("")).builtin):
        info = registry.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
        if not info.ok:
            continue
        _trace(f"calling {hook_name} of plugin '{impl.plugin_name}'")
        try:
            if kind is not None:
                register, staged = registry.stage(kind, impl.plugin_name)
                impl.function(**{"register": register} if "register" in impl.argnames else {})
                registry.commit(kind, staged, may_replace_builtins=impl.plugin_name in _overrides())
                _trace(f"  -> {kind}: {[e.name for e in staged]}")
            else:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - a plugin's bug, or its sys.exit(), must not take down the host
            registry.drop(impl.plugin_name)
            _fail(info, error)


@contextmanager
def blame(plugin: str, what: str) -> Iterator[None]:
    """Run a plugin's code (``with blame("watermark", "post-processor 'watermark'"): ...``): a
    ``ToolkitError`` passes as it is; anything else (a bug, ``sys.exit()``) becomes a one-line
    ``PluginError`` naming the plugin, with the original as its cause (``--debug`` shows it)."""
    try:
        yield
    except (ToolkitError, KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:  # whatever a plugin raises is the plugin's fault
        detail = " ".join(str(error).split()) or "(no message)"
        raise PluginError(f"plugin '{plugin}' failed in {what}: {type(error).__name__}: {detail} "
                          "(toolkit --debug shows where)") from error


def build_registry(pm: pluggy.PluginManager, registry: Registry) -> Registry:
    for hook_name in _REGISTER_HOOKS:
        call_each(pm, registry, hook_name)
    return registry


def get_plugin_manager() -> pluggy.PluginManager:
    get_registry()
    assert _pm is not None
    return _pm


def get_registry() -> Registry:
    """The registry of every installed plugin's components, built on first use."""
    global _registry, _pm
    with _lock:
        if _registry is None:
            pm, registry = new_plugin_manager(), Registry()
            load_entry_points(pm, registry)
            _registry, _pm = build_registry(pm, registry), pm
        return _registry


def set_registry(pm: pluggy.PluginManager | None, registry: Registry | None) -> None:
    """Replace the process-wide registry (tests use it; ``None`` forces a reload)."""
    global _registry, _pm
    with _lock:
        _registry, _pm = registry, pm


def plugins_with_extra(modules: Iterable[tuple[str, Any]]) -> tuple[pluggy.PluginManager, Registry]:
    """Entry-point plugins plus in-process ones, as a fresh manager and registry."""
    pm, registry = new_plugin_manager(), Registry()
    load_entry_points(pm, registry)
    for name, module in modules:
        add_plugin(pm, registry, PluginInfo(name), lambda module=module: module)
    return pm, build_registry(pm, registry)
