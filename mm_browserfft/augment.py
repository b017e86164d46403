"""Augmentation: speed, placement, equaliser, rooms, noise, word fragments, masks.

Two kinds, both reproduced exactly by their seed:

* on one clip, in NumPy: float32 samples at 44.1 kHz (:data:`~mm_browserfft.frontend.SAMPLE_RATE`)
  and a :class:`numpy.random.Generator`. The pretraining recipe (``tools/pretrain``)
  builds its training windows from these; they are public so that users can make the
  same kinds of copies of their own clips;
* on a batch, in TensorFlow (``batch_*``): tensors inside ``tf.data`` and a
  ``tf.random.Generator``, drawn per window. They are what
  :class:`~mm_browserfft.spec.BrowserFftSpec` applies in training (its ``time_shift_s``,
  ``background_noise``, ``time_masks`` and ``freq_masks``).

Room simulation is generated in code (:func:`room_impulse_response`): a direct path,
a few early reflections and an exponentially decaying diffuse tail whose high
frequencies die faster than its low ones, at a chosen reverberation time and
direct-to-reverberant ratio. No recorded impulse response is needed.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .audio import load_audio, resample
from .data import list_audio_files
from .errors import InvalidInputError
from .frontend import SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = [
    "trim_silence",
    "place_in_window",
    "partial_word",
    "time_shift",
    "random_equalizer",
    "perturb_speed",
    "noise_cut",
    "mix_at_snr",
    "room_impulse_response",
    "reverberate",
    "batch_time_shift",
    "load_noise_bank",
    "batch_background_mix",
    "batch_masks",
]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) + 1e-9


def _voiced_span(x: np.ndarray, *, threshold_db: float, frame: int) -> Tuple[int, int]:
    """``(start, end)`` sample bounds of the frames of ``x`` within ``threshold_db`` of its loudest frame."""
    n = x.size // frame
    if n < 2:
        return 0, x.size
    energy = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-9
    active = np.flatnonzero(20 * np.log10(energy / energy.max()) > threshold_db)
    return int(active[0] * frame), int((active[-1] + 1) * frame)


def trim_silence(x: np.ndarray, *, threshold_db: float = -35.0, frame: int = 441) -> np.ndarray:
    """Cut leading and trailing frames quieter than ``threshold_db`` under the loudest frame.

    Args:
      x: float32 ``[n]``.
      threshold_db: frame RMS level (dB relative to the loudest frame) below which a frame is silence.
      frame: frame length in samples (10 ms at 44.1 kHz).

    Returns:
      float32 ``[m]``, ``m <= n``, a whole number of frames (``x`` itself if it has under two frames).
    """
    start, end = _voiced_span(x, threshold_db=threshold_db, frame=frame)
    return x[start:end]


def place_in_window(x: np.ndarray, rng: np.random.Generator, *, centred_shift: float) -> np.ndarray:
    """Put ``x`` into one zero window ``[44032]``.

    A clip shorter than the window lands at a uniform random offset; a longer one is
    cropped around its centre, the crop moved by up to ``centred_shift`` (a fraction of
    the window) either way.
    """
    out = np.zeros(WAVEFORM_LENGTH, np.float32)
    if x.size <= WAVEFORM_LENGTH:
        start = int(rng.integers(0, WAVEFORM_LENGTH - x.size + 1))
        out[start : start + x.size] = x
        return out
    max_shift = int(centred_shift * WAVEFORM_LENGTH)
    centre = (x.size - WAVEFORM_LENGTH) // 2 + int(rng.integers(-max_shift, max_shift + 1))
    start = int(np.clip(centre, 0, x.size - WAVEFORM_LENGTH))
    return x[start : start + WAVEFORM_LENGTH].copy()


def partial_word(
    clip: np.ndarray,
    fill: np.ndarray,
    rng: np.random.Generator,
    *,
    keep: Tuple[float, float] = (0.15, 0.45),
) -> np.ndarray:
    """A window holding only the start or the end of the word in ``clip``: a listener's window sliding onto or off it.

    The word is the span of ``clip`` within 35 dB of its loudest 10 ms (as
    :func:`trim_silence`). A uniform fraction in ``keep`` of it is kept: its start, at
    the end of the window, or its end, at the start (even odds). The rest of the window
    is ``fill`` scaled to the level of ``clip`` outside the word (its background), or
    silence where the clip has no background.

    Args:
      clip: float32 ``[n]``, one word.
      fill: float32 ``[>= 44032]``, background audio.
      keep: range of the kept fraction of the word, within (0, 1].

    Returns:
      float32 ``[44032]``.

    Raises:
      InvalidInputError: an empty clip (no word to cut).
    """
    if clip.size == 0:
        raise InvalidInputError("partial_word needs a clip holding a word, got 0 samples")
    frame = 441
    start, end = _voiced_span(clip, threshold_db=-35.0, frame=frame)
    word = clip[start:end]
    cut = min(WAVEFORM_LENGTH, max(1, int(word.size * rng.uniform(*keep))))
    outside = np.concatenate([clip[:start], clip[end:]])
    window = np.zeros(WAVEFORM_LENGTH, np.float32)
    if outside.size >= frame:
        window += fill[:WAVEFORM_LENGTH] * np.float32(_rms(outside) / _rms(fill[:WAVEFORM_LENGTH]))
    if rng.random() < 0.5:
        window[WAVEFORM_LENGTH - cut :] = word[:cut]
    else:
        window[:cut] = word[word.size - cut :]
    return window


def time_shift(window: np.ndarray, rng: np.random.Generator, *, max_seconds: float) -> np.ndarray:
    """Shift ``window`` ``[n]`` by a uniform whole number of samples within ``+-max_seconds``, zero-filling."""
    s = int(rng.integers(-max_seconds * SAMPLE_RATE, max_seconds * SAMPLE_RATE + 1))
    out = np.zeros_like(window)
    if s >= 0:
        out[s:] = window[: window.size - s]
    else:
        out[:s] = window[-s:]
    return out


def random_equalizer(x: np.ndarray, rng: np.random.Generator, *, max_db: float = 8.0) -> np.ndarray:
    """Filter ``x`` ``[n]`` with a smooth random gain curve over 0-22 kHz.

    The curve interpolates six gains drawn uniformly in ``+-max_db`` dB: a cheap
    microphone, a phone speaker, a hand over the mouth.
    """
    if x.size == 0:
        return np.zeros(0, np.float32)
    n_fft = 1 << int(np.ceil(np.log2(x.size)))  # a power of two: fast, and the wrap-around stays tiny
    spectrum = np.fft.rfft(x, n=n_fft)
    knots = rng.uniform(-max_db, max_db, size=6)
    curve_db = np.interp(np.linspace(0, 1, spectrum.size), np.linspace(0, 1, knots.size), knots)
    return np.fft.irfft(spectrum * 10 ** (curve_db / 20), n=n_fft)[: x.size].astype(np.float32)


def perturb_speed(x: np.ndarray, rng: np.random.Generator, *, max_factor: float) -> np.ndarray:
    """Resample ``x`` by a log-uniform factor in ``[1/max_factor, max_factor]``.

    Tempo, pitch and formants move together (Ko et al. 2015's speed perturbation).
    Returns float32 ``[round(n * factor)]`` (about).
    """
    factor = float(np.exp(rng.uniform(-np.log(max_factor), np.log(max_factor))))
    return resample(x, SAMPLE_RATE, int(round(SAMPLE_RATE * factor)))


def noise_cut(noises: Sequence[np.ndarray], rng: np.random.Generator, *, length: int = WAVEFORM_LENGTH) -> np.ndarray:
    """A random ``[length]`` cut of a random recording in ``noises`` (each longer than ``length``), unit RMS."""
    noise = noises[int(rng.integers(len(noises)))]
    start = int(rng.integers(0, noise.size - length))
    cut = noise[start : start + length]
    return cut / (np.sqrt(np.mean(cut**2)) + 1e-9)


def mix_at_snr(x: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + other`` with ``other`` scaled to ``snr_db`` dB under ``x`` (by RMS). Both ``[n]``."""
    return (x + other * (_rms(x) / _rms(other)) * 10 ** (-snr_db / 20)).astype(np.float32)


def room_impulse_response(
    rng: np.random.Generator,
    *,
    rt60_s: Tuple[float, float] = (0.15, 0.9),
    drr_db: Tuple[float, float] = (-3.0, 12.0),
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """A synthetic room impulse response.

    A unit direct path at sample 0; 3 to 8 early reflections 1.5-40 ms later (random
    sign, amplitude 0.15-0.6); and a diffuse tail of Gaussian noise under a 60 dB
    exponential decay over the reverberation time, low-passed more and more as it
    decays (air and walls absorb high frequencies first). The tail's energy is set so
    that the direct-to-reverberant energy ratio is ``drr_db``.

    Args:
      rng: the random source.
      rt60_s: range of the reverberation time (a log-uniform draw), seconds.
      drr_db: range of the direct-to-reverberant ratio (a uniform draw), dB.
      sample_rate: Hz.

    Returns:
      float32 ``[m]``, ``m = ceil(1.1 * rt60 * sample_rate)``, with ``ir[0] == 1``.
    """
    rt60 = float(np.exp(rng.uniform(np.log(rt60_s[0]), np.log(rt60_s[1]))))
    length = int(np.ceil(1.1 * rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / rt60)  # ln(1000): 60 dB of amplitude at rt60
    smooth = np.convolve(tail, np.ones(6) / 6, mode="same")  # about a 5 kHz low-pass at 44.1 kHz
    bright = np.exp(-t / (0.3 * rt60))
    tail = bright * tail + (1 - bright) * smooth
    onset = int(0.0015 * sample_rate)
    tail[:onset] = 0.0  # the diffuse field arrives after the direct sound
    early = np.zeros(length)
    for delay in rng.uniform(0.0015, 0.040, size=int(rng.integers(3, 9))):
        early[min(int(delay * sample_rate), length - 1)] += rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.6)
    reverberant = early + tail
    drr = 10 ** (rng.uniform(*drr_db) / 10)
    reverberant *= np.sqrt(1.0 / (drr * float(np.sum(reverberant**2)) + 1e-12))
    reverberant[0] = 1.0
    return reverberant.astype(np.float32)


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``x`` ``[n]`` convolved with ``ir`` ``[m]``, cut to ``[n]`` and scaled back to ``x``'s RMS."""
    n_fft = 1 << int(np.ceil(np.log2(x.size + ir.size - 1)))
    wet = np.fft.irfft(np.fft.rfft(x, n=n_fft) * np.fft.rfft(ir, n=n_fft), n=n_fft)[: x.size]
    return (wet * (_rms(x) / _rms(wet))).astype(np.float32)


def batch_time_shift(x, rng, *, max_samples: int):
    """Shift each window of ``x`` by a uniform whole number of samples within ``+-max_samples``, zero-filling.

    Args:
      x: float32 tensor ``[batch, 44032]``.
      rng: a ``tf.random.Generator``.
      max_samples: the largest shift either way, in samples.

    Returns:
      float32 tensor ``[batch, 44032]``.
    """
    import tensorflow as tf

    shift = rng.uniform([tf.shape(x)[0], 1], -max_samples, max_samples + 1, dtype=tf.int32)
    source = tf.range(WAVEFORM_LENGTH)[None, :] - shift
    inside = tf.cast((source >= 0) & (source < WAVEFORM_LENGTH), tf.float32)
    return tf.gather(x, tf.clip_by_value(source, 0, WAVEFORM_LENGTH - 1), batch_dims=1) * inside


def load_noise_bank(folder: str) -> np.ndarray:
    """The audio files of ``folder``, concatenated: float32 ``[n]`` at 44.1 kHz, ``n >= 44032``.

    The bank :func:`batch_background_mix` cuts from. :class:`~mm_browserfft.spec.BrowserFftSpec`
    loads it when it is made, so that a bad folder is named before any training.

    Raises:
      DatasetError: the folder is missing, or holds no audio file.
      AudioDecodeError: a file cannot be decoded.
      InvalidInputError: the files together are shorter than one window.
    """
    parts = [load_audio(path) for path in list_audio_files(folder)]
    bank = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if bank.size < WAVEFORM_LENGTH:
        raise InvalidInputError(f"background noise must hold at least {WAVEFORM_LENGTH} samples at 44.1 kHz "
                                f"(one window), got {bank.size}", path=folder)  # fmt: skip
    return bank


def batch_background_mix(x, bank, rng, *, snr_db: Tuple[float, float], probability: float):
    """Mix a random cut of ``bank`` into a ``probability`` share of the windows of ``x``, each at its own SNR.

    Args:
      x: float32 tensor ``[batch, 44032]``.
      bank: float32 tensor ``[n]``, ``n >= 44032``: background recordings, concatenated.
      rng: a ``tf.random.Generator``.
      snr_db: ``(low, high)``: each window's signal-to-noise ratio in dB (by RMS), drawn uniformly.
      probability: the chance that a window gets noise at all.

    Returns:
      float32 tensor ``[batch, 44032]``.
    """
    import tensorflow as tf

    batch = tf.shape(x)[0]
    starts = rng.uniform([batch], 0, tf.size(bank, out_type=tf.int64) - WAVEFORM_LENGTH + 1, dtype=tf.int64)
    noise = tf.gather(bank, starts[:, None] + tf.range(WAVEFORM_LENGTH, dtype=tf.int64)[None, :])
    low, high = snr_db
    snr = rng.uniform([batch, 1], low, high) if high > low else tf.fill([batch, 1], float(low))
    rms = lambda v: tf.sqrt(tf.reduce_mean(tf.square(v), axis=1, keepdims=True))  # noqa: E731
    gain = rms(x) / (rms(noise) + 1e-12) * tf.pow(10.0, -snr / 20.0)
    on = tf.cast(rng.uniform([batch, 1]) < probability, tf.float32)
    return x + on * gain * noise


def batch_masks(spectrograms, rng, *, count: int, max_width: int, axis: int):
    """Zero ``count`` random stripes of width ``0..max_width`` of each spectrogram (SpecAugment's masks).

    Args:
      spectrograms: float32 tensor ``[batch, 43, 232, 1]``.
      rng: a ``tf.random.Generator``.
      count: stripes per spectrogram.
      max_width: the widest stripe, in frames (``axis=1``, time) or bins (``axis=2``, frequency).
      axis: 1 or 2.

    Returns:
      float32 tensor ``[batch, 43, 232, 1]``.
    """
    import tensorflow as tf

    size = spectrograms.shape[axis]
    batch = tf.shape(spectrograms)[0]
    keep = tf.ones([batch, size])
    for _ in range(count):
        width = rng.uniform([batch, 1], 0, max_width + 1, dtype=tf.int32)
        start = tf.cast(tf.floor(rng.uniform([batch, 1]) * tf.cast(size - width + 1, tf.float32)), tf.int32)
        pos = tf.range(size)[None, :]
        keep *= 1.0 - tf.cast((pos >= start) & (pos < start + width), tf.float32)
    shape = [-1, size, 1, 1] if axis == 1 else [-1, 1, size, 1]
    return spectrograms * tf.reshape(keep, shape)
