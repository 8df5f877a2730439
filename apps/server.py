"""Serving the app safely by default: loopback only unless told, uploads capped, files
served only from the app's own output folder, one generation at a time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before Gradio is imported: no usage reports, no version check over the network.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pluggy

from toolkit.host.registry import Registry
from toolkit_apps.layout import CSS, THEME, build_app  # imports Gradio

LOCAL = "127.0.0.1"
# Inputs are sketches, masks and init images of a few hundred pixels; a 10 MB file is
# already far larger than any of them (the pixel limit is checked again when decoding).
MAX_UPLOAD = "10mb"
# Requests waiting beyond this are refused at once with "queue full" instead of piling up.
QUEUE_SIZE = 64
# Form updates and recipe reads run beside a generation; generations wait for each other.
LIGHT_CONCURRENCY = 4


def serve(registry: Registry, pm: pluggy.PluginManager, *, host: str = LOCAL, port: int = 7860, share: bool = False,
          out_dir: Path, device: str = "cpu") -> None:
    """Build the app and serve it until interrupted (blocks)."""
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(registry, pm, out_dir, device)
    app.queue(default_concurrency_limit=LIGHT_CONCURRENCY, max_size=QUEUE_SIZE)
    app.launch(server_name=host, server_port=port, share=share, allowed_paths=[str(out_dir)],
               max_file_size=MAX_UPLOAD, ssr_mode=False, show_error=False, quiet=True, footer_links=["api"],
               theme=THEME, css=CSS, inbrowser=False, prevent_thread_lock=True)
    where = "this machine only" if host in (LOCAL, "localhost", "::1") else \
        "EVERY network interface: anyone who can reach this machine can use the app"
    print(f"toolkit app: serving on http://{host}:{port} for {where}; images go to {out_dir}", file=sys.stderr)
    if share:
        print(f"toolkit app: public link {app.share_url or '(Gradio could not make one)'}: anyone with it can use "
              "the app", file=sys.stderr)
    app.block_thread()
