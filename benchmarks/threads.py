"""Seconds for one `toolkit generate --prompt ...` image (the default model, a fresh process
each run) with torch's own thread count, with one thread, and with toolkit's default, on a
quiet machine and beside one busy process, which keeps one core busy (a pure-Python loop,
or with --busy torch matrix products on one thread).

Runs of the settings alternate (their order rotates), so all see the same machine; each
figure is the median of --repeats runs. "generate" is the `seconds.generate` of
`toolkit generate --json` (load the model, sample, post-process); "wall" is the whole
process, start-up included. The threads column is what each run used, from
`toolkit --debug`'s "threads:" line (the default's choice can differ between runs).

    python benchmarks/threads.py            # 5 repeats, about 6 minutes on 2 cores
    python benchmarks/threads.py --quick    # a smoke run: 1 repeat, two settings, no warm-up
    python benchmarks/threads.py --busy torch     # the busy process: torch on one thread
    python benchmarks/threads.py --busy-nice 19   # the busy process: a background job at nice 19

The quiet rows need a quiet machine: it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

PROMPT = "a small red circle in the top left"
OWN = ("TOOLKIT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # left out: each run chooses by itself


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in OWN}


def torch_default() -> int:
    """The thread count torch picks by itself in a fresh process."""
    found = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=clean_env(),
                           capture_output=True, text=True, check=True)
    return int(found.stdout)


def run(flags: list[str], out: str) -> tuple[float, float, int]:
    """One image in a fresh process: (generate seconds, wall seconds, threads used)."""
    argv = [sys.executable, "-m", "toolkit", "--debug", *flags, "generate", "--prompt", PROMPT, "--seed", "0",
            "--out", out, "--json"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, cwd=out, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    threads = int(re.search(r"^threads: (\d+)", done.stderr, re.MULTILINE).group(1))
    return json.loads(done.stdout)["seconds"]["generate"], wall, threads


BUSY = {  # another process keeping one core busy, as a second job on the machine would
    "python": "while True: pass",
    "torch": "import torch; torch.set_num_threads(1); x = torch.randn(256, 256)\nwhile True: x @ x",  # another model
}


def spinner(kind: str, niceness: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import os; os.nice({niceness})\n{BUSY[kind]}"])


def measure(settings: dict[str, list[str]], repeats: int, args: argparse.Namespace,
            out: str) -> dict[tuple[str, str], list[tuple[float, float, int]]]:
    """Each setting's runs, quiet and busy: {(condition, setting): [(generate s, wall s, threads), ...]}."""
    if not args.quick:  # a smoke run measures nothing worth warming for
        run([], out)  # warm the file cache
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for condition in ("quiet", "busy"):
        busy = spinner(args.busy, args.busy_nice) if condition == "busy" else None
        try:
            time.sleep(1 if busy else 0)  # the spinner is on a core before the first run looks
            for r in range(repeats):
                names = list(settings)
                for name in names[r % len(names):] + names[:r % len(names)]:
                    results.setdefault((condition, name), []).append(run(settings[name], out))
                    print(f"  {condition:5} {name}: {results[condition, name][-1]}", file=sys.stderr, flush=True)
        finally:
            if busy:
                busy.kill()
                busy.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run (tests/core/test_benchmarks.py): 1 repeat, two settings, no warm-up")
    parser.add_argument("--busy", choices=list(BUSY), default="python",
                        help="the busy process: a pure-Python loop, or torch multiplying matrices on one thread")
    parser.add_argument("--busy-nice", type=int, default=0, help="niceness of the busy process (19: a background job)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    old = torch_default()
    settings = {f"torch's default (--threads {old})": ["--threads", str(old)], "one thread (--threads 1)": ["--threads", "1"],
                "toolkit's default": []}
    if args.quick:  # a given count and the default are the two ways a count is set: one of each
        settings.pop(f"torch's default (--threads {old})")
    print(f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable; load average before: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="threads-") as out:
        results = measure(settings, repeats, args, out)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; busy process: {args.busy} at nice "
          f"{args.busy_nice}; median of {repeats} runs each\n")
    print("| setting | quiet: threads | quiet: generate s | quiet: wall s | busy: threads | busy: generate s "
          "| busy: wall s | busy / quiet |")
    print("|---|---|---|---|---|---|---|---|")
    for name in settings:
        cells = []
        for condition in ("quiet", "busy"):
            runs = results[condition, name]
            used = ", ".join(f"{t} ({n}x)" if len({x[2] for x in runs}) > 1 else str(t)
                             for t, n in sorted(Counter(x[2] for x in runs).items()))
            cells += [used, f"{statistics.median(x[0] for x in runs):.2f}", f"{statistics.median(x[1] for x in runs):.2f}"]
        ratio = statistics.median(x[0] for x in results["busy", name]) / statistics.median(
            x[0] for x in results["quiet", name])
        print(f"| {name} | {' | '.join(cells)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
