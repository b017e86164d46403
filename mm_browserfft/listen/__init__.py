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

Modules: ``labels`` (which classes may fire; the TF.js recogniser's order), ``options``
(:class:`ListeningOptions`, :class:`Detection`), ``decision`` (:class:`DecisionRule`),
``recognizer`` (:class:`Recognizer`, :func:`listen_file`) and ``sidecar`` (the settings an
export carries).
"""

from .decision import DecisionRule
from .labels import BACKGROUND_NOISE_LABEL, NOISE_LABELS, NON_WORD_LABELS, is_word, recognizer_labels
from .options import DECISIONS, Detection, ListeningOptions
from .recognizer import Recognizer, listen_file
from .sidecar import read_listening_options, sidecar_path, write_listening_section

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
