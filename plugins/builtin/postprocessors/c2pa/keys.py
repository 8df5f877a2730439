"""Signing keys for Content Credentials: ``toolkit keys create`` makes a local test CA and a
signer certificate it issued (ECDSA P-256, ES256) in ``$TOOLKIT_HOME/keys``, and
``load_credentials`` reads and checks a key and chain before anything is signed with them.

Signatures made with the local keys validate, with the signer marked untrusted until the
verifier trusts the CA (``toolkit verify --trust ca.pem``, or c2pa's ``trust.user_anchors``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from toolkit.cli.params import OutputPath
from toolkit.errors import ToolkitError
from toolkit.generation.files import write_atomic
from toolkit.generation.store import toolkit_home

# What `toolkit keys create` writes, and where `--post c2pa` looks by default.
KEY_FILE = "signer.key"  # the signer's private key, PKCS#8 PEM, mode 0600
CHAIN_FILE = "signer-chain.pem"  # the signer's certificate, then the CA's
CA_FILE = "ca.pem"  # the CA certificate: what a verifier adds to its trust list


class SigningError(ToolkitError):
    """A signing key or certificate is missing, unreadable or unusable, or signing failed."""


def keys_dir() -> Path:
    return toolkit_home() / "keys"


@dataclass
class Credentials:
    """A checked key and chain, as c2pa wants them (PEM, PKCS#8 key, signer certificate first)."""

    key_pem: bytes
    chain_pem: bytes
    alg: str
    signer: str  # the signer certificate's subject, for messages and the recipe

    def signer_object(self) -> Any:
        import c2pa

        alg = c2pa.C2paSigningAlg[self.alg.upper()]
        info = c2pa.C2paSignerInfo(alg, self.chain_pem, self.key_pem, None)  # None: no timestamp authority
        return c2pa.Signer.from_info(info)


def _read(path: Path, what: str) -> bytes:
    if not path.exists():
        raise SigningError(
            f"c2pa: no {what} at {path}; run `toolkit keys create`, or pass --post c2pa:key=FILE,cert=FILE"
        )
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise SigningError(f"c2pa: cannot read the {what} {path} ({reason}); give a readable PEM file") from None


def _key_alg(key: Any, path: Path) -> tuple[str, set[str]]:
    """The default algorithm for a private key and every algorithm it can sign with."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in curves:
            raise SigningError(
                f"c2pa: {path} is an EC key on {key.curve.name}; C2PA signs with P-256, P-384 or P-521 keys"
            )
        return curves[key.curve.name], {curves[key.curve.name]}
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256", {"ps256", "ps384", "ps512"}
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", {"ed25519"}
    raise SigningError(
        f"c2pa: {path} holds a {type(key).__name__}; C2PA signs with EC (P-256/384/521), RSA or Ed25519 keys"
    )


def load_credentials(key_path: Path, cert_path: Path, alg: str | None = None) -> Credentials:
    """Read and check the key and chain: each parses, the key matches the signer
    certificate, the certificate is in its validity period and not self-signed.
    ``alg``: the signature algorithm asked for; None takes the one the key's type calls for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key_bytes, cert_bytes = _read(key_path, "signing key"), _read(cert_path, "certificate chain")
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except TypeError:
        raise SigningError(
            f"c2pa: {key_path} is encrypted; give c2pa an unencrypted PEM key (or run `toolkit keys create`)"
        ) from None
    except ValueError:
        raise SigningError(
            f"c2pa: {key_path} is not a PEM private key; run `toolkit keys create` to make one"
        ) from None
    try:
        chain = x509.load_pem_x509_certificates(cert_bytes)
    except ValueError:
        raise SigningError(
            f"c2pa: {cert_path} is not a PEM certificate chain; run `toolkit keys create` to make one"
        ) from None
    default_alg, able = _key_alg(key, key_path)
    if alg is not None and alg not in able:
        raise SigningError(
            f"c2pa: alg={alg} does not fit the key in {key_path}; it signs with {', '.join(sorted(able))}"
        )
    signer = chain[0]
    raw = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if signer.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise SigningError(
            f"c2pa: the key {key_path} does not match the certificate {cert_path} (the first certificate must be the "
            "signer's); pass the pair that belongs together, or run `toolkit keys create --force`"
        )
    now = dt.datetime.now(dt.timezone.utc)
    if signer.not_valid_after_utc < now:
        raise SigningError(f"c2pa: the certificate in {cert_path} expired on {signer.not_valid_after_utc:%Y-%m-%d}; "
                           "run `toolkit keys create --force` for a new one")
    if signer.not_valid_before_utc > now:
        raise SigningError(
            f"c2pa: the certificate in {cert_path} is valid only from {signer.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if len(chain) == 1 and signer.issuer == signer.subject:
        raise SigningError(
            f"c2pa: {cert_path} is a self-signed certificate; C2PA needs a signer certificate issued by a CA "
            "(run `toolkit keys create`)"
        )
    pem = serialization.Encoding.PEM
    return Credentials(
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        chain_pem=b"".join(c.public_bytes(pem) for c in chain),
        alg=alg or default_alg,
        signer=_common_name(signer),
    )


def _common_name(cert: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def create_keys(folder: Path, *, name: str, force: bool = False) -> list[Path]:
    """A local test CA (self-signed, CA:true) and an ES256 signer certificate it issued,
    with the key usages C2PA requires. Writes the signer key (0600), the chain and the CA
    certificate; returns their paths. Refuses to replace existing keys unless ``force``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not 1 <= len(name) <= 60:
        raise SigningError(f"--name: give the signer's name in 1-60 characters (got {len(name)})")
    paths = [folder / KEY_FILE, folder / CHAIN_FILE, folder / CA_FILE]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise SigningError(f"{existing[0]} already exists; pass --force to replace the keys in {folder} "
                           "(images signed before stay valid, but verifiers must trust the new CA)")

    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(minutes=5)  # tolerate a verifier's clock running a little behind

    def usage(**allowed: bool) -> x509.KeyUsage:
        flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                 "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{flag: allowed.get(flag, False) for flag in flags})

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "local test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())  # ES256
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "local test key")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        # C2PA's certificate profile: an extended key usage it accepts for claim signing.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                              x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")]),  # documentSigning
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # The CA's private key is not kept: it signed this one certificate and is never needed again.
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(paths[1], cert.public_bytes(pem) + ca.public_bytes(pem), permissions=0o644)
        write_atomic(paths[2], ca.public_bytes(pem), permissions=0o644)
        write_atomic(paths[0], private, permissions=0o600)
    except OSError as error:
        reason = error.strerror or error
        raise SigningError(f"cannot write the keys to {folder} ({reason}); choose another --out") from None
    return paths


@click.group("keys")
def keys_group() -> None:
    """Signing keys for Content Credentials (`--post c2pa`) and your own watermark key
    (`--post watermark:key=own`)."""


@keys_group.command()
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Folder for the keys.  [default: $TOOLKIT_HOME/keys, where --post c2pa looks]")
@click.option("--name", default="toolkit local signer", show_default=True,
              help="The signer's name (certificate common name), shown by `toolkit verify`.")
@click.option("--force", is_flag=True, help="Replace existing keys.")
def create(out_dir: str | None, name: str, force: bool) -> None:
    """Make a local test CA and a signer certificate it issued (ECDSA P-256), and a
    watermark key of your own.

    Writes signer.key (private, mode 0600), signer-chain.pem (the signer's certificate,
    then the CA's) and ca.pem. `toolkit generate --post c2pa` signs with the first two;
    give ca.pem to whoever verifies (`toolkit verify --trust ca.pem IMAGE`) so they see
    the signer as trusted. Also watermark.key (private, 0600): `--post watermark:key=own`
    writes marks that only its holders can read or write (the default public key lets
    anyone do both). When the signing keys exist already, only a missing watermark key is made.

    \b
    Examples:
      toolkit keys create
      toolkit keys create --out ~/my-keys --name "Jane Doe"
      toolkit generate --post c2pa:key=~/my-keys/signer.key,cert=~/my-keys/signer-chain.pem
    """
    from toolkit_plugins.postprocessors.watermark.key import KEY_FILE as WATERMARK_KEY_FILE
    from toolkit_plugins.postprocessors.watermark.key import create_key as create_watermark_key

    folder = Path(out_dir).expanduser() if out_dir else keys_dir()
    watermark_path = folder / WATERMARK_KEY_FILE
    made: list[Path] = []
    # Keys made before there were watermark keys get the one that is missing; a watermark
    # key is never replaced without --force (marks written with it would stop reading).
    if force or not (folder / KEY_FILE).exists() or watermark_path.exists():
        made += create_keys(folder, name=name, force=force)
    if force or not watermark_path.exists():
        made.append(create_watermark_key(folder, force=force))
    for path in made:
        click.echo(str(path))
    if len(made) == 1:
        click.echo(f"watermark: toolkit generate ... --post watermark:key={'own' if out_dir is None else made[0]}", err=True)
        return
    key, chain, ca = made[:3]
    where = "" if out_dir is None else f":key={key},cert={chain}"
    click.echo(f"sign:  toolkit generate ... --post c2pa{where}", err=True)
    click.echo(f"trust: toolkit verify --trust {ca} IMAGE", err=True)
    click.echo(f"watermark: toolkit generate ... --post watermark:key={'own' if out_dir is None else watermark_path}", err=True)
