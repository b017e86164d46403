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

The package: :mod:`~mm_browserfft.tfjs.schema` (constants, config values, layer kinds),
:mod:`~mm_browserfft.tfjs.reader` (model.json and shards), :mod:`~mm_browserfft.tfjs.builder`
(Keras model from a topology), :mod:`~mm_browserfft.tfjs.writer` (Keras model to files) and
:mod:`~mm_browserfft.tfjs.speech_commands` (the recogniser's metadata.json).
"""

from .builder import load_tfjs
from .reader import file_hashes, read_model_json, read_weights, shard_paths
from .schema import (
    MAX_JSON_BYTES,
    MAX_WEIGHT_BYTES,
    METADATA_JSON,
    MODEL_JSON,
    SEPARATE_MANIFESTS,
    SUPPORTED_LAYERS,
    Sha256,
)
from .speech_commands import read_labels, speech_commands_metadata
from .writer import check_replaceable, save_tfjs

__all__ = [
    "MODEL_JSON",
    "METADATA_JSON",
    "MAX_WEIGHT_BYTES",
    "MAX_JSON_BYTES",
    "SEPARATE_MANIFESTS",
    "SUPPORTED_LAYERS",
    "read_model_json",
    "read_weights",
    "load_tfjs",
    "save_tfjs",
    "check_replaceable",
    "speech_commands_metadata",
    "read_labels",
    "shard_paths",
    "Sha256",
    "file_hashes",
]
