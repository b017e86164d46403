"""The streaming recogniser: chunks of audio in, detections out, under two windows of memory."""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence, Union

import numpy as np

from ..audio import iter_audio_blocks, pad_to_window, tail_window_start
from ..errors import InvalidInputError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from ..predict import Predictor, as_predictor, predict_windows
from .decision import DecisionRule
from .options import Detection, ListeningOptions

__all__ = ["Recognizer", "listen_file"]


ModelLike = Union[Predictor, str, "os.PathLike[str]", object]


class Recognizer:
    """Listen to a stream of audio: feed chunks, get detections.

    Args:
      model: a :class:`~mm_browserfft.predict.Predictor`, the path of an exported
        ``.tflite`` (run by ai_edge_litert) or SavedModel folder, a Keras serving model
        (waveform ``[n, 44032]`` in, probabilities out; give ``labels``) or an
        :class:`~mm_browserfft.classifier.AudioClassifier`.
      labels: class names, when ``model`` does not carry them.
      sample_rate: rate of the audio fed, Hz (resampled to 44.1 kHz as it streams).
      options: :class:`ListeningOptions`; keyword overrides (``probability_threshold=0.9``,
        ...) are applied on top.

    A detection's times count from the first sample fed (44.1 kHz samples / 44100).
    """

    def __init__(
        self,
        model: ModelLike,
        *,
        labels: Optional[Sequence[str]] = None,
        sample_rate: int = SAMPLE_RATE,
        options: Optional[ListeningOptions] = None,
        **overrides,
    ) -> None:
        options = dataclasses.replace(options or ListeningOptions(), **overrides)
        if int(sample_rate) != sample_rate or sample_rate < 8000:
            raise InvalidInputError(f"sample_rate must be an integer of at least 8000 Hz, got {sample_rate}")
        self.predictor = as_predictor(model, labels=labels)
        self.labels = list(self.predictor.labels)
        self.sample_rate = int(sample_rate)
        self.rule = DecisionRule(self.labels, options)
        self.reset()

    @property
    def options(self) -> ListeningOptions:
        """The options listened with (its decision rule's: :meth:`set_options` changes them)."""
        return self.rule.options

    def set_options(self, options: Optional[ListeningOptions] = None, **overrides) -> None:
        """Listen on with other options: the stream goes on (its time, buffered audio, resampler).

        Args:
          options: the new options (default: the current ones); keyword overrides
            (``probability_threshold=0.8``, ...) are applied on top, so
            ``set_options(probability_threshold=0.8)`` changes the threshold alone.

        The next window starts one old hop after the last (then windows are the new hop
        apart); the decision keeps its history (:meth:`DecisionRule.set_options`). A page's
        slider can thus move while it listens without losing audio or time.
        """
        self.rule.set_options(dataclasses.replace(options or self.options, **overrides))

    def reset(self) -> None:
        """Start a new stream (time 0, empty buffer, no history)."""
        import soxr

        self._resampler = None if self.sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="VHQ"
        )
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # stream sample (44.1 kHz) of self._buffer[0]
        self._next_start = 0
        self._scored_end = 0  # where the last window scored ended (stream sample, 44.1 kHz)
        self._seen = 0
        self.rule.reset()

    @property
    def buffered_samples(self) -> int:
        """Samples (44.1 kHz) held for windows still to come: under two windows, whatever was fed."""
        return int(self._buffer.size)

    def feed(self, samples: np.ndarray) -> List[Detection]:
        """Add mono float samples ``[n]`` (or ``[n, 1]``; in ``[-1, 1]``, at ``sample_rate``); returns what fired.

        Raises:
          InvalidInputError: several channels (mix them to mono first), or NaN / Inf samples.
        """
        x = _mono(samples)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        return self._consume(x)

    def listen_file(self, path: "os.PathLike[str] | str") -> List[Detection]:
        """Every detection in one audio file, heard as a new stream (times from 0).

        The file is decoded straight to 44.1 kHz, in blocks, whatever :attr:`sample_rate`
        the recogniser takes from :meth:`feed`: a recogniser made for an 8 kHz microphone
        hears a 44.1 kHz file at its full bandwidth.
        """
        self.reset()
        out: List[Detection] = []
        for block in iter_audio_blocks(path, sample_rate=SAMPLE_RATE):  # mono, finite (or a decode error)
            out += self._consume(block)
        return out + self.finish()

    def finish(self) -> List[Detection]:
        """End of stream: flush the resampler and hear what no window has ended on yet.

        A stream shorter than one window is heard once, padded; a longer one whose last window
        ended before its last sample is heard once more, by a window ending there
        (:func:`~mm_browserfft.audio.tail_window_start`), so that a word said at the very end
        is not lost. The recogniser is then ready for a new stream (:meth:`reset`: times count
        from 0 again).
        """
        x = np.zeros(0, np.float32) if self._resampler is None else self._resampler.resample_chunk(
            np.zeros(0, np.float32), last=True
        )
        out = self._consume(x)
        tail = tail_window_start(self._buffer_start + self._buffer.size, self._scored_end)
        if self._next_start == 0 and self._seen:
            out += self.rule.run([0], self.predictor.predict(pad_to_window(self._buffer)[np.newaxis]))
        elif tail is not None:
            out += self.rule.run([tail], self.predictor.predict(self._buffer[-WAVEFORM_LENGTH:][np.newaxis]))
        self.reset()
        return out

    def _consume(self, x: np.ndarray) -> List[Detection]:
        self._buffer = np.concatenate([self._buffer, x]) if x.size else self._buffer
        self._seen += x.size
        starts = []
        end = self._buffer_start + self._buffer.size
        while self._next_start + WAVEFORM_LENGTH <= end:
            starts.append(self._next_start)
            self._next_start += self.options.hop_samples
        out: List[Detection] = []
        if starts:
            offsets = np.asarray(starts) - self._buffer_start
            out = self.rule.run(starts, predict_windows(self.predictor, self._buffer, offsets))
            self._scored_end = starts[-1] + WAVEFORM_LENGTH
        # keep what the next window needs, and the last window's worth for the stream's tail (finish)
        drop = min(self._next_start, end - WAVEFORM_LENGTH) - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:].copy()
            self._buffer_start += drop
        return out


def listen_file(
    model: ModelLike,
    path: "os.PathLike[str] | str",
    *,
    labels: Optional[Sequence[str]] = None,
    options: Optional[ListeningOptions] = None,
    **overrides,
) -> List[Detection]:
    """Every detection in one audio file (decoded to 44.1 kHz in blocks: bounded memory).

    ``model``, ``labels``, ``options`` and overrides as for :class:`Recognizer`; or a
    :class:`Recognizer`, which listens with its own settings (then give none of them;
    see :meth:`Recognizer.listen_file`).

    Raises:
      InvalidInputError: a :class:`Recognizer` given with labels, options or overrides.
    """
    if isinstance(model, Recognizer):
        if labels is not None or options is not None or overrides:
            raise InvalidInputError("a Recognizer listens with its own labels and options: give them to it, not here")
        return model.listen_file(path)
    return Recognizer(model, labels=labels, options=options, **overrides).listen_file(path)


def _mono(samples: np.ndarray) -> np.ndarray:
    """float32 ``[n]`` from mono samples ``[n]`` or ``[n, 1]``.

    Raises:
      InvalidInputError: several channels (mix them to mono first), or NaN / Inf samples.
    """
    x = np.asarray(samples, np.float32)
    if x.ndim > 2 or (x.ndim == 2 and x.shape[1] != 1):
        raise InvalidInputError(f"the recogniser takes mono audio [n] or [n, 1], got an array of shape {x.shape}")
    x = x.reshape(-1)
    if x.size and not np.all(np.isfinite(x)):
        raise InvalidInputError("audio fed to the recogniser holds NaN or Inf samples")
    return x
