"""Run an exported model (.tflite or SavedModel) on waveforms and on whole recordings.

A :class:`Predictor` maps windows ``[n, 44032]`` (float32, 44.1 kHz) to
probabilities ``[n, num_classes]`` and knows the model's labels. For recordings
longer than one window, :func:`stream_predictions` slides a window over the file
(in bounded memory), like the browser recognizer's overlapping listening.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import pathlib
from typing import Iterator, List, Optional, Sequence

import numpy as np

from .audio import iter_audio_blocks, pad_to_window, tail_window_start
from .errors import InvalidInputError, ModelFormatError
from .frontend import SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = [
    "Predictor", "TFLitePredictor", "SavedModelPredictor", "KerasPredictor", "load_predictor", "as_predictor",
    "WindowPrediction", "stream_predictions", "predict_windows",
]  # fmt: skip


class Predictor:
    """Interface: ``labels`` and ``predict(windows [n, 44032]) -> probabilities [n, C]``."""

    labels: List[str]

    def predict(self, windows: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


def _check_windows(windows: np.ndarray) -> np.ndarray:
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != WAVEFORM_LENGTH:
        raise InvalidInputError(f"expected windows [n, {WAVEFORM_LENGTH}], got shape {x.shape}")
    return x


class TFLitePredictor(Predictor):
    """A .tflite classifier run by ai_edge_litert, one window at a time (the model's batch is 1).

    Args:
      model: path of the .tflite file, or its bytes.
      labels: class names, one per output; read from the model's metadata when omitted; ``()``
        for a model run without names (its classes are then called ``"0"``, ``"1"``, ...).
      num_threads: interpreter threads (1 gives the single-thread latency the benchmarks report).
    """

    def __init__(self, model, *, labels: Optional[Sequence[str]] = None, num_threads: Optional[int] = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = None if isinstance(model, (bytes, bytearray)) else os.fspath(model)
        content = bytes(model) if self.path is None else pathlib.Path(self.path).read_bytes()
        try:
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"not a loadable .tflite model ({exc})", path=self.path) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = [int(n) for n in self._input["shape"]]
        if shape != [1, WAVEFORM_LENGTH]:
            raise ModelFormatError(f"takes input of shape {shape}, not a window of "
                                   f"[1, {WAVEFORM_LENGTH}] samples: not a browser-FFT waveform model",
                                   path=self.path)  # fmt: skip
        if labels is None:
            from .metadata import read_labels

            try:
                labels = read_labels(content)
            except ModelFormatError as exc:
                raise ModelFormatError(str(exc), path=self.path) from None
        classes = int(self._output["shape"][-1])
        self.labels = [str(i) for i in range(classes)] if labels == () else _checked_labels(labels, classes, self.path)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = _check_windows(windows)
        out = np.empty((x.shape[0], int(self._output["shape"][-1])), np.float32)
        for i, window in enumerate(x):
            self.interpreter.set_tensor(self._input["index"], window[np.newaxis])
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(self._output["index"])[0]
        return out


class SavedModelPredictor(Predictor):
    """A SavedModel exported by ``AudioClassifier.export(export_format=SAVED_MODEL)`` (waveform in).

    Labels come from ``labels.txt`` in the SavedModel folder or beside it.
    """

    def __init__(self, path, *, labels: Optional[Sequence[str]] = None):
        import tensorflow as tf

        self.path = os.fspath(path)
        try:
            loaded = tf.saved_model.load(self.path)
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"not a loadable SavedModel ({exc})", path=self.path) from None
        if "serving_default" not in loaded.signatures:
            raise ModelFormatError(f"has no serving_default signature (it has {sorted(loaded.signatures)})",
                                   path=self.path)  # fmt: skip
        self._fn = loaded.signatures["serving_default"]
        self._loaded = loaded
        spec = self._fn.structured_input_signature[1]
        shapes = [list(t.shape) for t in spec.values()]
        if len(shapes) != 1 or shapes[0][-1:] != [WAVEFORM_LENGTH]:
            raise ModelFormatError(f"takes inputs {shapes}, not windows of [n, {WAVEFORM_LENGTH}] samples",
                                   path=self.path)  # fmt: skip
        outputs = list(self._fn.structured_outputs.values())
        width = outputs[0].shape[-1] if len(outputs) == 1 else None
        labels = list(labels) if labels is not None else _labels_beside(pathlib.Path(self.path))
        self.labels = labels if width is None else _checked_labels(labels, int(width), self.path)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        x = _check_windows(windows)
        outputs = self._fn(tf.constant(x))
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)


def _checked_labels(labels: Sequence[str], classes: int, path: Optional[str]) -> List[str]:
    """``labels`` as a list, refused unless there is one per output of the model."""
    labels = list(labels)
    if len(labels) != classes:
        raise ModelFormatError(f"{len(labels)} labels for a model of {classes} outputs", path=path)
    return labels


def _labels_beside(folder: pathlib.Path) -> List[str]:
    for candidate in (folder / "labels.txt", folder.parent / "labels.txt"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8").splitlines()
    raise ModelFormatError("no labels.txt in or beside the SavedModel folder", path=folder)


def load_predictor(path, *, num_threads: Optional[int] = None) -> Predictor:
    """A :class:`TFLitePredictor` for a ``.tflite`` file, a :class:`SavedModelPredictor` for a folder."""
    p = pathlib.Path(path)
    if not p.exists():
        raise InvalidInputError("model not found", path=p)
    if p.is_dir():
        return SavedModelPredictor(p)
    return TFLitePredictor(p, num_threads=num_threads)


class KerasPredictor(Predictor):
    """A Keras serving model (waveform ``[n, 44032]`` in, probabilities ``[n, C]`` out) and its labels."""

    def __init__(self, model, *, labels: Sequence[str], batch_size: int = 64):
        self.model = model
        self.labels = list(labels)
        self.batch_size = batch_size

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = _check_windows(windows)
        parts = [np.asarray(self.model(x[i : i + self.batch_size], training=False), np.float32)
                 for i in range(0, len(x), self.batch_size)]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)), np.float32)


def as_predictor(model, *, labels: Optional[Sequence[str]] = None) -> Predictor:
    """A :class:`Predictor` for whatever can classify windows.

    Args:
      model: a Predictor (returned as is); the path of a ``.tflite`` or SavedModel
        (:func:`load_predictor`); an :class:`~mm_browserfft.classifier.AudioClassifier`
        (its serving model and labels); or a Keras serving model (give ``labels``).
      labels: class names, overriding the model's (required for a bare Keras model); a
        Predictor given with ``labels`` is copied, not changed.
    """
    if isinstance(model, Predictor):
        if labels is None:
            return model
        relabelled = copy.copy(model)  # the caller's predictor keeps its own labels
        relabelled.labels = list(labels)
        return relabelled
    if isinstance(model, (str, os.PathLike)):
        predictor = load_predictor(model)
        if labels is not None:
            predictor.labels = list(labels)
        return predictor
    if callable(getattr(model, "create_serving_model", None)) and hasattr(model, "index_to_label"):
        return KerasPredictor(model.create_serving_model(), labels=labels or model.index_to_label)
    if callable(model):
        if labels is None:
            raise InvalidInputError("a Keras model carries no labels: pass labels=[...]")
        return KerasPredictor(model, labels=labels)
    raise InvalidInputError(f"cannot classify audio with {type(model).__name__}: give a .tflite path, a Predictor or a model")


def predict_windows(predictor: Predictor, waveform: np.ndarray, offsets: np.ndarray, *, batch: int = 64) -> np.ndarray:
    """The probabilities of the windows ``waveform[o : o + 44032]`` for each offset ``o``, ``batch`` windows at a time.

    Args:
      waveform: float32 ``[n]`` at 44.1 kHz; every window must fit in it.
      offsets: ``[m]`` int window starts, samples into ``waveform``.

    Returns:
      float32 ``[m, C]``; memory beyond ``waveform`` stays under ``batch`` windows.
    """
    probs = [predictor.predict(np.stack([waveform[o : o + WAVEFORM_LENGTH] for o in offsets[i : i + batch]]))
             for i in range(0, len(offsets), batch)]  # fmt: skip
    return np.concatenate(probs) if probs else np.zeros((0, len(predictor.labels)), np.float32)


@dataclasses.dataclass(frozen=True)
class WindowPrediction:
    """Top-k classes of one window of a recording."""

    start_s: float
    end_s: float
    top_k: List[tuple]  # [(label, probability), ...], best first


def stream_predictions(
    predictor: Predictor,
    path,
    *,
    hop_s: float = WAVEFORM_LENGTH / 2 / SAMPLE_RATE,
    top_k: int = 3,
    batch: int = 32,
) -> Iterator[WindowPrediction]:
    """Slide a one-window classifier over a recording of any length.

    The file is decoded in blocks (:func:`~mm_browserfft.audio.iter_audio_blocks`),
    so memory stays bounded for hour-long recordings. Windows start every
    ``hop_s`` seconds (default: half a window, the recognizer's overlap factor
    0.5), and where they leave the end of the recording unheard, one more ends at
    its last sample (:func:`~mm_browserfft.audio.tail_window_start`); a recording
    shorter than one window is zero-padded to one.

    Yields:
      one :class:`WindowPrediction` per window, in time order.
    """
    if not 0 < hop_s < math.inf or int(round(hop_s * SAMPLE_RATE)) <= 0:
        raise InvalidInputError(f"hop must be a finite number of seconds > 0, got {hop_s} s")
    hop = int(round(hop_s * SAMPLE_RATE))
    k = max(1, min(top_k, len(predictor.labels)))
    pending = np.zeros(0, np.float32)
    consumed = 0  # samples dropped from the front of `pending`
    starts: List[int] = []
    windows: List[np.ndarray] = []

    def flush():
        probs = predictor.predict(np.stack(windows))
        for start, p in zip(starts, probs):
            order = np.argsort(-p)[:k]
            yield WindowPrediction(
                start / SAMPLE_RATE,
                (start + WAVEFORM_LENGTH) / SAMPLE_RATE,
                [(predictor.labels[i], float(p[i])) for i in order],
            )
        starts.clear()
        windows.clear()

    next_start = 0
    total = 0
    for block in iter_audio_blocks(path):
        pending = np.concatenate([pending, block])
        total += block.size
        while next_start + WAVEFORM_LENGTH <= consumed + pending.size:
            offset = next_start - consumed
            windows.append(pending[offset : offset + WAVEFORM_LENGTH].copy())
            starts.append(next_start)
            next_start += hop
            if len(windows) == batch:
                yield from flush()
        drop = max(0, min(next_start, total - WAVEFORM_LENGTH) - consumed)  # the tail window's samples stay
        pending, consumed = pending[drop:], consumed + drop
    tail = tail_window_start(total, next_start - hop + WAVEFORM_LENGTH if next_start else 0)
    if total and next_start == 0:  # shorter than one window
        windows.append(pad_to_window(pending))  # centred, as training pads short clips
        starts.append(0)
    elif tail is not None:
        windows.append(pending[-WAVEFORM_LENGTH:].copy())
        starts.append(tail)
    if windows:
        yield from flush()
