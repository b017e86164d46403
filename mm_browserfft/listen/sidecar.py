"""The listening settings an export carries in its JSON sidecar (``model.json``, key ``"listening"``)."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Optional

from ..errors import InvalidInputError, ModelFormatError
from .options import ListeningOptions

__all__ = ["sidecar_path", "read_listening_options", "write_listening_section"]


def sidecar_path(model_path: "os.PathLike[str] | str") -> pathlib.Path:
    """The JSON beside an exported model: ``model.tflite`` -> ``model.json``.

    A SavedModel folder ``x`` -> ``x.json``, or where that does not exist and the folder's
    parent holds a ``model.json``, that one (``train`` exports ``saved_model/`` beside
    ``model.tflite`` and ``model.json``, as it does ``labels.txt``).
    """
    p = pathlib.Path(model_path)
    if p.suffix:
        return p.with_suffix(".json")
    own, beside = p.parent / (p.name + ".json"), p.parent / "model.json"
    return beside if not own.exists() and beside.is_file() else own


def read_listening_options(model_path: "os.PathLike[str] | str") -> Optional[ListeningOptions]:
    """The listening settings ``train`` chose for a model (its sidecar's ``"listening"``), or None.

    Raises:
      ModelFormatError: the sidecar exists but is not JSON, or its settings are invalid.
    """

    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        section = json.loads(path.read_text(encoding="utf-8")).get("listening")
    except (ValueError, AttributeError) as exc:
        raise ModelFormatError(f"not a JSON object ({exc})", path=path) from None
    if section is None:
        return None
    try:
        return ListeningOptions.from_dict(section.get("options", {}))
    except (InvalidInputError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"bad listening settings ({exc})", path=path) from None


def write_listening_section(model_path: "os.PathLike[str] | str", section: dict) -> pathlib.Path:
    """Put ``section`` (``{"options": ..., ...}``) under ``"listening"`` in the model's sidecar, atomically.

    The sidecar's other keys (Model Maker's metadata JSON) are kept; a missing sidecar is created.
    """
    from ..export import write_files_atomically

    ListeningOptions.from_dict(section["options"])  # refuse to write what cannot be read back
    path = sidecar_path(model_path)
    content = {}
    if path.is_file():
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelFormatError(f"not JSON ({exc})", path=path) from None
    content["listening"] = section
    write_files_atomically({path: (json.dumps(content, indent=2) + "\n").encode("utf-8")})
    return path
