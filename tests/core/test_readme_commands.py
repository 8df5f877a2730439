"""Every command in README.md runs as written (#27).

The commands are the lines of the README's ```bash, ```sh and ```console blocks (a console
block's ``$ `` lines), a trailing ``\\`` joining a line to the next. Each one is its own test
and is run unless the README says why not; so a command added to the README is run the day
it is added. How the README says so (the HTML comment at its top says the same):

* ``<!-- readme-test: skip `PREFIX`: REASON -->``, right before a block: the block's
  commands that start with PREFIX are never run (they install, recurse or serve forever),
  and the skip reason is REASON.
* ``<!-- readme-test: slow `PREFIX`: REASON -->``: those commands take too long for every
  test run; they run, marked ``slow``, only with TOOLKIT_TEST_README_SLOW=1.
* A marker that names no command of its block is an error, so markers cannot go stale.
* Placeholders a user replaces are UPPERCASE words (``PHOTO.jpg``, ``configs/MODEL.yaml``).
  PLACEHOLDERS below maps each one to a real file; nothing else in a command is changed,
  and a command with a placeholder missing from the table fails.

The commands run in bash, in README order, each block's commands in one working folder
(a block's later commands read what its earlier ones wrote), which holds links to
examples/ and configs/ so nothing is written into the checkout, with $TOOLKIT_HOME a fresh
folder. ``toolkit`` and ``python`` on the PATH are this interpreter: the same console
script pip installs, so ``toolkit`` is also the program name shell completion sees.
Each must exit 0 and every file it names on its own stdout line must exist, as must its
``--out``; the commands that write images must name at least one. CHECKS adds what a
command's exit status cannot show.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import photo
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

SHELL_LANGUAGES = {"bash", "sh", "console"}
FENCE = re.compile(r"^\s*(```+)\s*([\w-]*)")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?:skip|slow)\b")
SKIP = re.compile(r"^<!-- readme-test: (?P<kind>skip|slow) `(?P<prefix>[^`]+)`: (?P<reason>\S.*?) -->$")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
RUN_SLOW = os.environ.get("TOOLKIT_TEST_README_SLOW") == "1"
WRITERS = re.compile(r"(?:^|&& )toolkit (?:generate|post|interpolate|dataset preview|keys create)\b")


@dataclass(frozen=True)
class Command:
    line: int  # README line it starts on
    block: int  # index of its block among the shell blocks
    text: str  # as written, without a trailing comment
    skip: str | None  # why the README says it is never run
    slow: str | None  # why the README says it runs only with TOOLKIT_TEST_README_SLOW=1

    @property
    def runs(self) -> bool:
        return self.skip is None and (self.slow is None or RUN_SLOW)

    def __str__(self) -> str:
        return self.text


def strip_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a shell comment (unquoted, at the start of a word)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def read_commands(text: str) -> list[Command]:
    """Every command in the README's shell blocks, with the skip its markers give it.

    Raises ValueError on a malformed marker, one not right before a shell block, or one
    that names no command of its block."""
    commands: list[Command] = []
    markers: list[tuple[int, str, str, str]] = []  # (line, kind, prefix, reason) waiting for their block
    lines = text.splitlines()
    i, blocks = 0, 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        i += 1
        if MARKER.match(line):
            found = SKIP.match(line.strip())
            if not found:
                raise ValueError(f"README.md:{number}: write a marker as <!-- readme-test: skip `PREFIX`: REASON -->"
                                 " (or slow)")
            markers.append((number, found["kind"], found["prefix"], found["reason"]))
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip() and markers:
                raise ValueError(f"README.md:{markers[0][0]}: a marker must come right before the block it is about")
            continue
        language, block_lines = fence[2], []
        while i < len(lines) and not lines[i].lstrip().startswith(fence[1]):
            block_lines.append((i + 1, lines[i]))
            i += 1
        i += 1  # the closing fence
        if language not in SHELL_LANGUAGES:
            if markers:
                raise ValueError(f"README.md:{markers[0][0]}: a marker before a ```{language} block")
            continue
        block = block_commands(block_lines, language == "console")
        for marker_line, _, prefix, _ in markers:
            if not any(command.startswith(prefix) for _, command in block):
                raise ValueError(f"README.md:{marker_line}: no command in the next block starts with `{prefix}`")
        for start, command in block:
            reasons = {kind: reason for _, kind, prefix, reason in reversed(markers) if command.startswith(prefix)}
            commands.append(Command(start, blocks, command, reasons.get("skip"), reasons.get("slow")))
        markers, blocks = [], blocks + 1
    if markers:
        raise ValueError(f"README.md:{markers[0][0]}: a marker with no block after it")
    return commands


def block_commands(lines: list[tuple[int, str]], console: bool) -> list[tuple[int, str]]:
    """(first line, command) for one block's lines: comments dropped, continuations joined."""
    commands, pending, start = [], "", 0
    for number, line in lines:
        if console and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        line = strip_comment(line) if not line.rstrip().endswith("\\") else line.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            commands.append((start, text))
    return commands


COMMANDS = read_commands(README.read_text(encoding="utf-8"))


# -- what the placeholders stand for --------------------------------------------------------


def tiny_training_config(work: Path) -> str:
    """configs/ddpm-digits.yaml, made tiny: 2 steps of an 8-channel net, exported under a name of its own."""
    config = yaml.safe_load((ROOT / "configs" / "ddpm-digits.yaml").read_text())
    config["name"] = "readme-ddpm-digits"
    config["model"].update(channels=8, channel_mults=[1, 2], attention_levels=[])
    config["data"]["batch_size"] = 8
    config["train"].update(steps=2, warmup_steps=0)
    config["output"].update(dir="runs/readme-ddpm-digits", checkpoint_every=1000, sample_every=1000, log_every=1)
    (work / "configs" / "readme-ddpm-digits.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "readme-ddpm-digits"


def small_photo(work: Path) -> str:
    """A 64x64 JPEG photo (scikit-image's astronaut), small so that x4 upscaling takes seconds."""
    Image.fromarray(photo("astronaut", (64, 64))).save(work / "photo.jpg", quality=90)
    return "photo"


def tiny_sd_folder(work: Path) -> str:
    """A tiny random Stable Diffusion 1.x folder, saved by diffusers itself (no weights can be downloaded)."""
    from helpers import save_tiny_sd

    save_tiny_sd(work / "tiny-sd")
    return "tiny-sd"


# placeholder -> makes the file it stands for in the working folder; returns what replaces the word
PLACEHOLDERS: dict[str, Callable[[Path], str]] = {
    "MODEL": tiny_training_config,  # configs/MODEL.yaml
    "PHOTO": small_photo,  # PHOTO.jpg
    "SD_FOLDER": tiny_sd_folder,  # ./SD_FOLDER
}

# command prefix -> shell check run right after it, in the same shell
CHECKS = {
    'eval "$(_TOOLKIT_COMPLETE=': "complete -p toolkit >/dev/null",  # the completion is registered for `toolkit`
    "toolkit train configs/MODEL.yaml": 'test -f "$TOOLKIT_HOME/models/readme-ddpm-digits/config.json"',
}


@dataclass
class Ran:
    command: str  # what ran, placeholders replaced
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.command}\n(exit {self.returncode})\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Shell:
    """Runs README commands in order, one working folder per block, each command at most once."""

    def __init__(self, root: Path):
        self.root, self.home, self.bin = root, root / "toolkit-home", root / "bin"
        self.home.mkdir()
        self.bin.mkdir()
        python = shlex.quote(sys.executable)
        toolkit = "import sys; sys.argv[0] = 'toolkit'; from toolkit.cli import main; main()"  # as pip's console script
        (self.bin / "toolkit").write_text(f'#!/bin/sh\nexec {python} -c "{toolkit}" "$@"\n')
        (self.bin / "python").write_text(f'#!/bin/sh\nexec {python} "$@"\n')
        for script in self.bin.iterdir():
            script.chmod(0o755)
        self.done: dict[Command, Ran] = {}
        self.replacements: dict[tuple[int, str], str] = {}

    def workdir(self, block: int) -> Path:
        work = self.root / f"block-{block}"
        if not work.exists():
            (work / "configs").mkdir(parents=True)
            (work / "examples").symlink_to(ROOT / "examples")
            for item in (ROOT / "configs").iterdir():
                (work / "configs" / item.name).symlink_to(item)
        return work

    def substitute(self, command: Command) -> str:
        work = self.workdir(command.block)

        def replace(word: re.Match) -> str:
            key = (command.block, word[0])
            if key not in self.replacements:
                self.replacements[key] = PLACEHOLDERS[word[0]](work)
            return self.replacements[key]

        return PLACEHOLDER.sub(replace, command.text)

    def run(self, command: Command) -> Ran:
        """Run ``command``, after the commands before it in its block that have not run yet."""
        for earlier in COMMANDS:
            if earlier == command:
                break
            if earlier.block == command.block and earlier.runs and earlier not in self.done:
                self.run(earlier)
        if command not in self.done:
            text = self.substitute(command)
            checks = [check for prefix, check in CHECKS.items() if command.text.startswith(prefix)]
            script = text + "".join(f'\nstatus=$?; [ $status -ne 0 ] && exit $status; {c} || exit 99' for c in checks)
            env = {**os.environ, "TOOLKIT_HOME": str(self.home), "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}
            result = subprocess.run(["bash", "-c", script], cwd=self.workdir(command.block), env=env,
                                    capture_output=True, text=True, timeout=1800 if command.slow else 300, check=False)
            self.done[command] = Ran(text, result.returncode, result.stdout, result.stderr)
        return self.done[command]


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Shell:
    return Shell(tmp_path_factory.mktemp("readme"))


def written(ran: Ran) -> list[str]:
    """The files a command says it wrote: its ``--out`` and each stdout line that is one path."""
    words = shlex.split(ran.command, comments=True) if "$(" not in ran.command else []
    out = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--out"]
    named = [line.strip() for line in ran.stdout.splitlines()
             if re.fullmatch(r"\S+\.(?:png|jpg|json|pem|key)", line.strip())]
    return out + named


def test_the_readme_has_commands_and_every_placeholder_has_a_file():
    assert len(COMMANDS) >= 20 and len({c.block for c in COMMANDS}) >= 4
    used = {word for c in COMMANDS if c.skip is None for word in PLACEHOLDER.findall(c.text)}  # run or slow
    unknown = used - set(PLACEHOLDERS)
    assert not unknown, f"README placeholders with no file in PLACEHOLDERS: {sorted(unknown)}"
    assert used == set(PLACEHOLDERS), f"PLACEHOLDERS no command uses: {sorted(set(PLACEHOLDERS) - used)}"
    for prefix in CHECKS:
        assert any(c.text.startswith(prefix) and c.skip is None for c in COMMANDS), f"CHECKS: no command is {prefix}..."
    assert "tests/core/test_readme_commands.py" in README.read_text(encoding="utf-8").split("\n# ", 1)[0]


def marks(command: Command) -> list[pytest.MarkDecorator]:
    if command.skip:
        return [pytest.mark.skip(reason=f"README.md:{command.line}: {command.skip}")]
    if command.slow:
        return [pytest.mark.slow, pytest.mark.skipif(not RUN_SLOW, reason=f"README.md:{command.line}: slow, "
                                                     f"{command.slow} (TOOLKIT_TEST_README_SLOW=1 runs it)")]
    return []


@pytest.mark.parametrize("command", [pytest.param(c, id=c.text[:60], marks=marks(c)) for c in COMMANDS])
def test_readme_command_runs_as_written(shell: Shell, command: Command):
    ran = shell.run(command)
    assert ran.returncode == 0, f"README.md:{command.line} failed:\n{ran}"
    work = shell.workdir(command.block)
    files = written(ran)
    missing = [f for f in files if not (work / f).exists()]
    assert not missing, f"README.md:{command.line} names files that are not there: {missing}\n{ran}"
    if WRITERS.search(ran.command):
        assert files, f"README.md:{command.line} wrote nothing it names\n{ran}"


@pytest.mark.parametrize(("text", "expected"), [
    ("toolkit --help   # every command", "toolkit --help"),
    ('toolkit generate --prompt "a # b"  # two', 'toolkit generate --prompt "a # b"'),
    ("toolkit verify signed/*.png", "toolkit verify signed/*.png"),
    ("# only a comment", ""),
])
def test_comments_are_dropped_outside_quotes(text, expected):
    assert strip_comment(text) == expected


def test_markers_apply_to_the_next_block_only_and_must_match():
    readme = """<!-- readme-test: skip `toolkit app`: it serves until stopped -->
<!-- readme-test: slow `toolkit models`: it takes a while -->
```bash
toolkit app --port 1   # a comment
toolkit models \\
  --verify
```
```console
$ toolkit app
some output
```
```python
print('not a command')
```"""
    commands = read_commands(readme)
    assert [(c.line, c.block, c.text, c.skip, c.slow) for c in commands] == [
        (4, 0, "toolkit app --port 1", "it serves until stopped", None),
        (5, 0, "toolkit models   --verify", None, "it takes a while"),
        (9, 1, "toolkit app", None, None),
    ]
    for bad, message in [
        ("<!-- readme-test: skip `toolkit nope`: why -->\n```bash\ntoolkit app\n```", "no command in the next block"),
        ("<!-- readme-test: skip toolkit app -->\n```bash\ntoolkit app\n```", "write a marker as"),
        ("<!-- readme-test: skip `toolkit app`: why -->\nprose\n```bash\ntoolkit app\n```", "right before the block"),
        ("<!-- readme-test: skip `toolkit app`: why -->", "no block after it"),
    ]:
        with pytest.raises(ValueError, match=message):
            read_commands(bad)
