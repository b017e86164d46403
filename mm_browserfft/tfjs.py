"""TF.js "layers-model" files: read and write them with NumPy and json only.

A TF.js layers model is a folder holding

* ``model.json``: ``modelTopology`` (Keras JSON: ``{"class_name", "config"}``,
  possibly wrapped as ``{"model_config", "training_config", "keras_version",
  "backend"}``) and ``weightsManifest`` (groups ``{"paths": [...], "weights":
  [{"name", "shape", "dtype", "quantization"?}]}``). Some exports keep the
  manifest in a separate ``weights_manifest.json`` or ``manifest.json``;
* the weight shards: per group, the files of ``paths`` concatenated hold the
  tensors back to back, little-endian, in manifest order;
* optionally ``metadata.json`` (speech-commands labels).

Loading never hands untrusted JSON to Keras' deserializer: layers are built here
from an allowlist of classes (:data:`SUPPORTED_LAYERS`) and of config keys, and
anything else raises :class:`~mm_browserfft.errors.UnsafeModelError`. Shard
paths must stay inside the model's folder, shard sizes must match the manifest,
every weight must be used exactly once with the right shape, and the decoded
weights may not exceed :data:`MAX_WEIGHT_BYTES`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__
from .errors import ExportError, ModelFormatError, UnsafeModelError
from .frontend import NUM_BINS

__all__ = [
    "MODEL_JSON",
    "METADATA_JSON",
    "MAX_WEIGHT_BYTES",
    "SUPPORTED_LAYERS",
    "read_model_json",
    "read_weights",
    "load_tfjs",
    "save_tfjs",
    "speech_commands_metadata",
    "read_labels",
    "shard_paths",
    "Sha256",
    "file_hashes",
]

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


# --------------------------------------------------------------------------------------------
# Reading model.json and the weight shards.


def _model_json_path(path: "os.PathLike[str] | str") -> str:
    path = os.fspath(path)
    return os.path.join(path, MODEL_JSON) if os.path.isdir(path) or not path.endswith(".json") else path


def _json_digest(sha256: Optional[Sha256], path: str) -> Optional[str]:
    """The expected digest of ``model.json`` from a :data:`Sha256` (None: unchecked)."""
    if sha256 is None or isinstance(sha256, str):
        return sha256
    if MODEL_JSON not in sha256:
        raise UnsafeModelError(f"the sha256 manifest does not name {MODEL_JSON}", path=path)
    return sha256[MODEL_JSON]


def _check_digest(data: bytes, expected: str, path: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected.lower():
        raise UnsafeModelError(f"sha256 {digest} does not match the expected {expected}", path=path)


def file_hashes(folder: "os.PathLike[str] | str") -> Dict[str, str]:
    """The sha256 manifest of a TF.js model folder: ``{"model.json": hex, "<shard>": hex, ...}``.

    Pass it as ``sha256=`` (or ``BrowserFftSpec(base_sha256=...)``) to pin every file, weights included.
    """
    folder = os.fspath(folder)
    spec = read_model_json(folder)
    paths = [p for g in spec["weightsManifest"] for p in g["paths"]]
    out = {}
    for rel, full in zip([MODEL_JSON] + paths, [os.path.join(folder, MODEL_JSON)] + shard_paths(spec, folder)):
        with open(full, "rb") as handle:
            out[rel] = hashlib.sha256(handle.read()).hexdigest()
    return out


def _load_json(path: str, *, sha256: Optional[str] = None) -> Any:
    try:
        size = os.path.getsize(path)
        if size > MAX_JSON_BYTES:
            raise UnsafeModelError(f"file of {size} bytes exceeds {MAX_JSON_BYTES}", path=path)
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ModelFormatError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if sha256 is not None:
        _check_digest(raw, sha256, path)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFormatError(f"not valid JSON: {exc}", path=path) from None


def _topology(doc: Mapping[str, Any], path: str) -> Dict[str, Any]:
    topo = doc["modelTopology"] if "modelTopology" in doc else doc
    if isinstance(topo, dict) and "model_config" in topo:
        topo = topo["model_config"]
    if not (isinstance(topo, dict) and isinstance(topo.get("class_name"), str) and "config" in topo):
        raise ModelFormatError("modelTopology is not a Keras model config {class_name, config}", path=path)
    if topo["class_name"] not in _MODEL_CLASSES:
        raise UnsafeModelError(f"top-level class {topo['class_name']!r} is not a Sequential or Model", path=path)
    return {"class_name": topo["class_name"], "config": topo["config"]}


def _quantization(q: Any) -> Optional[Dict[str, Any]]:
    if q is None:
        return None
    _check(isinstance(q, dict) and isinstance(q.get("dtype"), str) and q["dtype"] in _QUANTIZED, "quantization", q)
    if q["dtype"] == "float16":
        return {"dtype": "float16"}
    return {"dtype": q["dtype"], "scale": _float(q.get("scale")), "min": _float(q.get("min"))}


def _weight_entry(w: Any) -> Dict[str, Any]:
    _check(isinstance(w, dict), "weight entry", w)
    _check(isinstance(w.get("name"), str) and w["name"], "weight name", w.get("name"))
    shape = w.get("shape")
    _check(isinstance(shape, list) and len(shape) <= _MAX_RANK, "shape", shape)
    _check(all(_is_int(d) and 0 <= d <= _MAX_DIM for d in shape), "shape", shape)
    _check(isinstance(w.get("dtype"), str) and w["dtype"] in _DTYPES, "dtype", w.get("dtype"))
    quant = _quantization(w.get("quantization"))
    _check(quant is None or quant["dtype"] != "float16" or w["dtype"] == "float32", "float16 quantization", w)
    return {"name": w["name"], "shape": tuple(int(d) for d in shape), "dtype": w["dtype"], "quantization": quant}


def _manifest(groups: Any, path: str) -> List[Dict[str, Any]]:
    if not isinstance(groups, list):
        raise ModelFormatError("weightsManifest is not a list of groups", path=path)
    out, names = [], set()
    for i, group in enumerate(groups):
        try:
            _check(isinstance(group, dict), "group", group)
            paths, weights = group.get("paths"), group.get("weights")
            _check(isinstance(paths, list) and all(isinstance(p, str) and p for p in paths), "paths", paths)
            _check(isinstance(weights, list), "weights", weights)
            entries = [_weight_entry(w) for w in weights]
        except ValueError as exc:
            raise ModelFormatError(f"weightsManifest group {i}: {exc}", path=path) from None
        for e in entries:
            if e["name"] in names:
                raise ModelFormatError(f"weight {e['name']!r} appears twice in the manifest", path=path)
            names.add(e["name"])
        out.append({"paths": list(paths), "weights": entries})
    return out


def read_model_json(path: "os.PathLike[str] | str", *, sha256: Optional[Sha256] = None) -> Dict[str, Any]:
    """Read and validate a TF.js layers model's JSON.

    Args:
      path: the model folder or its ``model.json``.
      sha256: expected hex sha256 of the ``model.json`` bytes, or a :data:`Sha256` manifest, if any.

    Returns:
      ``{"format", "generatedBy", "convertedBy", "modelTopology": {"class_name", "config"},
      "weightsManifest": [{"paths": [str], "weights": [{"name", "shape": tuple, "dtype",
      "quantization": None | {"dtype", "scale"?, "min"?}}]}]}``; the topology is
      unwrapped from ``model_config``, and the manifest comes from a separate
      ``weights_manifest.json``/``manifest.json`` when ``model.json`` has none.

    Raises:
      ModelFormatError: unreadable or malformed JSON (the message names the file).
      UnsafeModelError: sha256 mismatch, oversized file.
    """
    path = _model_json_path(path)
    doc = _load_json(path, sha256=_json_digest(sha256, path))
    if not isinstance(doc, dict):
        raise ModelFormatError("model.json is not a JSON object", path=path)
    topology = _topology(doc, path)
    manifest, manifest_path = doc.get("weightsManifest"), path
    if manifest is None:
        folder = os.path.dirname(path)
        found = [os.path.join(folder, n) for n in SEPARATE_MANIFESTS if os.path.isfile(os.path.join(folder, n))]
        if not found:
            raise ModelFormatError("no weightsManifest in model.json nor a separate manifest file", path=path)
        manifest_path = found[0]
        manifest = _load_json(manifest_path)
        if isinstance(manifest, dict):
            manifest = manifest.get("weightsManifest")
    meta = {k: doc.get(k) if isinstance(doc.get(k), str) else None for k in ("format", "generatedBy", "convertedBy")}
    return {**meta, "modelTopology": topology, "weightsManifest": _manifest(manifest, manifest_path)}


def _inside(folder: str, rel: str, where: str) -> str:
    """Absolute path of shard ``rel``, refused unless it stays inside ``folder``."""
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or "\\" in rel or ":" in rel or "\x00" in rel:
        raise UnsafeModelError(f"weight path {rel!r} is not a plain relative path", path=where)
    if ".." in rel.split("/"):
        raise UnsafeModelError(f"weight path {rel!r} leaves the model's folder", path=where)
    root = os.path.realpath(folder)
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, full]) != root:
        raise UnsafeModelError(f"weight path {rel!r} resolves outside the model's folder ({full})", path=where)
    return full


def shard_paths(spec: Mapping[str, Any], folder: "os.PathLike[str] | str") -> List[str]:
    """Checked absolute paths of every shard named by ``spec`` (from :func:`read_model_json`).

    Raises:
      UnsafeModelError: a path is absolute or resolves outside ``folder``.
    """
    where = os.path.join(os.fspath(folder), MODEL_JSON)
    return [_inside(os.fspath(folder), p, where) for g in spec["weightsManifest"] for p in g["paths"]]


def _stored_size(entry: Mapping[str, Any]) -> int:
    count = math.prod(entry["shape"])
    dtype = entry["quantization"]["dtype"] if entry["quantization"] else entry["dtype"]
    return count * np.dtype(_QUANTIZED.get(dtype) or _DTYPES[dtype]).itemsize


def _decode(buf: bytes, offset: int, entry: Mapping[str, Any]) -> np.ndarray:
    shape, quant = entry["shape"], entry["quantization"]
    count = math.prod(shape)
    stored = quant["dtype"] if quant else entry["dtype"]
    raw = np.frombuffer(buf, dtype=_QUANTIZED.get(stored) or _DTYPES[stored], count=count, offset=offset)
    if quant and stored != "float16":
        values = raw.astype(np.float64) * quant["scale"] + quant["min"]
        if entry["dtype"] == "int32":
            values = np.round(values)
        raw = values
    return raw.astype(np.float32 if entry["dtype"] == "float32" else np.int32).reshape(shape)


def _read_weights(spec: Mapping[str, Any], json_path: str, sha256: Optional[Sha256] = None) -> Dict[str, np.ndarray]:
    """Every weight; with a :data:`Sha256` manifest, every shard is checked against it first."""
    folder = os.path.dirname(json_path)
    pinned = sha256 if sha256 is not None and not isinstance(sha256, str) else None
    total = sum(4 * math.prod(e["shape"]) for g in spec["weightsManifest"] for e in g["weights"])
    if total > MAX_WEIGHT_BYTES:
        raise UnsafeModelError(f"weights need {total} bytes, more than the {MAX_WEIGHT_BYTES} allowed", path=json_path)
    out: Dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        files = [_inside(folder, p, json_path) for p in group["paths"]]
        expected = sum(_stored_size(e) for e in group["weights"])
        try:
            sizes = [os.path.getsize(f) if os.path.isfile(f) else -1 for f in files]
            missing = [f for f, s in zip(files, sizes) if s < 0]
            if missing:
                raise ModelFormatError(f"weight file {missing[0]} is missing", path=json_path)
            if sum(sizes) != expected:
                raise ModelFormatError(
                    f"shards {group['paths']} hold {sum(sizes)} bytes, the manifest needs {expected}", path=json_path
                )
            chunks = []
            for rel, f in zip(group["paths"], files):
                with open(f, "rb") as fh:
                    chunks.append(fh.read())
                if pinned is not None:
                    if rel not in pinned:
                        raise UnsafeModelError(f"the sha256 manifest does not name the shard {rel}", path=json_path)
                    _check_digest(chunks[-1], pinned[rel], f)
        except OSError as exc:
            raise ModelFormatError(f"cannot read weights: {exc}", path=json_path) from None
        buf = b"".join(chunks)
        if len(buf) != expected:  # a shard changed while being read
            raise ModelFormatError(f"shards {group['paths']} changed while reading", path=json_path)
        offset = 0
        for entry in group["weights"]:
            out[entry["name"]] = _decode(buf, offset, entry)
            offset += _stored_size(entry)
    return out


def read_weights(model_dir_or_json: "os.PathLike[str] | str", *, sha256: Optional[Sha256] = None) -> Dict[str, np.ndarray]:
    """Read every weight of a TF.js layers model.

    Args:
      model_dir_or_json: the model folder or its ``model.json``.
      sha256: expected hex sha256 of ``model.json``, or a :data:`Sha256` manifest that pins
        every shard too, if any.

    Returns:
      ``{manifest name: array}``, e.g. ``"conv2d_1/kernel"`` -> float32 ``[2, 8, 1, 8]``;
      quantized tensors come back dequantized (``q * scale + min``, or float16 -> float32).

    Raises:
      ModelFormatError: malformed manifest, missing shard, shard sizes that do not
        add up to the manifest's tensors.
      UnsafeModelError: a shard path leaving the folder, sha256 mismatch, more than
        :data:`MAX_WEIGHT_BYTES` of weights.
    """
    path = _model_json_path(model_dir_or_json)
    return _read_weights(read_model_json(path, sha256=sha256), path, sha256)


# --------------------------------------------------------------------------------------------
# Building a Keras model from the topology (allowlist only).


def _keras():
    import tensorflow as tf

    return tf.keras


def _dims(shape: Any) -> Tuple[Optional[int], ...]:
    """A Keras shape (tuple or TensorShape) as a tuple of ints/None."""
    dims = shape.as_list() if hasattr(shape, "as_list") else shape
    return tuple(None if d is None else int(d) for d in dims)


def _input_tensor(batch_shape: Sequence[Optional[int]], name: Optional[str] = None):
    return _keras().Input(shape=tuple(batch_shape[1:]), batch_size=batch_shape[0], name=name)


class _Builder:
    """Builds Keras layers and models from a validated TF.js topology, taking weights from a dict."""

    def __init__(self, weights: Dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.unused = set(weights)
        self.names: set = set()

    def _claim_name(self, name: Any) -> str:
        name = _name(name)
        _check(name not in self.names, "duplicate layer name", name)
        self.names.add(name)
        return name

    def _take(self, layer: str, weight: str, shape: tuple) -> np.ndarray:
        key = f"{layer}/{weight}"
        if key not in self.weights:
            matches = [k for k in self.weights if k.endswith("/" + key)]
            _check(len(matches) == 1, f"weight {key} (missing or ambiguous in the manifest)", matches)
            key = matches[0]
        _check(key in self.unused, "weight used twice", key)
        value = self.weights[key]
        _check(value.shape == shape, f"shape of {key} (the layer needs {shape})", value.shape)
        self.unused.discard(key)
        return value

    def leaf(self, entry: Mapping[str, Any], input_shape: Tuple[Optional[int], ...]):
        """A built leaf layer, with its weights set, for inputs of ``input_shape``."""
        class_name, cfg = entry["class_name"], entry["config"]
        kind = SUPPORTED_LAYERS[class_name]
        name = self._claim_name(cfg.get("name"))
        missing = [k for k in kind.required if cfg.get(k) is None]
        _check(not missing, f"layer {name!r}: missing config", missing)
        options = {k: parse(cfg[k]) for k, parse in kind.options.items() if cfg.get(k) is not None}
        trainable = _bool(cfg.get("trainable", True))
        shapes = _weight_shapes(class_name, options, input_shape)
        _check(all(None not in s for s in shapes), f"layer {name!r}: weight shapes for input", input_shape)
        values = [self._take(name, w, s) for w, s in zip(kind.weights(options), shapes)]
        layer = getattr(_keras().layers, class_name)(name=name, trainable=trainable, **options)
        layer(_input_tensor(input_shape))
        if values:
            layer.set_weights(values)
        return layer

    def layer(self, entry: Any, input_shape: Optional[Tuple[Optional[int], ...]]):
        """A leaf layer or nested model for ``entry`` = ``{"class_name", "config"}``."""
        _check(isinstance(entry, dict) and isinstance(entry.get("config"), (dict, list)), "layer entry", entry)
        class_name = entry.get("class_name")
        _check(isinstance(class_name, str), "class_name", class_name)
        if class_name in _MODEL_CLASSES:
            return self.model(entry, input_shape)
        if class_name not in SUPPORTED_LAYERS:
            raise _Unsafe(f"layer class {class_name!r} is not allowed")
        _check(isinstance(entry["config"], dict), "layer config", entry["config"])
        _check(input_shape is not None, f"input shape of the first layer {entry['config'].get('name')!r}", None)
        return self.leaf(entry, input_shape)

    def model(self, entry: Mapping[str, Any], input_shape: Optional[Tuple[Optional[int], ...]] = None):
        """A ``Sequential`` (fed ``input_shape`` unless it declares its own) or functional ``Model``."""
        if entry["class_name"] == "Sequential":
            return self.sequential(entry["config"], input_shape)
        _check(isinstance(entry["config"], dict), "Model config", entry["config"])
        return self.functional(entry["config"])

    def sequential(self, config: Any, input_shape: Optional[Tuple[Optional[int], ...]]):
        if isinstance(config, list):  # the old bare-list form
            config = {"layers": config}
        _check(isinstance(config, dict) and isinstance(config.get("layers"), list), "Sequential config", config)
        entries = list(config["layers"])
        name = self._claim_name(config.get("name", f"sequential_{len(self.names)}"))
        own = _own_input_shape(entries)
        if own is not None:
            _check(input_shape is None or input_shape[1:] == own[1:], f"input shape of {name!r}", input_shape)
            input_shape = own
        _check(input_shape is not None, f"Sequential {name!r}: input shape (batch_input_shape)", None)
        input_name = None
        if entries and isinstance(entries[0], dict) and entries[0].get("class_name") == "InputLayer":
            input_name = self._claim_name(entries.pop(0)["config"].get("name") or f"{name}_input")
        layers, shape = [], input_shape
        for entry in entries:
            layer = self.layer(entry, shape)
            shape = _dims(layer(_input_tensor(shape)).shape)
            layers.append(layer)
        return _keras().Sequential([_input_tensor(input_shape, input_name)] + layers, name=name)

    def functional(self, config: Mapping[str, Any]):
        name = self._claim_name(config.get("name", f"model_{len(self.names)}"))
        entries = config.get("layers")
        _check(isinstance(entries, list), "Model layers", entries)
        produced: Dict[str, List[Any]] = {}  # layer name -> output tensor of each application
        objects: Dict[str, Any] = {}
        offsets: Dict[str, int] = {}  # nested models with their own input count that as node 0
        pending = []
        for entry in entries:
            _check(isinstance(entry, dict) and isinstance(entry.get("config"), (dict, list)), "layer entry", entry)
            lname = entry.get("name", entry["config"].get("name") if isinstance(entry["config"], dict) else None)
            _check(isinstance(lname, str) and lname not in produced, "layer name", lname)
            produced[lname] = []
            if entry.get("class_name") == "InputLayer":
                shape = _batch_shape(_get_batch_shape(entry["config"]))
                produced[lname].append(_input_tensor(shape, self._claim_name(lname)))
                continue
            nodes = entry.get("inbound_nodes")
            _check(isinstance(nodes, list) and nodes, f"inbound_nodes of {lname!r}", nodes)
            offsets[lname] = int(_has_own_input(entry))
            pending.append((lname, entry, [_node_refs(n) for n in nodes]))

        def resolve(ref):
            lname, node, tensor = ref
            _check(lname in produced, "inbound layer", lname)
            idx = node - offsets.get(lname, 0)
            _check(idx >= 0 and tensor == 0, "inbound node reference", ref)
            return produced[lname][idx] if idx < len(produced[lname]) else None

        while pending:
            waiting, applied = [], 0
            for lname, entry, nodes in pending:
                inputs = [resolve(r) for r in nodes[len(produced[lname])]]
                if any(t is None for t in inputs):
                    waiting.append((lname, entry, nodes))
                    continue
                _check(len(inputs) == 1, f"number of inputs of {lname!r}", len(inputs))
                if lname not in objects:
                    layer_entry = {"class_name": entry.get("class_name"), "config": entry["config"]}
                    objects[lname] = self.layer(layer_entry, _dims(inputs[0].shape))
                produced[lname].append(objects[lname](inputs[0]))
                applied += 1
                if len(produced[lname]) < len(nodes):
                    waiting.append((lname, entry, nodes))
            _check(applied > 0, "graph (unresolvable inbound nodes)", [p[0] for p in pending])
            pending = waiting
        ins = [resolve(r) for r in _layer_refs(config.get("input_layers"))]
        outs = [resolve(r) for r in _layer_refs(config.get("output_layers"))]
        _check(all(t is not None for t in ins + outs), "input_layers/output_layers", config.get("output_layers"))
        return _keras().Model(ins[0] if len(ins) == 1 else ins, outs[0] if len(outs) == 1 else outs, name=name)


class _Unsafe(Exception):
    """Internal: turned into UnsafeModelError with the file's path."""


def _get_batch_shape(cfg: Any) -> Any:
    if not isinstance(cfg, dict):
        return None
    return cfg.get("batch_input_shape", cfg.get("batch_shape"))


def _own_input_shape(entries: List[Any]) -> Optional[Tuple[Optional[int], ...]]:
    """The batch input shape a Sequential's layer list declares itself, if any."""
    if not entries or not isinstance(entries[0], dict):
        return None
    shape = _get_batch_shape(entries[0].get("config"))
    return None if shape is None else _batch_shape(shape)


def _has_own_input(entry: Mapping[str, Any]) -> bool:
    """Whether a nested model was built with its own input (then Keras/TF.js count that as node 0)."""
    if entry.get("class_name") in ("Model", "Functional"):
        return True
    if entry.get("class_name") != "Sequential":
        return False
    cfg = entry["config"]
    layers = cfg if isinstance(cfg, list) else cfg.get("layers")
    return isinstance(layers, list) and _own_input_shape(layers) is not None


def _ref(r: Any) -> Tuple[str, int, int]:
    _check(isinstance(r, list) and len(r) >= 3, "node reference", r)
    _check(isinstance(r[0], str) and _is_int(r[1]) and _is_int(r[2]), "node reference", r)
    return (r[0], int(r[1]), int(r[2]))


def _node_refs(node: Any) -> List[Tuple[str, int, int]]:
    """``[[name, node_index, tensor_index, kwargs], ...]`` (Keras 2 / TF.js form) -> refs."""
    _check(isinstance(node, list) and node, "inbound node", node)
    return [_ref(r) for r in node]


def _layer_refs(refs: Any) -> List[Tuple[str, int, int]]:
    _check(isinstance(refs, list) and refs, "input_layers/output_layers", refs)
    return [_ref(refs)] if isinstance(refs[0], str) else [_ref(r) for r in refs]


def load_tfjs(path: "os.PathLike[str] | str", *, sha256: Optional[Sha256] = None):
    """Load a TF.js layers model as a ``tf.keras`` model with its weights set.

    Layers are built only from :data:`SUPPORTED_LAYERS` (plus ``InputLayer``,
    ``Sequential`` and ``Model`` nesting, e.g. Teachable Machine's audio export:
    ``conv2d_1 .. dense_1`` then a nested Sequential holding ``NewHeadDense``).

    Args:
      path: the model folder or its ``model.json``.
      sha256: expected hex sha256 of ``model.json`` (the weights are then checked only
        against the manifest's sizes), or a :data:`Sha256` manifest from
        :func:`file_hashes` that pins every shard too, if any.

    Returns:
      an uncompiled ``keras.Model`` (``keras.Sequential`` when the file holds one).

    Raises:
      UnsafeModelError: a layer class outside the allowlist, shard paths leaving the
        folder, sha256 mismatch, oversized weights.
      ModelFormatError: malformed topology, missing/extra weights, shape mismatches.
    """
    json_path = _model_json_path(path)
    spec = read_model_json(json_path, sha256=sha256)
    builder = _Builder(_read_weights(spec, json_path, sha256))
    try:
        model = builder.model(spec["modelTopology"])
    except _Unsafe as exc:
        raise UnsafeModelError(str(exc), path=json_path) from None
    except (ModelFormatError, ExportError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ModelFormatError(f"cannot build the model: {exc}", path=json_path) from None
    if builder.unused:
        raise ModelFormatError(f"weights not used by any layer: {sorted(builder.unused)}", path=json_path)
    return model


# --------------------------------------------------------------------------------------------
# Writing.


def _class_name(layer) -> str:
    keras = _keras()
    name = type(layer).__name__
    if isinstance(layer, keras.Sequential):
        return "Sequential"
    if isinstance(layer, keras.Model) and name == "Functional":
        return "Model"
    if name in SUPPORTED_LAYERS and type(layer) is getattr(keras.layers, name):
        return name
    raise ModelFormatError(f"layer {layer.name!r} of class {name} cannot be written as TF.js")


class _Writer:
    """Turns a ``tf.keras`` model into TF.js JSON plus an ordered list of (name, array)."""

    def __init__(self) -> None:
        self.weights: List[Tuple[str, np.ndarray]] = []
        self.names: set = set()

    def layer(self, layer, batch_shape: Optional[Tuple[Optional[int], ...]] = None) -> Dict[str, Any]:
        class_name = _class_name(layer)
        _check(layer.name not in self.names and "/" not in layer.name, "layer name (duplicate or with '/')", layer.name)
        self.names.add(layer.name)
        if class_name == "Sequential":
            return {"class_name": class_name, "config": self.sequential(layer)}
        if class_name == "Model":
            return {"class_name": class_name, "config": self.functional(layer)}
        kind = SUPPORTED_LAYERS[class_name]
        keras_cfg = layer.get_config()
        options = {k: parse(keras_cfg[k]) for k, parse in kind.options.items() if keras_cfg.get(k) is not None}
        cfg: Dict[str, Any] = {"name": layer.name, "trainable": bool(layer.trainable), "dtype": "float32"}
        if batch_shape is not None:
            cfg["batch_input_shape"] = list(batch_shape)
        cfg.update({k: list(v) if isinstance(v, tuple) else v for k, v in options.items()})
        for wname, value in zip(kind.weights(options), layer.get_weights()):
            self.weights.append((f"{layer.name}/{wname}", np.asarray(value)))
        return {"class_name": class_name, "config": cfg}

    def sequential(self, model) -> Dict[str, Any]:
        batch_shape = _dims(model.inputs[0].shape)
        layers = [self.layer(l, batch_shape if i == 0 else None) for i, l in enumerate(model.layers)]
        if layers and layers[0]["class_name"] in _MODEL_CLASSES:  # TF.js needs the shape on a leaf
            layers.insert(0, _input_layer_entry(f"{model.name}_input", batch_shape))
        return {"name": model.name, "layers": layers}

    def functional(self, model) -> Dict[str, Any]:
        keras_cfg = model.get_config()
        wiring = {e["name"]: e.get("inbound_nodes", []) for e in keras_cfg["layers"]}
        keras3 = any(isinstance(n, dict) for nodes in wiring.values() for n in nodes)
        nested_offset = {l.name: 1 for l in model.layers if isinstance(l, _keras().Model)}
        layers = []
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                _check(layer.name not in self.names, "duplicate layer name", layer.name)
                self.names.add(layer.name)
                entry = _input_layer_entry(layer.name, _dims(layer.output.shape))
                layers.append({"name": layer.name, **entry, "inbound_nodes": []})
                continue
            entry = self.layer(layer)
            nodes = [_write_node(n, nested_offset) for n in wiring.get(layer.name, [])]
            layers.append({"name": layer.name, **entry, "inbound_nodes": nodes})
        return {
            "name": model.name,
            "layers": layers,
            **{
                key: [_write_ref(r, nested_offset, keras3=keras3) for r in _keras_refs(keras_cfg[key])]
                for key in ("input_layers", "output_layers")
            },
        }


def _input_layer_entry(name: str, batch_shape: Tuple[Optional[int], ...]) -> Dict[str, Any]:
    cfg = {"batch_input_shape": list(batch_shape), "dtype": "float32", "sparse": False, "name": name}
    return {"class_name": "InputLayer", "config": cfg}


def _keras_refs(refs: Any) -> List[Tuple[str, int, int]]:
    """input/output refs from ``get_config``: one ``[name, node, tensor]`` or a list of them."""
    return [tuple(refs)] if isinstance(refs[0], str) else [tuple(r) for r in refs]


def _history(obj: Any) -> List[Tuple[str, int, int]]:
    """Every ``keras_history`` triple inside a Keras 3 serialized node argument."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [tuple(obj["config"]["keras_history"])]
        return [h for v in obj.values() for h in _history(v)]
    if isinstance(obj, (list, tuple)):
        return [h for v in obj for h in _history(v)]
    return []


def _write_ref(ref: Sequence[Any], nested_offset: Mapping[str, int], *, keras3: bool) -> list:
    """``[name, node_index, tensor_index]`` as TF.js counts nodes.

    Keras 3 numbers a layer's nodes within the model; Keras 2 and TF.js count a
    nested model's own (input) node first, so its first call is node 1.
    """
    name, node, tensor = str(ref[0]), int(ref[1]), int(ref[2])
    return [name, node + (nested_offset.get(name, 0) if keras3 else 0), tensor]


def _write_node(node: Any, nested_offset: Mapping[str, int]) -> list:
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        return [_write_ref(h, nested_offset, keras3=True) + [{}] for h in _history(node.get("args", []))]
    return [_write_ref(r, nested_offset, keras3=False) + [{}] for r in node]


def _encode(value: np.ndarray, quantization: Optional[str]) -> Tuple[bytes, Dict[str, Any]]:
    """Bytes and manifest fields (dtype, quantization) of one float tensor."""
    x = value.astype(np.float32)
    if quantization is None:
        return x.astype("<f4").tobytes(), {"dtype": "float32"}
    if quantization == "float16":
        q = {"dtype": "float16", "original_dtype": "float32"}
        return x.astype("<f2").tobytes(), {"dtype": "float32", "quantization": q}
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    codes = np.clip(np.round((x.astype(np.float64) - lo) / scale), 0, 255).astype("<u1")
    q = {"dtype": "uint8", "scale": scale, "min": lo, "original_dtype": "float32"}
    return codes.tobytes(), {"dtype": "float32", "quantization": q}


def _model_document(model, *, quantization: Optional[str], shard_bytes: int) -> Tuple[Dict[str, Any], List[bytes]]:
    writer = _Writer()
    try:
        topology = writer.layer(model)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        if isinstance(exc, ModelFormatError):
            raise
        raise ModelFormatError(f"model {getattr(model, 'name', model)!r} cannot be written as TF.js: {exc}") from None
    if topology["class_name"] not in _MODEL_CLASSES:
        raise ModelFormatError(f"{model!r} is a layer, not a Sequential or functional model")
    entries, blobs = [], []
    for name, value in writer.weights:
        blob, fields = _encode(value, quantization)
        entries.append({"name": name, "shape": list(value.shape), **fields})
        blobs.append(blob)
    data = b"".join(blobs)
    n = max(1, -(-len(data) // shard_bytes))
    names = [f"group1-shard{i + 1}of{n}.bin" for i in range(n)]
    shards = [data[i * shard_bytes : (i + 1) * shard_bytes] for i in range(n)]
    doc = {
        "format": "layers-model",
        "generatedBy": f"mm_browserfft {__version__}",
        "convertedBy": None,
        "modelTopology": topology,
        "weightsManifest": [{"paths": names, "weights": entries}],
    }
    return doc, list(zip(names, shards))


def _replace_folder(tmp: str, folder: str) -> None:
    """Move ``tmp`` to ``folder``; an existing model folder there is replaced, or left intact on failure."""
    if not os.path.lexists(folder):
        os.rename(tmp, folder)
        return
    if not os.path.isdir(folder) or os.path.islink(folder):
        raise ExportError("exists and is not a folder", path=folder)
    if os.listdir(folder) and not os.path.isfile(os.path.join(folder, MODEL_JSON)):
        raise ExportError("folder is not empty and holds no model.json; refusing to replace it", path=folder)
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-", dir=os.path.dirname(folder))
    os.rmdir(old)
    os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except OSError:
        os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _new_folder_beside(folder: str) -> str:
    """A new, empty folder next to ``folder`` with the usual permissions (``0o777`` minus the umask).

    (``tempfile.mkdtemp`` would make it ``0o700``, which a web server serving the export cannot read.)
    """
    while True:
        candidate = os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.tmp-{secrets.token_hex(4)}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue


def save_tfjs(
    model,
    folder: "os.PathLike[str] | str",
    *,
    metadata: Optional[Mapping[str, Any]] = None,
    quantization: Optional[str] = "float16",
    shard_bytes: int = 4 * 1024 * 1024,
) -> str:
    """Write ``model`` as a TF.js layers model that ``tf.loadLayersModel`` reads.

    Writes ``model.json`` (``format: "layers-model"``, Keras-2-style topology with
    snake_case keys and ``batch_input_shape`` on the first layer), the shards
    ``group1-shard{i}of{n}.bin`` and, with ``metadata``, ``metadata.json``. The
    folder is written beside the target and renamed into place, so a failure leaves
    a previous model there intact; an existing non-empty folder without ``model.json``
    is never replaced.

    Args:
      model: a ``tf.keras`` Sequential or functional model made of
        :data:`SUPPORTED_LAYERS` (nested Sequential/functional models allowed).
      folder: the model folder to create or replace.
      metadata: JSON-serialisable dict for ``metadata.json`` (see
        :func:`speech_commands_metadata`).
      quantization: ``None`` (float32), ``"float16"`` (half the size, relative error
        <= 2**-11) or ``"uint8"`` (a quarter, absolute error <= (max - min) / 510 per tensor).
      shard_bytes: largest shard file, in bytes.

    Returns:
      the folder's path.

    Raises:
      ModelFormatError: a layer outside the allowlist, or bad options.
      ExportError: writing failed (names the path).
    """
    if quantization not in (None, "float16", "uint8"):
        raise ModelFormatError(f"quantization must be None, 'float16' or 'uint8', not {quantization!r}")
    if not _is_int(shard_bytes) or shard_bytes <= 0:
        raise ModelFormatError(f"shard_bytes must be a positive integer, not {shard_bytes!r}")
    doc, shards = _model_document(model, quantization=quantization, shard_bytes=int(shard_bytes))
    meta_text = None if metadata is None else json.dumps(dict(metadata), indent=2)
    folder = os.path.abspath(os.fspath(folder))
    tmp = None
    try:
        parent = os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        tmp = _new_folder_beside(folder)
        with open(os.path.join(tmp, MODEL_JSON), "w", encoding="utf-8") as f:
            json.dump(doc, f)
        for name, blob in shards:
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(blob)
        if meta_text is not None:
            with open(os.path.join(tmp, METADATA_JSON), "w", encoding="utf-8") as f:
                f.write(meta_text)
        _replace_folder(tmp, folder)
        tmp = None
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"cannot write the TF.js model: {exc.strerror or exc}", path=folder) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --------------------------------------------------------------------------------------------
# speech-commands metadata.json


def speech_commands_metadata(labels: Sequence[str], *, model_name: str = "mm_browserfft") -> Dict[str, Any]:
    """The ``metadata.json`` that TF.js speech-commands reads beside a custom model.

    Args:
      labels: class names in output order.
      model_name: stored as ``modelName``.

    Returns:
      ``{"tfjsSpeechCommandsVersion": "0.4.0", "modelName", "timeStamp" (ISO 8601, UTC),
      "wordLabels": [...], "words": [...], "frameSize": 232}``; ``words`` and
      ``frameSize`` serve readers older than speech-commands 0.3.4.
    """
    labels = list(labels)
    if not labels or not all(isinstance(l, str) and l for l in labels):
        raise ModelFormatError(f"labels must be non-empty strings, got {labels!r}")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "tfjsSpeechCommandsVersion": SPEECH_COMMANDS_VERSION,
        "modelName": model_name,
        "timeStamp": stamp,
        "wordLabels": labels,
        "words": labels,
        "frameSize": NUM_BINS,
    }


def read_labels(folder: "os.PathLike[str] | str") -> List[str]:
    """Labels from a model folder's ``metadata.json`` (``wordLabels``, or the legacy ``words``).

    Raises:
      ModelFormatError: no metadata.json, or no list of label strings in it.
    """
    folder = os.fspath(folder)
    path = folder if folder.endswith(".json") else os.path.join(folder, METADATA_JSON)
    doc = _load_json(path)
    labels = doc.get("wordLabels", doc.get("words")) if isinstance(doc, dict) else None
    if not (isinstance(labels, list) and labels and all(isinstance(l, str) for l in labels)):
        raise ModelFormatError("no 'wordLabels' or 'words' list of strings", path=path)
    return labels
