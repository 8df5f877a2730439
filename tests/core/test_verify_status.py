"""`toolkit verify`'s exit statuses, for scripts: 0 ok, 1 could not read or check, 2
invalid (a signed file tampered with), 3 a mark the file's recipe says was applied is
missing; and the note that a watermark without Content Credentials may have lost them."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from toolkit_plugins.postprocessors.c2pa import C2pa

from toolkit.generation.recipe import RECIPE_KEY
from toolkit.generation.verify import EXIT_STATUS, STRIPPED, exit_status
from helpers import chunks, invoke  # noqa: E402  (tests/ is on sys.path)

needs_c2pa = pytest.mark.skipif(C2pa.unavailable() is not None, reason=f"c2pa-python unavailable: {C2pa.unavailable()}")


def made(out: Path, *post: str, model: str = "gan-shapes") -> Path:
    """One generated PNG with the ``post`` chain (upscaled to 256 px: the watermark needs 64)."""
    result = invoke("generate", "--model", model, "--class", "1", "--seed", "4", "--post", "upscale-lanczos:scale=8",
                    *[arg for p in post for arg in ("--post", p)], "--out", str(out))
    assert result.exit_code == 0, result.output
    return Path(result.stdout.split()[-1])


def verify(path: Path, status: int) -> dict:
    result = invoke("verify", "--json", str(path))
    assert result.exit_code == status, result.output
    return json.loads(result.stdout)[0]


def rewrite(source: Path, target: Path, edit) -> None:
    """Copy a PNG chunk by chunk, byte for byte, passing each (type, body) through ``edit``,
    which returns the new body or None to drop the chunk."""
    parts = [source.read_bytes()[:8]]
    for kind, body in chunks(source.read_bytes()):
        body = edit(kind, body)
        if body is not None:
            parts.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    target.write_bytes(b"".join(parts))


def is_recipe(kind: bytes, body: bytes) -> bool:
    return kind == b"iTXt" and body.startswith(RECIPE_KEY.encode() + b"\0")


def test_exit_status_table():
    assert EXIT_STATUS == {"ok": 0, "error": 1, "invalid": 2, "missing": 3}
    assert exit_status([]) == 0 and exit_status([{"status": "ok"}]) == 0
    assert exit_status([{"status": "ok"}, {"status": "error"}]) == 1
    assert exit_status([{"status": "error"}, {"status": "missing"}]) == 3  # a finding beats a failure to look
    assert exit_status([{"status": "missing"}, {"status": "invalid"}, {"status": "error"}]) == 2


def test_help_documents_the_exit_statuses():
    text = " ".join(invoke("verify", "--help").stdout.split())
    for line in ("2 something is invalid", "3 a mark the file's recipe says was applied is missing",
                 "1 a file could not be read", "0 every file was read"):
        assert line in text, text


@needs_c2pa
def test_a_tampered_signed_file_exits_2(keys, tmp_path):
    png = made(tmp_path / "out", "c2pa", model="gan-digits")
    assert verify(png, 0)["status"] == "ok"

    # The recipe edited after signing, still a valid recipe: the manifest's data hash no longer matches.
    def later(kind: bytes, body: bytes) -> bytes | None:
        if not is_recipe(kind, body):
            return body
        keyword, rest = body.split(b"\0", 1)
        compressed, text = rest[0], rest[4:]  # flag, method, language "", translated keyword ""
        recipe = json.loads(zlib.decompress(text) if compressed else text)
        recipe["created"] = "2000-01-01T00:00:00+00:00"
        return keyword + b"\0\0\0\0\0" + json.dumps(recipe, sort_keys=True).encode()

    tampered = tmp_path / "tampered.png"
    rewrite(png, tampered, later)
    report = verify(tampered, 2)
    assert report["status"] == "invalid" and report["found"]["recipe"]["created"] == "2000-01-01T00:00:00+00:00"
    found = report["found"]["c2pa"]
    assert found["state"] == "invalid" and found["recipe"] == "differs"
    assert any("dataHash.mismatch" in p for p in found["problems"])
    text = invoke("verify", str(tampered))
    assert text.exit_code == 2 and text.stderr.strip() == f"Error: {tampered}: invalid: c2pa"


@needs_c2pa
def test_stripped_credentials_exit_3_and_are_noted(keys, tmp_path):
    png = made(tmp_path / "out", "watermark", "c2pa")
    signed = verify(png, 0)
    assert signed["found"]["c2pa"]["state"] == "valid" and "payload" in signed["found"]["watermark"]
    assert "notes" not in signed and "missing" not in signed

    # The manifest chunk removed, the recipe (which says c2pa signed it) kept.
    unsigned = tmp_path / "unsigned.png"
    rewrite(png, unsigned, lambda kind, body: None if kind == b"caBX" else body)
    report = verify(unsigned, 3)
    assert report["status"] == "missing" and list(report["missing"]) == ["c2pa"]
    assert report["found"]["c2pa"].startswith("none") and report["notes"] == [STRIPPED]
    text = invoke("verify", str(unsigned))
    assert text.exit_code == 3 and text.stderr.strip() == f"Error: {unsigned}: missing: c2pa"
    printed = " ".join(text.stdout.split())
    assert "missing: the file's record says c2pa ran" in printed and "credentials may have been stripped" in printed

    # Every chunk but the pixels removed (what many uploads do): no record says what to expect,
    # so nothing is "missing", but the watermark that survived says credentials may have been lost.
    bare = tmp_path / "bare.png"
    Image.open(png).convert("RGB").save(bare)
    report = verify(bare, 0)
    assert report["found"]["recipe"].startswith("none") and "payload" in report["found"]["watermark"]
    assert report["notes"] == [STRIPPED] and "missing" not in report


def test_a_missing_watermark_exits_3(registry, tmp_path):
    png = made(tmp_path / "out", "watermark")
    marked = verify(png, 0)
    assert "payload" in marked["found"]["watermark"]
    assert "notes" not in marked  # its recipe shows it was never signed: nothing was stripped

    # The recipe kept, the pixels replaced by the same image before it was marked.
    plain = made(tmp_path / "plain")
    rebuilt = tmp_path / "rebuilt.png"
    info = PngImagePlugin.PngInfo()
    for kind, body in chunks(png.read_bytes()):
        if kind not in (b"IHDR", b"IDAT", b"IEND"):
            info.add(kind, body)
    Image.open(plain).save(rebuilt, pnginfo=info)
    assert Image.open(rebuilt).tobytes() == Image.open(plain).tobytes()
    report = verify(rebuilt, 3)
    assert report["status"] == "missing" and report["found"]["watermark"].startswith("none")
    assert report["missing"]["watermark"].startswith("the file's record says watermark ran, but watermark finds")
    assert report["found"]["recipe"]["chain"][-1] == "watermark [watermark]"

    # Over several files the most serious status wins: a missing mark beats an unreadable file.
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    both = invoke("verify", str(corrupt), str(rebuilt))
    assert both.exit_code == 3, both.output
    assert invoke("verify", str(corrupt), str(png)).exit_code == 1
