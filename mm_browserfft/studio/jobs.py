"""Training in the background: ``mm-browserfft train`` in a child process, its progress parsed.

The studio trains exactly as the command line does (the same defaults, report and
export), in a child process so that a crash or a cancel never takes the server down
and TensorFlow's memory is returned when it ends. Progress is the command's
one-line-per-epoch output (:func:`mm_browserfft.progress.epoch_logger`), read as it
comes; the result is the export's ``report.json``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import subprocess
import sys
import threading
from typing import Dict, List, Optional

__all__ = ["TrainingJob", "TEST_SPLIT", "MIN_CLIPS_PER_LABEL"]

TEST_SPLIT = 0.2
"""Share of each label's files held out (at random, in proportion) to test the model and calibrate its listening."""
MIN_CLIPS_PER_LABEL = 5
"""Clips each label needs before training: with 5, the split trains on 4 and tests 1 (with 2, none would be tested)."""

_EPOCH = re.compile(r"^epoch (\d+)/(\d+) - [\d.]+s - (.*)$")
_METRIC = re.compile(r"([A-Za-z_]+) (-?[\d.]+(?:e-?\d+)?|nan|inf)")


def parse_epoch_line(line: str) -> Optional[Dict]:
    """``{"epoch": n, "epochs": total, "acc": ..., "loss": ...}`` of an epoch line, else None.

    A metric that is not finite (``nan``, ``inf``) is None: JSON has no such numbers.
    """
    match = _EPOCH.match(line.strip())
    if not match:
        return None
    metrics = {name: _finite_or_none(float(value)) for name, value in _METRIC.findall(match.group(3))}
    return {"epoch": int(match.group(1)), "epochs": int(match.group(2)), **metrics}


def _finite_or_none(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


class TrainingJob:
    """One training run of a project's ``data/`` into its ``model/``.

    Args:
      data_dir: the labelled folders.
      export_dir: where the model, its JSON and the report go (replaced when it succeeds).
      epochs: passes over the data.
      train_whole_model: train the base too.
      partial_word_negatives: share of word clips that also teach a fragment as a negative (0: none).
      labels: the labels to train on (those with clips).
      background_noise: a folder of noise recordings to mix into the training windows, or None.

    Attributes:
      state: ``"running"``, ``"done"`` or ``"failed"``.
      epochs: the parsed epoch lines so far.
      error: the last lines of the child's standard error when it failed.
    """

    def __init__(self, data_dir: pathlib.Path, export_dir: pathlib.Path, *, epochs: int, train_whole_model: bool,
                 partial_word_negatives: float, labels: List[str],
                 background_noise: Optional[pathlib.Path] = None) -> None:  # fmt: skip
        self.data_dir, self.export_dir = data_dir, export_dir
        self.total_epochs = epochs
        self.state = "running"
        self.epochs: List[Dict] = []
        self.error = ""
        command = [
            sys.executable, "-m", "mm_browserfft", "train", os.fspath(data_dir), "--export", os.fspath(export_dir),
            "--epochs", str(epochs), "--batch-size", "16", "--validation-split", "0", "--test-split", str(TEST_SPLIT),
            "--categories", ",".join(labels), "--tfjs", "--seed", "0",
            "--partial-word-negatives", str(partial_word_negatives),
        ] + (["--train-whole-model"] if train_whole_model else []) + (
            ["--background-noise", os.fspath(background_noise)] if background_noise is not None else [])  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._stderr: List[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _drain_stderr(self) -> None:
        for line in self._process.stderr:
            self._stderr = (self._stderr + [line.rstrip()])[-40:]

    def _read(self) -> None:
        for line in self._process.stdout:
            parsed = parse_epoch_line(line)
            if parsed is not None:
                self.epochs.append(parsed)
        code = self._process.wait()
        if code == 0:
            self.state = "done"
        else:
            self.error = "\n".join(self._stderr[-12:]) or f"training exited with code {code}"
            self.state = "failed"

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the run ends (or ``timeout`` seconds); returns :attr:`state`."""
        self._reader.join(timeout)
        return self.state

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()

    def status(self) -> Dict:
        """What the page shows: state, epochs so far and, when done, the report's figures."""
        out: Dict = {"state": self.state, "epochs": self.epochs, "total_epochs": self.total_epochs}
        if self.state == "failed":
            out["error"] = self.error
        if self.state == "done":
            out["report"] = read_report(self.export_dir)
        return out


def read_report(export_dir: pathlib.Path) -> Optional[Dict]:
    """The figures of an export's ``report.json`` the page shows, or None without one."""
    try:
        report = json.loads((export_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    metrics = report.get("metrics") or {}
    worst = []
    for w in report.get("worst") or []:
        path = pathlib.Path(w["file"])
        worst.append({**w, "label_dir": path.parent.name, "name": path.name})
    accuracy = metrics.get("accuracy")
    return {
        "accuracy": _finite_or_none(float(accuracy)) if isinstance(accuracy, (int, float)) else None,
        "labels": metrics.get("labels"),
        "confusion_matrix": metrics.get("confusion_matrix"),
        "test_clips": metrics.get("num_examples"),
        "worst": worst,
        "listening_threshold": (report.get("model") or {}).get("listening threshold"),
    }
