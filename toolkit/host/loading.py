"""Finding, loading and calling plugins.

Every plugin, built-in or not, is an entry point in the ``toolkit`` group. Each one is
imported and each of its hooks called on its own, so a plugin that raises is recorded as
broken (``toolkit plugins`` shows its error) and everything else keeps working.

Environment variables:

* ``TOOLKIT_PLUGINS=a,b``: load only these plugins (empty: load none).
* ``TOOLKIT_STRICT_PLUGINS=1``: a broken plugin raises instead of being skipped.
* ``TOOLKIT_TRACE_PLUGINS=1``: log every hook call to stderr.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading
from typing import Any, Callable, Iterable

import pluggy

from toolkit.errors import PluginError
from toolkit.host import hookspecs
from toolkit.host.registry import KINDS, PluginInfo, Registry

ENTRY_POINT_GROUP = "toolkit"
_REGISTER_HOOKS = {f"register_{kind}": kind for kind in KINDS}

_lock = threading.Lock()
_registry: Registry | None = None
_pm: pluggy.PluginManager | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _allow_list() -> set[str] | None:
    value = os.environ.get("TOOLKIT_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


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
    """Import each ``toolkit`` entry point on its own and register it with ``pm``."""
    allowed = _allow_list()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        if ep.name in registry.plugins:  # the same distribution seen twice on sys.path
            continue
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, package=dist.name if dist else None, version=dist.version if dist else None)
        add_plugin(pm, registry, info, ep.load)


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
    except Exception as error:  # noqa: BLE001 - any import-time failure isolates the plugin
        if pm.has_plugin(info.name):
            pm.unregister(name=info.name)
        _fail(info, error)
        return
    info.hooks = sorted(impl.name for impl in pm.get_hookcallers(module) or [])
    _trace(f"loaded plugin '{info.name}' hooks={info.hooks}")


def call_each(pm: pluggy.PluginManager, registry: Registry, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name`` on its own, isolating failures.

    A failing implementation marks its plugin broken; what the plugin registered through
    that hook is dropped, and so is everything it registered before (a broken plugin
    contributes nothing).
    """
    kind = _REGISTER_HOOKS.get(hook_name)
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        info = registry.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
        if not info.ok:
            continue
        _trace(f"calling {hook_name} of plugin '{impl.plugin_name}'")
        try:
            if kind is not None:
                register, staged = registry.stage(kind, impl.plugin_name)
                impl.function(**{"register": register} if "register" in impl.argnames else {})
                registry.commit(kind, staged)
                _trace(f"  -> {kind}: {[e.name for e in staged]}")
            else:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except Exception as error:  # noqa: BLE001 - a plugin's bug must not take down the host
            _drop(registry, impl.plugin_name)
            _fail(info, error)


def _drop(registry: Registry, plugin: str) -> None:
    for kind in KINDS:
        table = getattr(registry, kind)
        for name in [n for n, e in table.items() if e.plugin == plugin]:
            del table[name]


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
