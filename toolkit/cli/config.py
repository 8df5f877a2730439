"""`toolkit config`: the settings file ($TOOLKIT_HOME/config.toml) and what each setting is
now, and why: a flag, an environment variable, the file or the built-in default
(``toolkit.generation.user_config``). No torch and no plugins: it answers at once."""

from __future__ import annotations

import json
from dataclasses import replace

import click
from rich.markup import escape
from rich.table import Table

from toolkit.cli.root import cli, out, runs_no_torch


@runs_no_torch
@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--path", "path_only", is_flag=True, help="Print the settings file's path and nothing else.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool, path_only: bool) -> None:
    """Show the settings file, $TOOLKIT_HOME/config.toml, and each setting's value and where
    it came from. A flag beats an environment variable (threads only), which beats the file,
    which beats the built-in default. No file: every setting is a default.

    \b
    Examples:
      toolkit config
      toolkit --threads 2 config            threads from the flag
      toolkit config --json | jq .settings.model
      $EDITOR "$(toolkit config --path)"
    """
    from toolkit.generation.user_config import KEYS, config_path, example, setting

    path = config_path()
    if path_only:
        out.print(str(path), highlight=False, markup=False, soft_wrap=True)
        return
    given = {"threads": ctx.find_root().params.get("threads")}  # the root's --threads; the others are generate's
    defaults = {"out": "out", "device": "cpu"}  # what `toolkit generate` uses; model and threads are chosen as it runs
    settings = {name: setting(name, given.get(name), default=defaults.get(name), path=path) for name in KEYS}
    threads = settings["threads"]
    if isinstance(threads.value, str) and threads.value.strip().isdigit():  # an environment variable's text
        settings["threads"] = replace(threads, value=int(threads.value))
    if as_json:
        out.print_json(json.dumps({"path": str(path), "exists": path.is_file(), "settings": {
            name: {"value": s.value, "source": s.source, "where": s.where, "default": KEYS[name].default}
            for name, s in settings.items()}}))
        return
    state = "found" if path.is_file() else "not there: every setting is a default; create it to change them"
    out.print(f"settings file: {escape(str(path))} ({state})", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")
    for name, s in settings.items():
        table.add_row(name, escape(str(s.value) if s.source != "default" else KEYS[name].default),
                      escape(_source(s.source, s.where)))
    out.print(table)
    out.print()
    out.print(example(), highlight=False, markup=False, soft_wrap=True)


def _source(source: str, where: str | None) -> str:
    """"flag --threads", "env TOOLKIT_THREADS", "config file", "default"."""
    return f"{source} {where}" if source in ("flag", "env") else source
