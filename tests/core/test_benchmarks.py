"""Every script in benchmarks/ runs its `--quick` mode here, as a user runs it (from the
repository root, in a fresh process), so that a benchmark that breaks fails CI. Each run
must exit 0, print its table, and write nothing outside temporary folders: nothing in
$TOOLKIT_HOME (a fresh one here) and nothing new in the repository.

A new script needs a `--quick` mode and a line in QUICK below: the test of it fails until then.
Each quick run's time on 2 busy cores is noted in QUICK; those of a minute or more are `slow`.
The runs go two at a time (``PARALLEL``), each on one torch thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
SKIPPED_IN_TREE = {".git", "__pycache__", ".pytest_cache"}  # git's and Python's own caches

# script: (a line of the table it prints, extra arguments, seconds its quick run took here on 2
# cores that other benchmarks kept busy)
QUICK = {
    "app_latency": ("/ python (median, 95% interval)", [], 60),  # the click row needs Debian's chromium, else "skipped"
    "generators": ("| architecture | size | classes | params, ours |", [], 60),
    "safety_false_positives": ("| model | images | withheld | blurred | flagged |", [], 34),
    "safety_prompts": ("| category | refused | recall |", [], 10),
    "sketch_control": ("sketch / no sketch: median", [], 35),
    "startup": ("ratio (median, 95% interval)", [], 44),
    "text_to_image": ("| sampler | steps | s / image |", [], 51),
    "threads": ("| setting | quiet: threads | quiet: generate s |", [], 36),
    "trainer_overhead": ("wall time: plain PyTorch loop", [], 12),
    "upscale": ("| method | 64 -> 256 (wall / CPU s) | 256 -> 1024 (wall / CPU s) |", [], 33),
    "watermark": ("Payload exactly recovered, % of images", [], 40),  # measures ours alone without the `bench` extra
}
SLOW = {name for name, (_, _, seconds) in QUICK.items() if seconds >= 60}


def scripts() -> list:
    return [pytest.param(path.stem, marks=[pytest.mark.slow] if path.stem in SLOW else [])
            for path in sorted(BENCHMARKS.glob("*.py"))]


def files_under(root: Path) -> set[Path]:
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_IN_TREE]
        found.update(Path(folder, name) for name in files)
    return found


PARALLEL = 2  # quick runs at a time: most of each is one thread importing and loading, so two halve the wait


@dataclass
class QuickRun:
    result: subprocess.CompletedProcess
    home: Path


def run_quick(script: str, home: Path) -> QuickRun:
    home.mkdir(parents=True)
    env = {**os.environ, "TOOLKIT_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick", *QUICK[script][1]], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    return QuickRun(result, home)


@pytest.fixture(scope="module")
def quick_runs(request, tmp_path_factory) -> tuple[dict[str, QuickRun], set[Path]]:
    """Every selected script's quick run, ``PARALLEL`` at a time, and the files they left in
    the repository between them."""
    selected = [item.callspec.params["script"] for item in request.session.items
                if item.originalname == "test_quick_run" and item.callspec.params["script"] in QUICK]
    root = tmp_path_factory.mktemp("quick")
    before = files_under(ROOT)
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = dict(zip(selected, pool.map(lambda script: run_quick(script, root / script / "home"), selected)))
    return runs, files_under(ROOT) - before


@pytest.mark.parametrize("script", scripts())
def test_quick_run(script, quick_runs):
    assert script in QUICK, f"benchmarks/{script}.py: give it a --quick mode and add it to QUICK in {__file__}"
    runs, left_in_repository = quick_runs
    result, home = runs[script].result, runs[script].home
    assert result.returncode == 0, f"benchmarks/{script}.py --quick failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert QUICK[script][0] in result.stdout, f"no table in its output:\n{result.stdout[-3000:]}"
    assert not (home / "models").exists(), f"it wrote into $TOOLKIT_HOME/models: {sorted(home.rglob('*'))}"
    assert not any(home.iterdir()), f"it wrote into $TOOLKIT_HOME: {sorted(home.rglob('*'))}"
    # The runs overlap, so a file left behind names the batch, not the script: its path says which.
    assert not left_in_repository, f"the quick runs wrote into the repository: {sorted(left_in_repository)}"
