"""What a TF.js layers model may hold: constants, the parser of every config value, the
allowlisted layer kinds and their weight shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np


MODEL_JSON = "model.json"
METADATA_JSON = "metadata.json"
SEPARATE_MANIFESTS = ("weights_manifest.json", "manifest.json")
"""Files that hold the manifest when ``model.json`` has none (separated layout)."""
MAX_WEIGHT_BYTES = 512 * 1024 * 1024
"""Refuse models whose decoded weights (4 bytes per value) exceed this many bytes."""
SPEECH_COMMANDS_VERSION = "0.4.0"
"""``tfjsSpeechCommandsVersion`` written into metadata.json (what Teachable Machine writes)."""
MAX_JSON_BYTES = 64 * 1024 * 1024
"""Refuse ``model.json`` (or a manifest file) larger than this."""

Sha256 = Union[str, Mapping[str, str]]
"""What a caller may pin a model with: the hex sha256 of ``model.json``, or a manifest
``{relative path: hex sha256}`` naming ``model.json`` and every weight shard (see :func:`file_hashes`)."""

_DTYPES = {"float32": "<f4", "int32": "<i4"}
_QUANTIZED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}
_ACTIVATIONS = frozenset(
    {"linear", "relu", "relu6", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus", "softsign"}
)
_MAX_RANK = 8
_MAX_DIM = 2**31 - 1


# --------------------------------------------------------------------------------------------
# Config values: one parser per kind of value, used both to read and to write.


def _check(ok: bool, what: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"bad {what}: {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pos_int(v: Any) -> int:
    _check(_is_int(v) and 0 < v <= _MAX_DIM, "positive integer", v)
    return int(v)


def _int_pair(v: Any) -> Tuple[int, int]:
    if _is_int(v):
        v = (v, v)
    _check(isinstance(v, (list, tuple)) and len(v) == 2, "pair of integers", v)
    return (_pos_int(v[0]), _pos_int(v[1]))


def _padding(v: Any) -> str:
    _check(v in ("valid", "same"), "padding", v)
    return v


def _channels_last(v: Any) -> str:
    _check(v in (None, "channels_last"), "data_format (only channels_last is supported)", v)
    return "channels_last"


def _activation(v: Any) -> str:
    v = "linear" if v is None else v
    _check(isinstance(v, str) and v in _ACTIVATIONS, "activation", v)
    return v


def _bool(v: Any) -> bool:
    _check(isinstance(v, bool), "boolean", v)
    return v


def _float(v: Any) -> float:
    _check(isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v), "number", v)
    return float(v)


def _rate(v: Any) -> float:
    v = _float(v)
    _check(0.0 <= v < 1.0, "dropout rate", v)
    return v


def _axis(v: Any) -> int:
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    _check(_is_int(v) and -_MAX_RANK <= v < _MAX_RANK, "axis", v)
    return int(v)


def _target_shape(v: Any) -> Tuple[int, ...]:
    _check(isinstance(v, (list, tuple)) and 0 < len(v) < _MAX_RANK, "target_shape", v)
    dims = tuple(-1 if d == -1 else _pos_int(d) for d in v)
    _check(dims.count(-1) <= 1, "target_shape", v)
    return dims


def _batch_shape(v: Any) -> Tuple[Optional[int], ...]:
    _check(isinstance(v, (list, tuple)) and 1 < len(v) <= _MAX_RANK, "batch_input_shape", v)
    return tuple(None if d is None else _pos_int(d) for d in v)


def _name(v: Any) -> str:
    _check(isinstance(v, str) and 0 < len(v) <= 256 and "/" not in v, "layer name", v)
    return v


@dataclass(frozen=True)
class _LayerKind:
    """How one allowlisted layer class maps between TF.js JSON and ``tf.keras.layers``."""

    options: Mapping[str, Callable[[Any], Any]]
    required: Tuple[str, ...] = ()
    weights: Callable[[Mapping[str, Any]], Tuple[str, ...]] = lambda cfg: ()


def _kernel_and_bias(cfg: Mapping[str, Any]) -> Tuple[str, ...]:
    return ("kernel", "bias") if cfg.get("use_bias", True) else ("kernel",)


def _batch_norm_weights(cfg: Mapping[str, Any]) -> Tuple[str, ...]:
    return (("gamma",) if cfg.get("scale", True) else ()) + (("beta",) if cfg.get("center", True) else ()) + (
        "moving_mean",
        "moving_variance",
    )


SUPPORTED_LAYERS: Dict[str, _LayerKind] = {
    "Conv2D": _LayerKind(
        {
            "filters": _pos_int,
            "kernel_size": _int_pair,
            "strides": _int_pair,
            "padding": _padding,
            "data_format": _channels_last,
            "dilation_rate": _int_pair,
            "activation": _activation,
            "use_bias": _bool,
        },
        ("filters", "kernel_size"),
        _kernel_and_bias,
    ),
    "MaxPooling2D": _LayerKind(
        {"pool_size": _int_pair, "strides": _int_pair, "padding": _padding, "data_format": _channels_last}
    ),
    "Flatten": _LayerKind({"data_format": _channels_last}),
    "Dropout": _LayerKind({"rate": _rate}, ("rate",)),
    "Dense": _LayerKind(
        {"units": _pos_int, "activation": _activation, "use_bias": _bool}, ("units",), _kernel_and_bias
    ),
    "Activation": _LayerKind({"activation": _activation}, ("activation",)),
    "BatchNormalization": _LayerKind(
        {"axis": _axis, "momentum": _float, "epsilon": _float, "center": _bool, "scale": _bool},
        (),
        _batch_norm_weights,
    ),
    "Reshape": _LayerKind({"target_shape": _target_shape}, ("target_shape",)),
}
"""Leaf layer classes that load and save; models nest as ``Sequential`` and ``Model``."""
_MODEL_CLASSES = ("Sequential", "Model", "Functional")


def _weight_shapes(class_name: str, cfg: Mapping[str, Any], input_shape: Sequence[Optional[int]]) -> List[tuple]:
    """Shapes of a leaf layer's weights (in ``get_weights`` order) for an input of ``input_shape``."""
    names = SUPPORTED_LAYERS[class_name].weights(cfg)
    if not names:
        return []
    if class_name == "BatchNormalization":
        channels = input_shape[cfg.get("axis", -1)]
        return [(channels,)] * len(names)
    last = input_shape[-1]
    if class_name == "Dense":
        kernel = (last, cfg["units"])
        out = cfg["units"]
    else:
        kernel = tuple(cfg["kernel_size"]) + (last, cfg["filters"])
        out = cfg["filters"]
    return [kernel, (out,)][: len(names)]
