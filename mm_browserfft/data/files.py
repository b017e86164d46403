"""The files of a data folder: which entries are audio, and label names that clash."""

from __future__ import annotations

import os
import unicodedata
import warnings
from typing import Collection, Dict, List, Optional, Sequence, Tuple

from .. import audio
from ..errors import DatasetError
from .waveforms import PathLike

__all__ = [
    "is_audio_name", "sort_entries", "list_audio_files", "label_folder_files", "check_categories", "warn_case_clashes",
]


def is_audio_name(name: str) -> bool:
    """Whether a file name is an audio file the loaders read (any case of an audio extension, not hidden)."""
    return not name.startswith(".") and name.lower().endswith(audio.AUDIO_EXTENSIONS)


def sort_entries(folder: PathLike) -> Tuple[List[str], List[str]]:
    """``(audio files, every other entry)`` directly inside ``folder``, as sorted paths.

    The audio files are what the loaders read (:func:`is_audio_name`); the others (sub-folders,
    other extensions, hidden files) are what they skip and count.

    Raises:
      DatasetError: ``folder`` is not a folder.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError("folder not found", path=folder)
    audio_files: List[str] = []
    others: List[str] = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        (audio_files if is_audio_name(name) and os.path.isfile(path) else others).append(path)
    return audio_files, others


def label_folder_files(root: PathLike, *, categories: Optional[Collection[str]] = None
                       ) -> Tuple[List[Tuple[str, str]], List[str]]:  # fmt: skip
    """``([(audio file, label)], skipped)`` of ``root/<label>/<file>``: what the loaders read, and what they skip.

    Skipped (and counted by whoever reads): files directly in ``root``, hidden folders, label folders
    holding no audio file (no class), and each label folder's other entries (:func:`sort_entries`).

    Args:
      root: the data folder.
      categories: read only these label folders; the others are neither read nor counted.

    Raises:
      DatasetError: a category has no folder, or its folder holds no audio file.
    """
    root = os.fspath(root)
    entries = sorted(os.listdir(root))
    if categories is not None:
        check_categories(categories, {e for e in entries if os.path.isdir(os.path.join(root, e))}, root)
    pairs: List[Tuple[str, str]] = []
    skipped: List[str] = []
    for entry in entries:
        path = os.path.join(root, entry)
        if not os.path.isdir(path) or entry.startswith("."):
            skipped.append(path)
        elif categories is None or entry in categories:
            audio_files, others = sort_entries(path)
            if not audio_files and categories is not None:
                raise DatasetError("the category holds no audio file", path=path)
            pairs += [(file, entry) for file in audio_files]
            skipped += others if audio_files else [path]
    return pairs, skipped


def check_categories(wanted: Collection[str], found: Collection[str], where: PathLike) -> None:
    """Refuse categories that name nothing: a typo would otherwise train a model without that class.

    Raises:
      DatasetError: naming ``where``, the categories not in ``found`` and those that are.
    """
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DatasetError(f"no category {missing} here; there are {sorted(found)}", path=os.fspath(where))


def list_audio_files(folder: PathLike) -> List[str]:
    """The audio files directly inside ``folder`` (sorted, hidden files skipped)."""
    return sort_entries(folder)[0]


def warn_case_clashes(labels: Sequence[str], where: PathLike) -> None:
    """Warn when labels differ only in case, Unicode form or surrounding spaces ("Yes", "yes", "yes "):
    they stay distinct classes, as in Model Maker, but are likely one word."""
    by_folded: Dict[str, List[str]] = {}
    for label in labels:
        by_folded.setdefault(unicodedata.normalize("NFC", label).strip().casefold(), []).append(label)
    clashes = ", ".join(" and ".join(map(repr, names)) for names in by_folded.values() if len(names) > 1)
    if clashes:
        warnings.warn(
            f"{os.fspath(where)}: the labels {clashes} differ only in case, Unicode form or surrounding spaces; "
            "they are kept as distinct classes, but a case-insensitive file system (Windows, macOS) would merge "
            "folders that differ in case",
            stacklevel=4,
        )
