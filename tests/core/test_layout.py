"""The layout keeps its promises: the core names no concrete model, plugins get their
context instead of reaching for the process-wide registry, files stay readable, and
pyproject.toml installs every package folder."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL_WORDS = re.compile(r"shapes|digits|clip-shapes|ldm-shapes|c2pa", re.IGNORECASE)
# Lines of a docstring that show a command or a call a user would type.
EXAMPLE = re.compile(r"^\s*(toolkit |accelerate launch|torchrun|>>>|result = generate\()")


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """Line numbers where a docstring starts (module, class, function)."""
    starts = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                starts.add(first.lineno)
    return starts


def model_words_in(path: Path, root: Path = ROOT) -> list[str]:
    """Comments, strings and docstring lines (except examples) of ``path`` naming a model."""
    source = path.read_text()
    docstrings = _docstring_nodes(ast.parse(source))
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        lines = token.string.splitlines()
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            lines = [line for line in lines if not EXAMPLE.match(line)]
        found += [f"{path.relative_to(root)}:{token.start[0]}: {line.strip()}" for line in lines if MODEL_WORDS.search(line)]
    return found


def test_the_core_names_no_concrete_model():
    """Nor does the web app, whose form is built from what is registered."""
    found = [hit for folder in ("toolkit", "apps") for path in sorted((ROOT / folder).rglob("*.py")) for hit in model_words_in(path)]
    assert found == []


def test_the_check_sees_a_model_name_outside_examples(tmp_path):
    (tmp_path / "toolkit").mkdir()
    bad = tmp_path / "toolkit" / "bad.py"
    bad.write_text('"""Doc.\n\n    toolkit eval --model ddpm-digits\n"""\nDEFAULT = "ldm-shapes"  # the shapes model\n')
    assert [hit.split(": ", 1)[1] for hit in model_words_in(bad, root=tmp_path)] == ['"ldm-shapes"', "# the shapes model"]


def test_no_plugin_reaches_for_the_global_registry():
    users = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "plugins").rglob("*.py")) if "get_registry()" in p.read_text()]
    assert users == []


def test_files_stay_readable():
    """~350 lines a file; the exceptions are single concepts, named here with the reason."""
    allowed = {}
    long = {str(p.relative_to(ROOT)): n for folder in ("toolkit", "plugins", "apps")
            for p in sorted((ROOT / folder).rglob("*.py")) if (n := len(p.read_text().splitlines())) > 350}
    assert set(long) <= set(allowed), long


def test_pyproject_lists_every_package_folder():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(toolkit(?:_plugins|_apps)?(?:\.[\w.]+)?)"', text.split("packages = [", 1)[1].split("]", 1)[0]))
    folders = {".".join(("toolkit",) + p.parent.relative_to(ROOT / "toolkit").parts) for p in (ROOT / "toolkit").rglob("__init__.py")}
    folders |= {".".join(("toolkit_plugins",) + p.parent.relative_to(ROOT / "plugins" / "builtin").parts)
                for p in (ROOT / "plugins" / "builtin").rglob("__init__.py")}
    folders |= {".".join(("toolkit_apps",) + p.parent.relative_to(ROOT / "apps").parts) for p in (ROOT / "apps").rglob("__init__.py")}
    assert listed == folders
