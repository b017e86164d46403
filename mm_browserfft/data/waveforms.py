"""Decoded waveforms of the loader's files: the file items, long files streamed in windows, the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import BinaryIO, Dict, Iterator, Optional, Set, Union

import numpy as np

from .. import audio
from ..cache import save_npy_atomically
from ..errors import AudioDecodeError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = ["LONG_FILE_SECONDS", "Cache", "Item", "PathLike", "WaveformCache", "stream_windows"]

PathLike = Union[str, "os.PathLike[str]"]
Cache = Union[bool, PathLike]
"""``True`` (memory), a folder (disk) or ``False`` (no cache)."""

LONG_FILE_SECONDS = 300
"""Files longer than this (at 44.1 kHz) are streamed in blocks and bypass the memory cache."""
HEADER_LENGTH_TOLERANCE_S = 0.1
"""Seconds a decoded file may differ from the length its header gives (cut or zero-filled to it); more is an error.
(The length in a lossy file's header may be an estimate.)"""
_CHUNK_WINDOWS = 32  # windows per chunk read back from a disk cache of a long file (5.6 MB)
_log = logging.getLogger("mm_browserfft")


@dataclasses.dataclass(frozen=True)
class Item:
    """One file of a loader: its path, label index, windows it gives, whether it is padded, its length."""

    path: str
    label: int
    clips: int  # windows the file gives
    padded: bool
    samples: int  # length at 44.1 kHz, from the header

    @property
    def long(self) -> bool:
        """Streamed in blocks, never held whole (longer than :data:`LONG_FILE_SECONDS`)."""
        return self.samples > LONG_FILE_SECONDS * SAMPLE_RATE


def stream_windows(path: str, count: int) -> Iterator[np.ndarray]:
    """The ``count`` windows of a long file, decoded block by block.

    Yields:
      float32 ``[k, 44032]`` chunks (one per decoded block, ``k`` about 30), ``count``
      windows in all: the windows of :func:`mm_browserfft.audio.split_windows` on the
      whole file (soxr carries its filter state across blocks).

    Raises:
      AudioDecodeError: the file fails to decode, or ends more than
        :data:`HEADER_LENGTH_TOLERANCE_S` short of the windows its header promises (a shortfall
        within it is zero-filled).
    """
    rest, done = np.zeros(0, np.float32), 0
    for block in audio.iter_audio_blocks(path):
        rest = np.concatenate([rest, block])
        windows = audio.split_windows(rest)[: count - done]
        rest = rest[len(windows) * WAVEFORM_LENGTH :]
        if len(windows):
            done += len(windows)
            yield windows
    missing = (count - done) * WAVEFORM_LENGTH - rest.size
    if 0 < missing <= HEADER_LENGTH_TOLERANCE_S * SAMPLE_RATE and done == count - 1:
        yield np.pad(rest, (0, missing))[np.newaxis]
    elif done < count:
        raise AudioDecodeError(
            f"truncated: decoding gave {done * WAVEFORM_LENGTH + rest.size} samples at {SAMPLE_RATE} Hz, "
            f"the header promises {count} windows of {WAVEFORM_LENGTH}",
            path=path,
        )


class WaveformCache:
    """Decoded 44.1 kHz waveforms by file: in memory (``True``), on disk (a folder), or none (``False``).

    Also remembers the files that failed to decode (``bad``), for every loader sharing it.
    A disk cache that cannot be written (disk full, folder gone) costs speed, not
    results: the waveforms are decoded again when next needed, with one warning, and
    no partial file is left.
    """

    def __init__(self, cache: Cache) -> None:
        self.folder = None if isinstance(cache, bool) else os.fspath(cache)
        self.memory: Optional[Dict[str, np.ndarray]] = {} if cache is True else None
        self.bad: Set[str] = set()
        self._warned = False
        if self.folder is not None:
            os.makedirs(self.folder, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.folder is not None or self.memory is not None

    def _disk_path(self, path: str, kind: str = "") -> str:
        stat = os.stat(path)
        key = f"{os.path.abspath(path)}|{stat.st_mtime_ns}|{stat.st_size}|{SAMPLE_RATE}{kind}"
        return os.path.join(self.folder, hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".npy")

    def iter_windows(self, path: str, count: int) -> Iterator[np.ndarray]:
        """The ``count`` windows of a long file in float32 ``[k, 44032]`` chunks, never all at once.

        Streamed from the file (:func:`stream_windows`); with a disk cache, written
        to ``<folder>/<key>.npy`` on the way and read back from it in chunks later.
        """
        if self.folder is None:
            yield from stream_windows(path, count)
            return
        disk = self._disk_path(path, "|windows")
        if os.path.exists(disk):
            for start in range(0, count, _CHUNK_WINDOWS):  # a fresh map per chunk: pages read are released
                yield np.array(np.load(disk, mmap_mode="r")[start : start + _CHUNK_WINDOWS])
            return
        tmp = f"{disk}.{os.getpid()}.tmp.npy"
        handle = self._open_windows_file(tmp, count)
        try:
            for windows in stream_windows(path, count):
                if handle is not None:
                    try:
                        handle.write(np.ascontiguousarray(windows, dtype=np.float32).tobytes())
                    except OSError as exc:
                        self._unwritable(exc, handle)
                        handle = None
                yield windows
            if handle is not None:
                try:
                    handle.close()
                    os.replace(tmp, disk)
                except OSError as exc:
                    self._unwritable(exc)
        finally:  # a failed or abandoned pass leaves no partial file
            if handle is not None:
                handle.close()
            if os.path.exists(tmp):
                os.remove(tmp)

    def _open_windows_file(self, tmp: str, count: int) -> Optional[BinaryIO]:
        """``tmp`` opened for writing, its ``.npy`` header of ``[count, 44032]`` float32 written; None if it cannot be."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        handle = None
        try:
            handle = open(tmp, "wb")
            np.lib.format.write_array_header_1_0(handle, {**header, "shape": (count, WAVEFORM_LENGTH)})
        except OSError as exc:
            self._unwritable(exc, handle)
            return None
        return handle

    def _unwritable(self, exc: OSError, handle: Optional[BinaryIO] = None) -> None:
        """Give up writing this entry (closing ``handle``); warn once per cache that it cannot be written."""
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass
        if not self._warned:
            _log.warning("the waveform cache %s cannot be written (%s): going on without it", self.folder, exc)
            self._warned = True

    def load(self, path: str, *, samples: int) -> np.ndarray:
        """float32 ``[n]`` at 44.1 kHz: the file's whole waveform, which its header says is ``samples`` long.

        A disk cache entry that does not read back whole (cut off, overwritten) is decoded again.

        A decode within :data:`HEADER_LENGTH_TOLERANCE_S` of ``samples`` is cut or zero-filled to it
        (the length in the header of a lossy file may be an estimate), so that the file gives the
        windows its header promised.

        Raises:
          AudioDecodeError: the file does not decode, or its length is further from ``samples``
            (an MP3 or OGG cut off after its header was written).
        """
        if self.memory is not None and path in self.memory:
            return self.memory[path]
        disk = self._disk_path(path) if self.folder is not None else None
        if disk is not None and os.path.exists(disk):
            try:
                cached = np.load(disk)
                if cached.dtype == np.float32 and cached.shape == (samples,):
                    return cached
            except (OSError, ValueError):  # cut off or not an .npy: decoded again, and written anew
                pass
        waveform = audio.load_audio(path)
        if abs(waveform.size - samples) > HEADER_LENGTH_TOLERANCE_S * SAMPLE_RATE:
            raise AudioDecodeError(f"{'truncated: ' if waveform.size < samples else ''}decoding gave {waveform.size} "
                                   f"samples at {SAMPLE_RATE} Hz, the header promises {samples}", path=path)  # fmt: skip
        if waveform.size != samples:
            waveform = np.pad(waveform[:samples], (0, max(0, samples - waveform.size)))
        if self.memory is not None:
            self.memory[path] = waveform
        if disk is not None:
            try:
                save_npy_atomically(disk, waveform)
            except OSError as exc:
                self._unwritable(exc)
        return waveform
