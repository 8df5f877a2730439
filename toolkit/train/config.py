"""The training configuration: one YAML file per model, overridable from the command line.

    toolkit train configs/ddpm-digits.yaml train.steps=2000 data.batch_size=32

Every section refuses unknown keys, so a typo fails at once instead of being ignored.
The ``model:`` section is checked by the generator's own ``Config`` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolkit.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    dataset: str = Field(description="registered dataset name, see `toolkit dataset list`")
    split: str = "train"
    size: int = Field(32, ge=8, le=1024, description="image side in pixels")
    options: dict[str, Any] = Field(default_factory=dict, description="extra dataset arguments, e.g. root: ./photos")
    batch_size: int = Field(64, ge=1, description="per process; the global batch is this x processes x grad_accum")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0 = load in the training process)")
    hflip: float = Field(0.0, ge=0, le=1, description="probability of a horizontal flip (image, sketch and mask)")
    translate: int = Field(0, ge=0, description="random shift of up to this many pixels, edges replicated")


class TrainSection(_Section):
    steps: int = Field(1000, ge=1, description="optimizer steps")
    lr: float = Field(2e-4, gt=0, description="peak learning rate")
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # after warm-up
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null disables clipping")
    ema_decay: float | None = Field(0.999, gt=0, lt=1, description="EMA of weights used for sampling and export; null disables")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field("auto", description="auto: bf16 on a GPU that has it, fp32 on CPU")
    seed: int = Field(0, ge=0)
    nan_patience: int = Field(5, ge=1, description="stop after this many non-finite losses in a row")


class OutputConfig(_Section):
    dir: Path = Field(Path("runs/run"), description="run folder: checkpoints, logs, samples")
    checkpoint_every: int = Field(500, ge=1)
    keep_last: int = Field(3, ge=1, description="checkpoints kept; older ones are deleted")
    log_every: int = Field(10, ge=1)
    sample_every: int = Field(500, ge=1, description="write a fixed-seed sample grid every N steps")
    export_dir: Path | None = Field(None, description="model folder to export to; default $TOOLKIT_HOME/models/<name>")
    overwrite: bool = Field(False, description="replace an existing model folder at the export path (`toolkit train "
                            "--overwrite`); without it, a run whose export folder exists is refused before training")
    default_model: bool = Field(False, description="mark the export as the model `toolkit generate` uses without --model")


class TrainConfig(_Section):
    name: str = Field(description="the exported model's name")
    model: dict[str, Any] = Field(description="'generator: NAME' plus that generator's hyper-parameters")
    data: DataConfig
    train: TrainSection = Field(default_factory=TrainSection)
    output: OutputConfig = Field(default_factory=OutputConfig)


def apply_override(config: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) in a nested dict, in place."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{override}' must look like section.key=value, e.g. train.steps=100")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{override}': '{part}' is not a section")
    try:
        node[leaf] = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError) as error:
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"override '{override}': the value is not valid YAML ({problem}); quote it or fix it, "
                          "e.g. train.betas=[0.5,0.99]") from None


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (the shipped ones are in configs/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sections (name, model, data, train, output)")
    for override in overrides:
        apply_override(data, override)
    return validate_train_config(data, str(path))


def validate_train_config(data: dict[str, Any], where: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{where}: {problems}") from None


def dump_yaml(config: TrainConfig, model: BaseModel | None = None) -> str:
    """The resolved config (the generator's defaults filled in) as YAML."""
    data = config.model_dump(mode="json")
    if model is not None:
        key = "conditioner" if "conditioner" in config.model else "generator"
        data["model"] = {key: config.model[key], **model.model_dump(mode="json")}
    return yaml.safe_dump(data, sort_keys=False)
