"""Build the pretraining set: augmented spectrograms of words, and the teacher's embeddings of the same audio.

Sources (every clip resampled to 44.1 kHz by :func:`mm_browserfft.audio.load_audio`):

* real Speech Commands clips under ``<data>/speech_commands`` and
  ``<data>/speech_commands_v0.01_sample``; a clip whose speaker is held out
  (:func:`mm_browserfft.speakers.is_heldout_speaker`) goes to the validation set,
  unaugmented; the others get ``real_copies`` augmented copies each;
* new voices of the real training clips ``<work>/voices/<folder>/*.flac`` (see
  ``voices.py``), ``voice_copies`` augmented copies each;
* synthetic clips ``<work>/synth/<word>/*.flac`` (see ``synth.py``), ``synth_copies`` each;
* the noise class ``_silence_``: training ``_silence_`` clips plus random cuts of
  the recordings in ``<data>/background_noise``.

Labels are words (one class per word, real and synthetic merged; ``_unknown_/<word>_...``
files are labelled with their word). Augmentation, all in the waveform domain:
speed/vocal-tract perturbation by resampling, random placement in the 44032-sample
window, a smooth random equaliser, gain, background noise at 0-30 dB SNR and a
low-level hiss. Every augmented window is also heard by the teacher
(``teacher.py``: the same audio at 16 kHz). Outputs in ``<work>/prep/``:
``train_x.npy`` ``[n, 43, 232]`` float16, ``train_t.npy`` ``[n, 192]`` float16
(the teacher's pooled embeddings), ``train_y.npy`` int32, ``train_real.npy`` bool, the same
``val_*`` arrays, and ``labels.json``. Written through memory maps, so RAM stays small.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mm_browserfft.audio import load_audio, resample, split_windows
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH, spectrogram
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

from .teacher import TEACHER_DIM

__all__ = ["SILENCE", "Clip", "real_clips", "synth_clips", "voice_clips", "augment", "prepare"]

SILENCE = "_silence_"
"""The noise / no-speech class."""

Clip = Tuple[str, str]
"""``(path, word)``."""

_NOISE_DIR = "background_noise"
_SPEECH_DIRS = ("speech_commands", "speech_commands_v0.01_sample")


def _word_of(path: str) -> str:
    folder = os.path.basename(os.path.dirname(path))
    if folder == "_unknown_":
        return os.path.basename(path).split("_")[0]
    return folder


def real_clips(data_dir: str) -> Tuple[List[Clip], List[Clip]]:
    """Real clips split by speaker: ``(train, heldout)`` lists of ``(path, word)``."""
    train: List[Clip] = []
    heldout: List[Clip] = []
    for sub in _SPEECH_DIRS:
        for path in sorted(glob.glob(os.path.join(data_dir, sub, "*", "*.flac"))):
            clip = (path, _word_of(path))
            (heldout if is_heldout_speaker(speaker_id(path)) else train).append(clip)
    return train, heldout


def synth_clips(synth_dir: str) -> List[Clip]:
    """Synthetic clips ``<synth_dir>/<word>/*.flac`` as ``(path, word)``."""
    paths = sorted(glob.glob(os.path.join(synth_dir, "*", "*.flac")))
    return [(p, os.path.basename(os.path.dirname(p))) for p in paths]


def voice_clips(voices_dir: str) -> List[Clip]:
    """New voices ``<voices_dir>/<folder>/*.flac`` (``voices.py``) as ``(path, word)``."""
    return [(p, _word_of(p)) for p in sorted(glob.glob(os.path.join(voices_dir, "*", "*.flac")))]


def _trim(x: np.ndarray, *, threshold_db: float = -35.0) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold_db`` below the peak envelope."""
    frame = 441
    n = x.size // frame
    if n < 2:
        return x
    energy = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-9
    active = np.flatnonzero(20 * np.log10(energy / energy.max()) > threshold_db)
    return x[active[0] * frame : (active[-1] + 1) * frame]


def _place(x: np.ndarray, rng: np.random.Generator, *, centred_shift: float) -> np.ndarray:
    """Put ``x`` into one zero window ``[44032]``.

    A clip shorter than the window lands at a uniform random offset; a longer one is
    cropped around its centre, shifted by up to ``centred_shift`` of the window.
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


def _shift(window: np.ndarray, rng: np.random.Generator, *, max_seconds: float) -> np.ndarray:
    """Shift a window ``[44032]`` in time by up to ``max_seconds`` either way, zero-filling."""
    s = int(rng.integers(-max_seconds * SAMPLE_RATE, max_seconds * SAMPLE_RATE + 1))
    out = np.zeros_like(window)
    if s >= 0:
        out[s:] = window[: window.size - s]
    else:
        out[:s] = window[-s:]
    return out


def _random_eq(x: np.ndarray, rng: np.random.Generator, *, max_db: float = 8.0) -> np.ndarray:
    """Filter ``x`` with a smooth random gain curve (a few bumps, +-``max_db``) over 0-22 kHz."""
    n_fft = 1 << int(np.ceil(np.log2(x.size)))  # a power of two: fast, and the wrap-around stays tiny
    spectrum = np.fft.rfft(x, n=n_fft)
    knots = rng.uniform(-max_db, max_db, size=6)
    curve_db = np.interp(np.linspace(0, 1, spectrum.size), np.linspace(0, 1, knots.size), knots)
    return np.fft.irfft(spectrum * 10 ** (curve_db / 20), n=n_fft)[: x.size].astype(np.float32)


def _perturb_speed(x: np.ndarray, rng: np.random.Generator, *, max_factor: float) -> np.ndarray:
    """Resample by a factor in ``[1/max_factor, max_factor]``: tempo, pitch and formants move together."""
    factor = float(np.exp(rng.uniform(-np.log(max_factor), np.log(max_factor))))
    return resample(x, SAMPLE_RATE, int(round(SAMPLE_RATE * factor)))


def _noise_cut(noises: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A random ``[44032]`` cut of a random background recording, unit RMS."""
    noise = noises[int(rng.integers(len(noises)))]
    start = int(rng.integers(0, noise.size - WAVEFORM_LENGTH))
    cut = noise[start : start + WAVEFORM_LENGTH]
    return cut / (np.sqrt(np.mean(cut**2)) + 1e-9)


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    noises: Sequence[np.ndarray],
    *,
    synthetic: bool,
    noise_probability: float = 0.85,
    max_snr_db: float = 30.0,
) -> np.ndarray:
    """One augmented window of one spoken word.

    Args:
      x: float32 ``[n]`` at 44.1 kHz: a synthetic word (any length) or a real clip.
      rng: the random source.
      noises: background recordings, float32 ``[m]`` each (m > 44032).
      synthetic: trim and place the word at a random offset (else shift a real
        clip by up to 0.15 s).
      noise_probability: chance of background noise at a uniform 0..``max_snr_db`` dB SNR.

    Returns:
      float32 ``[44032]``.
    """
    x = _perturb_speed(x, rng, max_factor=1.18 if synthetic else 1.1)
    if synthetic:
        window = _place(_trim(x), rng, centred_shift=0.05)
    else:
        window = _shift(split_windows(x, pad_short=True)[0], rng, max_seconds=0.15)
    if rng.random() < 0.7:
        window = _random_eq(window, rng)
    rms = float(np.sqrt(np.mean(window**2))) + 1e-9
    window = window / rms * 0.1 * float(np.exp(rng.uniform(-1.5, 1.0)))
    speech_rms = float(np.sqrt(np.mean(window**2)))
    if rng.random() < noise_probability:
        snr_db = rng.uniform(0.0, max_snr_db)
        window = window + _noise_cut(noises, rng) * speech_rms * 10 ** (-snr_db / 20)
    hiss_db = rng.uniform(35.0, 60.0)
    window = window + rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32) * speech_rms * 10 ** (-hiss_db / 20)
    return np.clip(window, -1.0, 1.0).astype(np.float32)


def _noise_window(x: Optional[np.ndarray], rng: np.random.Generator, noises: Sequence[np.ndarray]) -> np.ndarray:
    """One window of the noise class: a ``_silence_`` clip (or a background cut), maybe mixed, random gain."""
    if x is None:
        window = _noise_cut(noises, rng)
    else:
        window = _shift(split_windows(x, pad_short=True)[0], rng, max_seconds=0.1)
    if rng.random() < 0.5:
        window = window + _noise_cut(noises, rng) * float(np.sqrt(np.mean(window**2))) * rng.uniform(0.0, 1.0)
    if rng.random() < 0.5:
        window = _random_eq(window, rng)
    window = window / (np.sqrt(np.mean(window**2)) + 1e-9) * 0.1 * float(np.exp(rng.uniform(-4.0, 1.0)))
    window = window + rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32) * 1e-4
    return np.clip(window, -1.0, 1.0).astype(np.float32)


_NOISES: List[np.ndarray] = []
_TEACHER: list = []


def _init_worker(noise_paths: Sequence[str]) -> None:
    from .teacher import Teacher

    _NOISES[:] = [load_audio(p) for p in noise_paths]
    _TEACHER[:] = [Teacher()]


def _job(job: Tuple[Optional[str], bool, int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Spectrograms ``[copies, 43, 232]`` and teacher embeddings ``[copies, 192]`` (float16) of one job.

    ``job = (path, synthetic, copies, seed, index)``;

    ``copies == 0`` means one unaugmented window (validation); ``path is None`` a pure background cut;
    a path in a ``_silence_`` folder a noise-class window.
    """
    path, synthetic, copies, seed, index = job
    rng = np.random.default_rng([seed, index])
    x = None if path is None else load_audio(path)
    if copies == 0:
        windows = split_windows(x, pad_short=True)[:1]
    elif path is None or os.path.basename(os.path.dirname(path)) == SILENCE:
        windows = np.stack([_noise_window(x, rng, _NOISES) for _ in range(copies)])
    else:
        windows = np.stack([augment(x, rng, _NOISES, synthetic=synthetic) for _ in range(copies)])
    targets = np.stack([_TEACHER[0].embed(w) for w in windows])
    return spectrogram(windows)[..., 0].astype(np.float16), targets.astype(np.float16)


def _write(out_dir: str, name: str, jobs: List[Tuple], labels: List[int], pool: Pool) -> None:
    counts = [max(j[2], 1) for j in jobs]
    total = int(sum(counts))
    x = np.lib.format.open_memmap(os.path.join(out_dir, f"{name}_x.npy"), "w+", np.float16, (total, 43, 232))
    t = np.lib.format.open_memmap(os.path.join(out_dir, f"{name}_t.npy"), "w+", np.float16, (total, TEACHER_DIM))
    y = np.empty(total, np.int32)
    real = np.empty(total, bool)
    row = 0
    for job, label, (spec, target) in zip(jobs, labels, pool.imap(_job, jobs, chunksize=16)):
        x[row : row + len(spec)] = spec
        t[row : row + len(spec)] = target
        y[row : row + len(spec)] = label
        real[row : row + len(spec)] = not job[1]
        row += len(spec)
        if row // 5000 != (row - len(spec)) // 5000:
            print(f"prepare {name}: {row}/{total} rows", flush=True)
    x.flush()
    t.flush()
    del x, t
    np.save(os.path.join(out_dir, f"{name}_y.npy"), y)
    np.save(os.path.join(out_dir, f"{name}_real.npy"), real)


def prepare(
    data_dir: str,
    work_dir: str,
    *,
    real_copies: int = 6,
    voice_copies: int = 2,
    synth_copies: int = 3,
    background_cuts: int = 2000,
    seed: int = 0,
    workers: int = 2,
) -> Dict[str, int]:
    """Write the training and validation arrays to ``<work_dir>/prep`` (see the module docstring).

    Returns:
      sizes: ``{"train": rows, "val": rows, "classes": n}``.
    """
    train_real, val_real = real_clips(data_dir)
    synth = synth_clips(os.path.join(work_dir, "synth"))
    voices = voice_clips(os.path.join(work_dir, "voices"))
    words = sorted({w for _, w in train_real + val_real + synth + voices} - {SILENCE})
    labels = [SILENCE] + words
    index = {w: i for i, w in enumerate(labels)}
    out_dir = os.path.join(work_dir, "prep")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "labels.json"), "w") as f:
        json.dump(labels, f)

    train_jobs = [(p, False, real_copies, seed, i) for i, (p, _) in enumerate(train_real)]
    train_jobs += [(p, False, voice_copies, seed, 2_000_000 + i) for i, (p, _) in enumerate(voices)]
    train_jobs += [(p, True, synth_copies, seed, 100_000 + i) for i, (p, _) in enumerate(synth)]
    train_jobs += [(None, False, 1, seed, 1_000_000 + i) for i in range(background_cuts)]
    train_labels = [index[w] for _, w in train_real + voices + synth] + [index[SILENCE]] * background_cuts
    val_jobs = [(p, False, 0, seed, 0) for p, _ in val_real]
    val_labels = [index[w] for _, w in val_real]

    noise_paths = sorted(glob.glob(os.path.join(data_dir, _NOISE_DIR, "*.flac")))
    with Pool(workers, initializer=_init_worker, initargs=(noise_paths,)) as pool:
        _write(out_dir, "val", val_jobs, val_labels, pool)
        _write(out_dir, "train", train_jobs, train_labels, pool)
    return {"train": int(sum(max(j[2], 1) for j in train_jobs)), "val": len(val_jobs), "classes": len(labels)}


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="Speech Commands subset (default: $MM_BROWSERFFT_DATA)")
    parser.add_argument("--work", default="/work/pretrain_work")
    parser.add_argument("--real-copies", type=int, default=6)
    parser.add_argument("--voice-copies", type=int, default=2)
    parser.add_argument("--synth-copies", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from mm_browserfft.datasets import data_dir

    sizes = prepare(
        args.data or os.fspath(data_dir()), args.work, real_copies=args.real_copies, voice_copies=args.voice_copies,
        synth_copies=args.synth_copies, seed=args.seed, workers=args.workers,
    )  # fmt: skip
    print(f"prepare: {sizes}")


if __name__ == "__main__":
    main()
