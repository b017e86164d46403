"""What the benchmarks share: where the data is, speaker-disjoint folders, the row format, timing and memory.

Every ``bench_*.py`` module has ``run(quick: bool = False) -> dict``. A result
the runner can show directly looks like::

    {
      "rows": [row(...), ...],          # the headline figures, see :func:`row`
      "tables": [table(...), ...],      # detail tables for docs/benchmarks.md, see :func:`table`
      "details": {...},                 # any other numbers (kept in the JSON only)
    }

Results without ``"rows"`` (``bench_frontend``, ``bench_transfer``) are adapted
by :mod:`benchmarks.run`.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
"""The eight command words of the data set."""
CLASSES = WORDS + ("_unknown_", "_silence_")
"""The ten classes of the data set (eight words, unknown words, silence)."""
TUTORIAL_TRAIN_FILES = 150
"""Files per class that Model Maker's speech tutorial keeps for training + validation."""
MB = 1e6
"""Bytes per MB (file sizes: decimal megabytes, the larger figure, as the targets are maxima)."""
MIB = 1024.0 * 1024.0
"""Bytes per MiB (memory)."""


def speech_dir() -> pathlib.Path:
    """The data set's ``speech_commands`` folder: ``$MM_BROWSERFFT_DATA/speech_commands``.

    Raises:
      DatasetError: the variable is unset or the folder is missing (:mod:`mm_browserfft.datasets`).
    """
    from mm_browserfft.datasets import speech_commands_dir

    return speech_commands_dir()


def clips(label: str) -> List[pathlib.Path]:
    """Every clip of one label folder of the data set, sorted by name."""
    return sorted((speech_dir() / label).glob("*.flac"))


def speaker_split_folders(
    dest: "os.PathLike[str] | str", labels: Sequence[str], *, train_per_label: Optional[int] = None
) -> Tuple[str, str]:
    """:func:`mm_browserfft.speakers.link_speaker_split` of the data set's Speech Commands clips."""
    from mm_browserfft.speakers import link_speaker_split

    return link_speaker_split(speech_dir(), dest, labels, train_per_label=train_per_label)


def row(
    figure: str,
    value: float,
    unit: str,
    *,
    reference: Optional[float] = None,
    reference_label: str = "",
    ratio: Optional[float] = None,
    ratio_of: str = "",
    target: Optional[str] = None,
    met: Optional[bool] = None,
    note: str = "",
) -> Dict:
    """One headline figure.

    Args:
      figure: what is measured, and on what.
      value: the measurement, in ``unit``.
      reference: the figure it is compared with, in ``unit``: measured in the same
        run unless ``reference_label`` says otherwise (a published constant).
      reference_label: what the reference is.
      ratio: the comparison as one number; ``ratio_of`` says which way (e.g. "time / bare-FFT time").
      target: the issue's target, as text ("<= 2x"); None when there is none.
      met: whether the target is met (None without a target).
      note: for a missed target, why (computed from what was measured); else an optional remark.
    """
    return {
        "figure": figure,
        "value": float(value),
        "unit": unit,
        "reference": None if reference is None else float(reference),
        "reference_label": reference_label,
        "ratio": None if ratio is None else float(ratio),
        "ratio_of": ratio_of,
        "target": target,
        "met": None if met is None else bool(met),
        "note": note,
    }


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence], *, note: str = "") -> Dict:
    """A detail table: ``columns`` names, ``rows`` of cells (numbers or text)."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows], "note": note}


def median_ms(fns: Dict[str, Callable[[], object]], *, runs: int, warmup: int = 5) -> Dict[str, float]:
    """Median wall time of each function over ``runs`` calls after ``warmup`` calls, in milliseconds.

    The functions are called in turn (one call of each per round), so a burst of
    load from elsewhere on a shared machine slows them all alike and their ratios hold.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def peak_rss_mib(pid: Optional[int] = None) -> float:
    """Peak resident set size so far (``VmHWM`` of /proc/<pid>/status) of this process or of ``pid``, in MiB.

    Without /proc: this process's ``ru_maxrss``; another process's peak is then unknown (0.0).
    """
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    if pid is not None:
        return 0.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def run_child(module: str, args: Sequence[str], *, timeout_s: float) -> Dict:
    """Run ``python -m benchmarks.<module> <args>`` from the repository root, in a fresh process.

    The child prints one JSON object as its last line of output.

    Returns:
      that object, plus ``wall_s`` (seconds from spawning the child to its exit).

    Raises:
      RuntimeError: the child failed or printed no JSON (its output's tail is in the message).
    """
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} exited with {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1])
    result["wall_s"] = wall
    return result


def print_child_result(result: Dict) -> None:
    """The child side of :func:`run_child`: its result as the last line of output."""
    print("\n" + json.dumps(result), flush=True)


def tensorflow_with_threads(threads: int):
    """Import TensorFlow limited to ``threads`` intra-op and inter-op threads; returns the module.

    Call it before anything else touches TensorFlow (each benchmark runs in its own process).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised: the environment variables above were read then
        pass
    return tf
