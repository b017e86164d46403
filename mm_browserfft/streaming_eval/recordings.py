"""Long test recordings built from labelled clips: words and unknown speech spliced into background, at known times."""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..augment import trim_silence
from ..errors import InvalidInputError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from ..listen import NOISE_LABELS

log = logging.getLogger("mm_browserfft")

__all__ = [
    "Event", "LongRecording", "build_test_recording", "build_test_recordings", "build_test_recordings_from_folder",
    "background_paths_of", "BACKGROUND_FOLDERS", "UNKNOWN_FOLDER",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Event:
    """A word spliced into a test recording: its label and where its (trimmed) sound lies, seconds."""

    label: str
    start_s: float
    end_s: float


@dataclasses.dataclass
class LongRecording:
    """A long recording to listen to: float32 ``waveform`` ``[n]`` at 44.1 kHz and the :class:`Event` list."""

    waveform: np.ndarray
    events: List[Event]

    @property
    def duration_s(self) -> float:
        return self.waveform.size / SAMPLE_RATE


_SPEECH_RMS = (0.01, 0.3)
"""A spliced word's RMS level stays within -40..-10 dBFS, whatever the background's level."""


def _background_bed(backgrounds: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """``[length]`` of background: random stretches of the recordings, cross-faded, each at a random level."""
    fade = 2205  # 50 ms
    out = np.zeros(length + fade, np.float32)
    pos = 0
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    while pos < length:
        rec = backgrounds[int(rng.integers(len(backgrounds)))]
        take = int(min(rec.size, rng.integers(3 * SAMPLE_RATE, 20 * SAMPLE_RATE)))
        start = int(rng.integers(0, rec.size - take + 1))
        piece = rec[start : start + take].astype(np.float32)
        piece = piece / (np.sqrt(np.mean(piece**2)) + 1e-9) * float(np.exp(rng.uniform(np.log(0.003), np.log(0.05))))
        if piece.size > 2 * fade:
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        end = min(pos + piece.size, out.size)
        out[pos:end] += piece[: end - pos]
        pos = end - fade if end - fade > pos else end
    return out[:length]


def build_test_recording(
    words: Sequence[Tuple[np.ndarray, str]],
    backgrounds: Sequence[np.ndarray],
    *,
    rng: np.random.Generator,
    duration_s: Optional[float] = None,
    gap_s: Tuple[float, float] = (1.5, 6.0),
    snr_db: Tuple[float, float] = (5.0, 25.0),
) -> LongRecording:
    """Splice ``words`` into a bed of background audio, in the given order, at random gaps and levels.

    Args:
      words: ``(clip float32 [n] at 44.1 kHz, label)``; each clip is trimmed to its sound
        (:func:`~mm_browserfft.augment.trim_silence`); label ``_unknown_`` marks unknown speech.
      backgrounds: recordings at 44.1 kHz, each at least a few seconds long.
      rng: the random source (positions, levels, background stretches).
      duration_s: total length; default: just long enough for every word (plus a last gap).
        Words that do not fit are left out of the recording (and of its events).
      gap_s: range of the silence-to-silence gap before each word, seconds (uniform).
      snr_db: range of each word's level over the local background, dB (uniform); the
        word's RMS is then kept within -40..-10 dBFS (a quiet stretch of background does
        not make a word inaudible).

    Returns:
      a :class:`LongRecording`.
    """
    if not backgrounds or min(b.size for b in backgrounds) < SAMPLE_RATE:
        raise InvalidInputError("test recordings need background recordings of at least one second")
    trimmed = [(trim_silence(np.asarray(c, np.float32)), label) for c, label in words]
    gaps = rng.uniform(*gap_s, size=len(trimmed))
    starts, pos = [], 0.0
    for (clip, _), gap in zip(trimmed, gaps):
        pos += gap
        starts.append(pos)
        pos += clip.size / SAMPLE_RATE
    total_s = duration_s if duration_s is not None else pos + gap_s[1]
    length = int(round(total_s * SAMPLE_RATE))
    waveform = _background_bed(backgrounds, length, rng)
    events = []
    for (clip, label), start_s in zip(trimmed, starts):
        start = int(round(start_s * SAMPLE_RATE))
        if start + clip.size > length - WAVEFORM_LENGTH // 4:
            break
        local = waveform[start : start + clip.size]
        level = float(np.sqrt(np.mean(local**2))) * 10 ** (rng.uniform(*snr_db) / 20)
        level = float(np.clip(level, *_SPEECH_RMS))
        waveform[start : start + clip.size] = local + clip * (level / (float(np.sqrt(np.mean(clip**2))) + 1e-9))
        events.append(Event(label, start / SAMPLE_RATE, (start + clip.size) / SAMPLE_RATE))
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    if peak > 0.99:
        waveform *= 0.99 / peak
    return LongRecording(waveform.astype(np.float32), events)


BACKGROUND_FOLDERS = NOISE_LABELS
"""Label folders whose recordings serve as background when no background folder is given: the noise class
under any of its names (:data:`mm_browserfft.listen.NOISE_LABELS`), the first found."""
UNKNOWN_FOLDER = "_unknown_"


def build_test_recordings(
    clips: Sequence[Tuple[str, str]],
    background_paths: Sequence[str],
    *,
    minutes: float = 0.0,
    seed: int = 0,
    words_per_recording: int = 60,
) -> Iterator[LongRecording]:
    """Long test recordings of labelled clips ``(path, label)`` over the recordings ``background_paths``.

    Every clip is said once, in a seeded random order, ``words_per_recording`` words per
    recording (label ``_unknown_``: unknown speech, a negative). Background-only recordings
    (5 minutes each, or less) follow until the total reaches ``minutes``. The recordings are
    made one at a time as they are consumed (a 5-minute recording is 53 MB), so that
    :func:`streaming_report` holds one at a time.

    Background recordings shorter than one second are left out, with a warning naming them.

    Raises:
      DatasetError: no background recording of at least one second.
    """
    from ..audio import load_audio
    from ..errors import DatasetError

    loaded = [(p, load_audio(p)) for p in background_paths]
    backgrounds = [b for _, b in loaded if b.size >= SAMPLE_RATE]
    short = [os.fspath(p) for p, b in loaded if b.size < SAMPLE_RATE]
    if short:
        log.warning("%d background recordings shorter than one second left out: %s", len(short), ", ".join(short))
    if not backgrounds:
        where = os.path.dirname(background_paths[0]) if background_paths else None
        raise DatasetError("no background recording of at least one second", path=where)
    return _recordings(clips, backgrounds, minutes=minutes, seed=seed, words_per_recording=words_per_recording)


def _recordings(clips, backgrounds, *, minutes: float, seed: int, words_per_recording: int) -> Iterator[LongRecording]:
    from ..audio import load_audio

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    done_s = 0.0
    for i in range(0, len(order), words_per_recording):
        words = [(load_audio(clips[j][0]), clips[j][1]) for j in order[i : i + words_per_recording]]
        recording = build_test_recording(words, backgrounds, rng=rng)
        done_s += recording.duration_s
        yield recording
    while done_s < minutes * 60.0:
        recording = build_test_recording([], backgrounds, rng=rng, duration_s=max(2.0, min(300.0, minutes * 60.0 - done_s)))
        done_s += recording.duration_s
        yield recording


def background_paths_of(data_dir, background_dir=None) -> List[str]:
    """The background recordings: every audio file of ``background_dir``, else of the first of
    :data:`BACKGROUND_FOLDERS` in ``data_dir``.

    Raises:
      DatasetError: neither exists, or the folder holds no audio file.
    """
    from ..data import list_audio_files
    from ..errors import DatasetError

    if background_dir is not None:
        folder = pathlib.Path(background_dir)
    else:
        root = pathlib.Path(data_dir)
        folder = next((root / f for f in BACKGROUND_FOLDERS if (root / f).is_dir()), None)
        if folder is None:
            raise DatasetError(f"no background: give a background folder or add one of {BACKGROUND_FOLDERS}", path=root)
    paths = list_audio_files(folder)
    if not paths:
        raise DatasetError("no audio file in the background folder", path=folder)
    return paths


def build_test_recordings_from_folder(
    data_dir, keywords: Sequence[str], *, background_dir=None, minutes: float = 0.0, seed: int = 0
) -> Iterator[LongRecording]:
    """:func:`build_test_recordings` of a labelled folder (``<data_dir>/<label>/<clips>``).

    The words are every clip of the folders named in ``keywords`` and of ``_unknown_``;
    the background is :func:`background_paths_of`.

    Raises:
      DatasetError: the folder is missing, no keyword has a folder of clips, or there is no background.
    """
    from ..data import list_audio_files
    from ..errors import DatasetError

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError("data folder not found", path=root)
    clips = [(p, k) for k in [*keywords, UNKNOWN_FOLDER] if (root / k).is_dir() for p in list_audio_files(root / k)]
    if not any(k != UNKNOWN_FOLDER for _, k in clips):
        raise DatasetError(f"no clip of any of the keywords {list(keywords)} here", path=root)
    return build_test_recordings(clips, background_paths_of(root, background_dir), minutes=minutes, seed=seed)
