"""The on-disk cache of embeddings: head training over any number of files in bounded memory, and fast reruns.

Training only the head (Model Maker's default) needs each window's ``dense_1``
embedding once. :class:`EmbeddingCache` keeps them as one small ``.npy`` per audio
file (float16 ``[windows, 2000]``), keyed by everything that makes them what they
are: the file (absolute path, size, modification time), the base's weights, the
front end, the window rule (``pad_short_clips``) and the training noise (seed and
mode). A changed file, base or front end gets a new key, so nothing stale is ever
served; old entries simply stop being read.

Location: ``$MM_BROWSERFFT_CACHE``, else ``$XDG_CACHE_HOME/mm_browserfft``, else
``~/.cache/mm_browserfft`` (:func:`default_cache_dir`); ``mm-browserfft cache``
shows its size and ``mm-browserfft cache --clear`` empties it (:func:`clear_cache`).
Deleting the folder by hand is safe too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
from typing import Dict, Optional

import numpy as np

__all__ = ["EmbeddingCache", "default_cache_dir", "cache_usage", "clear_cache", "save_npy_atomically", "CACHE_ENV", "WAVEFORMS"]

CACHE_ENV = "MM_BROWSERFFT_CACHE"
"""Environment variable naming the cache folder."""
_EMBEDDINGS = "embeddings"
WAVEFORMS = "waveforms"
"""Sub-folder of the cache holding decoded 44.1 kHz waveforms (training that decodes every epoch)."""
_log = logging.getLogger("mm_browserfft")
_VERSION = 1  # bump when the layout or the meaning of an entry changes


def default_cache_dir() -> pathlib.Path:
    """``$MM_BROWSERFFT_CACHE``, else ``$XDG_CACHE_HOME/mm_browserfft``, else ``~/.cache/mm_browserfft``."""
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "mm_browserfft"


def cache_usage(folder: "os.PathLike[str] | str") -> Dict[str, int]:
    """``{"files": n, "bytes": b}`` under ``folder`` (0 and 0 when it does not exist)."""
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.path.getsize(os.path.join(root, name))
                files += 1
            except OSError:
                pass
    return {"files": files, "bytes": size}


def _is_cache_entry(name: str) -> bool:
    """Whether a name in the cache folder is one the package writes: embeddings, decoded waveforms,
    a downloaded model (32 hex digits of its URL's sha256) or a download under way."""
    return name in (_EMBEDDINGS, WAVEFORMS) or re.fullmatch(r"[0-9a-f]{32}|\.download-.*", name) is not None


def clear_cache(folder: "os.PathLike[str] | str") -> Dict[str, int]:
    """Delete the cache folder's contents; returns what was there (:func:`cache_usage`).

    Raises:
      InvalidInputError: the folder holds anything the package does not write there (a
        mistyped ``--cache-dir`` must not empty someone's folder); nothing is deleted.
    """
    from .errors import InvalidInputError

    foreign = sorted(e.name for e in pathlib.Path(folder).iterdir() if not _is_cache_entry(e.name)) if os.path.isdir(
        folder) else []  # fmt: skip
    if foreign:
        raise InvalidInputError(f"not an mm_browserfft cache: it holds {foreign[:5]}{' ...' if len(foreign) > 5 else ''}, "
                                "which the package never writes; nothing was deleted", path=folder)  # fmt: skip
    usage = cache_usage(folder)
    for entry in pathlib.Path(folder).iterdir() if os.path.isdir(folder) else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return usage


def save_npy_atomically(path: "os.PathLike[str] | str", array: np.ndarray) -> None:
    """Write ``array`` to the ``.npy`` file ``path`` whole or not at all.

    It is saved to a temporary file beside ``path``, then renamed over it. Should
    that fail (a full disk, a folder gone), the temporary file is removed and the
    ``OSError`` propagates: a reader never sees a partial array.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class EmbeddingCache:
    """Embeddings of audio files under ``<folder>/embeddings/``, for one embedder and one featurisation.

    Args:
      folder: the cache folder (created).
      context: JSON values that fix what an embedding means (the embedder's weight digest,
        the front end, the window rule, the training noise); part of every key.
    """

    def __init__(self, folder: "os.PathLike[str] | str", *, context: Dict) -> None:
        self.folder = pathlib.Path(folder) / _EMBEDDINGS
        self.folder.mkdir(parents=True, exist_ok=True)
        self._context = json.dumps({"version": _VERSION, **context}, sort_keys=True)
        self.hits = self.misses = 0
        self._warned = False

    def _path(self, audio_path: str) -> Optional[pathlib.Path]:
        try:
            info = os.stat(audio_path)
        except OSError:
            return None
        key = f"{self._context}|{os.path.abspath(audio_path)}|{info.st_size}|{info.st_mtime_ns}"
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return self.folder / digest[:2] / f"{digest[2:34]}.npy"

    def get(self, audio_path: str, windows: int) -> Optional[np.ndarray]:
        """The file's cached embeddings (float16 ``[windows, d]``), or None when absent or of another length."""
        path = self._path(audio_path)
        if path is None or not path.is_file():
            self.misses += 1
            return None
        try:
            value = np.load(path)
        except (OSError, ValueError):
            value = None
        if value is None or value.ndim != 2 or len(value) != windows:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, audio_path: str, embeddings: np.ndarray) -> None:
        """Store float16 ``[windows, d]`` for the file, atomically.

        A cache that cannot be written (disk full, read-only) costs speed, not results:
        training goes on, with one warning.
        """
        path = self._path(audio_path)
        if path is None:
            return
        try:
            path.parent.mkdir(exist_ok=True)
            save_npy_atomically(path, np.asarray(embeddings, np.float16))
        except OSError as exc:
            if not self._warned:
                _log.warning("the embedding cache %s cannot be written (%s): going on without it", self.folder, exc)
                self._warned = True
