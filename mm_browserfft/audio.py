"""Audio in: decode any file soundfile reads, down-mix, resample to 44.1 kHz, cut windows.

Everything here is NumPy; shapes are ``[samples]`` (mono) unless stated and all
waveforms are float32 in [-1, 1] at :data:`~mm_browserfft.frontend.SAMPLE_RATE`.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Optional

import numpy as np

from .errors import AudioDecodeError, InvalidInputError
from .frontend import HOP_LENGTH, SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "iter_audio_blocks",
    "resample",
    "to_mono",
    "num_windows",
    "window_offsets",
    "tail_window_start",
    "split_windows",
    "pad_to_window",
    "NOISE_FLOOR_STDDEV",
    "NOISE_FLOOR_PERIOD",
    "noise_floor",
    "MIN_SAMPLE_RATE",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
"""File name endings treated as audio by the data loaders (case-insensitive)."""

_STREAM_BLOCK_SECONDS = 30
MIN_SAMPLE_RATE = 1000
"""Hz; a header giving less is refused (a broken header: 200 samples at 1 Hz would be 200 s of audio)."""
NOISE_FLOOR_STDDEV = 1e-5
"""Standard deviation of the faint noise under every window (Model Maker's 1e-5; -100 dB under full scale)."""
NOISE_FLOOR_PERIOD = 2753
"""Samples of one draw of the noise floor, repeated over the window: a prime longer than a
front-end frame (2048 samples), so that no frame holds a repeat, and a constant of 11 KB
in an exported model instead of 172 KB."""


class AudioInfo(tuple):
    """``(sample_rate, channels, frames)`` of a file, as soundfile reports them."""

    __slots__ = ()

    def __new__(cls, sample_rate: int, channels: int, frames: int):
        return super().__new__(cls, (sample_rate, channels, frames))

    sample_rate = property(lambda self: self[0], doc="Hz")
    channels = property(lambda self: self[1], doc="channel count")
    frames = property(lambda self: self[2], doc="samples per channel")


def audio_info(path: "os.PathLike[str] | str") -> AudioInfo:
    """Read a file's header.

    Raises:
      AudioDecodeError: the file is missing, empty, not audio soundfile can read, or
        a WAV/AIFF whose header promises more samples than the file holds. (A cut-off
        compressed file, FLAC or OGG, is only found out when decoded.)
    """
    import soundfile as sf

    try:
        with sf.SoundFile(os.fspath(path)) as handle:
            _check_header(handle, path)
            return AudioInfo(int(handle.samplerate), int(handle.channels), int(handle.frames))
    except AudioDecodeError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioDecodeError(f"not a readable audio file ({_reason(exc)})", path=path) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix ``[frames, channels]`` to ``[frames]`` by averaging (WebAudio's rule)."""
    x = np.asarray(samples, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr's very-high-quality filter.

    Args:
      waveform: float32 ``[n]``.
      orig_sr, target_sr: Hz.

    Returns:
      float32 ``[round(n * target_sr / orig_sr)]`` (length within one sample of exact).
    """
    x = np.ascontiguousarray(waveform, dtype=np.float32)
    if orig_sr == target_sr or x.size == 0:
        return x
    if orig_sr <= 0:
        raise InvalidInputError(f"sample rate must be positive, got {orig_sr}")
    import soxr

    y = soxr.resample(x, orig_sr, target_sr, quality="VHQ").astype(np.float32, copy=False)
    expected = int(round(x.size * target_sr / orig_sr))
    if y.size != expected:  # soxr already rounds; this keeps the contract explicit
        y = np.pad(y, (0, max(0, expected - y.size)))[:expected]
    return y


# libsndfile's header log line for a WAV/AIFF data chunk longer than the file.
_SHORT_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _check_header(handle, path) -> None:
    """Raise if the header gives a rate under :data:`MIN_SAMPLE_RATE`, or promises more sample bytes than the
    file holds (a cut-off WAV).

    libsndfile silently reads what is there; a data size of 0 or 0xFFFFFFFF means
    "unknown" (streamed writers) and is not a truncation.
    """
    if handle.samplerate < MIN_SAMPLE_RATE:
        raise AudioDecodeError(f"a sample rate of {handle.samplerate} Hz is not audio this package reads "
                               f"(at least {MIN_SAMPLE_RATE} Hz)", path=path)  # fmt: skip
    match = _SHORT_DATA_CHUNK.search(handle.extra_info or "")
    if match:
        declared, present = int(match.group(1)), int(match.group(2))
        if 0 < declared < 0xFFFFFFFF and present < declared:
            raise AudioDecodeError(
                f"truncated: the header declares {declared} bytes of samples, the file holds {present}", path=path
            )


def _check_finite(x: np.ndarray, path) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioDecodeError(f"{bad} samples are NaN or infinite", path=path)


def load_audio(path: "os.PathLike[str] | str", *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole file to mono float32 at ``sample_rate``.

    Any format and sample width soundfile reads (WAV 8/16/24/32-bit PCM and
    float, FLAC, OGG, ...); channels are averaged; the result is resampled once.

    Returns:
      float32 ``[n]``.

    Raises:
      AudioDecodeError: unreadable or truncated file, no samples, NaN/Inf samples.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(os.fspath(path)) as handle:
            _check_header(handle, path)
            data, sr = handle.read(dtype="float32", always_2d=True), handle.samplerate
    except AudioDecodeError:
        raise
    except Exception as exc:
        raise AudioDecodeError(f"not a readable audio file ({_reason(exc)})", path=path) from None
    mono = to_mono(data)
    _check_finite(mono, path)
    waveform = resample(mono, int(sr), sample_rate)
    if waveform.size == 0:  # no frames, or too few at an absurd header rate
        raise AudioDecodeError(f"holds no audio samples at {sample_rate} Hz", path=path)
    return waveform


def iter_audio_blocks(
    path: "os.PathLike[str] | str", *, sample_rate: int = SAMPLE_RATE, block_seconds: float = _STREAM_BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """Stream a long file as consecutive mono blocks at ``sample_rate``, in bounded memory.

    Each block is resampled on its own through one streaming soxr resampler, so
    the concatenation equals a one-shot resample up to filter state at the edges
    (which soxr carries across blocks).

    Yields:
      float32 ``[m]`` blocks; their total length is ``round(frames * sample_rate / file_rate)``
      within a few samples.

    Raises:
      AudioDecodeError: as :func:`load_audio` (unreadable, truncated, no samples, NaN/Inf),
        naming the file; a fault found mid-stream is raised when that block is read.
    """
    import soundfile as sf

    try:
        handle = sf.SoundFile(os.fspath(path))
    except Exception as exc:
        raise AudioDecodeError(f"not a readable audio file ({_reason(exc)})", path=path) from None
    with handle:
        _check_header(handle, path)
        rate = int(handle.samplerate)
        block = max(1, int(block_seconds * rate))
        stream, seen = None, 0
        if rate != sample_rate:
            import soxr

            stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="VHQ")
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioDecodeError(f"decoding failed ({_reason(exc)})", path=path) from None
            last = data.shape[0] < block
            mono = to_mono(data)
            _check_finite(mono, path)
            out = mono if stream is None else stream.resample_chunk(mono, last=last)
            if out.size:
                seen += out.size
                yield np.asarray(out, dtype=np.float32)
            if last and not seen:
                raise AudioDecodeError(f"holds no audio samples at {sample_rate} Hz", path=path)
            if last:
                return


def num_windows(num_samples: int, *, pad_short: bool = False) -> int:
    """How many 44032-sample windows a clip of ``num_samples`` yields.

    Model Maker's chunking: ``floor(n / 44032)`` non-overlapping windows, the
    remainder dropped. With ``pad_short``, a non-empty clip shorter than one
    window yields one (zero-padded) window instead of none.
    """
    if num_samples < 0:
        raise InvalidInputError(f"num_samples must be >= 0, got {num_samples}")
    count = num_samples // WAVEFORM_LENGTH
    return 1 if (count == 0 and pad_short and num_samples > 0) else count


def window_offsets(num_samples: int, *, pad_short: bool = False) -> np.ndarray:
    """Start sample of each window of :func:`num_windows`: ``[0, 44032, 88064, ...]``."""
    return np.arange(num_windows(num_samples, pad_short=pad_short), dtype=np.int64) * WAVEFORM_LENGTH


def tail_window_start(length: int, scored_end: int) -> Optional[int]:
    """Where a listener's last window starts, so that the end of a stream is heard too.

    A listener scores windows every hop; past the last of them may lie samples no window
    has ended on (up to a hop less one), and a word said there would go unheard. One more
    window, ending at the stream's last sample, covers them when they make at least one
    spectrogram frame (1024 samples): less is nothing the model could hear (a 1 s clip at
    44.1 kHz is 68 samples longer than a window, and stays one window).

    Args:
      length: samples in the stream (44.1 kHz).
      scored_end: where the last window scored ended (its start + 44032); 0 if none was.

    Returns:
      ``length - 44032``, or None when no window was scored (the stream is shorter than one:
      it is heard padded) or the last one ended less than a frame before ``length``.
    """
    if scored_end == 0 or length - scored_end < HOP_LENGTH:
        return None
    return length - WAVEFORM_LENGTH


def split_windows(waveform: np.ndarray, *, pad_short: bool = False) -> np.ndarray:
    """Cut a clip into non-overlapping model windows.

    Args:
      waveform: float32 ``[n]`` at 44.1 kHz.
      pad_short: zero-pad a clip shorter than 44032 samples to one window
        (padding is centred, so the speech stays in the middle of the window)
        instead of dropping it.

    Returns:
      float32 ``[num_windows(n), 44032]``.
    """
    x = np.asarray(waveform, dtype=np.float32).reshape(-1)
    count = num_windows(x.size, pad_short=pad_short)
    if x.size < WAVEFORM_LENGTH:
        if count == 0:
            return np.zeros((0, WAVEFORM_LENGTH), np.float32)
        return pad_to_window(x)[np.newaxis]
    return x[: count * WAVEFORM_LENGTH].reshape(count, WAVEFORM_LENGTH)


def pad_to_window(waveform: np.ndarray) -> np.ndarray:
    """The one rule for a clip shorter than a window: zeros on both sides, the clip centred.

    Args:
      waveform: float32 ``[n]``, ``n <= 44032``, at 44.1 kHz.

    Returns:
      float32 ``[44032]``: ``(44032 - n) // 2`` zeros, the clip, then the remaining zeros.
    """
    x = np.asarray(waveform, dtype=np.float32).reshape(-1)
    missing = WAVEFORM_LENGTH - x.size
    if missing < 0:
        raise InvalidInputError(f"a clip of {x.size} samples is longer than one window ({WAVEFORM_LENGTH})")
    return np.pad(x, (missing // 2, missing - missing // 2))


def noise_floor(*, seed: int = 0) -> np.ndarray:
    """The fixed noise floor every window gets at inference: float32 ``[44032]``, N(0, 1e-5^2).

    Model Maker added fresh Gaussian noise of :data:`NOISE_FLOOR_STDDEV` to every window, in
    training and in evaluation, so that no window reaches the front end as digital silence.
    Training here adds fresh noise too; inference adds this one draw (NumPy's PCG64 stream
    of ``seed``, :data:`NOISE_FLOOR_PERIOD` samples repeated over the window), so that a
    prediction is the same every time and the same in every exported model. Without it, the
    zeros of a padded or trimmed file sit hundreds of dB under the clip's loudest bin and
    stretch the spectrogram's z-score as nothing in training did.
    """
    rng = np.random.default_rng(seed)
    period = NOISE_FLOOR_STDDEV * rng.standard_normal(NOISE_FLOOR_PERIOD)
    return np.resize(period, WAVEFORM_LENGTH).astype(np.float32)
