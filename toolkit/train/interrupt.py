"""Stopping a training run with Ctrl-C where stopping is safe: between batches."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ctrl_c_between_batches() -> Iterator[threading.Event]:
    """Ctrl-C sets an event that the training loop reads before each batch, where stopping
    leaves the checkpoints whole. A KeyboardInterrupt raised inside a finalizer (``__del__``)
    is printed and swallowed and training would go on; an event cannot be lost. A second
    Ctrl-C interrupts at once."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # only the main thread can take signals
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
