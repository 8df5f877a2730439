"""`toolkit plugins` and `toolkit models`: what is installed, and what is broken."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from toolkit.cli.root import CommandContext, cli, console, out, runs_no_torch


@runs_no_torch
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def plugins(obj: CommandContext, as_json: bool) -> None:
    """List installed plugins, what each registered, and any that are broken."""
    from toolkit.host.registry import KINDS

    registry = obj.registry
    rows = []
    for info in sorted(registry.plugins.values(), key=lambda p: p.name):
        components = {}
        for kind in KINDS:
            names = [n for n, e in getattr(registry, kind).items() if e.plugin == info.name]
            if names:
                components[kind] = names
        stages = {n: e.obj.stage.name.lower() for n, e in registry.postprocessors.items() if e.plugin == info.name}
        unavailable = {n: r for n, e in registry.postprocessors.items() if e.plugin == info.name and (r := e.obj.unavailable())}
        rows.append({"name": info.name, "package": info.package, "version": info.version, "status": "ok" if info.ok else "broken",
                     "error": info.error, "hooks": info.hooks, "components": components, "stages": stages,
                     "unavailable": unavailable, "builtin": info.builtin, "replaces": info.replaces})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="toolkit plugins")
    for column in ("plugin", "package", "status", "registers"):
        table.add_column(column, overflow="fold")
    for row in rows:
        parts = []
        for kind, names in row["components"].items():
            shown = [f"{n} [{row['stages'][n]}]" if n in row["stages"] else n for n in names]
            shown = [f"{s} (unavailable: {row['unavailable'][n]})" if n in row["unavailable"] else s for s, n in zip(shown, names)]
            parts.append(f"{kind}: {', '.join(shown)}")
        parts += [f"replaces built-in {what}" for what in row["replaces"]]
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]broken[/]: {escape(row['error'])}"
        table.add_row(row["name"], f"{row['package'] or '-'} {row['version'] or ''}", status, escape("\n".join(parts)))
    out.print(table)


@runs_no_torch
@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME|PATH]...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every field, description, licence "
              "and path included.")
@click.option("--verify", is_flag=True, help="Check the weights of the models named (default: every listed one) "
              "against the sha256 recorded in their folders, and record it for files that have none "
              "(run it once you trust them).")
@click.pass_obj
def models(obj: CommandContext, names: tuple[str, ...], as_json: bool, verify: bool) -> None:
    """List the models you can pass to --model: shipped ones and those in $TOOLKIT_HOME/models.
    Name some to see everything about them: description, licence, parameters, path.

    \b
    Examples:
      toolkit models
      toolkit models ddpm-digits                   one model in full
      toolkit models --json | jq '.[] | {name, parameters, license}'
      toolkit models --verify                      check every listed model's weights
      toolkit models --verify ./my-sd-folder       check a folder, recording its sha256 the first time
    """
    from toolkit.generation.store import find_model, list_models, user_models_dir

    if verify:
        _verify_models(obj, names, as_json)
        return
    default = _default_model(obj)
    infos = [find_model(name, obj.registry) for name in names] if names else list_models(obj.registry)
    rows = [{"name": m.name, "generator": m.generator, "accepts": sorted(m.accepts), "sizes": [f"{w}x{h}" for h, w in m.sizes],
             "parameters": m.parameters, "size_mb": round(m.size_bytes / 1e6, 2), "source": m.source,
             "default": m.name == default and m.source != "path", "description": _text(m.config.get("description")),
             "license": _text(m.config.get("license")), "path": str(m.path), "error": m.config.get("error")}
            for m in infos]
    if as_json:
        out.print_json(json.dumps(rows))
    elif names:
        for row in rows:
            _show_model(row)
    elif rows:
        # 80 columns hold six; the size on disk, description, licence and path are in the detail view
        table = Table(title=f"toolkit models (user folder: {user_models_dir()})",
                      caption="toolkit models NAME: description, licence, path")
        table.add_column("name", no_wrap=True)
        for column in ("generator", "accepts", "sizes"):
            table.add_column(column, overflow="fold")
        table.add_column("params", justify="right", no_wrap=True)
        table.add_column("source", overflow="fold")
        for r in rows:
            name = r["name"] + ("\n(default)" if r["default"] else "")
            generator = f"[red]broken[/]: {escape(r['error'])}" if r["error"] else escape(r["generator"])
            table.add_row(escape(name), generator, ", ".join(r["accepts"]) or "-", ", ".join(r["sizes"]),
                          _count(r["parameters"]), r["source"])
        out.print(table)
    else:
        out.print("no models installed yet; train one with `toolkit train` or copy a model folder into the user folder")


def _default_model(obj: CommandContext) -> str | None:
    """The model `toolkit generate` uses without --model (config.toml's ``model``, else the
    folder marked default), or None: none is marked, or config.toml's cannot be used (said
    on stderr; the list shows what can)."""
    from toolkit.errors import UnknownNameError, UserConfigError
    from toolkit.generation.store import find_model

    try:
        info = find_model(None, obj.registry)
    except UserConfigError as error:
        console.print(f"[yellow]Warning:[/] {escape(' '.join(str(error).split()))}", highlight=False, soft_wrap=True)
        return None
    except UnknownNameError:  # no model is marked default
        return None
    return None if info.source == "path" else info.name


def _show_model(row: dict) -> None:
    """One model in full, a field a line, as `ollama show` does."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    fields = {
        "description": row["description"] or "-",
        "generator": f"broken: {row['error']}" if row["error"] else row["generator"],
        "parameters": f"{row['parameters']:,} ({_count(row['parameters'])}) in its safetensors files"
        if row["parameters"] is not None else "unknown (a weights file cannot be read)",
        "accepts": ", ".join(row["accepts"]) or "-",
        "sizes": ", ".join(row["sizes"]) or "-",
        "license": row["license"] or "- (not stated in its config.json)",
        "source": {"user": "your user folder", "path": "a folder path"}.get(row["source"],
                                                                         f"shipped by plugin '{row['source']}'"),
        "on disk": f"{row['size_mb']} MB",
        "path": row["path"],
    }
    for key, value in fields.items():
        grid.add_row(key, escape(value))
    out.print(f"[bold]{escape(row['name'])}[/]" + (" (default)" if row["default"] else ""), highlight=False)
    out.print(Padding(grid, (0, 0, 1, 2)), highlight=False)


def _count(parameters: int | None) -> str:
    """1115363 -> "1.1M", 8624 -> "8.6K"; None -> "?"."""
    if parameters is None:
        return "?"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if parameters >= limit:
            return f"{parameters / limit:.1f}{suffix}"
    return str(parameters)


def _text(value: object) -> str | None:
    """A config.json text field (description, license), or None where it is absent or no string."""
    return value if isinstance(value, str) and value.strip() else None


def _verify_models(obj: CommandContext, names: tuple[str, ...], as_json: bool) -> None:
    """``toolkit models --verify``: one line per model (``model_folder.verify_weights`` with ``record``)."""
    from toolkit.errors import ModelError, ToolkitError
    from toolkit.generation.model_folder import verify_weights
    from toolkit.generation.store import find_model, list_models

    rows = []
    for name in names or [m.name for m in list_models(obj.registry)]:
        try:
            info = find_model(name, obj.registry)
            recorded = verify_weights(info.path, record=True)
            rows.append({"name": name, "path": str(info.path), "ok": True, "recorded": recorded})
        except ToolkitError as error:
            rows.append({"name": name, "ok": False, "error": str(error)})
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        for row in rows:
            if not row["ok"]:
                said = f"[red]FAILED[/]: {escape(row['error'])}"
            elif row["recorded"]:
                files = ", ".join(row["recorded"])
                said = f"ok; recorded the sha256 of {len(row['recorded'])} file(s) that had none: {escape(files)}"
            else:
                said = "ok"
            out.print(f"{escape(row['name'])}: {said}", highlight=False, soft_wrap=True)
    failed = [row["name"] for row in rows if not row["ok"]]
    if failed:
        raise ModelError(f"{len(failed)} of {len(rows)} model(s) failed the check ({', '.join(failed)}); "
                         "re-export or re-install them")
