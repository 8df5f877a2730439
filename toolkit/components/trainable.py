"""What `toolkit train` drives: a generator supplies networks, optimizer phases and losses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel

from .dataset import Dataset

if TYPE_CHECKING:
    import torch


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
    # The config.json key the trainer records the training data under: a stage that adds a
    # part to a finished model (a sketch ControlNet) keeps the model's own record beside it.
    data_record: ClassVar[str] = "dataset"

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
