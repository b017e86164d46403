"""Where a larger speech data set lives: one setting, ``$MM_BROWSERFFT_DATA``.

The package itself needs no data set (its base and sample clips are bundled). The
checks that need more real speech than the repository carries (the benchmarks,
the pretraining recipe, the test suite's large-data tests) read it from the
folder this environment variable names, laid out as Speech Commands is::

    $MM_BROWSERFFT_DATA/
      speech_commands/<label>/*.flac|wav     one folder per label, 1 s clips
      speech_commands_v0.01_sample/<word>/   (optional) more words
      background_noise/*.flac|wav            long background recordings
"""

from __future__ import annotations

import os
import pathlib
from typing import Optional

from .errors import DatasetError

__all__ = ["DATA_ENV", "data_dir", "speech_commands_dir"]

DATA_ENV = "MM_BROWSERFFT_DATA"
"""Environment variable naming the data folder."""


def data_dir(*, required: bool = True) -> Optional[pathlib.Path]:
    """The folder ``$MM_BROWSERFFT_DATA`` names.

    Args:
      required: raise when it is unset or missing (else return ``None``).

    Raises:
      DatasetError: ``required`` and the variable is unset or names no folder.
    """
    value = os.environ.get(DATA_ENV, "")
    path = pathlib.Path(value).expanduser().resolve() if value else None
    if path is not None and path.is_dir():
        return path
    if not required:
        return None
    if path is None:
        raise DatasetError(f"no data set: set {DATA_ENV} to a folder holding speech_commands/")
    raise DatasetError(f"{DATA_ENV} names no folder", path=path)


def speech_commands_dir(*, required: bool = True) -> Optional[pathlib.Path]:
    """``<data_dir>/speech_commands``: one folder per label of real clips (see :func:`data_dir`)."""
    root = data_dir(required=required)
    if root is None:
        return None
    path = root / "speech_commands"
    if path.is_dir():
        return path
    if required:
        raise DatasetError(f"{DATA_ENV} has no speech_commands/ folder", path=path)
    return None
