"""The one exception hierarchy of mm_browserfft.

Every error the package raises on purpose derives from :class:`BrowserFftError`, so
callers can catch the package's failures in one place while bad input
(:class:`InvalidInputError` and its subclasses, also ``ValueError``) stays
distinguishable from failures of the environment (:class:`ExportError`, ...).
"""

from __future__ import annotations

import os
from typing import Optional, Union

__all__ = [
    "BrowserFftError",
    "InvalidInputError",
    "AudioDecodeError",
    "DatasetError",
    "ModelFormatError",
    "UnsafeModelError",
    "ExportError",
    "DownloadError",
    "ModelMakerUnavailableError",
]

PathLike = Union[str, "os.PathLike[str]"]


class BrowserFftError(Exception):
    """Base class of every error raised on purpose by mm_browserfft.

    Args:
      message: what went wrong, in words.
      path: the file or folder at fault, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: Optional[PathLike] = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InvalidInputError(BrowserFftError, ValueError):
    """The caller handed in something unusable (bad argument, bad file, bad data)."""


class AudioDecodeError(InvalidInputError):
    """An audio file cannot be read, or holds no usable samples (NaN/Inf, empty)."""


class DatasetError(InvalidInputError):
    """A data folder or split cannot make a data set (missing, empty, one class...)."""


class ModelFormatError(InvalidInputError):
    """A model file (TF.js model.json, weights manifest, .tflite metadata) is malformed."""


class UnsafeModelError(ModelFormatError):
    """A model asks for something we refuse to do: unknown layer classes, code, or
    weight paths that leave the model's folder, or a checksum that does not match."""


class ExportError(BrowserFftError, OSError):
    """Writing an exported artifact failed (disk full, read-only folder, ...)."""


class DownloadError(BrowserFftError, OSError):
    """A base model could not be fetched, or is not in the cache while offline."""


class ModelMakerUnavailableError(BrowserFftError, ImportError):
    """TFLite Model Maker is not installed, or cannot be imported next to this TensorFlow."""
