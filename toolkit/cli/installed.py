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


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME|PATH]...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verify", is_flag=True, help="Check the weights of the models named (default: every listed one) "
              "against the sha256 recorded in their folders, and record it for files that have none "
              "(run it once you trust them).")
@click.pass_obj
def models(obj: CommandContext, names: tuple[str, ...], as_json: bool, verify: bool) -> None:
    """List the models you can pass to --model: shipped ones and those in $TOOLKIT_HOME/models.

    \b
    Examples:
      toolkit models
      toolkit models --verify                      check every listed model's weights
      toolkit models --verify ./my-sd-folder       check a folder, recording its sha256 the first time
    """
    from toolkit.generation.store import list_models, user_models_dir

    if verify:
        _verify_models(obj, names, as_json)
        return
    if names:
        raise click.UsageError("model names go with --verify: toolkit models --verify NAME")
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
        generator = f"[red]broken[/]: {escape(r['error'])}" if r["error"] else escape(r["generator"])
        table.add_row(escape(name), generator, ", ".join(r["accepts"]) or "-", ", ".join(r["sizes"]), f"{r['size_mb']} MB",
                      r["source"])
    out.print(table if rows else "no models installed yet; train one with `toolkit train` or copy a model folder into the user folder")



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
