"""The no-code path: folder of clips -> trained, evaluated, exported model + report.

Used by ``mm-browserfft train`` and ``mm-browserfft demo``; everything here is
built from the public API (:mod:`mm_browserfft.audio_classifier`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from importlib import resources
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DatasetError, InvalidInputError
from .frontend import SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = ["TrainingOptions", "train_and_export", "run_demo", "evaluate_folder", "bundled_samples_dir"]


def bundled_samples_dir() -> str:
    """Folder of the real sample clips shipped with the package (one sub-folder per label)."""
    return os.fspath(resources.files("mm_browserfft") / "assets" / "samples")


@dataclasses.dataclass
class TrainingOptions:
    """Everything ``mm-browserfft train`` can set; defaults are Model Maker's."""

    epochs: int = 5
    batch_size: int = 32
    validation_split: float = 0.1
    validation_dir: Optional[pathlib.Path] = None
    test_split: float = 0.1
    test_dir: Optional[pathlib.Path] = None
    by_speaker: bool = False
    categories: Optional[List[str]] = None
    train_whole_model: bool = False
    quantization: str = "none"
    background_noise: Optional[pathlib.Path] = None
    time_shift: float = 0.0
    spec_augment: bool = False
    base_model: str = "bundled"
    pad_short_clips: bool = False
    skip_bad_files: bool = False
    seed: int = 0

    @classmethod
    def from_args(cls, args) -> "TrainingOptions":
        """From the parsed ``train`` arguments of :mod:`mm_browserfft.cli`."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        if isinstance(values.get("categories"), str):
            values["categories"] = [c.strip() for c in values["categories"].split(",") if c.strip()]
        return cls(**values)


def _make_spec(opts: TrainingOptions, model_dir: Optional[str]):
    from .spec import BrowserFftSpec

    return BrowserFftSpec(
        model_dir=model_dir,
        base_model=opts.base_model,
        pad_short_clips=opts.pad_short_clips,
        background_noise=opts.background_noise,
        time_shift_s=opts.time_shift,
        time_masks=2 if opts.spec_augment else 0,
        freq_masks=2 if opts.spec_augment else 0,
        seed=opts.seed,
    )


def _load_splits(data_dir, opts: TrainingOptions, spec):
    """``(train, validation or None, test or None)`` loaders per the options."""
    from .data import DataLoader

    def load(path):
        return DataLoader.from_folder(
            spec, path, categories=opts.categories, shuffle=True, cache=True, seed=opts.seed,
            skip_bad_files=opts.skip_bad_files,
        )

    data = load(data_dir)
    if data.num_classes < 2:
        raise DatasetError(f"training needs at least 2 label folders, found {data.index_to_label}", path=data_dir)
    test = load(opts.test_dir) if opts.test_dir else None
    validation = load(opts.validation_dir) if opts.validation_dir else None
    rest_fraction = (0.0 if test else opts.test_split) + (0.0 if validation else opts.validation_split)
    if rest_fraction >= 1.0:
        raise InvalidInputError(f"validation and test splits leave no training data ({rest_fraction:.2f})")
    train = data
    if rest_fraction > 0:
        train, rest = data.split(1.0 - rest_fraction, by_speaker=opts.by_speaker)
        if test is None and validation is None and opts.test_split and opts.validation_split:
            validation, test = rest.split(opts.validation_split / rest_fraction, by_speaker=opts.by_speaker)
        elif test is None:
            test = rest
        else:
            validation = rest
    return train, validation, test


def _quantization_config(kind: str, representative):
    from .config import QuantizationConfig

    if kind == "none":
        return None
    if kind == "dynamic":
        return QuantizationConfig.for_dynamic()
    if kind == "float16":
        return QuantizationConfig.for_float16()
    return QuantizationConfig.for_int8(representative)


def evaluate_folder(predictor, data_dir, *, pad_short: bool = False) -> Dict:
    """Run a :class:`~mm_browserfft.predict.Predictor` over ``data_dir/<label>/<clips>``.

    Every label folder must name one of the model's labels. Clips are cut into
    Model Maker windows (``pad_short`` pads clips under 44032 samples).

    Returns:
      :func:`mm_browserfft.metrics.classification_metrics` output plus ``dropped_short``
      (files that gave no window) and ``predictions`` (per window: file, true, predicted,
      score of the true label).
    """
    from .audio import load_audio, split_windows
    from .data import list_audio_files
    from .metrics import classification_metrics

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError("data folder not found", path=root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError("no label folders found", path=root)
    index = {label: i for i, label in enumerate(predictor.labels)}
    y_true: List[int] = []
    y_pred: List[int] = []
    rows: List[Dict] = []
    dropped: List[str] = []
    for folder in folders:
        if folder.name not in index:
            raise DatasetError(f"label folder {folder.name!r} is not one of the model's labels {predictor.labels}", path=folder)
        for path in list_audio_files(folder):
            windows = split_windows(load_audio(path), pad_short=pad_short)
            if not len(windows):
                dropped.append(path)
                continue
            probs = predictor.predict(windows)
            for p in probs:
                best = int(np.argmax(p))
                y_true.append(index[folder.name])
                y_pred.append(best)
                rows.append({"file": path, "label": folder.name, "predicted": predictor.labels[best],
                             "score": float(p[index[folder.name]])})
    if not rows:
        raise DatasetError("no clip of at least 44032 samples found (try --pad-short-clips)", path=root)
    result = classification_metrics(np.array(y_true), np.array(y_pred), predictor.labels)
    result["dropped_short"] = dropped
    result["predictions"] = rows
    return result


def _latency_ms(tflite_path, runs: int = 20) -> float:
    from .predict import TFLitePredictor

    predictor = TFLitePredictor(tflite_path, num_threads=1)
    window = np.random.default_rng(0).normal(0, 0.1, (1, WAVEFORM_LENGTH)).astype(np.float32)
    predictor.predict(window)
    start = time.perf_counter()
    for _ in range(runs):
        predictor.predict(window)
    return (time.perf_counter() - start) / runs * 1e3


def _summary(loader) -> Dict:
    """Per-class counts of a loader, plus durations and sample rates of its files."""
    from .audio import audio_info

    report = loader.report
    per_class = {
        label: {"files": report.files_per_class[label], "clips": report.clips_per_class[label],
                "padded": sum(1 for p in report.padded if os.path.basename(os.path.dirname(p)) == label),
                "dropped_short": sum(1 for p in report.dropped_short if os.path.basename(os.path.dirname(p)) == label)}
        for label in loader.index_to_label
    }
    infos = [audio_info(path) for path, _ in loader.files]
    durations = np.array([i.frames / i.sample_rate for i in infos]) if infos else np.zeros(1)
    return {
        "per_class": per_class,
        "files": report.num_files,
        "clips": report.num_clips,
        "unreadable_skipped": report.unreadable,
        "not_audio_skipped": len(report.skipped),
        "duration_s": {"min": float(durations.min()), "mean": float(durations.mean()), "max": float(durations.max())},
        "sample_rates_hz": sorted({i.sample_rate for i in infos}),
    }


def train_and_export(data_dir, export_dir, opts: TrainingOptions) -> Dict:
    """Train on ``data_dir``, export to ``export_dir`` and write the report there.

    Returns:
      dict with ``test`` (metrics of the exported .tflite on the test split, or None),
      ``history`` and the exported file names.
    """
    from . import audio_classifier
    from .predict import TFLitePredictor
    from .report import write_report

    export_dir = pathlib.Path(export_dir)
    spec = _make_spec(opts, model_dir=os.fspath(export_dir / "checkpoints"))
    train, validation, test = _load_splits(data_dir, opts, spec)
    model = audio_classifier.create(
        train, spec, validation_data=validation, batch_size=opts.batch_size, epochs=opts.epochs,
        train_whole_model=opts.train_whole_model,
    )
    representative = train if opts.quantization == "int8" else None
    model.export(os.fspath(export_dir), quantization_config=_quantization_config(opts.quantization, representative))
    from .config import ExportFormat

    model.export(os.fspath(export_dir), export_format=ExportFormat.LABEL)
    tflite_path = export_dir / "model.tflite"

    metrics, worst, examples, titles = None, [], None, []
    if test is not None and len(test):
        predictor = TFLitePredictor(tflite_path)
        windows, labels, owners = test.waveforms()
        probs = predictor.predict(windows)
        from .metrics import classification_metrics

        metrics = classification_metrics(labels, probs.argmax(axis=1), model.index_to_label)
        files = test.files
        true_scores = probs[np.arange(len(labels)), labels]
        order = np.argsort(true_scores)[:8]
        worst = [{"file": files[owners[i]][0], "label": model.index_to_label[labels[i]],
                  "predicted": model.index_to_label[int(probs[i].argmax())], "score": float(true_scores[i])}
                 for i in order]
        from .frontend import spectrogram

        picks = [int(np.flatnonzero(labels == c)[0]) for c in range(model.num_classes) if (labels == c).any()][:5]
        examples = spectrogram(windows[picks])
        titles = [model.index_to_label[labels[i]] for i in picks]
    summaries = {"train": _summary(train)}
    if validation is not None:
        summaries["validation"] = _summary(validation)
    if test is not None:
        summaries["test"] = _summary(test)
    history = getattr(model, "history", None)
    history = getattr(history, "history", history)
    model_info = {
        "tflite_bytes": tflite_path.stat().st_size,
        "latency_ms_per_clip (1 thread)": round(_latency_ms(tflite_path), 3),
        "quantization": opts.quantization,
        "base_model": opts.base_model,
        "train_whole_model": opts.train_whole_model,
        "epochs": opts.epochs,
    }
    if metrics is not None:
        write_report(export_dir, data_summary=summaries, history=history, metrics=metrics, worst=worst,
                     examples=examples, example_titles=titles, model_info=model_info)
    return {"test": metrics, "history": history, "export_dir": os.fspath(export_dir)}


def run_demo(export_dir, *, epochs: int = 30, seed: int = 0) -> Dict:
    """The README's main job: train on the bundled clips, test on held-out speakers, export.

    The bundled clips are one per speaker, so a plain split is speaker-disjoint.
    """
    opts = TrainingOptions(epochs=epochs, batch_size=16, validation_split=0.0, test_split=0.25,
                           pad_short_clips=True, seed=seed)
    return train_and_export(bundled_samples_dir(), export_dir, opts)
