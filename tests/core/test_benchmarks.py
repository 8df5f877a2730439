"""Every script in benchmarks/ runs its `--quick` mode here, as a user runs it (from the
repository root, in a fresh process), so that a benchmark that breaks fails CI. Each run
must exit 0, print its table, and write nothing outside temporary folders: nothing in
$TOOLKIT_HOME (a fresh one here) and nothing new in the repository.

A new script needs a `--quick` mode and a line in QUICK below: the test of it fails until then.
Each quick run's time on 2 busy cores is noted in QUICK; those of a minute or more are `slow`.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
    "threads": ("| setting | quiet: threads | quiet: generate s |", [], 60),
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


@pytest.mark.parametrize("script", scripts())
def test_quick_run(script, tmp_path):
    assert script in QUICK, f"benchmarks/{script}.py: give it a --quick mode and add it to QUICK in {__file__}"
    header, extra, _ = QUICK[script]
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "TOOLKIT_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    before = files_under(ROOT)
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick", *extra], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"benchmarks/{script}.py --quick failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert header in result.stdout, f"no table in its output:\n{result.stdout[-3000:]}"
    assert not (home / "models").exists(), f"it wrote into $TOOLKIT_HOME/models: {sorted(home.rglob('*'))}"
    assert not any(home.iterdir()), f"it wrote into $TOOLKIT_HOME: {sorted(home.rglob('*'))}"
    assert not files_under(ROOT) - before, f"it wrote into the repository: {sorted(files_under(ROOT) - before)}"
