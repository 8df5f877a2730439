"""Content Credentials (C2PA): sign every output PNG, and read signatures back for
`toolkit verify`. Adds the `toolkit keys create` command that makes a local test signer.

``--post c2pa`` runs last (stage ``sign``): once the PNG, recipe included, is written, it
embeds a C2PA manifest signed with your key, saying that a trained model made the image,
which model, and the hash of its recipe (``manifest.py``). The key and its certificate
chain are checked while the request is planned, before any model loads (``keys.py``).

``toolkit verify`` reads any file's Content Credentials back; ``--trust CA.pem`` fills
``trust`` in ``C2pa.InspectOptions``, and signers that chain to those CAs count as trusted.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from toolkit import hookimpl
from toolkit.components import InspectContext, PostContext, PostProcessor, PostResult, Stage
from toolkit.generation.files import atomic_file

from .keys import CHAIN_FILE, KEY_FILE, Credentials, SigningError, keys_dir, keys_group, load_credentials
from .manifest import TRAINED, build_manifest, probe, read_credentials, read_trust, sign_png

if TYPE_CHECKING:
    import torch

    from toolkit.host.registry import Registry

__all__ = ["TRAINED", "C2pa", "C2paInspectOptions", "C2paOptions", "SigningError", "sign_png"]

Alg = Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"]


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


class C2paInspectOptions(BaseModel):
    """What `toolkit verify` passes to ``C2pa.inspect``. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    trust: list[Path] = Field(
        default_factory=list, description="CA certificates (PEM) whose signers count as trusted (`verify --trust`)"
    )
    _anchors: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _read_anchors(self) -> C2paInspectOptions:
        # Read once here, so an unreadable or non-PEM file is refused before any image is checked.
        self._anchors = read_trust(self.trust)
        return self

    @property
    def anchors(self) -> str | None:
        """The ``trust`` certificates' PEM text, concatenated (c2pa's ``trust.user_anchors``), or None."""
        return self._anchors


class C2pa(PostProcessor):
    """Sign each PNG with Content Credentials (C2PA): made by a trained model, which one, its recipe's hash."""

    name = "c2pa"
    stage = Stage.SIGN  # last: any later pixel change would break the signature
    description = "sign each PNG with Content Credentials (C2PA): AI-generated, model, recipe hash"
    Options = C2paOptions
    InspectOptions = C2paInspectOptions

    def __init__(self) -> None:
        self._credentials: Credentials | None = None

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import c2pa  # noqa: F401
        except (ImportError, OSError) as error:
            return f"c2pa-python cannot load ({error}); pip install 'c2pa-python>=0.38,<0.39'"
        return None

    def check_request(self, request: Any, options: C2paOptions, registry: Registry) -> None:
        if request.model is None:  # `toolkit post` on a file without a recipe
            raise SigningError("c2pa signs images toolkit generated, and this one carries no toolkit recipe, so what "
                               "made it is unknown; sign it with a tool that records its origin (for example c2patool)")
        self._credentials = _load(options)
        try:
            probe(self._credentials)
        except SigningError as error:
            raise SigningError(
                f"{error}; C2PA needs a signer certificate ({options.paths()[1]}) issued by a CA, with the "
                "digitalSignature key usage and the emailProtection or documentSigning extended key usage: "
                "`toolkit keys create` makes one"
            ) from None

    def process(self, images: torch.Tensor, options: C2paOptions, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in ``[-1, 1]``, passed through unchanged: signing is
        done on the written file, in ``after_save``."""
        record = {"signer": self._credentials.signer, "alg": self._credentials.alg} if self._credentials else {}
        return PostResult(images, record=record)

    def after_save(self, path: Path, options: C2paOptions, ctx: PostContext) -> dict[str, Any]:
        credentials = self._credentials or _load(options)
        manifest = build_manifest(path, ctx)
        # The signed file keeps the unsigned one's mode (signing must not hide an output from its readers),
        # and replaces it only once signed: a failure leaves the unsigned PNG whole.
        mode = stat.S_IMODE(path.stat().st_mode)
        with atomic_file(path, "w+b", permissions=mode) as dest, open(path, "rb") as source:
            sign_png(source, dest, manifest, credentials, thumbnail=options.thumbnail)
        return {"signed_by": credentials.signer}

    @classmethod
    def inspect(cls, path: Path, image: Image.Image, ctx: InspectContext) -> dict[str, Any] | str | None:
        reason = cls.unavailable()
        if reason:
            return f"not checked: {reason}"
        return read_credentials(path, image, ctx.options.anchors)


def _load(options: C2paOptions) -> Credentials:
    key, cert = options.paths()
    return load_credentials(key, cert, options.alg)


@hookimpl
def register_postprocessors(register):
    register(C2pa)


@hookimpl
def register_commands(cli):
    cli.add_command(keys_group)
