"""The distillation teacher: Google's speech_embedding (Lin et al. 2020), run offline.

The two TFLite models ship in the PyPI wheel ``pyopen-wakeword==1.1.0``
(Apache-2.0), a requirement of this recipe only (``tools/pretrain/requirements.txt``):

* ``melspectrogram.tflite``: float32 ``[1, n]`` samples at 16 kHz on the int16 scale
  -> ``[1, 1, frames, 32]`` log-mel (25 ms window, 10 ms hop), then ``mel / 10 + 2``;
* ``embedding_model.tflite``: ``[batch, 76, 32, 1]`` (76 mel frames, 0.76 s) -> ``[batch, 1, 1, 96]``.

A student window (44032 samples at 44.1 kHz, 0.998 s) is resampled to 16 kHz,
padded with :data:`CONTEXT_S` = 0.25 s of silence on each side (so that some 0.76 s
span holds the whole word wherever it sits), and gives :data:`SPANS` = 9 embeddings 8 mel frames
(80 ms) apart (:meth:`Teacher.spans`); their mean and their maximum (192 values,
:func:`pool`) are the pooled target. Measured
with one linear probe on held-out speakers (10 classes, every training clip): 0.932
with the context, 0.794 without it (3 spans starting at 0-0.16 s miss late words).
Nothing else of the wheel is used (its wake-word heads are CC BY-NC-SA). The teacher
is never imported by the package.
"""

from __future__ import annotations

from importlib import resources
from typing import Tuple

import numpy as np

from mm_browserfft.audio import resample
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH

__all__ = ["TEACHER_RATE", "CONTEXT_S", "EMBEDDING_DIM", "SPANS", "TEACHER_DIM", "pool", "Teacher"]

TEACHER_RATE = 16000
"""Hz: the teacher's sample rate."""
CONTEXT_S = 0.25
"""Seconds of silence added before and after a window before the teacher hears it."""
EMBEDDING_DIM = 96
"""Size of one embedding of the teacher."""
SPANS = 9
"""Embeddings the teacher gives of one student window (0.76 s spans, 80 ms apart, over the padded window)."""
TEACHER_DIM = 2 * EMBEDDING_DIM
"""Size of the pooled target: mean and max over a window's embeddings."""
_MEL_FRAMES = 76
_MEL_STEP = 8
_TEACHER_PEAK = 0.5  # the teacher hears every window at this peak level (the student is gain-invariant)


def _model_paths() -> Tuple[str, str]:
    try:
        models = resources.files("pyopen_wakeword") / "models"
    except ModuleNotFoundError as exc:  # pragma: no cover - the recipe's requirements say so
        raise RuntimeError("the teacher needs `pip install -r tools/pretrain/requirements.txt`") from exc
    return str(models / "melspectrogram.tflite"), str(models / "embedding_model.tflite")


def check_teacher() -> None:
    """Raise, in the calling process, when the teacher's wheel is missing (workers would each fail on it)."""
    _model_paths()


class Teacher:
    """Google's speech embedding of 44.1 kHz student windows.

    One instance holds two LiteRT interpreters (one thread each); make one per process.
    """

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        mel_path, embedding_path = _model_paths()
        self._mel = Interpreter(model_path=mel_path, num_threads=1)
        self._embedding = Interpreter(model_path=embedding_path, num_threads=1)
        self._mel_len = -1
        self._spans = -1

    def _log_mel(self, samples: np.ndarray) -> np.ndarray:
        """``[frames, 32]`` log-mel of float32 ``[n]`` samples at 16 kHz on the int16 scale."""
        index = self._mel.get_input_details()[0]["index"]
        if samples.size != self._mel_len:
            self._mel.resize_tensor_input(index, [1, samples.size])
            self._mel.allocate_tensors()
            self._mel_len = samples.size
        self._mel.set_tensor(index, samples[np.newaxis].astype(np.float32))
        self._mel.invoke()
        return self._mel.get_tensor(self._mel.get_output_details()[0]["index"])[0, 0] / 10.0 + 2.0

    def embed(self, window: np.ndarray) -> np.ndarray:
        """The teacher's pooled embedding of one student window: float32 ``[192]``, :func:`pool` of :meth:`spans`."""
        return pool(self.spans(window))

    def spans(self, window: np.ndarray) -> np.ndarray:
        """The teacher's embeddings of one student window, span by span.

        Args:
          window: float32 ``[44032]`` samples at 44.1 kHz (any level: it is peak-normalised).

        Returns:
          float32 ``[SPANS, 96]``: the embeddings of the 0.76 s spans, 80 ms apart, of the
          window with :data:`CONTEXT_S` of silence on each side, in time order.
        """
        x = resample(np.asarray(window, np.float32), SAMPLE_RATE, TEACHER_RATE)
        peak = float(np.max(np.abs(x)))
        x = x * (_TEACHER_PEAK * 32767.0 / peak) if peak > 0 else x
        context = int(CONTEXT_S * TEACHER_RATE)
        mel = self._log_mel(np.pad(x, context))
        count = (len(mel) - _MEL_FRAMES) // _MEL_STEP + 1
        spans = np.stack([mel[i * _MEL_STEP : i * _MEL_STEP + _MEL_FRAMES] for i in range(count)])
        index = self._embedding.get_input_details()[0]["index"]
        if self._spans != count:
            self._embedding.resize_tensor_input(index, [count, _MEL_FRAMES, 32, 1])
            self._embedding.allocate_tensors()
            self._spans = count
        self._embedding.set_tensor(index, spans[..., np.newaxis].astype(np.float32))
        self._embedding.invoke()
        vectors = self._embedding.get_tensor(self._embedding.get_output_details()[0]["index"]).reshape(count, EMBEDDING_DIM)
        if count != SPANS:
            raise ValueError(f"expected {SPANS} teacher spans of a {WAVEFORM_LENGTH}-sample window, got {count}")
        return vectors.astype(np.float32)


def pool(spans: np.ndarray) -> np.ndarray:
    """Mean then max over the spans: ``[..., SPANS, 96]`` -> ``[..., 192]`` (float32)."""
    spans = np.asarray(spans, np.float32)
    return np.concatenate([spans.mean(axis=-2), spans.max(axis=-2)], axis=-1)
