"""Building a Keras model from a TF.js topology: allowlisted layers only, never Keras'
deserializer."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ExportError, ModelFormatError, UnsafeModelError
from .reader import _model_json_path, _read_weights, read_model_json
from .schema import (
    SUPPORTED_LAYERS,
    Sha256,
    _MODEL_CLASSES,
    _batch_shape,
    _bool,
    _check,
    _is_int,
    _name,
    _weight_shapes,
)


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
