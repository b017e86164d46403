"""The recogniser's decision over a stream of window scores, apart from any model (so it can be replayed)."""

from __future__ import annotations

import collections
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInputError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from .labels import is_word
from .options import Detection, ListeningOptions

__all__ = ["DecisionRule"]


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
