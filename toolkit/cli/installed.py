"""`toolkit plugins` and `toolkit models`: what is installed, and what is broken."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from toolkit.cli.root import CommandContext, cli, out


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
                     "unavailable": unavailable})
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
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]broken[/]: {escape(row['error'])}"
        table.add_row(row["name"], f"{row['package'] or '-'} {row['version'] or ''}", status, escape("\n".join(parts)))
    out.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def models(obj: CommandContext, as_json: bool) -> None:
    """List the models you can pass to --model: shipped ones and those in $TOOLKIT_HOME/models."""
    from toolkit.generation.store import list_models, user_models_dir

    infos = list_models(obj.registry)
    rows = [{"name": m.name, "generator": m.generator, "accepts": sorted(m.accepts), "sizes": [f"{w}x{h}" for h, w in m.sizes],
             "size_mb": round(m.size_bytes / 1e6, 2), "source": m.source, "default": bool(m.config.get("default")),
             "path": str(m.path), "error": m.config.get("error")} for m in infos]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"toolkit models (user folder: {user_models_dir()})")
    for column in ("name", "generator", "accepts", "sizes", "on disk", "source"):
        table.add_column(column)
    for r in rows:
        name = r["name"] + (" (default)" if r["default"] else "")
        table.add_row(name, r["generator"], ", ".join(r["accepts"]) or "-", ", ".join(r["sizes"]), f"{r['size_mb']} MB", r["source"])
    out.print(table if rows else "no models installed yet; train one with `toolkit train` or copy a model folder into the user folder")

