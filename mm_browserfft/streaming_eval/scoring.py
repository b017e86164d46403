"""Scoring a listening model on long recordings: window scores, the decision rule replayed, DET, AUC."""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..audio import tail_window_start
from ..errors import InvalidInputError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from ..listen import DecisionRule, Detection, ListeningOptions, is_word
from ..predict import predict_windows
from .recordings import Event, LongRecording

__all__ = [
    "DEFAULT_THRESHOLDS", "FALSE_ACCEPT_CAUSES", "window_scores", "replay", "match_detections",
    "explain_false_accepts", "ranked_confusions", "roc_auc", "streaming_report", "plot_det",
    "ScoredRecording", "score_recordings", "report_on_scores",
]  # fmt: skip

DEFAULT_THRESHOLDS = tuple(np.round(np.concatenate(
    [[0.02, 0.05, 0.075], np.arange(0.1, 0.949, 0.025), [0.95, 0.97, 0.98, 0.99, 0.995, 0.999]]), 3))  # fmt: skip
"""The thresholds a DET curve is drawn over: every 0.025 from 0.1 to 0.925, and finer at both ends (those under
0.3 serve the ``"each_word"`` decision, whose false rejects fall with the threshold to near none)."""
FALSE_ACCEPT_CAUSES = ("another_keyword", "same_word_again", "unknown_speech", "background")
"""What a false accept was decided during (:func:`explain_false_accepts`)."""


def window_scores(predictor, waveform: np.ndarray, *, hop_samples: int, batch: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """Probabilities of every window of ``waveform`` (the recogniser's windows: one per ``hop_samples``,
    and one ending at the last sample, :func:`~mm_browserfft.audio.tail_window_start`).

    Args:
      predictor: a :class:`~mm_browserfft.predict.Predictor`.
      waveform: float32 ``[n]`` at 44.1 kHz, ``n >= 44032``.

    Returns:
      ``(starts [m] int samples, probabilities [m, C] float32)``.
    """
    starts = np.arange(0, waveform.size - WAVEFORM_LENGTH + 1, hop_samples, dtype=np.int64)
    tail = tail_window_start(waveform.size, int(starts[-1]) + WAVEFORM_LENGTH if starts.size else 0)
    if tail is not None:
        starts = np.append(starts, tail)
    return starts, predict_windows(predictor, waveform, starts, batch=batch)


@dataclasses.dataclass(frozen=True, eq=False)
class ScoredRecording:
    """A test recording as a listener hears it: the scores of its windows (:func:`window_scores`).

    Attributes:
      events: what was said in it, and when (:class:`~mm_browserfft.streaming_eval.Event`).
      duration_s: its length, seconds.
      hop_samples: the windows' hop, samples at 44.1 kHz.
      starts: ``[m]`` int window starts, samples.
      probs: ``[m, C]`` float32 class probabilities of the windows.
    """

    events: Sequence[Event]
    duration_s: float
    hop_samples: int
    starts: np.ndarray
    probs: np.ndarray


def score_recordings(predictor, recordings: Iterable[LongRecording], *, hop_samples: int) -> List[ScoredRecording]:
    """The window scores of each recording, one recording at a time (its audio is let go once scored).

    Score once, then judge as many thresholds and decision rules of that hop as wanted with
    :func:`report_on_scores`: replaying a rule costs a small fraction of scoring.
    """
    return [ScoredRecording(r.events, r.duration_s, hop_samples, *window_scores(predictor, r.waveform, hop_samples=hop_samples))
            for r in recordings]  # fmt: skip


def replay(labels: Sequence[str], starts: np.ndarray, probs: np.ndarray, options: ListeningOptions) -> List[Detection]:
    """The detections a :class:`~mm_browserfft.listen.Recognizer` with ``options`` makes on these window scores.

    ``starts`` ``[m]`` (samples at 44.1 kHz) and ``probs`` ``[m, C]`` from :func:`window_scores`
    with ``options.hop_samples``.
    """
    return DecisionRule(labels, options).run(starts, probs)


def _during(d: Detection, e: Event, max_delay_s: float) -> bool:
    """Whether ``d`` was decided while ``e`` was said: from its start to ``max_delay_s`` after its end."""
    return e.start_s <= d.end_s <= e.end_s + max_delay_s


def _pair(detections: Sequence[Detection], events: Sequence[Event], keywords: Sequence[str], max_delay_s: float):
    """``[(detection, index of the event it hits, or None)]`` for the detections of ``keywords``, in order.

    A detection of word *w* hits the first *w* it was decided during that no earlier detection hit.
    """
    wanted, hit, pairs = set(keywords), [False] * len(events), []
    for d in detections:
        if d.label not in wanted:
            continue
        match = next((i for i, e in enumerate(events) if e.label == d.label and not hit[i]
                      and _during(d, e, max_delay_s)), None)  # fmt: skip
        if match is not None:
            hit[match] = True
        pairs.append((d, match))
    return pairs


def match_detections(
    detections: Sequence[Detection], events: Sequence[Event], keywords: Sequence[str], *, max_delay_s: float = 0.5
) -> Dict[str, Dict[str, int]]:
    """Per keyword: ``events``, ``hits``, ``false_rejects`` and ``false_accepts`` (the module's matching rule)."""
    counts = {k: {"events": 0, "hits": 0, "false_rejects": 0, "false_accepts": 0} for k in keywords}
    for e in events:
        if e.label in counts:
            counts[e.label]["events"] += 1
    for d, match in _pair(detections, events, keywords, max_delay_s):
        counts[d.label]["false_accepts" if match is None else "hits"] += 1
    for k in keywords:
        counts[k]["false_rejects"] = counts[k]["events"] - counts[k]["hits"]
    return counts


def explain_false_accepts(
    detections: Sequence[Detection], events: Sequence[Event], keywords: Sequence[str], *, max_delay_s: float = 0.5
) -> Dict[str, Dict]:
    """What each false accept of :func:`match_detections` was decided during, and which words were heard as which.

    A false accept decided while a word was said (the hit rule's span: from its start to
    ``max_delay_s`` after its end) is ``another_keyword`` (a keyword heard as another one:
    counted in ``heard_as[said][fired]``), ``same_word_again`` (the word, already hit) or
    ``unknown_speech`` (an ``_unknown_`` word); one decided while no word was said is ``background``.

    Returns:
      ``{"causes": {cause: count} over :data:`FALSE_ACCEPT_CAUSES`, "heard_as": {said: {fired: count}}}``.
    """
    causes = dict.fromkeys(FALSE_ACCEPT_CAUSES, 0)
    heard_as: Dict[str, Dict[str, int]] = {}
    for d, match in _pair(detections, events, keywords, max_delay_s):
        if match is not None:
            continue
        said = next((e for e in events if _during(d, e, max_delay_s)), None)
        if said is None:
            causes["background"] += 1
        elif said.label == d.label:
            causes["same_word_again"] += 1
        elif said.label not in keywords:  # _unknown_ speech, or a word the model has no class for
            causes["unknown_speech"] += 1
        else:
            causes["another_keyword"] += 1
            fired = heard_as.setdefault(said.label, {})
            fired[d.label] = fired.get(d.label, 0) + 1
    return {"causes": causes, "heard_as": heard_as}


def ranked_confusions(heard_as: Dict[str, Dict[str, int]]) -> List[Tuple[str, str, int]]:
    """``(said, fired, times)`` of a ``heard_as`` (:func:`explain_false_accepts`), most frequent first, ties by name."""
    pairs = [(said, fired, n) for said, heard in heard_as.items() for fired, n in heard.items()]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def _add_explanations(parts: Sequence[Dict[str, Dict]]) -> Dict[str, Dict]:
    """The sum of several :func:`explain_false_accepts` results (``heard_as`` in :func:`ranked_confusions` order)."""
    causes = dict.fromkeys(FALSE_ACCEPT_CAUSES, 0)
    summed: Dict[str, Dict[str, int]] = {}
    for part in parts:
        for cause, n in part["causes"].items():
            causes[cause] += n
        for said, heard in part["heard_as"].items():
            for fired, n in heard.items():
                summed.setdefault(said, {})[fired] = summed.get(said, {}).get(fired, 0) + n
    heard_as: Dict[str, Dict[str, int]] = {}
    for said, fired, n in ranked_confusions(summed):
        heard_as.setdefault(said, {})[fired] = n
    return {"causes": causes, "heard_as": heard_as}


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> Optional[float]:
    """Area under the ROC curve of scores of positives against negatives (ties count half); None if either is empty."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not pos.size or not neg.size:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < values.size:  # average ranks over ties
        j = i
        while j + 1 < values.size and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def _window_auc(labels: Sequence[str], keywords: Sequence[str], scored: Sequence[ScoredRecording]) -> Dict[str, Optional[float]]:
    """ROC AUC per keyword and ``"all"``: windows holding a whole word of it vs windows holding no event."""
    index = {l: i for i, l in enumerate(labels)}
    word_cols = [index[k] for k in keywords]
    pos: Dict[str, List[float]] = {k: [] for k in keywords}
    pos_all: List[float] = []
    neg_rows = []
    for s in scored:
        probs = s.probs
        t0, t1 = s.starts / SAMPLE_RATE, (s.starts + WAVEFORM_LENGTH) / SAMPLE_RATE
        touched = np.zeros(len(s.starts), bool)
        for e in s.events:
            touched |= (t0 < e.end_s) & (t1 > e.start_s)
            if e.label in pos:
                whole = np.flatnonzero((t0 <= e.start_s) & (t1 >= e.end_s))
                pos[e.label] += probs[whole, index[e.label]].tolist()
                pos_all += probs[whole][:, word_cols].max(axis=1).tolist()
        neg_rows.append(probs[~touched])
    neg = np.concatenate(neg_rows) if neg_rows else np.zeros((0, len(labels)))
    out = {k: roc_auc(np.array(pos[k]), neg[:, index[k]]) for k in keywords}
    out["all"] = roc_auc(np.array(pos_all), neg[:, word_cols].max(axis=1) if len(neg) else np.zeros(0))
    return out


def _summarise(counts: Dict[str, Dict[str, int]], hours: float) -> Dict[str, Dict[str, float]]:
    out = {}
    total = {"events": 0, "hits": 0, "false_rejects": 0, "false_accepts": 0}
    for k, c in counts.items():
        for key in total:
            total[key] += c[key]
        out[k] = _rates(c, hours)
    out["all"] = _rates(total, hours)
    return out


def _rates(c: Dict[str, int], hours: float) -> Dict[str, float]:
    return {**c, "false_reject_rate": c["false_rejects"] / c["events"] if c["events"] else None,
            "false_accepts_per_hour": c["false_accepts"] / hours if hours > 0 else None}  # fmt: skip


def streaming_report(
    predictor,
    recordings: Iterable[LongRecording],
    *,
    options: Optional[ListeningOptions] = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    false_accepts_per_hour_budget: float = 1.0,
) -> Dict:
    """False rejects and false accepts per hour of a model listening to ``recordings``.

    Args:
      predictor: a :class:`~mm_browserfft.predict.Predictor` (labels included).
      recordings: :class:`LongRecording` s (from :func:`build_test_recordings`), consumed one at a time.
      options: listening options; ``probability_threshold`` is the operating point reported
        under ``at_threshold``, and the DET curve varies it over ``thresholds``.
      false_accepts_per_hour_budget: the budget the chosen threshold must meet (all keywords together).

    Returns:
      dict with ``keywords``, ``hours``, ``options``, ``at_threshold`` (per keyword and ``all``:
      events, hits, false_rejects, false_accepts, false_reject_rate, false_accepts_per_hour),
      ``false_accepts_by_cause`` and ``heard_as`` (at the operating point: :func:`explain_false_accepts`),
      ``per_recording`` (the same ``all`` figures of each recording on its own, with its ``minutes``),
      ``det`` (one entry per threshold: ``threshold`` and the same ``all`` figures plus per keyword), ``auc`` (per keyword and ``all``), ``budget`` (``false_accepts_per_hour``, the
      chosen ``threshold`` or None: of the thresholds within the budget, the one with the fewest
      false rejects, the highest of those, and its ``false_reject_rate``) and
      ``false_accepts_per_hour_at_false_reject_rate`` (the lowest on the curve at 5 % and 10 %).
    """
    options = options or ListeningOptions()
    scored = score_recordings(predictor, recordings, hop_samples=options.hop_samples)
    return report_on_scores(predictor.labels, scored, options=options, thresholds=thresholds,
                            false_accepts_per_hour_budget=false_accepts_per_hour_budget)  # fmt: skip


def report_on_scores(
    labels: Sequence[str],
    scored: Sequence[ScoredRecording],
    *,
    options: Optional[ListeningOptions] = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    false_accepts_per_hour_budget: float = 1.0,
) -> Dict:
    """:func:`streaming_report` of recordings already scored (:func:`score_recordings`).

    Args:
      labels: the model's class labels, in the order of the scores' columns.
      scored: the recordings, scored with ``options.hop_samples``.

    Raises:
      InvalidInputError: no recording, or one scored with another hop than ``options``' overlap makes.
    """
    options = options or ListeningOptions()
    labels = list(labels)
    keywords = [l for l in labels if is_word(l)]
    if not scored:
        raise InvalidInputError("no test recording to evaluate")
    hops = {s.hop_samples for s in scored}
    if hops != {options.hop_samples}:
        raise InvalidInputError(f"the recordings were scored every {sorted(hops)} samples, but overlap "
                                f"{options.overlap_factor} listens every {options.hop_samples}")  # fmt: skip
    hours = sum(s.duration_s for s in scored) / 3600.0

    def counted(threshold: float) -> List[Dict[str, Dict[str, int]]]:
        """The counts of each recording at ``threshold``."""
        opts = dataclasses.replace(options, probability_threshold=float(threshold))
        return [match_detections(replay(labels, s.starts, s.probs, opts), s.events, keywords) for s in scored]

    def total(found: List[Dict[str, Dict[str, int]]]) -> Dict[str, Dict[str, float]]:
        counts = {k: {"events": 0, "hits": 0, "false_rejects": 0, "false_accepts": 0} for k in keywords}
        for one in found:
            for k in keywords:
                for key in counts[k]:
                    counts[k][key] += one[k][key]
        return _summarise(counts, hours)

    operating_detections = [replay(labels, s.starts, s.probs, options) for s in scored]
    operating = [match_detections(found, s.events, keywords) for found, s in zip(operating_detections, scored)]
    explained = _add_explanations([explain_false_accepts(found, s.events, keywords)
                                   for found, s in zip(operating_detections, scored)])  # fmt: skip
    per_recording = [{"minutes": s.duration_s / 60.0, **_summarise(one, s.duration_s / 3600.0)["all"]}
                     for s, one in zip(scored, operating)]  # fmt: skip

    det = [{"threshold": float(t), **total(counted(t))} for t in sorted(thresholds)]
    within = [d for d in det if d["all"]["false_accepts_per_hour"] <= false_accepts_per_hour_budget]
    # the fewest false rejects within the budget, and of those the highest threshold: under the
    # recogniser's rule a lower threshold can miss more (another word fires first and suppresses it)
    chosen = min(within, key=lambda d: (_or_one(d["all"]["false_reject_rate"]), -d["threshold"]), default=None)

    def best_fa_at(frr: float) -> Optional[float]:
        ok = [d["all"]["false_accepts_per_hour"] for d in det
              if d["all"]["false_reject_rate"] is not None and d["all"]["false_reject_rate"] <= frr]  # fmt: skip
        return min(ok) if ok else None

    return {
        "keywords": keywords,
        "hours": hours,
        "recordings": len(scored),
        "options": options.as_dict(),
        "at_threshold": total(operating),
        "false_accepts_by_cause": explained["causes"],
        "heard_as": explained["heard_as"],
        "per_recording": per_recording,
        "det": det,
        "auc": _window_auc(labels, keywords, scored),
        "budget": {
            "false_accepts_per_hour": false_accepts_per_hour_budget,
            "threshold": chosen["threshold"] if chosen else None,
            "false_reject_rate": chosen["all"]["false_reject_rate"] if chosen else None,
        },
        "false_accepts_per_hour_at_false_reject_rate": {"0.05": best_fa_at(0.05), "0.10": best_fa_at(0.10)},
    }


def _or_one(rate: Optional[float]) -> float:
    """A false-reject rate, 1.0 where there was no word to reject."""
    return 1.0 if rate is None else rate


def plot_det(report: Dict, path) -> None:
    """The DET curve of a :func:`streaming_report`: false-reject rate against false accepts per hour, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name in report["keywords"] + ["all"]:
        fa = [max(d[name]["false_accepts_per_hour"], 1e-2) for d in report["det"]]
        frr = [d[name]["false_reject_rate"] or 0.0 for d in report["det"]]
        ax.plot(fa, frr, marker="." if name != "all" else "o", lw=2.5 if name == "all" else 1.0,
                label=name if name != "all" else "all keywords", color="black" if name == "all" else None)  # fmt: skip
    budget = report["budget"]
    ax.axvline(budget["false_accepts_per_hour"], color="grey", ls="--", lw=1, label="budget")
    ax.set(xscale="log", xlabel="false accepts per hour (log)", ylabel="false-reject rate",
           title=f"DET over thresholds, {report['hours']:.2f} h of audio")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
