"""Cold-start time of `toolkit` commands, paired against a baseline: another install of the
toolkit (an older checkout, to show a change is no slower) or `python -c "import torch"`.

Each round runs the command once with each interpreter, in alternating order, so both see
the same machine load; the figure is the median of the per-round ratios with a 95%
distribution-free interval (the order statistics of a binomial(n, 1/2)).

    python benchmarks/startup.py --baseline-python /tmp/venv-before/bin/python --rounds 15
    python benchmarks/startup.py --rounds 15              # against `python -c "import torch"`
    python benchmarks/startup.py --quick                  # smoke run: one round (tests run it)

The baseline interpreter must have its own install of the toolkit (`pip install -e OLD_CHECKOUT`
in a venv made with --system-site-packages). `generate` writes its PNG into a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "help": ["-m", "toolkit", "--help"],
    "models": ["-m", "toolkit", "models"],
    "plugins": ["-m", "toolkit", "plugins"],
    "generate": ["-m", "toolkit", "generate", "--prompt", "a small red circle in the top left", "--seed", "0", "--out", "{out}"],
}


def seconds(argv: list[str], cwd: str) -> float:
    """Wall time of one run; from a neutral folder, so `-m toolkit` never imports a checkout
    that happens to be the working directory instead of the interpreter's install."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - start


def median_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Median and its 95% interval: order statistics k and n-k+1 of the sorted ratios."""
    r, n = sorted(ratios), len(ratios)
    k = max(1, next(j for j in range(n, -1, -1) if sum(math.comb(n, i) for i in range(j)) / 2**n <= 0.025))
    return statistics.median(r), r[k - 1], r[n - k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-python", help="interpreter with the baseline toolkit; default: `import torch` alone")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--quick", action="store_true", help="smoke run: one round")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    with tempfile.TemporaryDirectory(prefix="startup-") as out:
        table(args, out)


def table(args: argparse.Namespace, out: str) -> None:
    print(f"{'command':10} {'ours s':>8} {'baseline s':>10} {'ratio (median, 95% interval)':>30}")
    for name in args.commands:
        ours = [sys.executable] + [a.format(out=out) for a in COMMANDS[name]]
        base = ([args.baseline_python] + ours[1:]) if args.baseline_python else [sys.executable, "-c", "import torch"]
        seconds(ours, out), seconds(base, out)  # warm the file cache for both
        pairs = []
        for i in range(args.rounds):
            if i % 2:
                b, a = seconds(base, out), seconds(ours, out)
            else:
                a, b = seconds(ours, out), seconds(base, out)
            pairs.append((a, b))
        mid, low, high = median_interval([a / b for a, b in pairs])
        print(f"{name:10} {statistics.median(a for a, _ in pairs):8.2f} {statistics.median(b for _, b in pairs):10.2f} "
              f"{mid:12.3f} ({low:.3f}-{high:.3f})")


if __name__ == "__main__":
    main()
