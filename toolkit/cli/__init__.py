"""The ``toolkit`` command: one module per command group.

Every user mistake is a ``ToolkitError``: printed on one line, exit status 1; a traceback
only with ``toolkit --debug``. The ``generate`` flags are built from ``GenerationRequest``,
so the CLI, the Python API and the web app share one schema.
"""

from __future__ import annotations

import sys
import warnings

from toolkit.cli import app, config, dataset, eval, generate, installed, train  # noqa: F401  (each adds its commands to `cli`)
from toolkit.cli.root import CommandContext, cli, print_error, show_warning
from toolkit.errors import ToolkitError

__all__ = ["cli", "main"]


def _add_plugin_commands(context: CommandContext) -> None:
    from toolkit.host.loading import call_each, get_plugin_manager

    call_each(get_plugin_manager(), context.registry, "register_commands", cli=cli)


def main() -> None:
    context = CommandContext(debug="--debug" in sys.argv[1:])
    warnings.showwarning = show_warning  # plugins load here, before `cli` runs: their warnings in one line too
    try:
        _add_plugin_commands(context)
    except ToolkitError as error:  # strict plugin mode
        if context.debug:
            raise
        print_error(error)
        sys.exit(1)
    cli(obj=context)


if __name__ == "__main__":
    main()
