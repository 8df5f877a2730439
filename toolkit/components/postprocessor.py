"""The post-processor protocol: work on generated images after the generator, in stage order."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from .generator import Generator

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from toolkit.host.registry import Registry


class Stage(enum.IntEnum):
    """Where a post-processor runs in the chain. Lower runs first; the pipeline refuses a
    request that lists post-processors against this order."""

    SAFETY = 100  # look at the raw output first: block, blur or flag
    EDIT = 200  # colour and style edits
    UPSCALE = 300
    WATERMARK = 400  # after every pixel change, or the mark would be damaged
    SIGN = 500  # content credentials sign the final file


class NoOptions(BaseModel):
    """Options model for post-processors that take none; rejects any key."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class PostContext:
    """What a post-processor may want to know about the images it processes."""

    request: Any  # toolkit.generation.request.GenerationRequest
    seed: int
    model_name: str
    model_sha256: str
    generator: Generator | None = None
    progress: Callable[[int, int], None] | None = None  # (done, total) for slow steps such as tiled upscaling
    registry: Registry = field(kw_only=True)  # the components this run uses


@dataclass
class InspectContext:
    """What ``PostProcessor.inspect`` receives besides the file (``toolkit verify``).

    options: this post-processor's ``InspectOptions``, validated from what the user passed
    (``toolkit verify --check NAME:key=value``; ``--trust CA.pem`` fills every ``trust`` field).
    """

    registry: Registry
    options: BaseModel


@dataclass
class PostResult:
    """A post-processor's output: the images and a JSON-able record for the recipe."""

    images: torch.Tensor  # (batch, 3, H', W') in [-1, 1]; H', W' may differ (upscalers)
    record: dict[str, Any] = field(default_factory=dict)  # e.g. scores, what was done
    # What the step was asked for and could not do, in one line (a watermark that does not
    # read back from an image). The images are still written; the CLI says this line and
    # exits with status 3, so a script never takes the output for complete.
    shortfall: str | None = None


class PostProcessor(ABC):
    """Runs on generated images after the generator, in ``stage`` order."""

    name: ClassVar[str]
    stage: ClassVar[Stage]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions  # validated from --post NAME key=value
    InspectOptions: ClassVar[type[BaseModel]] = NoOptions  # validated from `toolkit verify` flags

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this post-processor cannot run here (a missing wheel or library), or None.
        ``toolkit plugins`` shows the reason; a request naming it is refused before any work."""
        return None

    def check_request(self, request: Any, options: BaseModel, registry: Registry) -> None:
        """Called while planning, before any model loads: raise a ``ToolkitError`` to refuse
        the request (a blocked prompt, an output that would be too large). ``registry``
        holds the components of this run (the other post-processors' stages, say)."""

    @abstractmethod
    def process(self, images: torch.Tensor, options: BaseModel, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in ``[-1, 1]``. Returns a ``PostResult``."""

    def after_save(self, path: Path, options: BaseModel, ctx: PostContext) -> dict[str, Any] | None:
        """Called once per written PNG, after its recipe is embedded (signing lives here).
        Returns an optional record merged into the console report. Rewrite the file
        atomically (write a temporary file, then replace), so a failure leaves it whole."""
        return None

    @classmethod
    def inspect(cls, path: Path, image: Image.Image, ctx: InspectContext) -> str | dict[str, Any] | None:
        """For ``toolkit verify``: what this post-processor can read back from a file it
        may have processed (a watermark's payload, a signature's validity), or None if it
        has nothing to say about this kind of processing. ``image`` is ``path`` opened. A
        dict with ``"state": "invalid"`` marks a failed check (`toolkit verify` exits 2)."""
        return None
