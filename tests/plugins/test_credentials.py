"""Content Credentials: `toolkit keys create`, signing with `--post c2pa`, and `toolkit
verify` telling a valid signature from a file edited after signing. Everything runs
in-process on the shipped gan-digits model; keys live in the test's private TOOLKIT_HOME."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, PngImagePlugin
from toolkit_plugins.postprocessors import c2pa as credentials
from toolkit_plugins.postprocessors.c2pa import TRAINED, C2pa

from toolkit.components import PostContext
from toolkit.generation.recipe import RECIPE_KEY
from toolkit.generation.request import GenerationRequest
from toolkit.host.registry import Entry
from helpers import chunks, invoke  # noqa: E402  (tests/ is on sys.path)

SEPIA_PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "packages" / "toolkit-example-sepia"

pytestmark = pytest.mark.skipif(C2pa.unavailable() is not None, reason=f"c2pa-python unavailable: {C2pa.unavailable()}")


def generate(out: Path, *post: str):
    return invoke("generate", "--model", "gan-digits", "--class", "3", "--seed", "1",
                  *[arg for p in post for arg in ("--post", p)], "--out", str(out))


def verify(path: Path, *args: str, status: int = 0) -> dict:
    """What `toolkit verify` found in one file; ``status``: the exit status expected (2: invalid)."""
    result = invoke("verify", "--json", *args, str(path))
    assert result.exit_code == status, result.output
    return json.loads(result.stdout)[0]["found"]


def resave(source: Path, target: Path, paint: tuple[int, int, int, int] | None = None) -> None:
    """Save the image again with PIL, keeping every chunk (the c2pa manifest included), after
    painting a red box over ``paint`` (left, top, right, bottom) if given."""
    info = PngImagePlugin.PngInfo()
    for kind, body in chunks(source.read_bytes()):
        if kind not in (b"IHDR", b"IDAT", b"IEND"):
            info.add(kind, body)
    with Image.open(source) as image:
        image = image.copy()
    if paint:
        image.paste((255, 0, 0), paint)
    image.save(target, pnginfo=info)


# -- keys ----------------------------------------------------------------------------------------


def test_keys_create_writes_a_ca_and_a_signer_and_refuses_to_overwrite(keys):
    key_file, chain_file, ca_file = keys / "signer.key", keys / "signer-chain.pem", keys / "ca.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    signer, ca = x509.load_pem_x509_certificates(chain_file.read_bytes())
    assert x509.load_pem_x509_certificate(ca_file.read_bytes()) == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.issuer == ca.subject and signer.issuer == ca.subject
    signer.verify_directly_issued_by(ca)
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in usages
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"  # ES256
    assert key.public_key() == signer.public_key()

    before = key_file.read_bytes()
    again = invoke("keys", "create")
    assert again.exit_code == 1 and "already exists; pass --force" in again.stderr
    assert key_file.read_bytes() == before
    forced = invoke("keys", "create", "--force", "--name", "Jane Doe")
    assert forced.exit_code == 0, forced.output
    assert key_file.read_bytes() != before
    assert "Jane Doe" in x509.load_pem_x509_certificates(chain_file.read_bytes())[0].subject.rfc4514_string()
    assert not list(keys.glob(".*"))  # no temporary files left
    nameless = invoke("keys", "create", "--out", str(keys.parent / "nameless"), "--name", "")
    assert nameless.exit_code == 1 and "--name" in nameless.stderr and not (keys.parent / "nameless").exists()


# -- signing and verifying -------------------------------------------------------------------------


def test_signed_png_verifies_keeps_its_recipe_and_shows_pixel_edits(keys, tmp_path):
    result = generate(tmp_path / "out", "c2pa")
    assert result.exit_code == 0, result.output
    assert "chain: gan-digits (gan) -> c2pa [sign]" in result.stderr
    [png] = [Path(line) for line in result.stdout.split() if line.endswith(".png")]
    assert sorted(p.name for p in png.parent.iterdir()) == [png.name]  # no temporary file left beside it
    assert b"caBX" in [kind for kind, _ in chunks(png.read_bytes())]

    # The recipe survives signing, and the manifest carries its exact hash.
    recipe = json.loads(invoke("info", str(png)).stdout)
    assert recipe["postprocessors"][0]["name"] == "c2pa" and recipe["postprocessors"][0]["record"]["alg"] == "es256"
    with Image.open(png) as image:
        image.load()
        recipe_sha = hashlib.sha256(image.text[RECIPE_KEY].encode()).hexdigest()

    found = verify(png)["c2pa"]
    assert found["state"] == "valid" and "problems" not in found
    assert found["signer_trusted"] is False and "--trust" in found["trust"]
    assert found["signer"].startswith("toolkit local signer")
    assert found["claim_generator"].startswith("toolkit/")
    assert found["action"] == "c2pa.created" and found["digital_source_type"] == TRAINED
    assert found["model"] == "gan-digits" and found["model_sha256"] == recipe["model"]["sha256"]
    assert found["recipe_sha256"] == recipe_sha and found["recipe"] == "matches"

    trusted = verify(png, "--trust", str(keys / "ca.pem"))["c2pa"]
    assert trusted["state"] == "valid" and trusted["signer_trusted"] is True and "trust" not in trusted

    copy, edited = tmp_path / "copy.png", tmp_path / "edited.png"
    resave(png, copy)  # the same pixels saved again: still valid (the check is not fooled by re-encoding)
    assert verify(copy)["c2pa"]["state"] == "valid"
    resave(png, edited, paint=(0, 0, 4, 4))
    tampered = verify(edited, "--trust", str(keys / "ca.pem"), status=2)["c2pa"]
    assert tampered["state"] == "invalid" and tampered["model"] == "gan-digits"
    assert any("image data changed after signing" in p and "dataHash.mismatch" in p for p in tampered["problems"])

    text = invoke("verify", str(edited))
    assert "c2pa:" in text.stdout and '"state": "invalid"' in text.stdout
    assert text.exit_code == 2  # scripts can tell a broken signature from a valid one


def test_verify_reports_files_without_credentials_and_refuses_a_bad_trust_file(keys, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert verify(plain)["c2pa"] == "none (no Content Credentials in this file)"
    bad = invoke("verify", "--trust", str(keys / "signer.key"), str(plain))
    assert bad.exit_code == 1 and "not a PEM certificate" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_failed_signing_leaves_the_unsigned_png_whole(keys, registry, tmp_path, monkeypatch):
    result = generate(tmp_path / "out")
    [png] = [Path(line) for line in result.stdout.split() if line.endswith(".png")]
    unsigned = png.read_bytes()

    def half_then_fail(source, dest, *args, **kwargs):
        dest.write(source.read()[:100])
        raise credentials.SigningError("c2pa could not sign: disk full")

    monkeypatch.setattr(credentials, "sign_png", half_then_fail)
    ctx = PostContext(GenerationRequest(model="gan-digits"), 1, "gan-digits", "0" * 64, registry=registry)
    with pytest.raises(credentials.SigningError, match="disk full"):
        C2pa().after_save(png, C2pa.Options(), ctx)
    assert png.read_bytes() == unsigned
    assert sorted(p.name for p in png.parent.iterdir()) == [png.name]


# -- mistakes: one clear line, nothing written -----------------------------------------------------


def issue_chain(folder: Path, *, eku: bool = True, self_signed: bool = False,
                expired: bool = False) -> tuple[Path, Path]:
    """A key and certificate chain with one thing wrong, for the checks below."""
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(days=30), now + dt.timedelta(days=30)
    if expired:
        end = now - dt.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test signer")])

    def build(subject, issuer, public_key, is_ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
        if eku and not is_ca:
            email = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION])
            builder = builder.add_extension(email, critical=False)
        return builder

    if self_signed:
        certs = [build(name, name, key.public_key(), False).sign(key, hashes.SHA256())]
    else:
        ca = build(ca_name, ca_name, ca_key.public_key(), True).sign(ca_key, hashes.SHA256())
        certs = [build(name, ca_name, key.public_key(), False).sign(ca_key, hashes.SHA256()), ca]
    folder.mkdir(parents=True, exist_ok=True)
    key_file, chain_file = folder / "k.pem", folder / "chain.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    chain_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return key_file, chain_file


@pytest.fixture
def bad(tmp_path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "garbage.pem").write_text("not a key\n")
    (folder / "a-folder.pem").mkdir()
    other = invoke("keys", "create", "--out", str(folder / "other"))
    assert other.exit_code == 0, other.output
    issue_chain(folder / "selfsigned", self_signed=True)
    issue_chain(folder / "expired", expired=True)
    issue_chain(folder / "noeku", eku=False)
    return folder


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ("c2pa:colour=red", "post-processor 'c2pa': unknown option 'colour'"),
        ("c2pa:key={d}/missing.pem", "no signing key at"),
        ("c2pa:key={d}/garbage.pem", "is not a PEM private key; run `toolkit keys create`"),
        ("c2pa:key={d}/a-folder.pem", "cannot read the signing key"),
        ("c2pa:cert={d}/garbage.pem", "is not a PEM certificate chain"),
        ("c2pa:key={d}/other/signer.key", "does not match the certificate"),
        ("c2pa:key={d}/selfsigned/k.pem,cert={d}/selfsigned/chain.pem", "is a self-signed certificate"),
        ("c2pa:key={d}/expired/k.pem,cert={d}/expired/chain.pem", "expired on"),
        ("c2pa:key={d}/noeku/k.pem,cert={d}/noeku/chain.pem", "c2pa could not sign with test signer"),
        ("c2pa:alg=ps256", "alg=ps256 does not fit the key"),
    ],
)
def test_bad_keys_and_options_print_one_line_and_write_nothing(keys, bad, post, message):
    out = bad / "out"
    result = generate(out, post.format(d=bad))
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith("Error:") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_without_keys_the_error_says_how_to_make_them(registry, tmp_path):
    result = generate(tmp_path / "out", "c2pa")
    assert result.exit_code == 1 and "run `toolkit keys create`" in result.stderr
    assert not (tmp_path / "out").exists()


def test_c2pa_must_come_last(keys, registry, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SEPIA_PACKAGE))  # the example plugin, from its source folder
    import toolkit_sepia

    registry.postprocessors["sepia"] = Entry("sepia", toolkit_sepia.Sepia, "sepia")
    result = generate(tmp_path / "out", "c2pa", "sepia")
    assert result.exit_code == 1
    assert "'sepia' (edit) cannot run after 'c2pa' (sign)" in result.stderr
    assert "list them as sepia -> c2pa" in result.stderr
    assert not (tmp_path / "out").exists()
    signed = generate(tmp_path / "out", "sepia:strength=0.5", "c2pa")
    assert signed.exit_code == 0, signed.output
    [png] = [Path(line) for line in signed.stdout.split() if line.endswith(".png")]
    assert verify(png)["c2pa"]["state"] == "valid"


def test_post_signs_a_toolkit_png_and_refuses_a_file_without_recipe(keys, tmp_path):
    made = generate(tmp_path / "made")
    [png] = [Path(line) for line in made.stdout.split() if line.endswith(".png")]
    signed = invoke("post", str(png), "--post", "c2pa", "--out", str(tmp_path / "signed"))
    assert signed.exit_code == 0, signed.output
    [out] = (tmp_path / "signed").iterdir()
    assert verify(out)["c2pa"]["state"] == "valid"
    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(photo)
    refused = invoke("post", str(photo), "--post", "c2pa", "--out", str(tmp_path / "photo-out"))
    assert refused.exit_code == 1 and "carries no toolkit recipe" in refused.stderr
    assert not (tmp_path / "photo-out").exists()
