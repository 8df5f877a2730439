"""The protocols every plugin component implements: generators, conditioners,
samplers, post-processors and datasets.

The core only ever talks to these classes; it never imports a concrete model.

Conventions shared by every component:

* Images cross plugin boundaries as float tensors of shape ``(batch, 3, height, width)``
  with values in ``[-1, 1]``. Conversion to and from PIL happens at the edges only
  (``toolkit.images``).
* Sketches are ``(batch, 1, height, width)`` floats in ``[0, 1]`` where 1 is a stroke;
  masks are ``(batch, 1, height, width)`` floats in ``{0, 1}`` where 1 means "regenerate".
* Randomness comes from the ``torch.Generator`` the pipeline passes in, never from the
  global RNG, so that a recipe's seed reproduces an image bit for bit.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict

# The kinds of conditioning a request can carry. A generator declares the subset it accepts.
CONDITIONING_KINDS = ("text", "class", "sketch", "mask", "init_image")
# Where a prompt is cut into phrases that a text conditioner may encode apart.
PHRASE_SEPARATOR = " and "


@dataclass
class TextEmbedding:
    """What a text conditioner gives a generator.

    tokens: ``(batch, sequence, dim)`` per-token embeddings for cross-attention.
    pooled: ``(batch, dim)`` one vector per prompt.
    attention_mask: ``(batch, sequence)`` 1 for real tokens, 0 for padding.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor
    attention_mask: torch.Tensor | None = None


@dataclass
class Conditioning:
    """Everything a generator is conditioned on, already encoded as tensors.

    Fields the request did not set are ``None``; a generator only ever sees kinds it
    declared in ``Generator.accepts`` (the pipeline refuses the rest before any work).
    """

    text: TextEmbedding | None = None  # the prompt
    negative_text: TextEmbedding | None = None  # the negative prompt, for guidance
    class_labels: torch.Tensor | None = None  # (batch,) int64
    sketch: torch.Tensor | None = None  # (batch, 1, H, W) in [0, 1], 1 = stroke
    mask: torch.Tensor | None = None  # (batch, 1, H, W) in {0, 1}, 1 = regenerate
    init_image: torch.Tensor | None = None  # (batch, 3, H, W) in [-1, 1]
    extra: dict[str, Any] = field(default_factory=dict)  # plugin-specific conditioning


# ---------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------


@dataclass
class GenerateArgs:
    """Sampling settings a generator receives, resolved from the request."""

    n: int  # number of images
    height: int
    width: int
    generator: torch.Generator  # the only source of randomness
    steps: int | None = None  # denoising steps (diffusion models)
    guidance_scale: float | None = None  # classifier-free guidance
    sampler: Sampler | None = None  # a resolved sampler function (diffusion models)
    sampler_name: str | None = None
    truncation: float | None = None  # latent truncation (GAN, VAE); None = the plain prior
    progress: Callable[[int, int], None] | None = None  # progress(done, total)


class Generator(ABC):
    """A trained image model: loads from a model folder and turns conditioning into images.

    Subclasses set the class attributes and implement ``from_pretrained`` / ``save_pretrained``
    and ``generate``. A model folder is ``config.json`` (with ``"generator": name``) plus
    safetensors weights; ``toolkit.store`` reads and writes both.
    """

    name: ClassVar[str]  # registry name, e.g. "ddpm"
    description: ClassVar[str] = ""
    # Conditioning kinds this generator family can use at all. A model narrows it through
    # the "accepts" list in its config.json (a model trained without classes takes none).
    accepts: ClassVar[frozenset[str]] = frozenset()
    uses_sampler: ClassVar[bool] = False  # True for diffusion models: --sampler/--steps apply
    uses_truncation: ClassVar[bool] = False  # True for latent-variable models: --truncation applies
    default_sampler: ClassVar[str | None] = None
    default_steps: ClassVar[int | None] = None
    default_guidance_scale: ClassVar[float | None] = None
    default_truncation: ClassVar[float | None] = None

    @classmethod
    def claims(cls, folder: Path, config: dict[str, Any]) -> bool:
        """Whether this generator loads the model folder. Overridden by generators that
        read foreign layouts (a diffusers pipeline folder, say)."""
        return config.get("generator") == cls.name

    @classmethod
    def foreign_config(cls, folder: Path) -> dict[str, Any] | None:
        """For a folder without our config.json: the config this generator reads from the
        folder's own files (a diffusers pipeline's model_index.json), or None."""
        return None

    @classmethod
    @abstractmethod
    def from_pretrained(cls, folder: Path, *, device: str = "cpu") -> Generator:
        """Load a model folder written by ``save_pretrained``."""

    @abstractmethod
    def save_pretrained(self, folder: Path) -> None:
        """Write the model folder (use ``toolkit.store.save_model_folder``)."""

    @abstractmethod
    def generate(self, cond: Conditioning, args: GenerateArgs) -> torch.Tensor:
        """Make ``args.n`` images.

        Returns a float tensor of shape ``(args.n, 3, args.height, args.width)`` in ``[-1, 1]``.
        """


def offers_clip(generator: Any) -> bool:
    """Whether a generator scores images against texts with a CLIP of its own: it has
    ``clip_image_text_similarity(images (B, 3, H, W) in [-1, 1], texts) -> (B, T)``, and,
    for a family whose models may or may not carry a CLIP (ldm over MiniLM has none), its
    ``has_clip`` is true. The safety filter's clip classifier and the CLIP score use it."""
    return callable(getattr(generator, "clip_image_text_similarity", None)) and bool(getattr(generator, "has_clip", True))


# ---------------------------------------------------------------------------------------
# Conditioners
# ---------------------------------------------------------------------------------------


class Conditioner(ABC):
    """Encodes one kind of request input (prompt, class, sketch, mask) into tensors.

    A model's config names the conditioner for each kind it accepts (``"conditioners":
    {"text": "text-clip"}``); otherwise the registered conditioner named like the kind is
    used. Conditioners that need weights (a text encoder) load them from the model folder.
    """

    name: ClassVar[str]  # registry name, e.g. "sketch" or "text-clip"
    kind: ClassVar[str]  # one of CONDITIONING_KINDS
    description: ClassVar[str] = ""

    @classmethod
    def load(cls, model_folder: Path | None, config: dict[str, Any]) -> Conditioner:
        """Build the conditioner for one model. Default: no weights, no settings."""
        return cls()

    @abstractmethod
    def encode(self, value: Any, *, n: int, height: int, width: int) -> Any:
        """Turn one request value into what ``Conditioning`` holds for this kind,
        repeated for a batch of ``n`` (see the field comments of ``Conditioning``)."""


class TextConditioner(Conditioner):
    """A prompt encoder with weights (a CLIP text tower, a transformers encoder).

    Generators that denoise in latent space call ``embed`` directly as well: for the empty
    prompt that classifier-free guidance compares against, and on each training batch.
    """

    kind = "text"
    # How many " and "-joined phrases of a prompt are encoded apart (a model's ``text_phrases``).
    # 1: the whole prompt at once. See ``embed_prompts``.
    phrase_slots: int = 1

    @abstractmethod
    def embed(self, texts: list[str]) -> TextEmbedding:
        """B prompts -> tokens ``(B, L, D)``, pooled ``(B, D')``, attention mask ``(B, L)``."""

    def embed_prompts(self, texts: list[str]) -> TextEmbedding:
        """B prompts -> tokens ``(B, S * L, D)``, pooled ``(B, D')``, mask ``(B, S * L)``, with
        S = ``phrase_slots``: what a generator conditions on.

        With S > 1 each prompt is cut at " and " into at most S phrases (the last one keeps
        any further " and "), each phrase is encoded alone, and their token states are laid
        side by side; unused slots are masked out. In one pass over "a red circle ... and a
        blue star ..." no token holds "blue" together with "star" and its place (a causal
        CLIP reads left to right; an encoder's pooled meaning mixes both objects), so the
        denoiser cannot tell which colour goes where. Encoded apart, every phrase carries one
        whole object. This is the idea of Feng et al. 2022, "Training-Free Structured
        Diffusion Guidance" (https://arxiv.org/abs/2212.05032), applied in training as well.
        The pooled vector is the mean over a prompt's phrases.
        """
        slots = self.phrase_slots
        if slots <= 1:
            return self.embed(texts)
        phrases = [text.split(PHRASE_SEPARATOR, slots - 1) for text in texts]
        flat = [p for parts in phrases for p in parts + [""] * (slots - len(parts))]
        emb = self.embed(flat)  # (B * S, L, D), prompt-major
        b, (length, dim) = len(texts), emb.tokens.shape[1:]
        used = torch.tensor([[i < len(parts) for i in range(slots)] for parts in phrases], device=emb.tokens.device)
        mask = emb.attention_mask if emb.attention_mask is not None else torch.ones(b * slots, length, device=used.device)
        mask = mask.reshape(b, slots, length) * used[..., None]
        pooled = (emb.pooled.reshape(b, slots, -1) * used[..., None]).sum(1) / used.sum(1, keepdim=True)
        return TextEmbedding(emb.tokens.reshape(b, slots * length, dim), pooled, mask.reshape(b, slots * length).long())

    @property
    @abstractmethod
    def token_dim(self) -> int:
        """D, the size of each token state: a cross-attention layer's ``cross_attention_dim``."""

    def to(self, device: torch.device | str) -> TextConditioner:
        """Move the encoder's weights (kept in ``self.model``) to ``device``."""
        self.model.to(device)
        return self

    def encode(self, value: str, *, n: int, height: int, width: int) -> TextEmbedding:
        one = self.embed_prompts([value])
        mask = None if one.attention_mask is None else one.attention_mask.expand(n, -1)
        return TextEmbedding(one.tokens.expand(n, -1, -1), one.pooled.expand(n, -1), mask)


# ---------------------------------------------------------------------------------------
# Samplers (k-diffusion's calling convention)
# ---------------------------------------------------------------------------------------


class Denoiser(Protocol):
    """A model wrapped to predict the clean image: ``denoised = model(x, sigma, **extra_args)``.

    x: ``(batch, channels, height, width)`` noisy input; sigma: ``(batch,)`` noise levels.
    Returns the denoised estimate, same shape as ``x``.
    """

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor: ...


class Sampler(Protocol):
    """Every sampler has k-diffusion's signature, so they are interchangeable:

    ``sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, generator=None) -> x``

    x: ``(batch, channels, height, width)`` initial noise already scaled by ``sigmas[0]``.
    sigmas: ``(steps + 1,)`` decreasing noise levels ending in 0.
    Returns the sample at ``sigmas[-1]``, same shape as ``x``.
    """

    def __call__(
        self,
        model: Denoiser,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        extra_args: dict[str, Any] | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        disable: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...


# ---------------------------------------------------------------------------------------
# Post-processors
# ---------------------------------------------------------------------------------------


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

    request: Any  # toolkit.request.GenerationRequest
    seed: int
    model_name: str
    model_sha256: str
    generator: Generator | None = None
    progress: Callable[[int, int], None] | None = None  # (done, total) for slow steps such as tiled upscaling


@dataclass
class PostResult:
    """A post-processor's output: the images and a JSON-able record for the recipe."""

    images: torch.Tensor  # (batch, 3, H', W') in [-1, 1]; H', W' may differ (upscalers)
    record: dict[str, Any] = field(default_factory=dict)  # e.g. scores, what was done


class PostProcessor(ABC):
    """Runs on generated images after the generator, in ``stage`` order."""

    name: ClassVar[str]
    stage: ClassVar[Stage]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions  # validated from --post NAME key=value

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this post-processor cannot run here (a missing wheel or library), or None.
        ``toolkit plugins`` shows the reason; a request naming it is refused before any work."""
        return None

    def check_request(self, request: Any, options: BaseModel) -> None:
        """Called while planning, before any model loads: raise a ``ToolkitError`` to refuse
        the request (a blocked prompt, an output that would be too large)."""

    @abstractmethod
    def process(self, images: torch.Tensor, options: BaseModel, ctx: PostContext) -> PostResult:
        """images: ``(batch, 3, H, W)`` in ``[-1, 1]``. Returns a ``PostResult``."""

    def after_save(self, path: Path, options: BaseModel, ctx: PostContext) -> dict[str, Any] | None:
        """Called once per written PNG, after its recipe is embedded (signing lives here).
        Returns an optional record merged into the console report. Rewrite the file
        atomically (write a temporary file, then replace), so a failure leaves it whole."""
        return None

    @classmethod
    def inspect(cls, path: Path, image: Image.Image) -> dict[str, Any] | None:
        """For ``toolkit verify``: what this post-processor can read back from a file it
        may have processed (a watermark's payload, a signature's validity), or None if it
        has nothing to say about this kind of processing. ``image`` is ``path`` opened."""
        return None


class SafetyClassifier(ABC):
    """Scores images for the ``safety`` post-processor: how strongly each image shows each
    concept a safety policy names (a text description for a CLIP model, a detector's
    label, a shapes caption). The policy sets the thresholds and the actions.

    The class is instantiated once per process and reused, so load weights lazily in
    ``score`` and keep them on the instance.
    """

    name: ClassVar[str]  # what a policy's image rule names: ``classifier: NAME``
    description: ClassVar[str] = ""
    # A fixed vocabulary (a detector's labels) that policies must pick concepts from;
    # None accepts any text (checked by ``check_concepts``).
    concepts: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this classifier cannot run here at all (a missing library), or None."""
        return None

    @classmethod
    def check_concepts(cls, concepts: list[str]) -> None:
        """Called when a policy loads: raise ``ValueError`` saying which concept this
        classifier cannot score and what it can. Default: refuse anything outside ``concepts``."""
        if cls.concepts is not None:
            unknown = [c for c in concepts if c not in cls.concepts]
            if unknown:
                raise ValueError(f"unknown concepts {unknown}; it scores: {', '.join(cls.concepts)}")

    def skip_reason(self, ctx: PostContext) -> str | None:
        """Why this classifier cannot score these images (the model has no CLIP), or None.
        A skipped classifier is recorded in the recipe, never silently ignored."""
        return None

    @abstractmethod
    def score(self, images: torch.Tensor, concepts: list[str], ctx: PostContext) -> torch.Tensor:
        """images: ``(batch, 3, H, W)`` in ``[-1, 1]``; concepts: C names from the policy.

        Returns ``(batch, C)`` float scores, higher = the concept is more present (a
        probability, a similarity); the policy's threshold decides what counts.
        """


# ---------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------


class Dataset(torch.utils.data.Dataset, ABC):
    """A dataset plugin: a map-style torch dataset of dict samples.

    Every sample has ``"image"``: ``(3, H, W)`` float in ``[-1, 1]``, and any of
    ``"caption"`` (str), ``"class_label"`` (int), ``"sketch"`` ``(1, H, W)`` in [0, 1],
    ``"mask"`` ``(1, H, W)`` in {0, 1}, ``"attributes"`` (JSON-able). Datasets are
    deterministic: the same arguments give the same samples.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, **options: Any):
        self.split = split
        self.size = size
        self.seed = seed

    @property
    def class_names(self) -> list[str] | None:
        """Names of the classes behind ``class_label``, or None for unlabelled data."""
        return None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def image_scores(self, images: torch.Tensor, class_labels: torch.Tensor | None) -> dict[str, float]:
        """Dataset-specific checks of images meant to look like this dataset's samples, for
        ``toolkit eval``: images ``(B, 3, H, W)`` in [-1, 1], the class each was meant to show
        ``(B,)`` int64 (None when unknown). Returns ``{name: mean over the batch}``, higher is
        better; empty (the default) when the dataset has no checks of its own."""
        return {}

    def score_prompt(self, image: torch.Tensor, caption: str) -> dict[str, bool]:
        """For ``toolkit eval --prompts``: does image ``(3, H, W)`` in [-1, 1] show what the
        caption says? Returns ``{check: right}`` (for shapes: shape, colour, size, position,
        count, binding, all_correct). Datasets without a checker of their own raise."""
        raise NotImplementedError(f"dataset '{self.name}' cannot check images against prompts")

    def shows_attribute(self, image: torch.Tensor, attributes: dict[str, str]) -> bool:
        """Whether image ``(3, H, W)`` in [-1, 1] shows an object with all these attribute
        values (``{"colour": "red"}``): how a negative prompt is checked."""
        raise NotImplementedError(f"dataset '{self.name}' cannot look for attributes in images")


def describe(component: Any) -> str:
    """One-line description of a registered component, for listings."""
    return (getattr(component, "description", "") or (component.__doc__ or "").strip().split("\n")[0]).strip()



# ---------------------------------------------------------------------------------------
# Training (toolkit.trainer drives these; the generator supplies networks and losses)
# ---------------------------------------------------------------------------------------


@dataclass
class TrainContext:
    """What a loss function receives besides the batch."""

    modules: dict[str, torch.nn.Module]  # by name; wrapped for distributed training
    step: int  # optimizer steps completed so far
    device: torch.device


LossFn = Callable[[dict[str, Any], TrainContext], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class Phase:
    """One optimizer and the loss it minimises. Most generators have one phase; a GAN has
    two (discriminator, then generator), run one after the other on each batch.

    loss(batch, ctx) -> (scalar loss, {name: float} for logging). The batch is a dict of
    the dataset's samples collated: ``"image"`` ``(B, 3, H, W)`` in [-1, 1], ``"class_label"``
    ``(B,)``, ``"caption"`` list of B strings, ...
    """

    name: str
    modules: tuple[str, ...]  # the modules whose parameters this phase's optimizer updates
    loss: LossFn
    lr: float | None = None  # overrides the config's learning rate for this phase
    betas: tuple[float, float] | None = None  # overrides Adam betas (GANs like (0.0, 0.99))


class Trainable(ABC):
    """Mixin for generators that ``toolkit train`` can train.

    ``Config`` is a pydantic model of the generator's hyper-parameters (the YAML's
    ``model:`` section, unknown keys refused); ``from_config`` builds a fresh model from it.
    """

    Config: ClassVar[type[BaseModel]]
    ema_modules: ClassVar[tuple[str, ...]] = ()  # modules whose EMA weights are used to sample

    @classmethod
    @abstractmethod
    def from_config(cls, config: BaseModel, *, dataset: Dataset | None = None) -> Trainable:
        """A freshly initialised model (the dataset tells class count and image size)."""

    @abstractmethod
    def training_modules(self) -> dict[str, torch.nn.Module]:
        """Every module with trainable parameters, by name."""

    @abstractmethod
    def training_phases(self) -> list[Phase]:
        """The optimizer phases run on each batch, in order."""

    @abstractmethod
    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Fixed-seed samples for the grid written during training: ``(n, 3, H, W)`` in [-1, 1]."""

    def usage_hint(self, folder: Path) -> str:
        """What `toolkit train` prints after exporting to ``folder``: how to use the result."""
        return f"try: toolkit generate --model {folder}"

    def prepare_export(self, dataset: Dataset) -> None:
        """Called once after the last step, with the EMA weights in place, before
        ``save_pretrained``: fit anything estimated from the trained networks (a VAE's prior)."""
