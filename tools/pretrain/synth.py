"""Synthetic speech for pretraining: many words, many voices, speeds and pitches.

Two speech synthesisers from Debian main are driven as subprocesses:

* ``espeak-ng`` (GPL-3.0-or-later): formant synthesis; English accents
  (US, GB, RP, Scottish, Caribbean, NYC, ...) times voice variants (male,
  female, klatt, whisper-like, ...), any speed (words per minute) and pitch;
* ``flite`` (CMU Flite, BSD-style licence): diphone and clustergen voices
  ``kal``, ``kal16``, ``awb``, ``rms``, ``slt`` with duration and pitch changes.

Each clip is one word, resampled to 16 kHz mono and written as FLAC to
``<work>/synth/<word>/<engine>_<n>.flac``. Everything is drawn from one seed.

``--vocab-words N`` also speaks the ``N`` most frequent other English words
(:func:`extended_vocabulary`: the word list of ``wordfreq``, Apache-2.0 code, its data
CC BY-SA 4.0; only which words to say is taken from it) into ``<work>/vocab/<word>/``,
the ``vocab`` part of ``prepare.py``: more words to tell apart, for words the base never heard.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mm_browserfft.audio import resample

from .made_with import check_made_with

__all__ = ["VOCABULARY", "SYNTH_SAMPLE_RATE", "extended_vocabulary", "pick_words", "synthesize_vocabulary"]

SYNTH_SAMPLE_RATE = 16000
"""Sample rate of the written clips (Hz), the rate of the Speech Commands clips."""

COMMAND_WORDS = (
    "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin "
    "nine no off on one right seven sheila six stop three tree two up visual wow yes zero"
).split()
"""The 35 words of Speech Commands v0.02 (a superset of the 18w words)."""

COMMON_WORDS = (
    "about after again air apple ask away baby back bad bag ball bank bath bear bell big bike black "
    "blue boat book boy bread bring brown bus buy cake call can car card chair cheese chin church city "
    "clean clock cloud cold come cook cow cup cut dance dark day deep desk dig dinner door draw dream "
    "drink drive duck each ear earth eat egg end eye face fall far farm fast father feet few fill find "
    "fine fish fix fly food foot fox friend frog full fun game gate get girl give glass goat good green "
    "hair hand hat have hello help here high hill hold home hope hot how ice jam jar join joy jump just "
    "keep key kid king kiss kitchen knee know lamp last late laugh leaf light like line lion look lot "
    "love low make man map milk mind money moon more morning mother mouse move much music name near neck "
    "new nice night noise north now number nut old open orange out owl page paper park path pen people "
    "pick pig pink play please pull push put queen quick quiet rain read red rich ring road rock room rose "
    "run sad salt say school sea see seat shape sheep ship shoe shop show sing sister sit sky sleep slow "
    "small smile snow soft song soon sound south start steel street sugar sun table take talk team tell "
    "thank thing think thumb time today tomorrow tooth top toy train tree turn under van very voice wait "
    "walk wall want warm wash watch water way week well west wet what wheel when where white who why "
    "wind window wish wolf word work world write yard year yellow young zip zoo"
).split()
"""Common short English words, chosen to cover many onsets, vowels and codas."""

VOCABULARY: Tuple[str, ...] = tuple(sorted(set(COMMAND_WORDS) | set(COMMON_WORDS)))
"""Every word the synthesisers speak (Speech Commands words plus common words), sorted."""


def pick_words(ranked: Sequence[str], size: int, *, exclude: Sequence[str] = VOCABULARY) -> Tuple[str, ...]:
    """The first ``size`` words of ``ranked`` that are 3-12 lowercase letters a-z and not in ``exclude``, sorted.

    Raises:
      ValueError: ``ranked`` holds fewer such words.
    """
    seen, out = set(exclude), []
    for word in ranked:
        if len(out) == size:
            break
        if word.isascii() and word.isalpha() and word.islower() and 3 <= len(word) <= 12 and word not in seen:
            seen.add(word)
            out.append(word)
    if len(out) < size:
        raise ValueError(f"only {len(out)} words to pick of the {size} asked")
    return tuple(sorted(out))


def extended_vocabulary(size: int) -> Tuple[str, ...]:
    """The ``size`` most frequent English words outside :data:`VOCABULARY` (:func:`pick_words` of ``wordfreq``'s list)."""
    from wordfreq import top_n_list

    return pick_words(top_n_list("en", 4 * size + 1000), size)


_ESPEAK_ACCENTS = (
    "en-us", "en-us", "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
_ESPEAK_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
    "klatt3", "klatt4", "Alex", "Andy", "Annie", "adam", "anika", "belinda", "benjamin", "caleb",
    "david", "ed", "edward", "grandma", "grandpa", "john", "linda", "max", "michel", "norbert", "paul",
    "steph", "aunty", "boris", "Denis", "Lee", "Mike", "Tweaky", "Storm", "robert", "quincy", "rob",
    "Alicia", "Andrea", "Gene", "Hugo", "Jacky", "Michael", "shelby", "steph2", "steph3", "travis",
    "victor", "zac", "iven", "whisper", "whisperf",
)  # fmt: skip
_FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
_FEMALE_FLITE = ("slt",)


def _espeak_command(word: str, rng: np.random.Generator) -> Tuple[List[str], str]:
    accent = str(rng.choice(_ESPEAK_ACCENTS))
    variant = str(rng.choice(_ESPEAK_VARIANTS))
    voice = accent + ("+" + variant if variant else "")
    speed = int(rng.integers(110, 230))  # words per minute
    pitch = int(rng.integers(10, 91))  # 0-99, 50 is the voice's default
    command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch)]
    return command + ["--stdout", word], voice


def _flite_command(word: str, out_path: str, rng: np.random.Generator) -> Tuple[List[str], str]:
    voice = str(rng.choice(_FLITE_VOICES))
    base_f0 = 170.0 if voice in _FEMALE_FLITE else 105.0
    f0 = base_f0 * float(np.exp(rng.uniform(-0.35, 0.35)))
    stretch = float(rng.uniform(0.75, 1.4))
    command = ["flite", "-voice", voice, "-t", word, "-o", out_path]
    command += ["--setf", f"duration_stretch={stretch:.3f}", "--setf", f"int_f0_target_mean={f0:.1f}"]
    return command, voice


def _synthesize_one(job: Tuple[str, str, int, int, str]) -> bool:
    """Speak one word and write it as 16 kHz FLAC; ``job = (word, engine, index, seed, out_path)``."""
    import soundfile as sf

    word, engine, index, seed, out_path = job
    rng = np.random.default_rng([seed, index, *word.encode(), 1])
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "clip.wav")
        if engine == "espeak":
            command, _ = _espeak_command(word, rng)
            result = subprocess.run(command, capture_output=True, check=False)
            if result.returncode != 0 or len(result.stdout) < 1000:
                return False
            with open(wav_path, "wb") as f:
                f.write(result.stdout)
        else:
            command, _ = _flite_command(word, wav_path, rng)
            if subprocess.run(command, capture_output=True, check=False).returncode != 0:
                return False
        samples, rate = sf.read(wav_path, dtype="float32", always_2d=False)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if samples.size == 0 or not np.any(samples):
        return False
    write_clip(out_path, samples, int(rate))
    return True


def write_clip(path: str, samples: np.ndarray, rate: int) -> None:
    """Write a mono clip ``[n]`` at ``rate`` Hz as 16 kHz 16-bit FLAC, its peak scaled to 0.7."""
    import soundfile as sf

    samples = resample(samples, rate, SYNTH_SAMPLE_RATE)
    peak = float(np.max(np.abs(samples)))
    sf.write(path, np.clip(samples / max(peak, 1e-6) * 0.7, -1, 1), SYNTH_SAMPLE_RATE, subtype="PCM_16")


def _engines_available() -> Dict[str, bool]:
    return {"espeak": shutil.which("espeak-ng") is not None, "flite": shutil.which("flite") is not None}


def synthesize_vocabulary(
    out_dir: str,
    *,
    words: Sequence[str] = VOCABULARY,
    clips_per_word: int = 24,
    flite_fraction: float = 0.3,
    seed: int = 0,
    workers: int = 2,
) -> Dict[str, int]:
    """Write ``clips_per_word`` synthetic clips of every word under ``out_dir/<word>/``.

    Args:
      out_dir: folder to fill (created; existing clips with the same names are overwritten).
      words: the vocabulary.
      clips_per_word: clips per word, split between the engines.
      flite_fraction: share of clips spoken by flite when it is installed (the rest by espeak-ng).
      seed: seed of every random choice (voice, accent, speed, pitch).
      workers: concurrent synthesiser processes.

    Returns:
      ``{word: clips in its folder}``.

    Raises:
      RuntimeError: espeak-ng is not installed.
    """
    available = _engines_available()
    if not available["espeak"]:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    check_made_with(out_dir, {"seed": seed, "clips_per_word": clips_per_word, "flite_fraction": flite_fraction,
                              "flite": available["flite"]})  # fmt: skip
    jobs = []
    for word in words:
        os.makedirs(os.path.join(out_dir, word), exist_ok=True)
        for i in range(clips_per_word):
            rng = np.random.default_rng([seed, i, *word.encode()])
            use_flite = available["flite"] and rng.random() < flite_fraction
            engine = "flite" if use_flite else "espeak"
            path = os.path.join(out_dir, word, f"{engine}_{i:03d}.flac")
            if not os.path.exists(path):  # clips are fixed by (seed, word, index): reruns resume
                jobs.append((word, engine, i, seed, path))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_synthesize_one, jobs))
    del done
    return {w: len(glob.glob(os.path.join(out_dir, w, "*.flac"))) for w in words}


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/work/pretrain_work", help="work folder (clips go to WORK/synth)")
    parser.add_argument("--clips-per-word", type=int, default=24)
    parser.add_argument("--vocab-words", type=int, default=0, help="also speak this many other frequent words (WORK/vocab)")
    parser.add_argument("--vocab-clips", type=int, default=8, help="clips of each word of --vocab-words")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = synthesize_vocabulary(
        os.path.join(args.work, "synth"), clips_per_word=args.clips_per_word, seed=args.seed
    )
    print(f"synth: {sum(counts.values())} clips of {len(counts)} words in {args.work}/synth")
    if args.vocab_words:
        counts = synthesize_vocabulary(
            os.path.join(args.work, "vocab"), words=extended_vocabulary(args.vocab_words),
            clips_per_word=args.vocab_clips, seed=args.seed,
        )  # fmt: skip
        print(f"synth: {sum(counts.values())} clips of {len(counts)} more words in {args.work}/vocab")


if __name__ == "__main__":
    main()
