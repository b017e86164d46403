"""Reading model.json and the weight shards: sizes, digests and paths checked before anything
is decoded."""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..errors import ModelFormatError, UnsafeModelError
from .schema import (
    MAX_JSON_BYTES,
    MAX_WEIGHT_BYTES,
    MODEL_JSON,
    SEPARATE_MANIFESTS,
    Sha256,
    _DTYPES,
    _MAX_DIM,
    _MAX_RANK,
    _MODEL_CLASSES,
    _QUANTIZED,
    _check,
    _float,
    _is_int,
)


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
