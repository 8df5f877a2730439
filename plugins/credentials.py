"""Content Credentials (C2PA): sign every output PNG, and read signatures back for
`toolkit verify`. Adds the `toolkit keys create` command that makes a local test signer.

``--post c2pa`` runs last (stage ``sign``): once the PNG, recipe included, is written, it
embeds a C2PA manifest signed with your key. The manifest says what made the image:

* action ``c2pa.created`` with the IPTC digital source type ``trainedAlgorithmicMedia``
  (``compositeWithTrainedAlgorithmicMedia`` when the request edited an init image),
* the claim generator ``toolkit/<version>``,
* an ``org.toolkit.generation`` assertion: the model's name and sha256, and the sha256 of
  the recipe JSON exactly as the PNG's ``toolkit-recipe`` chunk stores it.

c2pa-python inserts its ``caBX`` chunk and keeps every other chunk, so ``toolkit info``
and ``--replay`` still read the recipe. The manifest's data hash covers the whole file but
that chunk, so any later change to the pixels or the recipe makes the signature invalid.

Signing is offline: no timestamp authority, no OCSP, no remote manifests (the settings in
``_settings`` say so). Without a timestamp, the signature is checked against the
certificate's validity at verification time.

Keys: ``toolkit keys create`` makes a local test CA and a signer certificate it issued
(ECDSA P-256, ES256) in ``$TOOLKIT_HOME/keys``. Signatures made with it validate, with
the signer marked untrusted until the verifier trusts the CA
(``toolkit verify --trust ca.pem``, or c2pa's ``trust.user_anchors`` setting).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import PostContext, PostProcessor, PostResult, Stage
from toolkit.errors import ToolkitError
from toolkit.recipe import RECIPE_KEY
from toolkit.store import toolkit_home

if TYPE_CHECKING:
    import torch

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"  # made from scratch by a trained model
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"  # a model edited a given image (init image, mask)
ASSERTION = "org.toolkit.generation"  # our own assertion: model and recipe hashes

# What `toolkit keys create` writes, and where c2pa looks by default.
KEY_FILE = "signer.key"  # the signer's private key, PKCS#8 PEM, mode 0600
CHAIN_FILE = "signer-chain.pem"  # the signer's certificate, then the CA's
CA_FILE = "ca.pem"  # the CA certificate: what a verifier adds to its trust list

Alg = Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"]


class SigningError(ToolkitError):
    """A signing key or certificate is missing, unreadable or unusable, or signing failed."""


def keys_dir() -> Path:
    return toolkit_home() / "keys"


def toolkit_version() -> str:
    try:
        return version("toolkit")
    except PackageNotFoundError:
        return "unknown"


def _settings(trust_pem: str | None = None, *, thumbnail: bool = False) -> dict[str, Any]:
    """c2pa settings: never touch the network; trust ``trust_pem``'s CAs when given."""
    settings: dict[str, Any] = {
        "version": 1,
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
        "builder": {"thumbnail": {"enabled": thumbnail}},
    }
    if trust_pem:
        settings["trust"] = {"user_anchors": trust_pem}
    return settings


# -- options and key material ----------------------------------------------------------------


class C2paOptions(BaseModel):
    """Options from ``--post c2pa:key=FILE,cert=FILE``. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    key: Path | None = Field(None, description=f"signer private key (PEM); default: $TOOLKIT_HOME/keys/{KEY_FILE}")
    cert: Path | None = Field(
        None,
        description=f"certificate chain (PEM: the signer's, then its CA's); default: $TOOLKIT_HOME/keys/{CHAIN_FILE}",
    )
    alg: Alg | None = Field(None, description="signature algorithm; default: the one the key's type calls for")
    thumbnail: bool = Field(False, description="embed a thumbnail in the manifest")

    def paths(self) -> tuple[Path, Path]:
        return ((self.key or keys_dir() / KEY_FILE).expanduser(), (self.cert or keys_dir() / CHAIN_FILE).expanduser())


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


def load_credentials(options: C2paOptions) -> Credentials:
    """Read and check the key and chain: each parses, the key matches the signer
    certificate, the certificate is in its validity period and not self-signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key_path, cert_path = options.paths()
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
    alg, able = _key_alg(key, key_path)
    if options.alg is not None and options.alg not in able:
        raise SigningError(
            f"c2pa: alg={options.alg} does not fit the key in {key_path}; it signs with {', '.join(sorted(able))}"
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
        alg=options.alg or alg,
        signer=_common_name(signer),
    )


def _common_name(cert: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


# -- the manifest and signing ------------------------------------------------------------------


def recipe_text(path: Path) -> str | None:
    """The recipe JSON exactly as the PNG stores it (the text its sha256 is taken of)."""
    with Image.open(path) as image:
        image.load()  # text chunks after the image data are read only now
        return getattr(image, "text", {}).get(RECIPE_KEY)


def build_manifest(path: Path, ctx: PostContext) -> dict[str, Any]:
    recipe = recipe_text(path)
    if recipe is None:
        raise SigningError(
            f"c2pa: {path} carries no toolkit recipe, so what made it is unknown; c2pa signs images toolkit generated"
        )
    request = ctx.request
    edited = getattr(request, "init_image", None) is not None or getattr(request, "mask", None) is not None
    generator = {"name": "toolkit", "version": toolkit_version()}
    created = {
        "action": "c2pa.created",
        "digitalSourceType": COMPOSITE if edited else TRAINED,
        "softwareAgent": generator,
        "description": f"generated by the model {ctx.model_name}" + (" from an input image" if edited else ""),
    }
    generation = {
        "model": {"name": ctx.model_name, "sha256": ctx.model_sha256},
        "recipe": {"png_chunk": RECIPE_KEY, "sha256": hashlib.sha256(recipe.encode("utf-8")).hexdigest()},
    }
    return {
        "claim_generator_info": [generator],
        "title": path.name,
        "format": "image/png",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [created]}},
            {"label": ASSERTION, "data": generation},
        ],
    }


def sign_png(source: Any, dest: Any, manifest: dict[str, Any], credentials: Credentials, *,
             thumbnail: bool = False) -> None:
    """Sign a PNG stream into another (both binary file objects); c2pa errors become SigningError."""
    import c2pa

    try:
        context = c2pa.Context.from_dict(_settings(thumbnail=thumbnail))
        with c2pa.Builder(manifest, context=context) as builder, credentials.signer_object() as signer:
            builder.sign(signer, "image/png", source, dest)
    except c2pa.C2paError as error:
        raise SigningError(f"c2pa could not sign with {credentials.signer}: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _probe(credentials: Credentials) -> None:
    """Sign a 1x1 PNG in memory: c2pa's own checks of the certificate (key usage,
    extended key usage, chain) fail here, before any model loads, not after the images."""
    png = io.BytesIO()
    Image.new("RGB", (1, 1)).save(png, format="PNG")
    png.seek(0)
    manifest = {"claim_generator_info": [{"name": "toolkit", "version": toolkit_version()}],
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.created",
                                                                                  "digitalSourceType": TRAINED}]}}]}
    sign_png(png, io.BytesIO(), manifest, credentials)


# -- reading back, for `toolkit verify` --------------------------------------------------------

# Validation codes people meet, in words; others show c2pa's explanation.
PROBLEMS = {
    "assertion.dataHash.mismatch": "the image data changed after signing (pixels or metadata edited)",
    "assertion.hashedURI.mismatch": "an assertion of the manifest was changed after signing",
    "claimSignature.mismatch": "the signature does not match the manifest (the manifest was changed after signing)",
    "signingCredential.expired": "the signing certificate was not valid at the time of checking (expired)",
    "signingCredential.revoked": "the signing certificate has been revoked",
    "signingCredential.invalid": "the signing certificate is not valid for C2PA",
}
UNTRUSTED = "signingCredential.untrusted"


def read_credentials(path: Path, image: Image.Image, trust_pem: str | None = None) -> dict[str, Any] | str:
    """A file's Content Credentials summarised and validated, or a string when it has none."""
    import c2pa

    context = c2pa.Context.from_dict(_settings(trust_pem))
    mime = image.get_format_mimetype() if hasattr(image, "get_format_mimetype") else None
    try:
        with open(path, "rb") as stream:
            reader = c2pa.Reader.try_create(mime, stream, None, context)
            if reader is None:
                return "none (no Content Credentials in this file)"
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.NotSupported:
        return f"none (c2pa does not read {image.format or 'this kind of'} files)"
    except c2pa.C2paError as error:
        return {"state": "invalid", "problems": [f"the Content Credentials cannot be read: {_one_line(error)}"]}
    return summarise(store, image)


def summarise(store: dict[str, Any], image: Image.Image) -> dict[str, Any]:
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    statuses = store.get("validation_status") or []
    codes = {s.get("code") for s in statuses}
    problems = [PROBLEMS.get(s.get("code"), s.get("explanation") or s.get("code")) + f" ({s.get('code')})"
                for s in statuses if s.get("code") != UNTRUSTED]
    state = str(store.get("validation_state", "")).lower()
    summary: dict[str, Any] = {"state": "invalid" if state == "invalid" or problems else "valid"}
    if problems:
        summary["problems"] = problems
    signature = manifest.get("signature_info") or {}
    name, organization = signature.get("common_name"), signature.get("issuer")  # c2pa's "issuer": the signer's O=
    summary["signer"] = (f"{name} ({organization})" if name and organization and organization != name
                         else name or organization or "unknown")
    # c2pa says "trusted" only for a valid manifest; an invalid one's signer may still chain to a trusted CA.
    summary["signer_trusted"] = state == "trusted" or (state == "invalid" and UNTRUSTED not in codes)
    if not summary["signer_trusted"]:
        summary["trust"] = "signer not on a trust list: add its CA with `toolkit verify --trust CA.pem`"
    summary["claim_generator"] = ", ".join(
        "/".join(filter(None, (g.get("name"), g.get("version")))) for g in manifest.get("claim_generator_info") or []
    ) or manifest.get("claim_generator", "unknown")
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions") or []}
    actions = next((data.get("actions") for label, data in assertions.items()
                    if label and label.startswith("c2pa.actions")), None)
    if actions:
        summary["action"] = actions[0].get("action")
        if actions[0].get("digitalSourceType"):
            summary["digital_source_type"] = actions[0]["digitalSourceType"]
    generation = assertions.get(ASSERTION)
    if generation:
        summary["model"] = generation.get("model", {}).get("name")
        summary["model_sha256"] = generation.get("model", {}).get("sha256")
        signed = generation.get("recipe", {}).get("sha256")
        summary["recipe_sha256"] = signed
        text = getattr(image, "text", {}).get(RECIPE_KEY)
        summary["recipe"] = ("missing from the file" if text is None else
                             "matches" if hashlib.sha256(text.encode("utf-8")).hexdigest() == signed else "differs")
    return summary


# -- the post-processor ---------------------------------------------------------------------


class C2pa(PostProcessor):
    """Sign each PNG with Content Credentials (C2PA): made by a trained model, which one, its recipe's hash."""

    name = "c2pa"
    stage = Stage.SIGN  # last: any later pixel change would break the signature
    description = "sign each PNG with Content Credentials (C2PA): AI-generated, model, recipe hash"
    Options = C2paOptions

    def __init__(self) -> None:
        self._credentials: Credentials | None = None

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import c2pa  # noqa: F401
        except (ImportError, OSError) as error:
            return f"c2pa-python cannot load ({error}); pip install 'c2pa-python>=0.38,<0.39'"
        return None

    def check_request(self, request: Any, options: C2paOptions) -> None:
        if request.model is None:  # `toolkit post` on a file without a recipe
            raise SigningError("c2pa signs images toolkit generated, and this one carries no toolkit recipe, so what "
                               "made it is unknown; sign it with a tool that records its origin (for example c2patool)")
        self._credentials = load_credentials(options)
        try:
            _probe(self._credentials)
        except SigningError as error:
            raise SigningError(
                f"{error}; C2PA needs a signer certificate ({options.paths()[1]}) issued by a CA, with the "
                "digitalSignature key usage and the emailProtection or documentSigning extended key usage: "
                "`toolkit keys create` makes one"
            ) from None

    def process(self, images: torch.Tensor, options: C2paOptions, ctx: PostContext) -> PostResult:
        """images pass through unchanged: signing is done on the written file, in ``after_save``."""
        record = {"signer": self._credentials.signer, "alg": self._credentials.alg} if self._credentials else {}
        return PostResult(images, record=record)

    def after_save(self, path: Path, options: C2paOptions, ctx: PostContext) -> dict[str, Any]:
        credentials = self._credentials or load_credentials(options)
        manifest = build_manifest(path, ctx)
        # Sign into a temporary file beside the PNG, then rename over it: a failure leaves the unsigned PNG whole.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".c2pa.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w+b") as dest, open(path, "rb") as source:
                sign_png(source, dest, manifest, credentials, thumbnail=options.thumbnail)
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))  # mkstemp's 0600 would hide the output from others
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return {"signed_by": credentials.signer}

    @classmethod
    def inspect(cls, path: Path, image: Image.Image) -> dict[str, Any] | str | None:
        reason = cls.unavailable()
        if reason:
            return f"not checked: {reason}"
        try:
            from toolkit.verify import trust_anchors
        except ImportError:  # an older toolkit without `verify --trust`
            trust = None
        else:
            trust = trust_anchors()
        return read_credentials(path, image, trust)


@hookimpl
def register_postprocessors(register):
    register(C2pa)


# -- `toolkit keys create` ----------------------------------------------------------------------


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
        _write_atomic(paths[1], cert.public_bytes(pem) + ca.public_bytes(pem), 0o644)
        _write_atomic(paths[2], ca.public_bytes(pem), 0o644)
        _write_atomic(paths[0], private, 0o600)
    except OSError as error:
        reason = error.strerror or error
        raise SigningError(f"cannot write the keys to {folder} ({reason}); choose another --out") from None
    return paths


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@hookimpl
def register_commands(cli):
    @cli.group()
    def keys() -> None:
        """Signing keys for Content Credentials (`--post c2pa`)."""

    @keys.command()
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                  help="Folder for the keys.  [default: $TOOLKIT_HOME/keys, where --post c2pa looks]")
    @click.option("--name", default="toolkit local signer", show_default=True,
                  help="The signer's name (certificate common name), shown by `toolkit verify`.")
    @click.option("--force", is_flag=True, help="Replace existing keys.")
    def create(out_dir: str | None, name: str, force: bool) -> None:
        """Make a local test CA and a signer certificate it issued (ECDSA P-256).

        Writes signer.key (private, mode 0600), signer-chain.pem (the signer's certificate,
        then the CA's) and ca.pem. `toolkit generate --post c2pa` signs with the first two;
        give ca.pem to whoever verifies (`toolkit verify --trust ca.pem IMAGE`) so they see
        the signer as trusted.

        \b
        Examples:
          toolkit keys create
          toolkit keys create --out ~/my-keys --name "Jane Doe"
          toolkit generate --post c2pa:key=~/my-keys/signer.key,cert=~/my-keys/signer-chain.pem
        """
        folder = Path(out_dir).expanduser() if out_dir else keys_dir()
        key, chain, ca = create_keys(folder, name=name, force=force)
        for path in (key, chain, ca):
            click.echo(str(path))
        where = "" if out_dir is None else f":key={key},cert={chain}"
        click.echo(f"sign:  toolkit generate ... --post c2pa{where}", err=True)
        click.echo(f"trust: toolkit verify --trust {ca} IMAGE", err=True)
