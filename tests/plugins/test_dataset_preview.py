"""`toolkit dataset preview`: a contact sheet of any dataset, and its errors."""

from __future__ import annotations

from click.testing import CliRunner
from PIL import Image

from toolkit.cli import cli


def test_dataset_preview_command(tmp_path, registry):
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(cli, ["dataset", "preview", "shapes", "--n", "4", "--out", str(out)], obj={})
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 200
    bad = CliRunner().invoke(cli, ["dataset", "preview", "imagefolder", "--out", str(tmp_path / "x.png")], obj={})
    assert bad.exit_code == 1 and "pass root=PATH" in bad.stderr
    unknown = CliRunner().invoke(cli, ["dataset", "preview", "shapez"], obj={})
    assert unknown.exit_code == 1 and "Did you mean 'shapes'" in unknown.stderr
