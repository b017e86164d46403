"""New voices from real clips: the WORLD vocoder moves pitch and vocal-tract length apart.

Speed perturbation (``prepare.augment``) moves tempo, pitch and formants together;
real speakers differ in each on its own. Each real training clip is analysed once
with WORLD (``pyworld``: DIO + StoneMask pitch, CheapTrick envelope, D4C
aperiodicity, 5 ms frames) and re-synthesised as ``voices_per_clip`` new voices:

* pitch scaled by a factor in [0.65, 1.5] (log-uniform) times a slow contour
  (a random sinusoid of +-8 %, 0.5-2 Hz), so the new voice also intones differently;
* the spectral envelope warped along frequency by a factor in [0.82, 1.2]
  (``sp'(f) = sp(f / alpha)``: alpha > 1 is a shorter vocal tract, higher formants).

Written as 16 kHz FLAC to ``<work>/voices/<folder>/<stem>_v<k>.flac`` (the clip's
label folder kept, so labels and speakers follow the source clip). Resumable: a
clip whose voices exist is skipped. ``pyworld`` (MIT) is a requirement of the
recipe only.
"""

from __future__ import annotations

import os
from multiprocessing import Pool
from typing import List, Sequence, Tuple

import numpy as np
import soundfile as sf

from .made_with import check_made_with

__all__ = ["PITCH_RANGE", "FORMANT_RANGE", "new_voice", "make_voices", "voice_stems"]

PITCH_RANGE = (0.65, 1.5)
"""Range of the pitch factor (log-uniform)."""
FORMANT_RANGE = (0.82, 1.2)
"""Range of the frequency-warp factor of the spectral envelope (log-uniform)."""
_FRAME_MS = 5.0


def _warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """``sp'(f) = sp(f / alpha)`` for a WORLD envelope ``[frames, bins]`` (linear interpolation)."""
    bins = np.arange(sp.shape[1], dtype=np.float64)
    source = np.clip(bins / alpha, 0, sp.shape[1] - 1)
    lo = np.floor(source).astype(int)
    hi = np.minimum(lo + 1, sp.shape[1] - 1)
    frac = source - lo
    return np.ascontiguousarray(sp[:, lo] * (1 - frac) + sp[:, hi] * frac)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def new_voice(analysis: Tuple[np.ndarray, np.ndarray, np.ndarray], rate: int, rng: np.random.Generator) -> np.ndarray:
    """One new voice from a WORLD analysis ``(f0 [frames], sp [frames, bins], ap [frames, bins])``.

    Returns:
      float32 ``[n]`` at ``rate`` Hz, peak at most 0.99.
    """
    import pyworld

    f0, sp, ap = analysis
    t = np.arange(f0.size) * _FRAME_MS / 1000.0
    contour = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))
    f0_new = f0 * _log_uniform(rng, *PITCH_RANGE) * contour
    sp_new = _warp_envelope(sp, _log_uniform(rng, *FORMANT_RANGE))
    y = pyworld.synthesize(np.ascontiguousarray(f0_new), sp_new, ap, rate, _FRAME_MS)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (0.99 / peak) if peak > 0.99 else y).astype(np.float32)


def _analyse(x: np.ndarray, rate: int):
    import pyworld

    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.dio(x, rate, frame_period=_FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, rate)
    return f0, pyworld.cheaptrick(x, f0, t, rate), pyworld.d4c(x, f0, t, rate)


def _job(job: Tuple[str, str, str, int, int, int]) -> int:
    source, out_dir, stem, count, seed, index = job
    targets = [os.path.join(out_dir, f"{stem}_v{k}.flac") for k in range(count)]
    if all(os.path.exists(p) for p in targets):
        return 0
    x, rate = sf.read(source, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if np.max(np.abs(x)) == 0:
        return 0  # digital silence has no voice to change
    analysis = _analyse(x, rate)
    rng = np.random.default_rng([seed, index])
    for path in targets:
        tmp = path + ".tmp.flac"
        sf.write(tmp, new_voice(analysis, rate, rng), rate, subtype="PCM_16")
        os.replace(tmp, path)
    return count


def voice_stems(clips: Sequence[str]) -> List[str]:
    """The name each clip's voices take (``<stem>_v<k>.flac`` in ``voices/<word>/``), one per recording.

    A clip's file stem, unless an earlier clip of the same word folder has it (the same name
    in two data sets, other recordings): then the stem is prefixed with its data set's folder.
    """
    seen = set()
    stems = []
    for path in clips:
        word = os.path.basename(os.path.dirname(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        if (word, stem) in seen:
            stem = f"{os.path.basename(os.path.dirname(os.path.dirname(path)))}-{stem}"
        seen.add((word, stem))
        stems.append(stem)
    return stems


def make_voices(clips: Sequence[str], work_dir: str, *, voices_per_clip: int = 4, seed: int = 0, workers: int = 2) -> int:
    """Write ``voices_per_clip`` new voices of each clip (paths of real 16 kHz clips).

    Returns:
      the number of clips written by this call (0 when everything existed).
    """
    check_made_with(os.path.join(work_dir, "voices"), {"seed": seed, "voices_per_clip": voices_per_clip})
    jobs: List[Tuple[str, str, str, int, int, int]] = []
    for i, (path, stem) in enumerate(zip(clips, voice_stems(clips))):
        out_dir = os.path.join(work_dir, "voices", os.path.basename(os.path.dirname(path)))
        os.makedirs(out_dir, exist_ok=True)
        jobs.append((path, out_dir, stem, voices_per_clip, seed, i))
    with Pool(workers) as pool:
        return int(sum(pool.imap_unordered(_job, jobs, chunksize=8)))
