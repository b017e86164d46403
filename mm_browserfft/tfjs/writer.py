"""Writing a Keras model as a TF.js layers model (model.json and shards), atomically."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import __version__
from ..errors import ExportError, ModelFormatError
from ..export import check_replaceable_folder, replace_path
from .builder import _dims, _keras
from .reader import read_model_json, shard_paths
from .schema import METADATA_JSON, MODEL_JSON, SEPARATE_MANIFESTS, SUPPORTED_LAYERS, _MODEL_CLASSES, _check, _is_int


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
    check_replaceable(folder)
    replace_path(tmp, folder)


def check_replaceable(folder: "os.PathLike[str] | str") -> None:
    """Refuse to replace ``folder`` unless it is missing or a TF.js model folder and nothing else.

    Raises:
      ExportError: naming ``folder`` (:func:`~mm_browserfft.export.check_replaceable_folder`).
    """
    check_replaceable_folder(folder, foreign=_not_tfjs_files, kind="a TF.js model")


def _not_tfjs_files(folder: str) -> List[str]:
    """The entries of ``folder`` that no TF.js layers model there accounts for (sorted; ``[]``: safe to replace).

    A TF.js model folder holds ``model.json`` (as :func:`~mm_browserfft.tfjs.read_model_json`
    reads it), the weight shards it names, perhaps a separate manifest and ``metadata.json``.
    Anything else (an export's ``model.tflite``, or Model Maker's ``model.json`` sidecar, which
    is not a TF.js model) is not ours to delete.
    """
    entries = sorted(os.listdir(folder))
    try:
        spec = read_model_json(folder)
        shards = {os.path.relpath(p, folder) for p in shard_paths(spec, folder)}
    except (ModelFormatError, OSError):
        return entries
    return [e for e in entries if e not in {MODEL_JSON, METADATA_JSON, *SEPARATE_MANIFESTS} | shards]


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
