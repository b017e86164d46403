"""Listening: a streaming recogniser with the browser recogniser's semantics.

The TF.js speech-commands recogniser (``browser_fft_recognizer.ts``) computes one
spectrogram frame every 1024 samples and classifies the last 43 frames every
``round(43 * (1 - overlap_factor))`` frames. A word *fires* when the best class is
a word (not ``_background_noise_``, ``_silence_`` or ``_unknown_``, unless
``include_non_words``) and its probability reaches ``probability_threshold``; after a
word fires, nothing else fires for ``suppression_ms``. TensorFlow's
``RecognizeCommands`` (the Android demo and tflite-micro) adds score averaging: the
mean of the results of the last ``average_ms``, once there are at least
``min_count`` of them. Wake-word engines decide otherwise: every word is a detector of its
own, which fires whenever its score reaches its threshold, whatever the other classes
score (``decision="each_word"``). This module does all three:

* :class:`Recognizer` is fed chunks of audio at any sample rate (a microphone, a
  socket) and returns the detections as they happen; it keeps under two windows of
  audio, whatever the length of the stream;
* :func:`listen_file` runs it over a whole file, decoded in blocks.

The decision rule itself (:class:`DecisionRule`) is separate from the model, so an
evaluation can replay it at many thresholds over one pass of model scores
(:mod:`mm_browserfft.streaming_eval`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import pathlib
from typing import Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .audio import iter_audio_blocks, pad_to_window
from .errors import InvalidInputError
from .frontend import HOP_LENGTH, NUM_FRAMES, SAMPLE_RATE, WAVEFORM_LENGTH
from .predict import Predictor, as_predictor, predict_windows

__all__ = [
    "BACKGROUND_NOISE_LABEL",
    "DECISIONS",
    "NOISE_LABELS",
    "NON_WORD_LABELS",
    "recognizer_labels",
    "Detection",
    "ListeningOptions",
    "DecisionRule",
    "Recognizer",
    "listen_file",
    "is_word",
    "read_listening_options",
    "write_listening_section",
    "sidecar_path",
]

BACKGROUND_NOISE_LABEL = "_background_noise_"
"""The TF.js recogniser's (and Teachable Machine's exported) name of the noise class."""

NOISE_LABELS = (BACKGROUND_NOISE_LABEL, "_silence_", "background_noise", "background", "Background Noise")
"""Names a noise class goes by: the recogniser's, Speech Commands' folder, Model Maker's speech tutorial's
(and Google's Android audio-classification sample's) ``background``, and Teachable Machine's class."""

NON_WORD_LABELS = NOISE_LABELS + ("_unknown_",)
"""Labels that never fire unless asked: the noise class under any of its names, and ``_unknown_``."""


DECISIONS = ("best_class", "each_word")
"""How a window's scores become detections (:attr:`ListeningOptions.decision`)."""


def is_word(label: str) -> bool:
    """Whether ``label`` is a word that may fire (not one of :data:`NON_WORD_LABELS`)."""
    return label not in NON_WORD_LABELS


def recognizer_labels(labels: Sequence[str]) -> Tuple[List[int], List[str]]:
    """The output order and names the TF.js speech-commands recogniser expects.

    Its ``listen()`` keeps quiet only on ``_background_noise_`` and ``_unknown_``, and its
    ``evaluate()`` needs ``_background_noise_`` first. So the noise class (the first label
    found of :data:`NOISE_LABELS`) is renamed ``_background_noise_`` and moved first.

    Args:
      labels: the model's class names, in output order.

    Returns:
      ``(order, names)``: new output ``i`` is old output ``order[i]``, named ``names[i]``
      (``order`` is ``range(len(labels))`` when there is no noise class). A model that has
      ``_background_noise_`` already keeps any other noise-named class under its own name.
    """
    labels = list(labels)
    noise = next((i for name in NOISE_LABELS for i, l in enumerate(labels) if l == name), None)
    if noise is None:
        return list(range(len(labels))), labels
    order = [noise] + [i for i in range(len(labels)) if i != noise]
    names = [BACKGROUND_NOISE_LABEL] + [labels[i] for i in order[1:]]
    return order, names


@dataclasses.dataclass(frozen=True)
class Detection:
    """A word heard: its label, its (maybe averaged) score, and the window that fired, in seconds."""

    label: str
    score: float
    start_s: float
    end_s: float

    def as_dict(self) -> dict:
        """``{"label", "score", "start_s", "end_s"}`` (times rounded to the millisecond)."""
        return {"label": self.label, "score": round(float(self.score), 6),
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ListeningOptions:
    """How a recogniser listens.

    The defaults come from ``benchmarks/bench_listen.py`` (``docs/listening.md``): a window every
    4 frames (overlap 0.9, 93 ms) and the mean of the scores of the windows that ended in the last
    350 ms (about four of them, as TensorFlow's ``RecognizeCommands`` averages; from the first
    window on, so that a one-second file is still heard) put a model trained
    on Model Maker's defaults 1-5 points of recall above the browser's rule (one window's score,
    overlap 0.5 or 0.75) at every false-accept rate from 40 to 60 per hour: a window holding part of
    a word scores high alone, not in the company of its neighbours. The threshold, 0.7, was chosen
    as the one at which the most single 4.5-minute recordings of unseen speakers reach 80 % recall
    at <= 60 false accepts per hour (0.65 recalls a point or two more, and fires 20-30 % more false
    accepts in unfamiliar noise). Judged on speakers it was not chosen on, 65 % of such recordings
    pass at 0.7; on the speakers the benchmark now chooses on, 0.75 passed 3 more of 72, within the
    noise of the count. ``mm-browserfft train``
    calibrates the threshold of each model on its own test clips
    (:func:`~mm_browserfft.streaming_eval.calibrate_listening`).

    Attributes:
      overlap_factor: in ``[0, 1)``; windows start every ``round(43 * (1 - f))`` frames of
        1024 samples (0.5: 22 frames, 0.51 s; 0.75: 11 frames, 0.26 s; 0.9: 4 frames, 93 ms).
      probability_threshold: in ``[0, 1]``; the best class fires only at this score or above.
      suppression_ms: after a detection, none for this long (milliseconds, >= 0).
      average_ms: average the scores of the windows that ended in the last ``average_ms``
        milliseconds (0: no averaging, the browser's behaviour; give 0 to listen as the browser does).
      min_count: with averaging, decide only once this many windows are in the average; at most
        :attr:`windows_averaged` (1 without averaging), so that it can be reached.
      include_non_words: let ``_background_noise_`` / ``_silence_`` / ``_unknown_`` fire too
        (the recogniser's ``invokeCallbackOnNoiseAndUnknown``).
      decision: ``"best_class"`` (the recogniser's rule: the best class fires if it is a word
        and reaches the threshold; one suppression for all words) or ``"each_word"`` (the rule
        wake-word engines are judged by: every word is its own detector and fires when its own
        score reaches the threshold, even when another class scores higher, with a suppression
        of its own; several words may fire at once). Below 0.5, ``"each_word"`` also hears a
        word its model names wrong but still scores, at the cost of more false accepts: it is
        the rule that reaches low false-reject rates (``docs/listening.md``).

    Raises:
      InvalidInputError: a value out of its range, not finite, or a ``min_count`` never reached.
    """

    overlap_factor: float = 0.9
    probability_threshold: float = 0.7
    suppression_ms: float = 1000.0
    average_ms: float = 350.0
    min_count: int = 1
    include_non_words: bool = False
    decision: str = "best_class"

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise InvalidInputError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        numbers = {"overlap_factor": self.overlap_factor, "probability_threshold": self.probability_threshold,
                   "suppression_ms": self.suppression_ms, "average_ms": self.average_ms}
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            raise InvalidInputError(f"listening options must be finite numbers, got {bad}")
        if not 0.0 <= self.overlap_factor < 1.0:
            raise InvalidInputError(f"overlap_factor must be in [0, 1), got {self.overlap_factor}")
        if not 0.0 <= self.probability_threshold <= 1.0:
            raise InvalidInputError(f"probability_threshold must be in [0, 1], got {self.probability_threshold}")
        if self.suppression_ms < 0 or self.average_ms < 0:
            raise InvalidInputError(
                f"suppression_ms and average_ms must be >= 0, got {self.suppression_ms} and {self.average_ms}"
            )
        if int(self.min_count) != self.min_count or self.min_count < 1:
            raise InvalidInputError(f"min_count must be a positive integer, got {self.min_count}")
        if self.min_count > self.windows_averaged:
            raise InvalidInputError(
                f"min_count {self.min_count} can never be reached: {self.average_ms:g} ms of averaging at overlap "
                f"{self.overlap_factor:g} holds at most {self.windows_averaged} window(s)"
            )

    @property
    def windows_averaged(self) -> int:
        """How many windows the average holds once the stream is long enough (1 without averaging)."""
        if self.average_ms <= 0:
            return 1
        hop_ms = 1000.0 * self.hop_samples / SAMPLE_RATE
        return max(1, math.ceil(self.average_ms / hop_ms - 1e-9))

    @property
    def hop_samples(self) -> int:
        """Samples between window starts: ``max(1, round(43 * (1 - overlap_factor))) * 1024``."""
        return max(1, int(round(NUM_FRAMES * (1.0 - self.overlap_factor)))) * HOP_LENGTH

    def as_dict(self) -> dict:
        """The options as plain JSON values (for an export's sidecar)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ListeningOptions":
        """Options from :meth:`as_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidInputError(f"unknown listening options {unknown}; known: {sorted(names)}")
        return cls(**values)


class DecisionRule:
    """The recogniser's decision over a time-ordered stream of window scores.

    Args:
      labels: class names, index = score position.
      options: the :class:`ListeningOptions` (threshold, suppression, averaging).
    """

    def __init__(self, labels: Sequence[str], options: ListeningOptions) -> None:
        self.labels = list(labels)
        self.options = options
        self.reset()
        self.set_options(options)

    def set_options(self, options: ListeningOptions) -> None:
        """Decide with ``options`` from the next window on.

        The scores being averaged are kept (averaged over the new ``average_ms``), and so is
        the time each word last fired, unless the ``decision`` changes: a word heard just
        before stays suppressed.
        """
        fires = np.array([options.include_non_words or is_word(l) for l in self.labels])
        if not fires.any():
            raise InvalidInputError(f"no label can fire: {self.labels} are all non-words")
        if self.options.decision != options.decision:
            self._last_fire_s.clear()
        self.options, self._fires = options, fires

    def reset(self) -> None:
        """Forget the averaging history and the last detections."""
        self._history: Deque[Tuple[float, np.ndarray]] = collections.deque()
        self._last_fire_s: Dict[Optional[int], float] = {}  # class (None: any, under "best_class") -> decision time

    def step(self, start_s: float, end_s: float, scores: np.ndarray) -> List[Detection]:
        """Decide on the window ``[start_s, end_s]`` with probabilities ``scores`` ``[C]``.

        Returns:
          the :class:`Detection` s that fire now (the decision time is ``end_s``, when the window
          is complete): at most one under ``"best_class"``, one per word under ``"each_word"``.
        """
        opts = self.options
        scores = np.asarray(scores, np.float32)
        if opts.average_ms > 0:
            self._history.append((end_s, scores))
            while self._history and self._history[0][0] <= end_s - opts.average_ms / 1000.0:
                self._history.popleft()
            if len(self._history) < opts.min_count:
                return []
            scores = np.mean([s for _, s in self._history], axis=0)
        firing = self._fires & (scores >= opts.probability_threshold)
        each_word = opts.decision == "each_word"
        if each_word:
            candidates = np.flatnonzero(firing)
        else:
            best = int(np.argmax(scores))
            candidates = [best] if firing[best] else []
        fired = []
        for c in candidates:
            key = int(c) if each_word else None
            last = self._last_fire_s.get(key)
            if last is not None and (end_s - last) * 1000.0 < opts.suppression_ms:
                continue
            self._last_fire_s[key] = end_s
            fired.append(Detection(self.labels[c], float(scores[c]), start_s, end_s))
        return fired

    def run(self, starts: Sequence[int], probs: np.ndarray) -> List[Detection]:
        """:meth:`step` over consecutive windows: start samples ``[m]`` (44.1 kHz) and probabilities ``[m, C]``."""
        out: List[Detection] = []
        for start, p in zip(starts, probs):
            out += self.step(start / SAMPLE_RATE, (start + WAVEFORM_LENGTH) / SAMPLE_RATE, p)
        return out


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
        """End of stream: flush the resampler; a stream shorter than one window is heard once, padded.

        The recogniser is then ready for a new stream (:meth:`reset`: times count from 0 again).
        """
        x = np.zeros(0, np.float32) if self._resampler is None else self._resampler.resample_chunk(
            np.zeros(0, np.float32), last=True
        )
        out = self._consume(x)
        if self._next_start == 0 and self._seen:
            out += self.rule.run([0], self.predictor.predict(pad_to_window(self._buffer)[np.newaxis]))
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
        drop = min(self._next_start - self._buffer_start, self._buffer.size)
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



def sidecar_path(model_path: "os.PathLike[str] | str") -> pathlib.Path:
    """The JSON beside an exported model: ``model.tflite`` -> ``model.json``.

    A SavedModel folder ``x`` -> ``x.json``, or where that does not exist and the folder's
    parent holds a ``model.json``, that one (``train`` exports ``saved_model/`` beside
    ``model.tflite`` and ``model.json``, as it does ``labels.txt``).
    """
    p = pathlib.Path(model_path)
    if p.suffix:
        return p.with_suffix(".json")
    own, beside = p.parent / (p.name + ".json"), p.parent / "model.json"
    return beside if not own.exists() and beside.is_file() else own


def read_listening_options(model_path: "os.PathLike[str] | str") -> Optional[ListeningOptions]:
    """The listening settings ``train`` chose for a model (its sidecar's ``"listening"``), or None.

    Raises:
      ModelFormatError: the sidecar exists but is not JSON, or its settings are invalid.
    """
    from .errors import ModelFormatError

    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        section = json.loads(path.read_text(encoding="utf-8")).get("listening")
    except (ValueError, AttributeError) as exc:
        raise ModelFormatError(f"not a JSON object ({exc})", path=path) from None
    if section is None:
        return None
    try:
        return ListeningOptions.from_dict(section.get("options", {}))
    except (InvalidInputError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"bad listening settings ({exc})", path=path) from None


def write_listening_section(model_path: "os.PathLike[str] | str", section: dict) -> pathlib.Path:
    """Put ``section`` (``{"options": ..., ...}``) under ``"listening"`` in the model's sidecar, atomically.

    The sidecar's other keys (Model Maker's metadata JSON) are kept; a missing sidecar is created.
    """
    from .errors import ModelFormatError
    from .export import write_files_atomically

    ListeningOptions.from_dict(section["options"])  # refuse to write what cannot be read back
    path = sidecar_path(model_path)
    content = {}
    if path.is_file():
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelFormatError(f"not JSON ({exc})", path=path) from None
    content["listening"] = section
    write_files_atomically({path: (json.dumps(content, indent=2) + "\n").encode("utf-8")})
    return path
