"""Judge a listening model as detectors are judged: false rejects and false accepts per hour.

A clip classifier's accuracy says little about a model that listens to a microphone:
there the windows next to a word hold half of it, noise goes on for hours, and
people say other words. This module

1. builds long test recordings from labelled clips (:func:`build_test_recording`):
   words and unknown speech spliced into background recordings at random times and
   levels, their positions recorded (:class:`Event`);
2. scores every window of them once (:func:`window_scores`) and replays the
   recogniser's decision rule (:class:`~mm_browserfft.listen.DecisionRule`) over those
   scores at many thresholds (:func:`replay`);
3. matches detections to the words said (:func:`match_detections`) and reports, per
   keyword and overall, the false-reject rate, false accepts per hour, the DET curve
   over thresholds, the ROC AUC of window scores (as TF.js ``evaluate()`` computes it:
   windows of words against windows of background) and the lowest threshold that keeps
   false accepts under a budget (:func:`streaming_report`, :func:`plot_det`).

Matching rule: a detection is decided when its window ends (``end_s``). A detection
of word ``w`` is a *hit* when it is decided after an event of ``w`` began and at most
``max_delay_s`` (0.5 s) after it ended, and that event was not hit before: a word cannot
be heard before it is said, and a late answer is no answer. Every other detection is a
*false accept* (a second detection of the same word, a detection during another word or
unknown speech, or one in background alone). An event never hit is a *false reject*.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .augment import trim_silence
from .errors import InvalidInputError
from .frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from .listen import DecisionRule, Detection, ListeningOptions, is_word

__all__ = [
    "Event",
    "LongRecording",
    "build_test_recording",
    "build_test_recordings",
    "build_test_recordings_from_folder",
    "background_paths_of",
    "window_scores",
    "replay",
    "match_detections",
    "roc_auc",
    "streaming_report",
    "plot_det",
    "calibrate_listening",
    "DEFAULT_THRESHOLDS",
]

DEFAULT_THRESHOLDS = tuple(np.round(np.concatenate([np.arange(0.30, 0.95, 0.05), [0.95, 0.97, 0.98, 0.99, 0.995, 0.999]]), 3))
"""The thresholds a DET curve is drawn over."""


@dataclasses.dataclass(frozen=True)
class Event:
    """A word spliced into a test recording: its label and where its (trimmed) sound lies, seconds."""

    label: str
    start_s: float
    end_s: float


@dataclasses.dataclass
class LongRecording:
    """A long recording to listen to: float32 ``waveform`` ``[n]`` at 44.1 kHz and the :class:`Event` list."""

    waveform: np.ndarray
    events: List[Event]

    @property
    def duration_s(self) -> float:
        return self.waveform.size / SAMPLE_RATE


_SPEECH_RMS = (0.01, 0.3)
"""A spliced word's RMS level stays within -40..-10 dBFS, whatever the background's level."""


def _background_bed(backgrounds: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """``[length]`` of background: random stretches of the recordings, cross-faded, each at a random level."""
    fade = 2205  # 50 ms
    out = np.zeros(length + fade, np.float32)
    pos = 0
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    while pos < length:
        rec = backgrounds[int(rng.integers(len(backgrounds)))]
        take = int(min(rec.size, rng.integers(3 * SAMPLE_RATE, 20 * SAMPLE_RATE)))
        start = int(rng.integers(0, rec.size - take + 1))
        piece = rec[start : start + take].astype(np.float32)
        piece = piece / (np.sqrt(np.mean(piece**2)) + 1e-9) * float(np.exp(rng.uniform(np.log(0.003), np.log(0.05))))
        if piece.size > 2 * fade:
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        end = min(pos + piece.size, out.size)
        out[pos:end] += piece[: end - pos]
        pos = end - fade if end - fade > pos else end
    return out[:length]


def build_test_recording(
    words: Sequence[Tuple[np.ndarray, str]],
    backgrounds: Sequence[np.ndarray],
    *,
    rng: np.random.Generator,
    duration_s: Optional[float] = None,
    gap_s: Tuple[float, float] = (1.5, 6.0),
    snr_db: Tuple[float, float] = (5.0, 25.0),
) -> LongRecording:
    """Splice ``words`` into a bed of background audio, in the given order, at random gaps and levels.

    Args:
      words: ``(clip float32 [n] at 44.1 kHz, label)``; each clip is trimmed to its sound
        (:func:`~mm_browserfft.augment.trim_silence`); label ``_unknown_`` marks unknown speech.
      backgrounds: recordings at 44.1 kHz, each at least a few seconds long.
      rng: the random source (positions, levels, background stretches).
      duration_s: total length; default: just long enough for every word (plus a last gap).
        Words that do not fit are left out of the recording (and of its events).
      gap_s: range of the silence-to-silence gap before each word, seconds (uniform).
      snr_db: range of each word's level over the local background, dB (uniform); the
        word's RMS is then kept within -40..-10 dBFS (a quiet stretch of background does
        not make a word inaudible).

    Returns:
      a :class:`LongRecording`.
    """
    if not backgrounds or min(b.size for b in backgrounds) < SAMPLE_RATE:
        raise InvalidInputError("test recordings need background recordings of at least one second")
    trimmed = [(trim_silence(np.asarray(c, np.float32)), label) for c, label in words]
    gaps = rng.uniform(*gap_s, size=len(trimmed))
    starts, pos = [], 0.0
    for (clip, _), gap in zip(trimmed, gaps):
        pos += gap
        starts.append(pos)
        pos += clip.size / SAMPLE_RATE
    total_s = duration_s if duration_s is not None else pos + gap_s[1]
    length = int(round(total_s * SAMPLE_RATE))
    waveform = _background_bed(backgrounds, length, rng)
    events = []
    for (clip, label), start_s in zip(trimmed, starts):
        start = int(round(start_s * SAMPLE_RATE))
        if start + clip.size > length - WAVEFORM_LENGTH // 4:
            break
        local = waveform[start : start + clip.size]
        level = float(np.sqrt(np.mean(local**2))) * 10 ** (rng.uniform(*snr_db) / 20)
        level = float(np.clip(level, *_SPEECH_RMS))
        waveform[start : start + clip.size] = local + clip * (level / (float(np.sqrt(np.mean(clip**2))) + 1e-9))
        events.append(Event(label, start / SAMPLE_RATE, (start + clip.size) / SAMPLE_RATE))
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    if peak > 0.99:
        waveform *= 0.99 / peak
    return LongRecording(waveform.astype(np.float32), events)


BACKGROUND_FOLDERS = ("_background_noise_", "_silence_")
"""Label folders whose recordings serve as background when no background folder is given."""
UNKNOWN_FOLDER = "_unknown_"


def build_test_recordings(
    clips: Sequence[Tuple[str, str]],
    background_paths: Sequence[str],
    *,
    minutes: float = 0.0,
    seed: int = 0,
    words_per_recording: int = 60,
) -> Iterator[LongRecording]:
    """Long test recordings of labelled clips ``(path, label)`` over the recordings ``background_paths``.

    Every clip is said once, in a seeded random order, ``words_per_recording`` words per
    recording (label ``_unknown_``: unknown speech, a negative). Background-only recordings
    (5 minutes each, or less) follow until the total reaches ``minutes``. The recordings are
    made one at a time as they are consumed (a 5-minute recording is 53 MB), so that
    :func:`streaming_report` holds one at a time.

    Raises:
      DatasetError: no background recording of at least one second.
    """
    from .audio import load_audio
    from .errors import DatasetError

    backgrounds = [b for b in (load_audio(p) for p in background_paths) if b.size >= SAMPLE_RATE]
    if not backgrounds:
        where = os.path.dirname(background_paths[0]) if background_paths else None
        raise DatasetError("no background recording of at least one second", path=where)
    return _recordings(clips, backgrounds, minutes=minutes, seed=seed, words_per_recording=words_per_recording)


def _recordings(clips, backgrounds, *, minutes: float, seed: int, words_per_recording: int) -> Iterator[LongRecording]:
    from .audio import load_audio

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    done_s = 0.0
    for i in range(0, len(order), words_per_recording):
        words = [(load_audio(clips[j][0]), clips[j][1]) for j in order[i : i + words_per_recording]]
        recording = build_test_recording(words, backgrounds, rng=rng)
        done_s += recording.duration_s
        yield recording
    while done_s < minutes * 60.0:
        recording = build_test_recording([], backgrounds, rng=rng, duration_s=max(2.0, min(300.0, minutes * 60.0 - done_s)))
        done_s += recording.duration_s
        yield recording


def background_paths_of(data_dir, background_dir=None) -> List[str]:
    """The background recordings: every audio file of ``background_dir``, else of the first of
    :data:`BACKGROUND_FOLDERS` in ``data_dir``.

    Raises:
      DatasetError: neither exists.
    """
    from .data import list_audio_files
    from .errors import DatasetError

    if background_dir is not None:
        return list_audio_files(background_dir)
    root = pathlib.Path(data_dir)
    folder = next((root / f for f in BACKGROUND_FOLDERS if (root / f).is_dir()), None)
    if folder is None:
        raise DatasetError(f"no background: give a background folder or add one of {BACKGROUND_FOLDERS}", path=root)
    return list_audio_files(folder)


def build_test_recordings_from_folder(
    data_dir, keywords: Sequence[str], *, background_dir=None, minutes: float = 0.0, seed: int = 0
) -> Iterator[LongRecording]:
    """:func:`build_test_recordings` of a labelled folder (``<data_dir>/<label>/<clips>``).

    The words are every clip of the folders named in ``keywords`` and of ``_unknown_``;
    the background is :func:`background_paths_of`.

    Raises:
      DatasetError: the folder is missing, no keyword has a folder, or there is no background.
    """
    from .data import list_audio_files
    from .errors import DatasetError

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError("data folder not found", path=root)
    present = [k for k in keywords if (root / k).is_dir()]
    if not present:
        raise DatasetError(f"none of the keywords {list(keywords)} has a folder here", path=root)
    clips = [(p, k) for k in present + [UNKNOWN_FOLDER] if (root / k).is_dir() for p in list_audio_files(root / k)]
    return build_test_recordings(clips, background_paths_of(root, background_dir), minutes=minutes, seed=seed)


def window_scores(predictor, waveform: np.ndarray, *, hop_samples: int, batch: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """Probabilities of every window of ``waveform`` (the recogniser's windows: one per ``hop_samples``).

    Args:
      predictor: a :class:`~mm_browserfft.predict.Predictor`.
      waveform: float32 ``[n]`` at 44.1 kHz, ``n >= 44032``.

    Returns:
      ``(starts [m] int samples, probabilities [m, C] float32)``.
    """
    starts = np.arange(0, waveform.size - WAVEFORM_LENGTH + 1, hop_samples, dtype=np.int64)
    probs = [predictor.predict(np.stack([waveform[s : s + WAVEFORM_LENGTH] for s in starts[i : i + batch]]))
             for i in range(0, len(starts), batch)]  # fmt: skip
    return starts, np.concatenate(probs) if probs else np.zeros((0, len(predictor.labels)), np.float32)


def replay(labels: Sequence[str], starts: np.ndarray, probs: np.ndarray, options: ListeningOptions) -> List[Detection]:
    """The detections a :class:`~mm_browserfft.listen.Recognizer` with ``options`` makes on these window scores.

    ``starts`` ``[m]`` (samples at 44.1 kHz) and ``probs`` ``[m, C]`` from :func:`window_scores`
    with ``options.hop_samples``.
    """
    return DecisionRule(labels, options).run(starts, probs)


def match_detections(
    detections: Sequence[Detection], events: Sequence[Event], keywords: Sequence[str], *, max_delay_s: float = 0.5
) -> Dict[str, Dict[str, int]]:
    """Per keyword: ``events``, ``hits``, ``false_rejects`` and ``false_accepts`` (the module's matching rule)."""
    counts = {k: {"events": 0, "hits": 0, "false_rejects": 0, "false_accepts": 0} for k in keywords}
    for e in events:
        if e.label in counts:
            counts[e.label]["events"] += 1
    hit = [False] * len(events)
    for d in detections:
        if d.label not in counts:
            continue
        match = next((i for i, e in enumerate(events) if e.label == d.label and not hit[i]
                      and e.start_s <= d.end_s <= e.end_s + max_delay_s), None)  # fmt: skip
        if match is None:
            counts[d.label]["false_accepts"] += 1
        else:
            hit[match] = True
            counts[d.label]["hits"] += 1
    for k in keywords:
        counts[k]["false_rejects"] = counts[k]["events"] - counts[k]["hits"]
    return counts


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


def _window_auc(labels, keywords, heard) -> Dict[str, Optional[float]]:
    """ROC AUC per keyword and ``"all"``: windows holding a whole word of it vs windows holding no event."""
    index = {l: i for i, l in enumerate(labels)}
    word_cols = [index[k] for k in keywords]
    pos: Dict[str, List[float]] = {k: [] for k in keywords}
    pos_all: List[float] = []
    neg_rows = []
    for events, _, starts, probs in heard:
        t0, t1 = starts / SAMPLE_RATE, (starts + WAVEFORM_LENGTH) / SAMPLE_RATE
        touched = np.zeros(len(starts), bool)
        for e in events:
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
            "false_accepts_per_hour": c["false_accepts"] / hours}  # fmt: skip


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
      ``det`` (one entry per threshold: ``threshold`` and the same ``all`` figures plus per
      keyword), ``auc`` (per keyword and ``all``), ``budget`` (``false_accepts_per_hour``, the
      chosen ``threshold`` or None, and its ``false_reject_rate``) and
      ``false_accepts_per_hour_at_false_reject_rate`` (the lowest on the curve at 5 % and 10 %).
    """
    options = options or ListeningOptions()
    labels = list(predictor.labels)
    keywords = [l for l in labels if is_word(l)]
    heard = []  # (events, duration, window starts, probabilities) of each recording; its audio is let go
    for r in recordings:
        heard.append((r.events, r.duration_s, *window_scores(predictor, r.waveform, hop_samples=options.hop_samples)))
    if not heard:
        raise InvalidInputError("no test recording to evaluate")
    hours = sum(h[1] for h in heard) / 3600.0

    def at(threshold: float) -> Dict[str, Dict[str, float]]:
        opts = dataclasses.replace(options, probability_threshold=float(threshold))
        counts = {k: {"events": 0, "hits": 0, "false_rejects": 0, "false_accepts": 0} for k in keywords}
        for events, _, starts, probs in heard:
            found = match_detections(replay(labels, starts, probs, opts), events, keywords)
            for k in keywords:
                for key in counts[k]:
                    counts[k][key] += found[k][key]
        return _summarise(counts, hours)

    det = [{"threshold": float(t), **at(t)} for t in sorted(thresholds)]
    within = [d for d in det if d["all"]["false_accepts_per_hour"] <= false_accepts_per_hour_budget]
    chosen = within[0] if within else None

    def best_fa_at(frr: float) -> Optional[float]:
        ok = [d["all"]["false_accepts_per_hour"] for d in det
              if d["all"]["false_reject_rate"] is not None and d["all"]["false_reject_rate"] <= frr]  # fmt: skip
        return min(ok) if ok else None

    return {
        "keywords": keywords,
        "hours": hours,
        "recordings": len(heard),
        "options": options.as_dict(),
        "at_threshold": at(options.probability_threshold),
        "det": det,
        "auc": _window_auc(labels, keywords, heard),
        "budget": {
            "false_accepts_per_hour": false_accepts_per_hour_budget,
            "threshold": chosen["threshold"] if chosen else None,
            "false_reject_rate": chosen["all"]["false_reject_rate"] if chosen else None,
        },
        "false_accepts_per_hour_at_false_reject_rate": {"0.05": best_fa_at(0.05), "0.10": best_fa_at(0.10)},
    }


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


def calibrate_listening(
    predictor,
    clips: Sequence[Tuple[str, str]],
    background_paths: Sequence[str],
    *,
    options: Optional[ListeningOptions] = None,
    false_accepts_per_hour_budget: float = 2.0,
    minutes: float = 10.0,
    max_words: int = 400,
    seed: int = 0,
) -> Dict:
    """Choose the threshold for listening on test clips: the lowest that meets the false-accept budget.

    Args:
      predictor: the exported model.
      clips: ``(path, label)`` of test clips (keywords are said; ``_unknown_`` clips are
        negatives; clips of non-word labels are left out: they are the background's kind).
      background_paths: background recordings.
      options: the other settings (overlap, suppression, averaging) to calibrate under.
      false_accepts_per_hour_budget: the budget, all keywords together.
      minutes: at least this much audio is listened to (background-only audio is added).
      max_words: at most this many clips are said (a seeded sample of them), so that a large
        test set costs minutes, not hours.

    Returns:
      ``{"options": ListeningOptions.as_dict(), "calibration": {...}}``: the chosen options (the
      default threshold when no threshold meets the budget) and what was measured: ``minutes``,
      ``words``, ``budget_met``, the budget, ``false_reject_rate``, ``false_accepts_per_hour``, ``auc``.
    """
    options = options or ListeningOptions()
    keywords = {l for l in predictor.labels if is_word(l)}
    said = [(p, l) for p, l in clips if l in keywords or l == UNKNOWN_FOLDER]
    if len(said) > max_words:  # a seeded sample: calibration time stays bounded on large test sets
        keep = np.sort(np.random.default_rng(seed).choice(len(said), max_words, replace=False))
        said = [said[i] for i in keep]
    recordings = build_test_recordings(said, background_paths, minutes=minutes, seed=seed)
    report = streaming_report(predictor, recordings, options=options,
                              false_accepts_per_hour_budget=false_accepts_per_hour_budget)  # fmt: skip
    chosen = report["budget"]["threshold"]
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
            "false_reject_rate": point["false_reject_rate"],
            "false_accepts_per_hour": point["false_accepts_per_hour"],
            "auc": report["auc"]["all"],
        },
    }
