"""The end of a run: the model folder ``toolkit train`` exports, and the check that it may.

The folder is ``output.export_dir``, by default ``$TOOLKIT_HOME/models/NAME``, where
``--model NAME`` finds it. It is written under a temporary name beside its place and renamed
there, so a half-written folder is never seen; an existing one is replaced only with
``output.overwrite`` (``--overwrite``), and the run refuses to start otherwise rather than
train for an hour and then refuse.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.components import Dataset, Trainable
from toolkit.errors import OutputExistsError
from toolkit.generation.model_folder import place_folder, update_model_config
from toolkit.generation.store import user_models_dir
from toolkit.train.config import TrainConfig


def export_folder(config: TrainConfig) -> Path:
    """Where the model is exported: ``output.export_dir``, default the user's model folder."""
    return Path(config.output.export_dir or user_models_dir() / config.name)


def check_export_folder(config: TrainConfig) -> None:
    """Refuse, before any training, a run whose export would replace an existing model
    folder without ``output.overwrite``."""
    folder = export_folder(config)
    if os.path.lexists(folder) and not config.output.overwrite:
        raise OutputExistsError(
            f"model folder {folder} already exists and this run would replace it at the end; pass --overwrite "
            "(output.overwrite=true) to replace it, or export elsewhere with output.export_dir=FOLDER")


def export_model(model: Trainable, dataset: Dataset, config: TrainConfig,
                 with_ema: Callable[[Callable[[], Any]], Any]) -> Path:
    """Write the model folder (the weights ``with_ema`` swaps in, and what it was trained on)
    under a temporary name beside its place, then rename it there."""
    folder = export_folder(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.export-", dir=folder.parent))
    staged = staging / folder.name

    def finish() -> None:
        model.prepare_export(dataset)
        model.save_pretrained(staged)

    try:
        with_ema(finish)
        d = config.data
        # What `toolkit eval` compares the model against: the same dataset, size and classes.
        record = {"name": d.dataset, "size": d.size, "options": d.options, "seed": config.train.seed,
                  "class_names": dataset.class_names}
        update_model_config(staged, {model.data_record: record, **({"default": True} if config.output.default_model else {})})
        try:
            place_folder(staged, folder, replace=config.output.overwrite)
        except FileExistsError:
            raise OutputExistsError(
                f"model folder {folder} appeared while this run trained, so it was not replaced; the run's "
                "checkpoints are intact: export with --resume latest and --overwrite (or output.export_dir=FOLDER)"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
