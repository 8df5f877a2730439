"""How many CPU threads torch uses: chosen once, before the first heavy work, from the CPUs
this process may really use.

torch's own default is a thread per core of the machine. Beside one other busy process that
is 3-20x slower than a single thread: at every parallel step torch's OpenMP threads wait,
spinning, for the one that shares its core with the other process (docs/results.md,
"Threads"). So the default here is

* the CPUs this process may use: its CPU affinity, and a cgroup CPU quota (a container's),
* less those other processes keep busy, measured from /proc/stat while the process starts,
* at most torch's own default, and at least 1.

``toolkit --threads N`` or ``TOOLKIT_THREADS=N`` choose instead, and so does
``OMP_NUM_THREADS``, as it does for torch, then ``threads`` in $TOOLKIT_HOME/config.toml
(``toolkit.generation.user_config``). The CLI chooses as it starts; the Python API
(``toolkit.generate``) on its first generation, unless the program already set torch's
thread count (``torch.set_num_threads``) or called ``use_threads``.

The count can move a pixel by one level (floating-point sums in another order), so each
recipe records it and a replay that differs says which count made the image.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import InvalidRequestError

ENV = "TOOLKIT_THREADS"
MAX_THREADS = 1024  # far above any CPU count; a typo like 20000 is refused, not started
SAMPLE_SECONDS = 0.2  # shortest look at /proc/stat: 20 clock ticks per CPU
# A CPU counts as free when other processes leave it idle at least 75% of the time: one
# thread too many costs 3-20x (the spinning above), one too few at most that thread's share.
FREE_MARGIN = 0.25


class ThreadsError(InvalidRequestError):
    """--threads or TOOLKIT_THREADS is not a whole number of threads from 1 to MAX_THREADS."""


def parse_threads(value: str | int, where: str = "") -> int:
    """``value`` as a thread count; ``where`` ("TOOLKIT_THREADS") starts the error's message."""
    prefix = f"{where}: " if where else ""
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ThreadsError(f"{prefix}'{value}' is not a number of threads; give a whole number from 1 to "
                           f"{MAX_THREADS}") from None
    if not 1 <= count <= MAX_THREADS:
        raise ThreadsError(f"{prefix}{count} threads is out of range; give a whole number from 1 to {MAX_THREADS}")
    return count


# -- what this process may use ---------------------------------------------------------------


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPUs a cgroup quota gives this process (quota / period, e.g. 1.5), or None when
    no cgroup limits it. The lowest quota on the way from the process's cgroup up to the
    root counts: cgroup v2 ``cpu.max`` ("max 100000" or "150000 100000"), v1
    ``cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``."""
    limits = [q for folder in _cgroup_folders(root, own) if (q := _quota(folder)) is not None]
    return min(limits, default=None)


def _cgroup_folders(root: Path, own: Path) -> list[Path]:
    """The cgroup folders whose CPU quota applies, from the mount points down to the process's
    own (``/proc/self/cgroup`` lines ``ID:CONTROLLERS:PATH``). Inside a container the mount
    point is the container's cgroup, so it is always looked at too."""
    mounts = [root, root / "cpu", root / "cpu,cpuacct"]
    folders = list(mounts)
    try:
        lines = own.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers and "cpu" not in controllers.split(","):
            continue
        for mount in (root,) if not controllers else mounts[1:]:
            folder = mount / path.strip().lstrip("/")
            while folder != mount and mount in folder.parents:
                folders.append(folder)
                folder = folder.parent
    return list(dict.fromkeys(folders))


def _quota(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").is_file():
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        pass
    return None


def allowed_cpus() -> set[int]:
    """The CPU numbers this process may run on (its affinity)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity to read
        return set(range(os.cpu_count() or 1))


def usable_cpus(cpus: set[int] | None = None, limit: float | None = None) -> int:
    """How many CPUs this process may keep busy at once: its affinity (``cpus``), capped by
    a cgroup quota (``limit``), rounded up as the JVM and Go do (1.5 CPUs: 2 threads)."""
    count = len(cpus if cpus is not None else allowed_cpus())
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


# -- how busy other processes keep them --------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """Clock ticks per CPU from /proc/stat, and this process's own CPU time, at one moment."""

    when: float  # time.monotonic()
    busy: dict[int, int]  # CPU number -> ticks not idle
    total: dict[int, int]  # CPU number -> all ticks
    own: float  # CPU seconds this process used so far, all its threads

    @classmethod
    def now(cls, stat: Path = Path("/proc/stat")) -> CpuSample | None:
        """None where there is no /proc/stat (not Linux)."""
        try:
            lines = stat.read_text().splitlines()
        except OSError:
            return None
        busy, total = {}, {}
        for line in lines:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
                total[int(name[3:])] = sum(ticks)
                busy[int(name[3:])] = sum(ticks) - ticks[3] - ticks[4]
        times = os.times()
        return cls(time.monotonic(), busy, total, times.user + times.system)


def busy_elsewhere(start: CpuSample, end: CpuSample, cpus: set[int]) -> float:
    """How many of ``cpus`` other processes kept busy between the samples (e.g. 1.0: one
    core's worth): their busy share, less this process's own CPU time."""
    used = sum((end.busy.get(c, 0) - start.busy.get(c, 0)) / max(1, end.total.get(c, 0) - start.total.get(c, 0))
               for c in cpus if c in end.total)
    own = (end.own - start.own) / max(end.when - start.when, 1e-6)
    return max(0.0, used - own)


_started = CpuSample.now()  # the CLI imports this module first thing: its start-up is the sample


# -- the choice --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The thread count torch runs with, and where it came from."""

    threads: int
    # "--threads", "TOOLKIT_THREADS", "OMP_NUM_THREADS", config.toml's path, "torch.set_num_threads" or "default"
    source: str
    usable: int | None = None  # default only: CPUs this process may use
    busy: float | None = None  # default only: of those, how many other processes kept busy

    def describe(self) -> str:
        """One line for ``toolkit --debug``, e.g. "1 (default: 2 CPUs usable, 1.0 busy with
        other processes; choose with --threads or TOOLKIT_THREADS)"."""
        if self.source != "default":
            return f"{self.threads} (from {self.source})"
        busy = "not measured" if self.busy is None else f"{self.busy:.1f} busy with other processes"
        return f"{self.threads} (default: {self.usable} CPUs usable, {busy}; choose with --threads or {ENV})"


def default_threads(*, cpus: set[int] | None = None, limit: float | None = None, busy: float | None = None,
                    ceiling: int | None = None) -> int:
    """The default count: the usable CPUs less those ``busy`` elsewhere (a CPU counts as free
    when at least ``1 - FREE_MARGIN`` of it is idle), at most ``ceiling`` (torch's own
    default), at least 1."""
    cpus = cpus if cpus is not None else allowed_cpus()
    count = usable_cpus(cpus, limit)
    if busy is not None:
        count = min(count, int(len(cpus) - busy + FREE_MARGIN))
    if ceiling is not None:
        count = min(count, ceiling)
    return max(1, count)


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return None if torch is None else torch.get_num_threads()


_chosen: Choice | None = None
# torch's own count, before toolkit changed it: read here when the Python API imported torch
# first, else on the CLI's first choice (the CLI imports this module before torch).
_torch_default: int | None = _torch_threads()


def choose(given: str | int | None = None, *, where: str = "--threads") -> Choice:
    """Pick the count (``given``, then $TOOLKIT_THREADS, $OMP_NUM_THREADS, ``threads`` in
    config.toml, the default: ``user_config.setting`` keeps that order) and give it to
    torch. A bad ``given`` or $TOOLKIT_THREADS raises ``ThreadsError``, a bad config.toml
    ``UserConfigError``."""
    global _chosen, _torch_default
    import torch

    from toolkit.generation.user_config import setting  # it imports this module: not at the top

    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    asked = setting("threads", given, flag=where)
    if asked.source == "flag":
        choice = Choice(parse_threads(given, where), where)  # type: ignore[arg-type]
    elif asked.where == ENV:
        choice = Choice(parse_threads(asked.value, ENV), ENV)
    elif asked.where == "OMP_NUM_THREADS":
        first = asked.value.split(",")[0].strip()  # OpenMP allows "4,2": nested levels
        choice = Choice(int(first) if first.isdigit() and int(first) > 0 else _torch_default, "OMP_NUM_THREADS")
    elif asked.source == "config file":
        choice = Choice(asked.value, str(asked.where))  # checked as the file was read
    else:
        cpus, limit = allowed_cpus(), cgroup_cpu_limit()
        busy = _measure_busy(cpus)
        choice = Choice(default_threads(cpus=cpus, limit=limit, busy=busy, ceiling=_torch_default), "default",
                        usable_cpus(cpus, limit), busy)
    torch.set_num_threads(choice.threads)
    _chosen = choice
    return choice


def check(given: str | int | None = None, *, where: str = "--threads") -> None:
    """Refuse what ``choose`` would refuse (a bad ``given``, $TOOLKIT_THREADS or config.toml),
    choosing nothing: for a command that runs no torch (``toolkit models``), which so starts
    without importing it and still fails on a mistake as every other command does."""
    from toolkit.generation.user_config import setting  # it imports this module: not at the top

    asked = setting("threads", given, flag=where)
    if asked.source == "flag":
        parse_threads(given, where)  # type: ignore[arg-type]
    elif asked.where == ENV:
        parse_threads(asked.value, ENV)


def _measure_busy(cpus: set[int]) -> float | None:
    global _started
    start = _started if _started is not None else CpuSample.now()
    if start is None:
        return None
    wait = SAMPLE_SECONDS - (time.monotonic() - start.when)
    if wait > 0:
        time.sleep(wait)
    end = CpuSample.now()
    _started = end  # the next choice in this process (tests run the CLI many times) looks from here
    return None if end is None else busy_elsewhere(start, end, cpus)


def use_threads(count: int) -> Choice:
    """Run torch on ``count`` threads from now on, for programs using the Python API (the
    first generation then keeps it)."""
    return choose(count, where="use_threads")


def choose_once() -> Choice:
    """The Python API's first generation: choose, unless the CLI or the program did."""
    import torch

    global _chosen
    if _chosen is None:
        if _torch_default is not None and torch.get_num_threads() != _torch_default:
            _chosen = Choice(torch.get_num_threads(), "torch.set_num_threads")
        else:
            choose()
    assert _chosen is not None
    return _chosen
