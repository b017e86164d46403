"""Build the pretraining set: augmented spectrograms of words, and the teacher's embeddings of the same audio.

Sources (every clip resampled to 44.1 kHz by :func:`mm_browserfft.audio.load_audio`):

* real Speech Commands clips under ``<data>/speech_commands`` and
  ``<data>/speech_commands_v0.01_sample``; a clip whose speaker is held out
  (:func:`mm_browserfft.speakers.is_heldout_speaker`) goes to the validation set,
  unaugmented; the others get ``real_copies`` augmented copies each;
* new voices of the real training clips ``<work>/voices/<folder>/*.flac`` (see
  ``voices.py``), ``voice_copies`` augmented copies each;
* synthetic clips ``<work>/synth/<word>/*.flac`` (see ``synth.py``), ``synth_copies`` each;
* neural synthetic clips ``<work>/kokoro/<word>/*.flac`` (see ``kokoro.py``), ``kokoro_copies`` each
  (the part ``kokoro``);
* synthetic clips of more words ``<work>/vocab/<word>/*.flac`` (``synth.py --vocab-words``),
  ``vocab_copies`` each (the part ``vocab``): their words are classes of their own, numbered after
  every other word, so adding them leaves the other parts' labels as they were;
* the noise class ``_silence_``: training ``_silence_`` clips plus random cuts of
  the recordings in ``<data>/background_noise``.

Labels are words (one class per word, real and synthetic merged; ``_unknown_/<word>_...``
files are labelled with their word). Augmentation, all in the waveform domain:
speed/vocal-tract perturbation by resampling, random placement in the 44032-sample
window, a smooth random equaliser, gain, background noise at 0-30 dB SNR and a
low-level hiss. Every augmented window is also heard by the teacher
(``teacher.py``: the same audio at 16 kHz). Outputs in ``<work>/prep/``:
``train_x.npy`` ``[n, 43, 232]`` float16, ``train_t.npy`` ``[n, 9, 96]`` float16
(the teacher's embeddings span by span; ``train.py`` pools them or not), ``train_y.npy`` int32, ``train_real.npy`` bool, the same
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

from mm_browserfft.audio import load_audio, split_windows
from mm_browserfft.augment import (
    mix_at_snr,
    noise_cut,
    perturb_speed,
    place_in_window,
    random_equalizer,
    reverberate,
    room_impulse_response,
    time_shift,
    trim_silence,
)
from mm_browserfft.errors import DatasetError
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH, spectrogram
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

from .teacher import EMBEDDING_DIM, SPANS

__all__ = [
    "SILENCE", "TRAINING_PARTS", "class_labels", "Clip", "real_clips", "synth_clips", "voice_clips", "augment", "augment_in_room",
    "word_pair_window", "prepare",
]  # fmt: skip

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


def check_inputs(data_dir: str) -> None:
    """Refuse, before any work, a data folder without clips or background recordings, or a missing teacher.

    Raises:
      DatasetError: ``data_dir`` lacks ``speech_commands/<word>/*.flac`` or ``background_noise/*.flac``.
      RuntimeError: the teacher's wheel is not installed (the recipe's requirements).
    """
    from .teacher import check_teacher

    if not glob.glob(os.path.join(data_dir, _SPEECH_DIRS[0], "*", "*.flac")):
        raise DatasetError(f"no clips in {_SPEECH_DIRS[0]}/<word>/*.flac", path=data_dir)
    if not glob.glob(os.path.join(data_dir, _NOISE_DIR, "*.flac")):
        raise DatasetError(f"no background recordings in {_NOISE_DIR}/*.flac", path=data_dir)
    check_teacher()


def synth_clips(synth_dir: str) -> List[Clip]:
    """Synthetic clips ``<synth_dir>/<word>/*.flac`` as ``(path, word)``."""
    paths = sorted(glob.glob(os.path.join(synth_dir, "*", "*.flac")))
    return [(p, os.path.basename(os.path.dirname(p))) for p in paths]


def voice_clips(voices_dir: str) -> List[Clip]:
    """New voices ``<voices_dir>/<folder>/*.flac`` (``voices.py``) as ``(path, word)``."""
    return [(p, _word_of(p)) for p in sorted(glob.glob(os.path.join(voices_dir, "*", "*.flac")))]


def _finish(window: np.ndarray, rng: np.random.Generator, noises: Sequence[np.ndarray], *,
            noise_probability: float, max_snr_db: float) -> np.ndarray:
    """Equaliser (70 %), a random level, background noise at 0..``max_snr_db`` dB SNR, a hiss: ``[44032]``."""
    if rng.random() < 0.7:
        window = random_equalizer(window, rng)
    rms = float(np.sqrt(np.mean(window**2))) + 1e-9
    window = window / rms * 0.1 * float(np.exp(rng.uniform(-1.5, 1.0)))
    speech_rms = float(np.sqrt(np.mean(window**2)))
    if rng.random() < noise_probability:
        snr_db = rng.uniform(0.0, max_snr_db)
        window = window + noise_cut(noises, rng) * speech_rms * 10 ** (-snr_db / 20)
    hiss_db = rng.uniform(35.0, 60.0)
    window = window + rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32) * speech_rms * 10 ** (-hiss_db / 20)
    return np.clip(window, -1.0, 1.0).astype(np.float32)


def _speech_window(x: np.ndarray, rng: np.random.Generator, *, synthetic: bool) -> np.ndarray:
    """Speed-perturbed ``x`` in one window: a trimmed synthetic word placed at random, a real clip shifted."""
    x = perturb_speed(x, rng, max_factor=1.18 if synthetic else 1.1)
    if synthetic:
        return place_in_window(trim_silence(x), rng, centred_shift=0.05)
    return time_shift(split_windows(x, pad_short=True)[0], rng, max_seconds=0.15)


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
    window = _speech_window(x, rng, synthetic=synthetic)
    return _finish(window, rng, noises, noise_probability=noise_probability, max_snr_db=max_snr_db)


def augment_in_room(
    x: np.ndarray, other: np.ndarray, rng: np.random.Generator, noises: Sequence[np.ndarray]
) -> np.ndarray:
    """One window of a real word said in a simulated room, sometimes over another word.

    ``x`` and ``other`` are float32 clips at 44.1 kHz. The word is speed-perturbed and
    shifted as in :func:`augment`, convolved with a :func:`~mm_browserfft.augment.room_impulse_response`
    (RT60 0.15-0.9 s), and in 30 % of windows ``other`` (another speaker's word, in the same
    room) is mixed 6-20 dB under it; then equaliser, level, noise and hiss as in :func:`augment`.
    Returns float32 ``[44032]``.
    """
    window = reverberate(_speech_window(x, rng, synthetic=False), room_impulse_response(rng))
    if rng.random() < 0.3:
        babble = reverberate(_speech_window(other, rng, synthetic=False), room_impulse_response(rng))
        window = mix_at_snr(window, babble, float(rng.uniform(6.0, 20.0)))
    return _finish(window, rng, noises, noise_probability=0.85, max_snr_db=30.0)


def word_pair_window(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, noises: Sequence[np.ndarray]) -> np.ndarray:
    """A random one-window cut of two words said one after the other: fragments, boundaries, both words.

    ``a`` and ``b`` (float32 at 44.1 kHz) are speed-perturbed and trimmed, joined with a
    gap of -50..350 ms (negative: they overlap), padded by 0.4 s of silence on each side,
    and cut at a uniform random offset, so that a window holds the end of one word, the
    start of the next, both, or one whole. Half of them are put in a simulated room.
    These windows have no word label; the teacher's embedding is their only target.
    Returns float32 ``[44032]``.
    """
    a = trim_silence(perturb_speed(a, rng, max_factor=1.1))
    b = trim_silence(perturb_speed(b, rng, max_factor=1.1))
    b = b * float(np.exp(rng.uniform(-0.7, 0.7)))
    gap = int(rng.uniform(-0.05, 0.35) * SAMPLE_RATE)
    pad = int(0.4 * SAMPLE_RATE)
    start_b = pad + a.size + max(gap, -min(a.size, b.size) // 2)
    seq = np.zeros(start_b + b.size + pad, np.float32)
    seq[pad : pad + a.size] += a
    seq[start_b : start_b + b.size] += b
    window = place_in_window(seq, rng, centred_shift=0.0) if seq.size <= WAVEFORM_LENGTH else None
    if window is None:
        offset = int(rng.integers(0, seq.size - WAVEFORM_LENGTH + 1))
        window = seq[offset : offset + WAVEFORM_LENGTH].copy()
    if not np.any(window):
        window = place_in_window(a[:WAVEFORM_LENGTH], rng, centred_shift=0.0)
    if rng.random() < 0.5:
        window = reverberate(window, room_impulse_response(rng))
    return _finish(window, rng, noises, noise_probability=0.7, max_snr_db=30.0)


def _noise_window(x: Optional[np.ndarray], rng: np.random.Generator, noises: Sequence[np.ndarray]) -> np.ndarray:
    """One window of the noise class: a ``_silence_`` clip (or a background cut), maybe mixed, random gain."""
    if x is None:
        window = noise_cut(noises, rng)
    else:
        window = time_shift(split_windows(x, pad_short=True)[0], rng, max_seconds=0.1)
    if rng.random() < 0.5:
        window = window + noise_cut(noises, rng) * float(np.sqrt(np.mean(window**2))) * rng.uniform(0.0, 1.0)
    if rng.random() < 0.5:
        window = random_equalizer(window, rng)
    window = window / (np.sqrt(np.mean(window**2)) + 1e-9) * 0.1 * float(np.exp(rng.uniform(-4.0, 1.0)))
    window = window + rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32) * 1e-4
    return np.clip(window, -1.0, 1.0).astype(np.float32)


_NOISES: List[np.ndarray] = []
_TEACHER: list = []


def _init_worker(noise_paths: Sequence[str]) -> None:
    from .teacher import Teacher

    _NOISES[:] = [load_audio(p) for p in noise_paths]
    _TEACHER[:] = [Teacher()]


Job = Tuple[str, Tuple[Optional[str], ...], int, int, int]
"""``(kind, paths, copies, seed, index)``; kinds: ``val`` (one unaugmented window), ``word``,
``synthetic``, ``noise`` (paths ``(None,)``: a background cut), ``room`` (paths: the word and
a babble word) and ``pair`` (two words)."""

_KEEPS_REAL = {"val", "word", "noise", "room", "pair"}


def _windows(kind: str, clips: Sequence[Optional[np.ndarray]], copies: int, rng: np.random.Generator) -> np.ndarray:
    """The ``[copies, 44032]`` windows of one job (``[1, 44032]`` for ``val``)."""
    x = clips[0]
    if kind == "val":
        return split_windows(x, pad_short=True)[:1]
    if kind == "noise":
        return np.stack([_noise_window(x, rng, _NOISES) for _ in range(copies)])
    if kind == "room":
        return np.stack([augment_in_room(x, clips[1], rng, _NOISES) for _ in range(copies)])
    if kind == "pair":
        return np.stack([word_pair_window(x, clips[1], rng, _NOISES) for _ in range(copies)])
    return np.stack([augment(x, rng, _NOISES, synthetic=kind == "synthetic") for _ in range(copies)])


def _job(job: Job) -> Tuple[np.ndarray, np.ndarray]:
    """Spectrograms ``[rows, 43, 232]`` and teacher embeddings ``[rows, SPANS, 96]`` (float16) of one job."""
    kind, paths, copies, seed, index = job
    rng = np.random.default_rng([seed, index])
    clips = [None if p is None else load_audio(p) for p in paths]
    windows = _windows(kind, clips, copies, rng)
    targets = np.stack([_TEACHER[0].spans(w) for w in windows])
    return spectrogram(windows)[..., 0].astype(np.float16), targets.astype(np.float16)


def _write(out_dir: str, name: str, jobs: List[Job], labels: List[int], sources: List[Tuple[int, int]], pool) -> int:
    """Run ``jobs`` and write the part ``name``: ``{name}_x/_t/_y/_real/_src.npy``; returns its rows.

    ``labels`` is each job's word index (-1: no word label, teacher target only) and
    ``sources`` the word indices of the clips it was made of (for holding words out).
    """
    counts = [max(j[2], 1) for j in jobs]
    total = int(sum(counts))
    final = {key: os.path.join(out_dir, f"{name}_{key}.npy") for key in PART_ARRAYS}
    partial = {key: os.path.join(out_dir, f".{name}_{key}.partial.npy") for key in PART_ARRAYS}
    try:
        x = np.lib.format.open_memmap(partial["x"], "w+", np.float16, (total, 43, 232))
        t = np.lib.format.open_memmap(partial["t"], "w+", np.float16, (total, SPANS, EMBEDDING_DIM))
        y = np.empty(total, np.int32)
        real = np.empty(total, bool)
        src = np.empty((total, 2), np.int32)
        row = 0
        for job, label, source, (spec, target) in zip(jobs, labels, sources, pool.imap(_job, jobs, chunksize=16)):
            rows = slice(row, row + len(spec))
            x[rows], t[rows], y[rows], real[rows], src[rows] = spec, target, label, job[0] in _KEEPS_REAL, source
            row += len(spec)
            if row // 5000 != (row - len(spec)) // 5000:
                print(f"prepare {name}: {row}/{total} rows", flush=True)
        x.flush()
        t.flush()
        del x, t
        np.save(partial["y"], y)
        np.save(partial["real"], real)
        np.save(partial["src"], src)
        for key in PART_ARRAYS:  # only a part written whole replaces the one there (a failed run leaves it as it was)
            os.replace(partial[key], final[key])
    finally:  # a failed run leaves no partial file
        for path in partial.values():
            if os.path.exists(path):
                os.remove(path)
    return total


def class_labels(words: Sequence[str], more_words: Sequence[str] = ()) -> List[str]:
    """The classes of the prepared set: ``_silence_``, ``words`` sorted, then the ``more_words`` not among them, sorted.

    The ``vocab`` part's words come last, so building it leaves every other part's word numbers as they were.
    """
    base = sorted(set(words) - {SILENCE})
    return [SILENCE] + base + sorted(set(more_words) - set(base) - {SILENCE})


PART_ARRAYS = ("x", "t", "y", "real", "src")
"""The arrays of a prepared part, ``<part>_<array>.npy``: spectrograms, teacher targets, word labels,
whether each row is a real recording, and the words its clips were of."""
TRAINING_PARTS = ("train", "rooms", "pairs", "kokoro", "vocab")
"""The training parts :func:`prepare` writes (``val`` is the validation part)."""


def _part_jobs(part, train_real, voices, synth, neural, more, index, *, real_copies, voice_copies, synth_copies,
               kokoro_copies, vocab_copies, background_cuts, room_copies, room_voice_copies, pairs, seed):
    """``(jobs, labels, sources)`` of one training part (see :func:`prepare`)."""
    if part in ("kokoro", "vocab"):
        clips, copies, first = (neural, kokoro_copies, 5_000_000) if part == "kokoro" else (more, vocab_copies, 6_000_000)
        jobs = [("synthetic", (p,), copies, seed, first + i) for i, (p, _) in enumerate(clips)]
        return jobs, [index[w] for _, w in clips], [(index[w], index[w]) for _, w in clips]
    speech = [(p, w) for p, w in train_real if w != SILENCE] + voices
    if part == "train":
        jobs = [("noise" if w == SILENCE else "word", (p,), real_copies, seed, i) for i, (p, w) in enumerate(train_real)]
        jobs += [("word", (p,), voice_copies, seed, 2_000_000 + i) for i, (p, _) in enumerate(voices)]
        jobs += [("synthetic", (p,), synth_copies, seed, 100_000 + i) for i, (p, _) in enumerate(synth)]
        jobs += [("noise", (None,), 1, seed, 1_000_000 + i) for i in range(background_cuts)]
        words = [w for _, w in train_real + voices + synth] + [SILENCE] * background_cuts
        return jobs, [index[w] for w in words], [(index[w], index[w]) for w in words]
    rng = np.random.default_rng([seed, 7, TRAINING_PARTS.index(part)])
    if part == "rooms":
        real_speech = speech[: len(speech) - len(voices)]
        sources = [(c, room_copies) for c in real_speech] + [(c, room_voice_copies) for c in voices]
        sources = [(c, n) for c, n in sources if n > 0]
        others = [speech[int(k)] for k in rng.integers(0, len(speech), size=len(sources))]
        jobs = [("room", (p, o[0]), n, seed, 3_000_000 + i) for i, (((p, _), n), o) in enumerate(zip(sources, others))]
        return jobs, [index[w] for (_, w), _ in sources], [(index[w], index[o[1]]) for ((_, w), _), o in zip(sources, others)]
    firsts = rng.integers(0, len(speech), size=pairs)
    seconds = rng.integers(0, len(speech), size=pairs)
    jobs = [("pair", (speech[a][0], speech[b][0]), 1, seed, 4_000_000 + i) for i, (a, b) in enumerate(zip(firsts, seconds))]
    return jobs, [-1] * pairs, [(index[speech[a][1]], index[speech[b][1]]) for a, b in zip(firsts, seconds)]


def prepare(
    data_dir: str,
    work_dir: str,
    *,
    real_copies: int = 6,
    voice_copies: int = 2,
    synth_copies: int = 3,
    kokoro_copies: int = 3,
    vocab_copies: int = 2,
    background_cuts: int = 2000,
    room_copies: int = 4,
    room_voice_copies: int = 1,
    pairs: int = 12000,
    parts: Sequence[str] = ("val",) + TRAINING_PARTS,
    seed: int = 0,
    workers: int = 2,
) -> Dict[str, int]:
    """Write the validation and training parts to ``<work_dir>/prep`` (see the module docstring).

    Parts: ``val`` (held-out speakers, unaugmented); ``train`` (real clips x ``real_copies``,
    new voices x ``voice_copies``, synthetic clips x ``synth_copies``, ``background_cuts``
    noise windows); ``kokoro`` (neural synthetic clips x ``kokoro_copies``, augmented as the
    synthetic ones; skipped when there are none); ``vocab`` (synthetic clips of more words x
    ``vocab_copies``, likewise); ``rooms`` (real words x ``room_copies`` and new voices x
    ``room_voice_copies`` in simulated rooms, :func:`augment_in_room`); ``pairs``
    (``pairs`` unlabelled cuts of two words, :func:`word_pair_window`). Each part is
    seeded on its own, so rebuilding one leaves the others valid.

    Returns:
      rows of each part written and ``classes``.
    """
    check_inputs(data_dir)
    train_real, val_real = real_clips(data_dir)
    synth = synth_clips(os.path.join(work_dir, "synth"))
    neural = synth_clips(os.path.join(work_dir, "kokoro"))
    voices = voice_clips(os.path.join(work_dir, "voices"))
    words = sorted({w for _, w in train_real + val_real + synth + voices} - {SILENCE})
    strangers = sorted({w for _, w in neural} - set(words))
    if strangers:
        raise ValueError(f"{work_dir}/kokoro holds words no other source has: {strangers[:5]}")
    more = synth_clips(os.path.join(work_dir, "vocab"))
    labels = class_labels(words, [w for _, w in more])
    index = {w: i for i, w in enumerate(labels)}
    out_dir = os.path.join(work_dir, "prep")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "labels.json"), "w") as f:
        json.dump(labels, f)
    noise_paths = sorted(glob.glob(os.path.join(data_dir, _NOISE_DIR, "*.flac")))
    sizes: Dict[str, int] = {"classes": len(labels)}
    with Pool(workers, initializer=_init_worker, initargs=(noise_paths,)) as pool:
        for part in parts:
            if part == "val":
                jobs = [("val", (p,), 0, seed, 0) for p, _ in val_real]
                words_of = [index[w] for _, w in val_real]
                sizes[part] = _write(out_dir, part, jobs, words_of, [(w, w) for w in words_of], pool)
                continue
            if (part == "kokoro" and not neural) or (part == "vocab" and not more):
                maker = "tools.pretrain.kokoro" if part == "kokoro" else "tools.pretrain.synth --vocab-words N"
                print(f"prepare: no clips in {work_dir}/{part} (python -m {maker}): part {part} skipped")
                continue
            jobs, job_labels, sources = _part_jobs(
                part, train_real, voices, synth, neural, more, index, real_copies=real_copies, voice_copies=voice_copies,
                synth_copies=synth_copies, kokoro_copies=kokoro_copies, vocab_copies=vocab_copies, background_cuts=background_cuts,
                room_copies=room_copies, room_voice_copies=room_voice_copies, pairs=pairs, seed=seed,
            )  # fmt: skip
            sizes[part] = _write(out_dir, part, jobs, job_labels, sources, pool)
    return sizes


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="Speech Commands subset (default: $MM_BROWSERFFT_DATA)")
    parser.add_argument("--work", default="/work/pretrain_work")
    parser.add_argument("--real-copies", type=int, default=6)
    parser.add_argument("--voice-copies", type=int, default=2)
    parser.add_argument("--synth-copies", type=int, default=3)
    parser.add_argument("--kokoro-copies", type=int, default=3)
    parser.add_argument("--vocab-copies", type=int, default=2)
    parser.add_argument("--room-copies", type=int, default=4)
    parser.add_argument("--room-voice-copies", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=12000)
    parser.add_argument("--parts", default=",".join(("val",) + TRAINING_PARTS), help="parts to (re)build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from mm_browserfft.datasets import data_dir

    sizes = prepare(
        args.data or os.fspath(data_dir()), args.work, real_copies=args.real_copies, voice_copies=args.voice_copies,
        synth_copies=args.synth_copies, kokoro_copies=args.kokoro_copies, vocab_copies=args.vocab_copies,
        room_copies=args.room_copies,
        room_voice_copies=args.room_voice_copies, pairs=args.pairs, parts=[p for p in args.parts.split(",") if p], seed=args.seed, workers=args.workers,
    )  # fmt: skip
    print(f"prepare: {sizes}")


if __name__ == "__main__":
    main()
