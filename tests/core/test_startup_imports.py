"""The commands people run to look around start without torch: `toolkit --help`, `toolkit
models`, `toolkit plugins`, `toolkit config` and any command's `--help` import none of the heavy libraries, though
every plugin is loaded and registers (issue #27). A plugin module imports light things only;
torch and the networks come with the work that needs them (docs/plugins.md, "Keep start-up
fast"). A behaviour test, not a timed one: benchmarks/startup.py measures the time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

# Each of these takes from a tenth of a second (scipy) to seconds (torch, transformers) to import.
HEAVY = ("torch", "diffusers", "open_clip", "transformers", "torchvision", "scipy", "skimage", "accelerate")

# Runs the CLI as `python -m toolkit` does, then says on stderr's last line which heavy modules it imported.
PROBE = """
import sys
from toolkit.cli import main
sys.argv = ["toolkit", *sys.argv[1:]]
try:
    main()
finally:
    print("heavy modules:", [m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""

# Every command's --help too: it is printed before the command would choose torch's threads.
COMMANDS = [["--help"], ["models"], ["models", "--json"], ["plugins"], ["plugins", "--json"], ["config"],
            ["config", "--help"], ["generate", "--help"], ["train", "-h"], ["dataset", "preview", "--help"],
            ["eval", "--help"], ["--threads", "1", "post", "--help"]]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_looking_around_imports_no_heavy_library(home, args):
    result = run(*args)
    assert result.returncode == 0, result.stderr
    imported = ast.literal_eval(result.stderr.strip().splitlines()[-1].removeprefix("heavy modules: "))
    assert imported == [], f"`toolkit {' '.join(args)}` imported {', '.join(imported)}"


def test_every_builtin_still_registers_without_them(home):
    """The plugins load whole: every built-in is ok, its components listed, its commands in --help."""
    rows = json.loads(run("plugins", "--json").stdout)
    builtins = {row["name"]: row for row in rows if row["builtin"]}
    assert builtins and all(row["status"] == "ok" for row in builtins.values()), \
        {name: row["error"] for name, row in builtins.items() if row["error"]}
    assert {"ddpm", "gan", "vae", "ldm", "diffusers"} <= {g for row in rows for g in row["components"].get("generators", [])}
    assert builtins["upscale"]["stages"] == {"upscale-lanczos": "upscale", "upscale-realesrgan": "upscale"}
    assert "dpmpp-2m" in builtins["samplers"]["components"]["samplers"]
    help_text = run("--help").stdout
    assert "interpolate" in help_text and "import-weights" in help_text  # register_commands hooks ran
