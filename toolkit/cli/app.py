"""`toolkit app`: the web app (apps/, installed as ``toolkit_apps``) on a local port."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.cli.params import DEVICE, OutputPath, output_folder
from toolkit.cli.root import CommandContext, cli
from toolkit.errors import ToolkitError


class ServeError(ToolkitError):
    """The app cannot listen where it was asked to (a port in use, an unknown host)."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves every network interface (anyone who can reach you).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--share", is_flag=True,
              help="Ask Gradio for a public link (needs the internet; anyone with it can use the app).")
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Folder for the generated PNGs, the only folder the app serves files from. "
                   "[default: `out` in config.toml, else $TOOLKIT_HOME/app]")
@click.option("--device", type=DEVICE, default=None,
              help="torch device, e.g. cuda. [default: `device` in config.toml, else cpu]")
@click.pass_obj
def app(obj: CommandContext, host: str, port: int, share: bool, out_dir: str | None, device: str | None) -> None:
    """Serve the web app: every installed model, sampler and post-processor in a form, and
    Gradio's HTTP API (docs/app.md). Stop it with Ctrl+C. The form starts on the default
    model: `model` in config.toml, else the installed model marked default.

    \b
    Examples:
      toolkit app                          http://127.0.0.1:7860, this machine only
      toolkit app --port 8000 --out web/   another port, PNGs into web/
    """
    from toolkit.generation.device import resolve_device
    from toolkit.generation.store import find_model
    from toolkit.generation.user_config import setting, toolkit_home
    from toolkit.host.loading import get_plugin_manager
    from toolkit_apps.server import serve

    out_dir = output_folder(out_dir, str(toolkit_home() / "app"))
    device = resolve_device(device)
    registry = obj.registry
    if setting("model").value is not None:  # config.toml's model: a typo is said now, not dropped by the form
        find_model(None, registry)
    try:
        serve(registry, get_plugin_manager(), host=host, port=port, share=share, device=device, out_dir=Path(out_dir))
    except OSError as error:
        reason = str(error).split(". ")[0]  # Gradio goes on about environment variables
        raise ServeError(f"cannot serve on {host}:{port} ({reason}); pick another --port or --host") from None
