"""The classifier metadata Model Maker wrote."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from ..errors import InvalidInputError
from ..frontend import SAMPLE_RATE
from .schema import (
    INPUT_DESCRIPTION,
    INPUT_NAME,
    LABELS_DESCRIPTION,
    Labels,
    MIN_PARSER_VERSION,
    MODEL_AUTHOR,
    MODEL_DESCRIPTION,
    MODEL_LICENSE,
    MODEL_NAME,
    MODEL_VERSION,
    OUTPUT_DESCRIPTION,
    OUTPUT_NAME,
)


def label_file_name(locale: Optional[str] = None, *, output_name: str = OUTPUT_NAME) -> str:
    """``probability_labels.txt``, or ``probability_labels_<locale>.txt`` for a locale."""
    return f"{output_name}_labels{'_' + locale if locale else ''}.txt"


def is_single_line(label: str) -> bool:
    """Whether ``label`` comes back whole from a labels file read with ``str.splitlines`` (as the
    readers here, labels.txt's users and MediaPipe split): no line break of any kind (``\\n``,
    ``\\r``, ``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``), and not empty."""
    return label.splitlines() == [label]


def _label_sets(labels: Labels) -> List[Tuple[Optional[str], List[str]]]:
    """``[(locale or None, labels)]``, checked: same length, no newlines, no empty set."""
    sets = list(labels.items()) if isinstance(labels, Mapping) else [(None, labels)]
    if not sets:
        raise InvalidInputError("labels must not be empty")
    out = []
    for locale, names in sets:
        if isinstance(names, (str, bytes)):
            raise InvalidInputError(f"labels must be a list of strings, got {type(names).__name__}")
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or not is_single_line(n)]
        if not names or bad:
            raise InvalidInputError(f"labels must be non-empty single-line strings, got {bad or names!r}")
        if len(names) != len(sets[0][1]):
            raise InvalidInputError(f"locale {locale!r} has {len(names)} labels, expected {len(sets[0][1])}")
        out.append((locale, names))
    return out


def classifier_metadata(
    labels: Labels, *, sample_rate: int = SAMPLE_RATE, channels: int = 1
) -> Tuple[dict, Dict[str, bytes]]:
    """The metadata Model Maker's BrowserFftSpec wrote, and its label files.

    Args:
      labels: class names in output order; or a mapping ``locale -> names``
        (Model Maker's OrderedDict form; ``None`` is the default locale) for
        translated label files.
      sample_rate: Hz of the input clip (``AudioProperties.sample_rate``).
      channels: interleaved channels of the input (``AudioProperties.channels``).

    Returns:
      ``(metadata dict, {file name: file bytes})``; label files hold one UTF-8
      label per line with no trailing newline.
    """
    if sample_rate <= 0 or channels <= 0:
        raise InvalidInputError(f"sample_rate and channels must be positive, got {sample_rate}, {channels}")
    files: Dict[str, bytes] = {}
    file_entries = []
    for locale, names in _label_sets(labels):
        name = label_file_name(locale)
        files[name] = "\n".join(names).encode("utf-8")
        entry = {"name": name, "description": LABELS_DESCRIPTION, "type": "TENSOR_AXIS_LABELS"}
        if locale:
            entry["locale"] = locale
        file_entries.append(entry)
    audio_input = {
        "name": INPUT_NAME,
        "description": INPUT_DESCRIPTION,
        "content": {
            "content_properties_type": "AudioProperties",
            "content_properties": {"sample_rate": int(sample_rate), "channels": int(channels)},
        },
        "stats": {},
    }
    scores_output = {
        "name": OUTPUT_NAME,
        "description": OUTPUT_DESCRIPTION,
        "content": {"content_properties_type": "FeatureProperties", "content_properties": {}},
        "stats": {"max": [1.0], "min": [0.0]},
        "associated_files": file_entries,
    }
    metadata = {
        "name": MODEL_NAME,
        "description": MODEL_DESCRIPTION,
        "version": MODEL_VERSION,
        "subgraph_metadata": [{"input_tensor_metadata": [audio_input], "output_tensor_metadata": [scores_output]}],
        "author": MODEL_AUTHOR,
        "license": MODEL_LICENSE,
        "min_parser_version": MIN_PARSER_VERSION,
    }
    return metadata, files
