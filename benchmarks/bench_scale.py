"""Scale: ``mm-browserfft train`` over 100,000 files in bounded memory, in time linear in the number of files.

A folder of real-derived clips is generated: up to 35 labels (the words of the data set's
``speech_commands`` and v0.01 sample folders, and ``_silence_``; 34 with the shared data),
every file a perturbed copy of a real clip of its label (speed 0.9-1.1, gain -12..+6 dB,
background noise at 10-40 dB SNR, a shift of up to 0.1 s), written as 16 kHz FLAC, as Speech
Commands is. The 10,000- and 1,000-file runs read the first tenth and hundredth of every
label's files. Time is linear in the files when each file past 10,000 costs no more than
each file past 1,000 did (the fixed cost of start-up, export and calibration cancels). Each
run is the command line as a user types it (``train DIR --export OUT --epochs 3
--batch-size 256``: head-only training, the defaults' 10 % validation and 10 % test
splits, listening calibration, the report), in its own process, with a fresh cache
folder; its peak resident memory (``VmHWM``, polled) and wall time are measured. A
second 100,000-file run, with the cache the first one filled, shows what the
embedding cache saves.

usage: python -m benchmarks.bench_scale [--quick]
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from typing import Dict, List, Sequence, Tuple

import numpy as np

from benchmarks.common import REPO_ROOT, peak_rss_mib, row, table

TIMEOUT_S = 3000
"""This module's own time limit in the runner (the 100,000-file runs take most of it)."""
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (100, 500, 5_000)
LINEAR_SLACK = 1.2
"""Time is linear when a file past the middle size costs at most this many times a file past the smallest."""
LABELS = 35
TARGET_RSS_MIB = 2.5e9 / 2**20
"""The issue's target: peak resident memory under 2.5 GB (decimal: 2,384 MiB) for 100,000 files."""


def _sources(data: pathlib.Path) -> Dict[str, List[str]]:
    """Label -> real source clips: the command words, the ``_unknown_`` words, the v0.01 words, ``_silence_``."""
    by_word: Dict[str, List[str]] = {}
    for sub in ("speech_commands", "speech_commands_v0.01_sample"):
        for folder in sorted((data / sub).iterdir()):
            for path in sorted(folder.glob("*.flac")):
                word = path.name.split("_")[0] if folder.name == "_unknown_" else folder.name
                by_word.setdefault(word, []).append(os.fspath(path))
    silence = by_word.pop("_silence_")
    words = sorted(by_word, key=lambda w: (-len(by_word[w]), w))[: LABELS - 1]
    return {**{w: by_word[w] for w in sorted(words)}, "_silence_": silence}


_STATE: Dict = {}


def _init(noise_paths: Sequence[str]) -> None:
    from mm_browserfft.audio import load_audio

    _STATE["noises"] = [load_audio(p, sample_rate=16000) for p in noise_paths]


def _make(job: Tuple[str, str, int]) -> None:
    """Write one perturbed copy of ``source`` to ``target`` (16 kHz FLAC), seeded by ``seed``."""
    import soundfile as sf

    from mm_browserfft.audio import load_audio, resample

    source, target, seed = job
    rng = np.random.default_rng(seed)
    x = load_audio(source, sample_rate=16000)
    x = resample(x, 16000, int(round(16000 * rng.uniform(0.9, 1.1))))
    x = np.roll(np.pad(x, (0, max(0, 16000 - x.size)))[:16000], int(rng.integers(-1600, 1601)))
    x = x * float(10 ** (rng.uniform(-12, 6) / 20))
    noise = _STATE["noises"][int(rng.integers(len(_STATE["noises"])))]
    start = int(rng.integers(0, noise.size - x.size))
    cut = noise[start : start + x.size]
    level = np.sqrt(np.mean(x**2)) + 1e-6
    x = x + cut / (np.sqrt(np.mean(cut**2)) + 1e-9) * level * 10 ** (-rng.uniform(10, 40) / 20)
    sf.write(target, np.clip(x, -1, 1), 16000, subtype="PCM_16")


def generate(root: pathlib.Path, total: int, *, data: pathlib.Path, workers: int = 2) -> Dict[str, List[str]]:
    """``root/<label>/<n>.flac``: ``total`` files spread evenly over the labels; returns label -> paths."""
    sources = _sources(data)
    per_label = total // len(sources)
    jobs, out = [], {}
    for li, (label, paths) in enumerate(sources.items()):
        (root / label).mkdir(parents=True, exist_ok=True)
        out[label] = []
        for n in range(per_label):
            target = os.fspath(root / label / f"s{n % len(paths):04d}_nohash_{n:06d}.flac")
            jobs.append((paths[n % len(paths)], target, li * 1_000_000 + n))
            out[label].append(target)
    noise = sorted(str(p) for p in (data / "background_noise").glob("*.flac"))
    with Pool(workers, initializer=_init, initargs=(noise,)) as pool:
        for _ in pool.imap_unordered(_make, jobs, chunksize=256):
            pass
    return out


def _subset(files: Dict[str, List[str]], root: pathlib.Path, fraction: float) -> int:
    """``root/<label>/``: links to the first ``fraction`` of each label's files; returns how many."""
    count = 0
    for label, paths in files.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for p in paths[: max(1, int(len(paths) * fraction))]:
            os.symlink(p, root / label / os.path.basename(p))
            count += 1
    return count


def train_run(data_dir: pathlib.Path, export: pathlib.Path, cache: pathlib.Path, *, epochs: int) -> Dict:
    """``mm-browserfft train`` in its own process: wall seconds, peak RSS (MiB), its test accuracy."""
    command = [sys.executable, "-m", "mm_browserfft", "train", os.fspath(data_dir), "--export", os.fspath(export),
               "--epochs", str(epochs), "--batch-size", "256", "--cache-dir", os.fspath(cache), "--seed", "0"]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    with open(export.with_suffix(".log"), "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid))
            time.sleep(0.5)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"train exited with {proc.returncode}: {export.with_suffix('.log').read_text()[-1500:]}")
    report = json.loads((export / "report.json").read_text())
    return {"seconds": seconds, "peak_rss_mib": peak, "accuracy": report["metrics"]["accuracy"],
            "test_clips": report["metrics"]["num_examples"]}  # fmt: skip


def run(quick: bool = False) -> Dict:
    """Generate, train at both sizes (and once more with a warm cache); ``{"rows", "tables", "details"}``."""
    from mm_browserfft.datasets import data_dir

    tiny, small, large = QUICK_SIZES if quick else SIZES
    epochs = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = pathlib.Path(tmp)
        start = time.perf_counter()
        files = generate(root / "large", large, data=data_dir())
        generate_s = time.perf_counter() - start
        n_large = sum(len(v) for v in files.values())
        n_small = _subset(files, root / "small", small / large)
        n_tiny = _subset(files, root / "tiny", tiny / large)
        runs = {
            "tiny": train_run(root / "tiny", root / "out_tiny", root / "cache_tiny", epochs=epochs),
            "small": train_run(root / "small", root / "out_small", root / "cache_small", epochs=epochs),
            "large": train_run(root / "large", root / "out_large", root / "cache_large", epochs=epochs),
            "large, warm cache": train_run(root / "large", root / "out_large2", root / "cache_large", epochs=epochs),
        }
    ratio_files = n_large / n_small
    ratio_time = runs["large"]["seconds"] / runs["small"]["seconds"]
    per_file_past_small = (runs["large"]["seconds"] - runs["small"]["seconds"]) / (n_large - n_small)
    per_file_past_tiny = (runs["small"]["seconds"] - runs["tiny"]["seconds"]) / (n_small - n_tiny)
    rows = [
        row(f"peak memory of `mm-browserfft train` on {n_large:,} files ({len(files)} labels)",
            runs["large"]["peak_rss_mib"], "MiB", reference=runs["small"]["peak_rss_mib"],
            reference_label=f"{n_small:,} files, same run", ratio=runs["large"]["peak_rss_mib"] / runs["small"]["peak_rss_mib"],
            ratio_of="memory / memory at a tenth of the files", target="< 2.5 GB (2,384 MiB)",
            met=runs["large"]["peak_rss_mib"] < TARGET_RSS_MIB),
        row(f"wall time of `mm-browserfft train` on {n_large:,} files", runs["large"]["seconds"], "s",
            reference=runs["small"]["seconds"], reference_label=f"{n_small:,} files, same run", ratio=ratio_time,
            ratio_of=f"time / time at {n_small:,} files ({ratio_files:.0f}x the files)",
            target=f"linear: a file past {n_small:,} costs <= {LINEAR_SLACK:g}x a file past {n_tiny:,}",
            met=per_file_past_small <= LINEAR_SLACK * per_file_past_tiny,
            note=f"{1000 * per_file_past_small:.2f} ms per file past {n_small:,}, {1000 * per_file_past_tiny:.2f} ms per "
                 f"file past {n_tiny:,} ({runs['tiny']['seconds']:.0f} s at {n_tiny:,} files)"),
        row(f"wall time of the same run again, embeddings from the cache ({n_large:,} files)",
            runs["large, warm cache"]["seconds"], "s", reference=runs["large"]["seconds"],
            reference_label="the first run, same run", ratio=runs["large, warm cache"]["seconds"] / runs["large"]["seconds"],
            ratio_of="time / first run's time"),
    ]  # fmt: skip
    detail = table(
        "Training runs (head only, bundled base, 10 % validation, 10 % test)",
        ["run", "files", "wall time (s)", "peak RSS (MiB)", "test accuracy", "test clips"],
        [[name, n_large if "large" in name else n_small if name == "small" else n_tiny, round(r["seconds"], 1),
          round(r["peak_rss_mib"]),
          round(r["accuracy"], 4), r["test_clips"]] for name, r in runs.items()],
        note=f"{n_large:,} files generated in {generate_s:.0f} s (2 processes). The copies are of a few thousand real "
             "clips, so accuracy here says nothing about real data.",
    )  # fmt: skip
    return {"rows": rows, "tables": [detail], "details": {"quick": quick, "runs": runs, "generate_s": generate_s,
                                                         "files": {"tiny": n_tiny, "small": n_small, "large": n_large},
                                                         "epochs": epochs}}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
