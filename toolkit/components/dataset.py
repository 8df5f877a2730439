"""The dataset protocol: a deterministic map-style dataset of dict samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from toolkit.errors import InvalidRequestError

if TYPE_CHECKING:
    import torch

    from toolkit.host.registry import Registry


class Dataset(ABC):
    """A dataset plugin: a map-style dataset of dict samples (``__len__`` and
    ``__getitem__``: what torch's ``DataLoader`` reads; not a subclass of torch's own
    ``Dataset``, so that defining one imports no torch).

    Every sample has ``"image"``: ``(3, H, W)`` float in ``[-1, 1]``, and any of
    ``"caption"`` (str), ``"class_label"`` (int), ``"sketch"`` ``(1, H, W)`` in [0, 1],
    ``"mask"`` ``(1, H, W)`` in {0, 1}, ``"attributes"`` (JSON-able). Datasets are
    deterministic: the same arguments give the same samples.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    # For `toolkit eval --prompts` (datasets whose ``score_prompt`` checks images against text):
    prompt_sets: ClassVar[dict[str, Path]] = {}  # named JSON Lines prompt files shipped with the dataset
    default_prompt_set: ClassVar[str | None] = None  # the one used when no --prompts is given
    prompt_checks: ClassVar[tuple[str, ...]] = ()  # the keys ``score_prompt`` returns, in report order
    # A model whose CLIP gives the CLIP score of models without one (the same yardstick for
    # all), and what the report says about that score.
    reference_clip_model: ClassVar[str | None] = None
    clip_score_note: ClassVar[str] = "CLIP score with the model's own CLIP, not OpenAI's: compare it only within this toolkit"

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, **options: Any):
        """Subclasses take their own options by name and pass none on, so whatever reaches
        here is an option the dataset does not know."""
        if options:
            raise InvalidRequestError(f"dataset '{self.name}' takes no options {sorted(options)}")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset '{self.name}' has splits {', '.join(self.splits)}, not '{split}'")
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
        caption says? Returns ``{check: right}`` with keys from ``prompt_checks``. Datasets
        without a checker of their own raise."""
        raise NotImplementedError(f"dataset '{self.name}' cannot check images against prompts")

    def reference_image(self, caption: str) -> torch.Tensor:
        """For ``toolkit eval --prompts``: the one real image ``(3, H, W)`` in [-1, 1] a caption
        stands for, where the data has one per caption (emoji). Generated images are then
        compared with these in the evaluation classifier's features (FID, seed diversity).
        Datasets whose captions fit many images raise."""
        raise NotImplementedError(f"dataset '{self.name}' has no single image per caption")

    def shows_attribute(self, image: torch.Tensor, attributes: dict[str, str]) -> bool:
        """Whether image ``(3, H, W)`` in [-1, 1] shows an object with all these attribute
        values (``{"colour": "red"}``): how a negative prompt is checked."""
        raise NotImplementedError(f"dataset '{self.name}' cannot look for attributes in images")


def build_dataset(registry: Registry, name: str, *, split: str = "train", size: int | None = None, seed: int = 0,
                  options: dict[str, Any] | None = None) -> Dataset:
    """The registered dataset ``name`` built from a config's or a command's settings (``size``
    None: the dataset's default). Every caller builds datasets here, so an unknown name,
    split or option gets the same one-line error everywhere."""
    cls = registry.get("datasets", name)
    reserved = sorted({"split", "size", "seed"} & set(options or {}))
    if reserved:
        raise InvalidRequestError(f"dataset '{name}': {', '.join(reserved)} cannot be a dataset option; "
                                  "each has its own setting (--split, --size, --seed, or data.split, data.size)")
    if split not in cls.splits:
        raise InvalidRequestError(f"dataset '{name}' has splits {', '.join(cls.splits)}, not '{split}'")
    kwargs: dict[str, Any] = {"split": split, "seed": seed, **(options or {})}
    if size is not None:
        kwargs["size"] = size
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise InvalidRequestError(f"dataset '{name}': {error}") from None
