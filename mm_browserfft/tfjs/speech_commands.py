"""The metadata.json that the TF.js speech-commands recogniser reads beside a model."""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Sequence

from ..errors import ModelFormatError
from ..frontend import NUM_BINS
from .reader import _load_json
from .schema import METADATA_JSON, SPEECH_COMMANDS_VERSION


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
