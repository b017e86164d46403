"""Choosing the listening threshold from test clips: moved from the default only on evidence of false accepts."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInputError
from ..listen import ListeningOptions, is_word
from .recordings import UNKNOWN_FOLDER, build_test_recordings
from .scoring import DEFAULT_THRESHOLDS, streaming_report

__all__ = [
    "LOWEST_CALIBRATED_THRESHOLD", "CALIBRATION_BUDGET", "CALIBRATION_CONFIDENCE", "calibrate_listening",
    "poisson_upper_bound",
]  # fmt: skip

LOWEST_CALIBRATED_THRESHOLD = 0.3
""":func:`calibrate_listening` never chooses a threshold under this: a small test set may show no false accept
even where a model fires at every breath."""
CALIBRATION_BUDGET = 60.0
"""False accepts per hour :func:`calibrate_listening` allows by default: a speech-command listener's operating
point (about one a minute in speech; ``benchmarks/bench_listen.py`` judges recall at it)."""
CALIBRATION_CONFIDENCE = 0.8
"""How sure :func:`calibrate_listening` must be that the chosen threshold keeps false accepts under the budget:
the one-sided Poisson upper bound, at this confidence, of the false accepts counted in the calibration audio."""


def poisson_upper_bound(count: int, confidence: float) -> float:
    """The one-sided upper confidence bound of a Poisson mean, ``count`` events having been counted.

    The mean ``m`` at which counting ``count`` or fewer has probability ``1 - confidence``
    (for ``count = 0``: ``-ln(1 - confidence)``), found by bisection.
    """
    if count < 0 or not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"need count >= 0 and 0 < confidence < 1, got {count} and {confidence}")
    k = np.arange(count + 1)
    log_factorials = np.cumsum(np.log(np.maximum(k, 1)))

    def at_most_count(mean: float) -> float:
        return float(np.exp(np.logaddexp.reduce(k * np.log(mean) - mean - log_factorials)))

    low, high = 0.0, count + 10.0
    while at_most_count(high) > 1.0 - confidence:
        high *= 2.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if at_most_count(mid) > 1.0 - confidence else (low, mid)
    return 0.5 * (low + high)


def calibrate_listening(
    predictor,
    clips: Sequence[Tuple[str, str]],
    background_paths: Sequence[str],
    *,
    options: Optional[ListeningOptions] = None,
    false_accepts_per_hour_budget: float = CALIBRATION_BUDGET,
    confidence: float = CALIBRATION_CONFIDENCE,
    max_words: int = 400,
    seed: int = 0,
) -> Dict:
    """Choose the threshold for listening on test clips: the default one, moved only on evidence.

    The threshold of ``options`` (by default :class:`~mm_browserfft.listen.ListeningOptions`',
    chosen on an hour of real speech) moves on the grid (:data:`DEFAULT_THRESHOLDS` from
    :data:`LOWEST_CALIBRATED_THRESHOLD` up):

    * down, one grid step at a time while the false accepts stay within the budget with
      ``confidence`` (the :func:`poisson_upper_bound` of the false accepts counted there, per
      hour of the audio, is within it), and no further than the test words need: to the highest
      of those thresholds that rejects as few of them as the lowest (a lower threshold that
      hears no more words only risks false accepts); where none rejects fewer than the start,
      it does not move down. A few minutes of test audio count few false accepts, so
      a threshold whose count merely equals the budget fires more than the budget on new audio
      about half the time. Over 15 minutes and a budget of 60 per hour, at 80 %, at most 11
      false accepts (44 per hour) are allowed; over an hour, 52; over 3 minutes (40 clips),
      none, so that one false accept stops the walk;
    * else up, as far as the false accepts counted at the default threshold require (the
      lowest higher threshold whose count is within the budget);
    * else it stays (a start under :data:`LOWEST_CALIBRATED_THRESHOLD` starts there).

    The audio is the clips said over the background, about 14 words a minute
    (:func:`build_test_recordings`), as dense as the speech the budget is meant for, and
    nothing else: minutes of background alone would count few false accepts and dilute the
    rate, and a small test set would then walk the threshold down on no evidence.

    :func:`streaming_report`'s ``budget`` is instead the lowest threshold by the bare count.

    Args:
      predictor: the exported model.
      clips: ``(path, label)`` of test clips (keywords are said; ``_unknown_`` clips are
        negatives; clips of non-word labels are left out: they are the background's kind).
      background_paths: background recordings.
      options: the settings (overlap, suppression, averaging) to calibrate under, and the
        threshold to start from.
      false_accepts_per_hour_budget: the budget, all keywords together.
      confidence: in ``(0, 1)``; how sure the choice must be that the budget is met.
      max_words: at most this many clips are said (a seeded sample of them), so that a large
        test set costs minutes, not hours.

    Returns:
      ``{"options": ListeningOptions.as_dict(), "calibration": {...}}``: the chosen options (the
      start threshold when no threshold meets the budget) and what was measured: ``minutes``,
      ``words``, ``budget_met``, the budget, ``start_threshold``, ``moved`` (``"down"``, ``"up"`` or
      ``"kept"``), ``confidence``, ``false_reject_rate``,
      ``false_accepts_per_hour``, ``false_accepts_per_hour_bound`` (its upper bound), ``auc``.

    Raises:
      InvalidInputError: ``confidence`` out of range, or no clip of a keyword of the model (nothing
        to calibrate on).
      DatasetError: no background recording of at least one second.
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
    options = options or ListeningOptions()
    keywords = {l for l in predictor.labels if is_word(l)}
    said = [(p, l) for p, l in clips if l in keywords or l == UNKNOWN_FOLDER]
    if not any(l in keywords for _, l in said):
        raise InvalidInputError(f"no test clip of any keyword of the model ({sorted(keywords)}) to calibrate on")
    if len(said) > max_words:  # a seeded sample: calibration time stays bounded on large test sets
        keep = np.sort(np.random.default_rng(seed).choice(len(said), max_words, replace=False))
        said = [said[i] for i in keep]
    recordings = build_test_recordings(said, background_paths, seed=seed)
    start = max(options.probability_threshold, LOWEST_CALIBRATED_THRESHOLD)
    options = dataclasses.replace(options, probability_threshold=start)
    grid = sorted({float(t) for t in DEFAULT_THRESHOLDS if t >= LOWEST_CALIBRATED_THRESHOLD} | {start})
    report = streaming_report(predictor, recordings, options=options, thresholds=grid,
                              false_accepts_per_hour_budget=false_accepts_per_hour_budget)  # fmt: skip
    hours = report["hours"]

    def bound(point: Dict) -> float:
        return poisson_upper_bound(int(point["false_accepts"]), confidence) / hours

    def counted(point: Dict) -> float:
        return point["false_accepts"] / hours

    budget = false_accepts_per_hour_budget
    walked = []  # down, one step at a time, while within the budget
    for d in reversed([d for d in report["det"] if d["threshold"] < start]):
        if bound(d["all"]) > budget:
            break
        walked.append(d)
    at_start = next(d for d in report["det"] if d["threshold"] == start)["all"]
    chosen = None
    if walked and walked[-1]["all"]["false_rejects"] < at_start["false_rejects"]:
        fewest = walked[-1]["all"]["false_rejects"]  # no lower than the words heard need
        chosen = next(d["threshold"] for d in walked if d["all"]["false_rejects"] == fewest)
    if chosen is None:
        chosen = next((d["threshold"] for d in report["det"] if d["threshold"] >= start and counted(d["all"]) <= budget),
                      None)  # fmt: skip
    if chosen is not None:
        options = dataclasses.replace(options, probability_threshold=chosen)
        point = next(d for d in report["det"] if d["threshold"] == chosen)["all"]
    else:
        point = report["at_threshold"]["all"]
    return {
        "options": options.as_dict(),
        "calibration": {
            "minutes": round(report["hours"] * 60, 2),
            "words": int(point["events"]),
            "false_accepts_per_hour_budget": false_accepts_per_hour_budget,
            "budget_met": chosen is not None,
            "start_threshold": start,
            "moved": "kept" if chosen is None or chosen == start else ("down" if chosen < start else "up"),
            "confidence": confidence,
            "false_reject_rate": point["false_reject_rate"],
            "false_accepts_per_hour": point["false_accepts_per_hour"],
            "false_accepts_per_hour_bound": bound(point),
            "auc": report["auc"]["all"],
        },
    }
