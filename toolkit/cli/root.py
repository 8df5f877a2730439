"""The root ``toolkit`` group and what every command shares: one-line errors, progress bars,
the consoles, and the ``CommandContext`` that reaches each command (a plugin's too) as
click's ``ctx.obj``."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from datetime import timedelta
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from toolkit import DISTRIBUTION
from toolkit.cli.params import THREADS
from toolkit.errors import InvalidRequestError, PluginError, ToolkitError
from toolkit.generation.request import PostSpec
from toolkit.generation.threads import ENV as THREADS_ENV
from toolkit.generation.threads import check as check_threads
from toolkit.generation.threads import choose as choose_threads
from toolkit.host.registry import Registry

_python_showwarning = warnings.showwarning
console = Console(stderr=True)  # progress, chains and records
out = Console()  # results: paths, tables, JSON


class CommandContext:
    """``ctx.obj`` of every command: whether --debug is on, and the registry of the installed
    plugins (built on first use), which commands pass on instead of reaching for a global."""

    def __init__(self, debug: bool = False, registry: Registry | None = None):
        self.debug = debug
        self._registry = registry

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from toolkit.host.loading import get_registry

            self._registry = get_registry()
        return self._registry


class RateColumn(ProgressColumn):
    """Items per second, e.g. "12.3 it/s"."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s", style="progress.data.speed")


PROGRESS_EVERY = 5.0  # seconds between plain progress lines where stderr is not a terminal


def progress_bar(transient: bool = False) -> Progress:
    """Progress on stderr: a live bar on a terminal (or with TOOLKIT_PROGRESS=1); in a pipe or
    a log file one plain line every ``PROGRESS_EVERY`` seconds (``LineProgress``), so long
    work is never silent; nothing with TOOLKIT_PROGRESS=0."""
    setting = os.environ.get("TOOLKIT_PROGRESS", "").strip()
    if setting != "1" and not console.is_terminal:
        return LineProgress(console=console, disable=True, quiet=setting == "0")
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=transient,
        disable=setting == "0",
    )


class LineProgress(Progress):
    """Progress for pipes and logs, where a live bar cannot redraw: while it runs, one line
    per unfinished task every ``PROGRESS_EVERY`` seconds, and a last one for each task it
    reported, e.g. "generating 40 images with MODEL: 12/40 (30%), 3.10 it/s, 0:00:04
    elapsed, eta 0:00:09". Work shorter than ``PROGRESS_EVERY`` prints nothing."""

    def __init__(self, *args: Any, quiet: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.quiet = quiet
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        self._reported: set[int] = set()

    def start(self) -> None:
        if not self.quiet and self._ticker is None:
            self._stopped.clear()
            self._ticker = threading.Thread(target=self._tick, name="toolkit-progress", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._stopped.set()
            self._ticker.join()
            self._ticker = None
            for task in self.tasks:
                if task.id in self._reported and task.finished:
                    self._print(task)

    def _tick(self) -> None:
        while not self._stopped.wait(PROGRESS_EVERY):
            for task in self.tasks:
                if task.visible and not task.finished:
                    self._reported.add(task.id)
                    self._print(task)

    def _print(self, task: Task) -> None:
        parts = [f"{task.completed:g} done" if task.total is None else
                 f"{task.completed:g}/{task.total:g} ({task.percentage:.0f}%)"]
        if task.speed:
            parts.append(f"{task.speed:.2f} it/s")
        parts.append(f"{timedelta(seconds=int(task.elapsed or 0))} elapsed")
        if task.time_remaining is not None and not task.finished:
            parts.append(f"eta {timedelta(seconds=int(task.time_remaining))}")
        self.console.print(f"{task.description}: {', '.join(parts)}", highlight=False, markup=False, soft_wrap=True)


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, *args: Any) -> None:
    """``warnings.showwarning`` for the CLI: the message alone, on one line, for the user's
    own warnings (``ToolkitWarning`` and plugins' ``UserWarning``); library noise keeps
    Python's format."""
    if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
        console.print(f"[yellow]Warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, *args)


def print_error(error: Exception | str) -> None:
    """``Error: MESSAGE`` on one line of stderr, however many lines the message had."""
    console.print(f"[bold red]Error:[/] {escape(' '.join(str(error).split()))}", highlight=False, soft_wrap=True)


HELP_ONLY = "toolkit.help_only"  # ctx.meta: the command line asks a command for its --help


class ToolkitGroup(click.Group):
    """Turns ToolkitErrors into one line on stderr and exit status 1, and a command line
    click cannot read into one line and exit status 2. A command name is taken once: a
    plugin adding a command under a name in use (``generate``, say) is refused."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ToolkitError as error:
            if isinstance(ctx.obj, CommandContext) and ctx.obj.debug:
                raise
            print_error(error)
            sys.exit(1)
        except click.UsageError as error:
            _usage_error(error)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:  # the root's own options (`toolkit --bogus`)
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            _usage_error(error)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        # `toolkit generate --help` prints its help while its options are parsed, which is
        # after this group's callback: the callback then need not choose torch's threads.
        options = rest[:rest.index("--")] if "--" in rest else rest
        ctx.meta[HELP_ONLY] = any(arg in ctx.help_option_names for arg in options)
        return name, cmd, rest

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        other = self.commands.get(name) if name else None
        if other is not None and other is not cmd and _origin(other) != _origin(cmd):
            raise PluginError(f"command '{name}' already exists (from {_origin(other)[0]}); a plugin cannot replace it")
        super().add_command(cmd, name)


def _usage_error(error: click.UsageError) -> NoReturn:
    command = error.ctx.command_path if error.ctx else "toolkit"
    print_error(f"{error.format_message()} (see `{command} --help`)")
    sys.exit(error.exit_code)


def _origin(command: click.Command) -> tuple[str, str]:
    """Where a command's function is defined: the same function added again is no clash."""
    callback = command.callback
    return getattr(callback, "__module__", "?"), getattr(callback, "__qualname__", type(command).__qualname__)


def runs_no_torch(command: click.Command) -> click.Command:
    """Mark a command that never runs torch (``toolkit models``, ``toolkit plugins``; a
    plugin's command may use it too), above its ``@cli.command()``: the root then checks the
    thread settings instead of choosing torch's thread count, so the command starts without
    importing torch. With ``--debug`` the count is chosen anyway, to be shown."""
    command.runs_torch = False  # type: ignore[attr-defined]  # read by `cli` below
    return command


@click.group(cls=ToolkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors, and the thread count.")
@click.option("--threads", type=THREADS, default=None,
              help=f"CPU threads for torch [env: {THREADS_ENV}; default: `threads` in config.toml, else the CPUs "
                   "this process may use (affinity, cgroup quota), less those other processes keep busy].")
@click.version_option(package_name=DISTRIBUTION)
@click.pass_context
def cli(ctx: click.Context, debug: bool, threads: int | None) -> None:
    """toolkit: generate images with GANs, VAEs, DDPMs and latent diffusion, conditioned on
    text, class labels, sketches and masks, extended by plugins.

    \b
    Start here:
      toolkit models                      the models you can use
      toolkit generate --prompt "..."     make images (see toolkit generate --help)
      toolkit plugins                     what is installed, and what is broken
      toolkit config                      your defaults: model, output folder, device, threads
      toolkit dataset preview shapes      look at a dataset
      toolkit eval --model ddpm-digits    score a model against its dataset
    """
    ctx.ensure_object(dict)["debug"] = debug
    if not isinstance(ctx.obj, CommandContext):
        ctx.obj = CommandContext(debug)
    warnings.showwarning = show_warning
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    if not debug and (not getattr(command, "runs_torch", True) or ctx.meta.get(HELP_ONLY)):
        check_threads(threads)  # a mistake fails it as any command; torch is not imported
        return
    choice = choose_threads(threads)  # before any command's torch work
    if debug:
        console.print(f"threads: {choice.describe()}", highlight=False, markup=False, soft_wrap=True)


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("root=data", "size=3")`` -> ``{"root": "data", "size": 3}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidRequestError(f"option '{pair}' must be key=value")
        if key in options:
            raise InvalidRequestError(f"option '{key}' is given twice; give it once")
        options[key] = PostSpec.parse(f"x:{key}={value}").options[key]
    return options

