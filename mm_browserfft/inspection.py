"""What is inside a .tflite: metadata, labels, input/output tensors, ops and quantization."""

from __future__ import annotations

import collections
import os
import pathlib
from typing import Dict, List

import numpy as np

from .errors import InvalidInputError, ModelFormatError

__all__ = ["operator_names", "describe_tflite", "format_description"]


def operator_names(content: bytes) -> List[str]:
    """Builtin operator names of the ops of the first subgraph, in execution order.

    Args:
      content: the .tflite file's bytes.
    """
    from ai_edge_litert import schema_py_generated as schema

    from .metadata import read_operators

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return [names.get(op.code, f"OP_{op.code}") for op in read_operators(content)]


def _tensor(detail: Dict) -> Dict:
    scales = detail.get("quantization_parameters", {}).get("scales", np.zeros(0))
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantized": bool(np.size(scales)),
    }


def describe_tflite(path) -> Dict:
    """A JSON-ready description of a .tflite model.

    Returns:
      dict with ``file``, ``size_bytes``, ``metadata`` (as Model Maker's JSON, or None when the
      model has none; ``[ubyte]`` fields such as ``custom_metadata`` data are bytes),
      ``labels`` (``[]`` when the metadata names none for the default locale: ``labels_missing``
      says why, else None), ``inputs``/``outputs`` (name, shape, dtype, quantized), ``ops``
      (name -> count), ``tensor_dtypes`` (dtype -> count over all tensors) and
      ``quantization`` (``"float32"``, ``"float16"``, ``"dynamic_range"`` or ``"int8"``).
    """
    from ai_edge_litert.interpreter import Interpreter

    from .metadata import has_metadata, read_labels, read_metadata

    p = pathlib.Path(path)
    if not p.is_file():
        raise InvalidInputError("no such .tflite file", path=p)
    content = p.read_bytes()
    try:
        interpreter = Interpreter(model_content=content)
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"not a loadable .tflite model ({exc})", path=p) from None
    ops = operator_names(content)
    dtypes = collections.Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details())
    metadata = read_metadata(content) if has_metadata(content) else None
    labels, why_no_labels = [], None if metadata else "no metadata"
    if metadata:
        try:
            labels = read_labels(content)
        except ModelFormatError as exc:  # metadata without category names: still a model to describe
            why_no_labels = str(exc)
    return {
        "file": os.fspath(p),
        "size_bytes": len(content),
        "metadata": metadata,
        "labels": labels,
        "labels_missing": why_no_labels,
        "inputs": [_tensor(d) for d in interpreter.get_input_details()],
        "outputs": [_tensor(d) for d in interpreter.get_output_details()],
        "ops": dict(collections.Counter(ops)),
        "tensor_dtypes": dict(dtypes),
        "quantization": _quantization_kind(ops, dtypes),
    }


def _quantization_kind(ops: List[str], dtypes: collections.Counter) -> str:
    if "CONV_2D" in ops and dtypes.get("int8", 0) and "QUANTIZE" in ops:
        return "int8"
    if dtypes.get("int8", 0):
        return "dynamic_range"
    if dtypes.get("float16", 0):
        return "float16"
    return "float32"


def format_description(info: Dict) -> str:
    """Human-readable text of :func:`describe_tflite`'s dict."""
    lines = [f"{info['file']}  ({info['size_bytes'] / 1e6:.2f} MB, {info['quantization']})"]
    meta = info["metadata"]
    if meta:
        lines.append(f"model: {meta.get('name')} {meta.get('version', '')} by {meta.get('author', '?')}")
        lines.append(f"min_parser_version: {meta.get('min_parser_version')}")
    else:
        lines.append("metadata: none (Task Library and MediaPipe will refuse this model)")
    if info.get("labels_missing") and info["metadata"]:
        lines.append(f"labels: none ({info['labels_missing']})")
    else:
        lines.append(f"labels ({len(info['labels'])}): {', '.join(info['labels'])}")
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            lines.append(f"{kind[:-1]}: {t['name']} {t['shape']} {t['dtype']}{' quantized' if t['quantized'] else ''}")
    lines.append("ops: " + ", ".join(f"{name} x{count}" for name, count in sorted(info["ops"].items())))
    return "\n".join(lines)
