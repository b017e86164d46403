"""What a trained model scores: on folders of clips, on the test split, and the report's figures of it.

:func:`evaluate_folder` serves ``mm-browserfft evaluate``; the others give ``mm-browserfft train``'s
report its test metrics, data summaries and model section.
"""

from __future__ import annotations

import collections
import os
import pathlib
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import progress
from .errors import DatasetError
from .frontend import WAVEFORM_LENGTH

__all__ = ["evaluate_folder", "score_test_split", "data_summary", "latency_ms", "count_per_label", "model_summary"]


def evaluate_folder(predictor, data_dir, *, pad_short: bool = False) -> Dict:
    """Run a :class:`~mm_browserfft.predict.Predictor` over ``data_dir/<label>/<clips>``.

    Every label folder must name one of the model's labels. Clips are cut into
    Model Maker windows (``pad_short`` pads clips under 44032 samples).

    Returns:
      :func:`mm_browserfft.metrics.classification_metrics` output plus ``dropped_short``
      (files that gave no window), ``skipped`` (what the training loader skips too:
      :func:`~mm_browserfft.data.files.label_folder_files`) and ``predictions`` (per window:
      file, true, predicted, score of the true label).
    """
    from .audio import load_audio, split_windows
    from .data.files import label_folder_files
    from .metrics import classification_metrics

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError("data folder not found", path=root)
    files, skipped = label_folder_files(root)
    if not files:
        raise DatasetError("no label folder here holds an audio file", path=root)
    index = {label: i for i, label in enumerate(predictor.labels)}
    for label in sorted({label for _, label in files}):
        if label not in index:
            raise DatasetError(f"label folder {label!r} is not one of the model's labels {predictor.labels}",
                               path=root / label)  # fmt: skip
    y_true: List[int] = []
    y_pred: List[int] = []
    rows: List[Dict] = []
    dropped: List[str] = []
    for path, label in progress.bar(files, desc="evaluating", unit="file"):
        windows = split_windows(load_audio(path), pad_short=pad_short)
        if not len(windows):
            dropped.append(path)
            continue
        for p in predictor.predict(windows):
            best = int(np.argmax(p))
            y_true.append(index[label])
            y_pred.append(best)
            rows.append(
                {"file": path, "label": label, "predicted": predictor.labels[best], "score": float(p[index[label]])}
            )
    if not rows:
        raise DatasetError("no clip of at least 44032 samples found (try --pad-short-clips)", path=root)
    result = classification_metrics(np.array(y_true), np.array(y_pred), predictor.labels)
    result["dropped_short"] = dropped
    result["skipped"] = skipped
    result["predictions"] = rows
    return result


def latency_ms(tflite_path, runs: int = 20) -> float:
    from .predict import TFLitePredictor

    predictor = TFLitePredictor(tflite_path, num_threads=1)
    window = np.random.default_rng(0).normal(0, 0.1, (1, WAVEFORM_LENGTH)).astype(np.float32)
    predictor.predict(window)
    start = time.perf_counter()
    for _ in range(runs):
        predictor.predict(window)
    return (time.perf_counter() - start) / runs * 1e3


def count_per_label(paths: Sequence[str], labels: Sequence[str]) -> Dict[str, int]:
    """How many of ``paths`` lie in each label folder (``<label>/<file>``)."""
    counts = collections.Counter(os.path.basename(os.path.dirname(p)) for p in paths)
    return {label: counts.get(label, 0) for label in labels}


def data_summary(loader) -> Dict:
    """Per-class counts of a loader, plus durations and sample rates of its files.

    Returns:
      dict with ``per_class`` (label -> files, clips, padded, dropped_short, unreadable),
      totals, ``not_audio_skipped``, ``duration_s`` (min, mean, max) and ``sample_rates_hz``.
    """
    from .audio import audio_info

    report = loader.report
    labels = loader.index_to_label
    padded, dropped = count_per_label(report.padded, labels), count_per_label(report.dropped_short, labels)
    unreadable = count_per_label(report.unreadable, labels)
    per_class = {
        label: {"files": report.files_per_class[label], "clips": report.clips_per_class[label],
                "padded": padded[label], "dropped_short": dropped[label], "unreadable": unreadable[label]}
        for label in labels
    }
    infos = [audio_info(path) for path, _ in loader.files]
    durations = np.array([i.frames / i.sample_rate for i in infos]) if infos else np.zeros(1)
    return {
        "per_class": per_class,
        "files": report.num_files,
        "clips": report.num_clips,
        "unreadable": len(report.unreadable),
        "not_audio_skipped": len(report.skipped),
        "duration_s": {"min": float(durations.min()), "mean": float(durations.mean()), "max": float(durations.max())},
        "sample_rates_hz": sorted({i.sample_rate for i in infos}),
    }


def score_test_split(test, tflite_path, labels: Sequence[str]) -> Tuple[Dict, List[Dict], np.ndarray, List[str]]:
    """Metrics of the exported .tflite on ``test``, its worst clips, and one spectrogram per class.

    The test windows are decoded and scored file by file (bounded memory, whatever the test set's size).

    Returns:
      ``(metrics, worst (8 clips with the lowest score of their true label),
      spectrograms [k, 43, 232, 1] (k <= 5), their titles)``.
    """
    from .audio import noise_floor
    from .frontend import spectrogram
    from .metrics import classification_metrics
    from .predict import TFLitePredictor

    predictor = TFLitePredictor(tflite_path, labels=labels)
    truth, predicted, true_scores, owners = [], [], [], []
    examples: Dict[int, np.ndarray] = {}
    for index, label, windows in test.iter_waveforms():
        if not len(windows):
            continue
        probs = predictor.predict(windows)
        truth += [label] * len(windows)
        predicted += probs.argmax(axis=1).tolist()
        true_scores += probs[:, label].tolist()
        owners += [index] * len(windows)
        if label not in examples:
            examples[label] = windows[0]
    truth_a, scores_a = np.array(truth, np.int64), np.array(true_scores)
    metrics = classification_metrics(truth_a, np.array(predicted, np.int64), labels)
    files = test.files
    worst = [
        {"file": files[owners[i]][0], "label": labels[truth[i]], "predicted": labels[predicted[i]],
         "score": float(scores_a[i])}
        for i in np.argsort(scores_a, kind="stable")[:8]
    ]
    picks = sorted(examples)[:5]
    shown = spectrogram(np.stack([examples[c] for c in picks]) + noise_floor()) if picks else None  # as the model hears
    return metrics, worst, shown, [labels[c] for c in picks]


def model_summary(tflite_path: pathlib.Path, *, settings: Dict[str, object], listening: Optional[Dict],
                  not_calibrated: Optional[str]) -> Dict:  # fmt: skip
    """The report's model section: size, latency, the training ``settings``, and the listening calibration or why
    there is none (``not_calibrated``)."""
    model_info = {
        "tflite_bytes": tflite_path.stat().st_size,
        "latency_ms_per_clip (1 thread)": round(latency_ms(tflite_path), 3),
        **settings,
    }
    if listening is None:
        model_info["listening calibration"] = f"not calibrated: {not_calibrated}"
    else:
        cal = listening["calibration"]
        model_info["listening threshold"] = listening["options"]["probability_threshold"]
        model_info["listening calibration"] = (
            f"{cal['minutes']} min of test words over background: false-reject rate {cal['false_reject_rate']:.3f}, "
            f"{cal['false_accepts_per_hour']:.1f} false accepts/hour, at most {cal['false_accepts_per_hour_bound']:.1f} "
            f"at {cal['confidence']:.0%} confidence (budget {cal['false_accepts_per_hour_budget']:g}"
            f"{'' if cal['budget_met'] else ', not met'}; threshold "
            + (f"{cal['start_threshold']:g} kept)" if cal["moved"] == "kept"
               else f"moved {cal['moved']} from {cal['start_threshold']:g})")  # fmt: skip
        )
    return model_info
