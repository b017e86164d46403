"""Streaming evaluation: long recordings with known words, the matching rule, DET, AUC, the budget, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import CLI_LABELS, run_cli
from mm_browserfft.errors import InvalidInputError
from mm_browserfft.frontend import SAMPLE_RATE
from mm_browserfft.listen import Detection, ListeningOptions, read_listening_options
from mm_browserfft.predict import TFLitePredictor
from mm_browserfft.streaming_eval import (
    FALSE_ACCEPT_CAUSES,
    Event,
    build_test_recording,
    build_test_recordings,
    background_paths_of,
    build_test_recordings_from_folder,
    explain_false_accepts,
    match_detections,
    report_on_scores,
    roc_auc,
    score_recordings,
    streaming_report,
)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _burst(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size)).astype(np.float32)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 0.01


def test_words_are_spliced_in_order_at_their_recorded_places_and_levels():
    words = [(_burst(0.5, 300.0 * (k + 1)), f"w{k}") for k in range(6)]
    rec = build_test_recording(words, [_noise(30.0)], rng=np.random.default_rng(0), gap_s=(1.5, 2.0), snr_db=(10, 10))
    assert [e.label for e in rec.events] == [f"w{k}" for k in range(6)]
    starts = np.array([e.start_s for e in rec.events])
    ends = np.array([e.end_s for e in rec.events])
    assert np.all(starts[1:] - ends[:-1] >= 1.5) and ends[-1] < rec.duration_s
    for e in rec.events:
        inside = rec.waveform[int(e.start_s * SAMPLE_RATE) : int(e.end_s * SAMPLE_RATE)]
        before = rec.waveform[int((e.start_s - 1.0) * SAMPLE_RATE) : int((e.start_s - 0.2) * SAMPLE_RATE)]
        assert np.sqrt(np.mean(inside**2)) > 2.0 * np.sqrt(np.mean(before**2))  # the word stands out of the bed


def test_words_that_do_not_fit_are_left_out_of_recording_and_events():
    words = [(_burst(0.5, 500.0), "w")] * 10
    rec = build_test_recording(words, [_noise(30.0)], rng=np.random.default_rng(1), duration_s=8.0, gap_s=(1.5, 1.5))
    assert rec.duration_s == pytest.approx(8.0) and 1 <= len(rec.events) < 10
    assert all(e.end_s <= 8.0 for e in rec.events)


def test_matching_counts_hits_late_or_early_answers_duplicates_and_misses():
    events = [Event("yes", 2.0, 2.6), Event("no", 5.0, 5.5), Event("_unknown_", 8.0, 8.5), Event("yes", 11.0, 11.6)]
    detections = [
        Detection("yes", 0.9, 1.4, 2.4),  # decided while "yes" is said: hit
        Detection("yes", 0.9, 1.9, 2.9),  # the same word again: false accept
        Detection("no", 0.9, 3.8, 4.8),  # decided before "no" began: false accept
        Detection("no", 0.9, 5.0, 6.0),  # 0.5 s after the end: hit
        Detection("yes", 0.9, 7.6, 8.6),  # during unknown speech: false accept
        # the second "yes" is never detected: false reject
    ]
    counts = match_detections(detections, events, ["yes", "no"])
    assert counts["yes"] == {"events": 2, "hits": 1, "false_rejects": 1, "false_accepts": 2}
    assert counts["no"] == {"events": 1, "hits": 1, "false_rejects": 0, "false_accepts": 1}


def test_each_false_accept_is_explained_by_what_was_said_when_it_was_decided():
    events = [Event("yes", 2.0, 2.6), Event("no", 5.0, 5.5), Event("_unknown_", 8.0, 8.5), Event("no", 11.0, 11.5)]
    detections = [
        Detection("yes", 0.9, 1.4, 2.4),  # hit
        Detection("yes", 0.9, 1.9, 2.9),  # the same word again
        Detection("go", 0.9, 4.2, 5.2),  # "no" heard as "go"
        Detection("no", 0.9, 4.6, 5.6),  # hit
        Detection("yes", 0.9, 7.6, 8.6),  # during unknown speech
        Detection("go", 0.9, 9.5, 10.5),  # nothing said: background
        Detection("yes", 0.9, 10.8, 11.8),  # the second "no" heard as "yes"
        Detection("_unknown_", 0.9, 12.0, 13.0),  # not a keyword: never a false accept
    ]
    keywords = ["yes", "no", "go"]
    explained = explain_false_accepts(detections, events, keywords)
    assert explained["causes"] == {"another_keyword": 2, "same_word_again": 1, "unknown_speech": 1, "background": 1}
    assert explained["heard_as"] == {"no": {"go": 1, "yes": 1}}
    counts = match_detections(detections, events, keywords)
    assert sum(c["false_accepts"] for c in counts.values()) == sum(explained["causes"].values())


def test_roc_auc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 50).astype(float)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc_auc(pos, neg) == pytest.approx(pairs)
    assert roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert roc_auc(np.array([0.0]), np.array([1.0])) == 0.0 and roc_auc(np.array([]), np.array([1.0])) is None


@pytest.fixture(scope="module")
def report(cli_trained, cli_words):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    recordings = build_test_recordings_from_folder(cli_words / "test", ["left", "no", "stop", "yes"], minutes=6.0)
    return streaming_report(predictor, recordings, options=ListeningOptions(), false_accepts_per_hour_budget=10.0)


def test_the_report_counts_every_test_word_and_the_whole_duration(report, cli_words):
    assert report["keywords"] == [l for l in CLI_LABELS if l != "_silence_"]
    assert report["at_threshold"]["all"]["events"] == 40  # 10 test clips of each keyword, each said once
    assert report["hours"] * 60 >= 6.0
    for name in report["keywords"]:
        row = report["at_threshold"][name]
        assert row["events"] == 10 and row["hits"] + row["false_rejects"] == 10


def test_each_recording_is_also_judged_on_its_own_and_they_add_up(report):
    per = report["per_recording"]
    assert len(per) == report["recordings"] >= 2
    assert sum(r["minutes"] for r in per) == pytest.approx(report["hours"] * 60)
    total = report["at_threshold"]["all"]
    for key in ("events", "hits", "false_rejects", "false_accepts"):
        assert sum(r[key] for r in per) == total[key]
    for r in per:
        assert r["false_accepts_per_hour"] == pytest.approx(r["false_accepts"] / (r["minutes"] / 60))
    assert any(r["events"] == 0 and r["false_reject_rate"] is None for r in per)  # background-only minutes


def test_a_report_on_saved_scores_is_the_report_of_listening_again_at_any_threshold(cli_trained, cli_words, report):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    recordings = build_test_recordings_from_folder(cli_words / "test", ["left", "no", "stop", "yes"], minutes=6.0)
    options = ListeningOptions()
    scored = score_recordings(predictor, recordings, hop_samples=options.hop_samples)
    assert len(scored) == report["recordings"]
    again = report_on_scores(predictor.labels, scored, options=options, false_accepts_per_hour_budget=10.0)
    assert again == report
    for point in report["det"][::9]:
        at = report_on_scores(predictor.labels, scored, thresholds=[point["threshold"]],
                              options=ListeningOptions(probability_threshold=point["threshold"]))  # fmt: skip
        assert at["at_threshold"]["all"] == point["all"]
        assert sum(r["false_accepts"] for r in at["per_recording"]) == point["all"]["false_accepts"]
    with pytest.raises(InvalidInputError, match=f"every \\[{options.hop_samples}\\] samples, but overlap 0.5"):
        report_on_scores(predictor.labels, scored, options=ListeningOptions(overlap_factor=0.5))


def test_the_text_report_gives_the_spread_over_recordings_with_words(cli_trained, cli_words):
    from mm_browserfft.report import format_streaming

    clips = [(str(p), p.parent.name) for p in sorted((cli_words / "test").glob("*/*.*")) if p.parent.name != "_silence_"]
    recordings = build_test_recordings(clips, background_paths_of(cli_words / "test"), words_per_recording=20)
    result = streaming_report(TFLitePredictor(cli_trained[0] / "model.tflite"), recordings)
    per = result["per_recording"]
    assert len(per) == 2 and [r["events"] for r in per] == [20, 20]
    recall = sorted(1 - r["false_reject_rate"] for r in per)
    line = next(l for l in format_streaming(result).splitlines() if l.startswith("each of the 2 recordings"))
    assert f"recall {recall[0]:.3f}-{recall[1]:.3f}" in line


def test_the_report_explains_every_false_accept_at_the_operating_point(report):
    causes = report["false_accepts_by_cause"]
    assert set(causes) == set(FALSE_ACCEPT_CAUSES)
    assert sum(causes.values()) == report["at_threshold"]["all"]["false_accepts"]
    confusions = sum(n for heard in report["heard_as"].values() for n in heard.values())
    assert confusions == causes["another_keyword"]
    assert all(said != fired and said in report["keywords"] for said, heard in report["heard_as"].items() for fired in heard)


def test_the_text_report_says_what_the_false_accepts_fired_on():
    from mm_browserfft.report import format_streaming

    row = {"events": 10, "hits": 8, "false_rejects": 2, "false_accepts": 4, "false_reject_rate": 0.2,
           "false_accepts_per_hour": 24.0}  # fmt: skip
    report = {
        "hours": 1 / 6, "recordings": 1, "keywords": ["no", "go"], "auc": {},
        "options": ListeningOptions().as_dict(), "at_threshold": {"no": row, "go": row, "all": row},
        "false_accepts_by_cause": {"another_keyword": 3, "same_word_again": 0, "unknown_speech": 0, "background": 1},
        "heard_as": {"no": {"go": 2}, "go": {"no": 1}},
        "budget": {"false_accepts_per_hour": 1.0, "threshold": None, "false_reject_rate": None},
        "false_accepts_per_hour_at_false_reject_rate": {"0.05": None, "0.10": None},
    }
    lines = format_streaming(report).splitlines()
    assert "false accepts decided during: 3 another keyword, 1 background" in lines
    assert "keywords heard as another: no as go 2, go as no 1" in lines


def test_the_det_curve_trades_false_rejects_for_false_accepts(report):
    det = report["det"]
    assert [d["threshold"] for d in det] == sorted(d["threshold"] for d in det)
    low, high = det[0]["all"], det[-1]["all"]
    assert high["false_reject_rate"] > low["false_reject_rate"]
    assert high["false_accepts_per_hour"] <= low["false_accepts_per_hour"]
    at = next(d for d in det if d["threshold"] == report["options"]["probability_threshold"])
    assert at["all"] == report["at_threshold"]["all"]


def test_the_chosen_threshold_misses_the_fewest_words_within_the_budget(report):
    budget = report["budget"]
    assert budget["threshold"] is not None
    within = [(d["all"]["false_reject_rate"], -d["threshold"]) for d in report["det"]
              if d["all"]["false_accepts_per_hour"] <= 10.0]  # fmt: skip
    assert (budget["false_reject_rate"], -budget["threshold"]) == min(within)
    # not the lowest threshold within the budget where that misses more (another word fires first)
    lowest = min(d["threshold"] for d in report["det"] if d["all"]["false_accepts_per_hour"] <= 10.0)
    assert budget["threshold"] >= lowest
    fa_at = report["false_accepts_per_hour_at_false_reject_rate"]
    assert fa_at["0.10"] is None or fa_at["0.05"] is None or fa_at["0.10"] <= fa_at["0.05"]


def test_every_word_its_own_detector_reaches_false_rejects_the_best_class_cannot(cli_trained, cli_words, report):
    """The wake-word rule hears a word its model names wrong but still scores: low thresholds trade false accepts for it."""
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    recordings = build_test_recordings_from_folder(cli_words / "test", ["left", "no", "stop", "yes"], minutes=6.0)
    each = streaming_report(predictor, recordings, options=ListeningOptions(decision="each_word"),
                            false_accepts_per_hour_budget=10.0)  # fmt: skip
    assert each["options"]["decision"] == "each_word" and each["hours"] == pytest.approx(report["hours"])
    best_low, each_low = report["det"][0]["all"], each["det"][0]["all"]  # both at the grid's lowest threshold, 0.02
    assert report["det"][0]["threshold"] == each["det"][0]["threshold"] == 0.02
    assert each_low["false_reject_rate"] <= best_low["false_reject_rate"]
    assert each_low["false_accepts"] >= best_low["false_accepts"]
    assert each["false_accepts_per_hour_at_false_reject_rate"]["0.05"] is not None
    at = next(d for d in each["det"] if d["threshold"] == ListeningOptions().probability_threshold)["all"]
    assert at == each["at_threshold"]["all"]


def test_windows_of_words_score_above_windows_of_background(report):
    assert report["auc"]["all"] > 0.9  # a trained model; a random one sits near 0.5
    assert all(0.0 <= report["auc"][k] <= 1.0 for k in report["keywords"])


def test_evaluate_streaming_prints_the_report_and_draws_the_det_curve(cli_trained, cli_words, tmp_path):
    model = cli_trained[0] / "model.tflite"
    plot = tmp_path / "det.png"
    code, stdout, stderr = run_cli("evaluate", model, cli_words / "test", "--streaming", "--json", "--minutes", "2",
                                   "--det-plot", plot, "--budget", "30")  # fmt: skip
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["at_threshold"]["all"]["events"] == 40 and result["budget"]["false_accepts_per_hour"] == 30
    assert result["options"] == read_listening_options(model).as_dict()  # the model's own calibrated settings
    assert plot.read_bytes()[:8] == PNG_MAGIC
    code, text, _ = run_cli("evaluate", model, cli_words / "test", "--streaming", "--threshold", "0.9")
    assert code == 0 and "threshold 0.9" in text.splitlines()[0]
    assert [line.split()[0] for line in text.splitlines()[2:7]] == ["left", "no", "stop", "yes", "all"]


def test_evaluate_streaming_without_background_names_the_folder(cli_trained, cli_words, tmp_path):
    data = tmp_path / "no_background"
    shutil.copytree(cli_words / "test" / "yes", data / "yes")
    code, _, stderr = run_cli("evaluate", cli_trained[0] / "model.tflite", data, "--streaming")
    assert code == 2 and str(data) in stderr and "no background" in stderr


def test_evaluate_streaming_refuses_what_it_cannot_judge_before_listening(cli_trained, cli_words, tmp_path):
    model = cli_trained[0] / "model.tflite"
    empty = tmp_path / "no_clips"
    shutil.copytree(cli_words / "test" / "_silence_", empty / "_silence_")
    (empty / "yes").mkdir()  # a keyword folder, but no clip said in it
    code, _, stderr = run_cli("evaluate", model, empty, "--streaming")
    assert code == 2 and "no clip of any of the keywords" in stderr and str(empty) in stderr
    missing = tmp_path / "not_made" / "det.png"
    code, _, stderr = run_cli("evaluate", model, cli_words / "test", "--streaming", "--det-plot", missing)
    assert code == 2 and "--det-plot" in stderr and str(missing.parent) in stderr
    for bad in (["--minutes", "inf"], ["--budget", "nan"], ["--budget", "-1"], ["--average-ms", "nan"]):
        code, _, stderr = run_cli("evaluate", model, cli_words / "test", "--streaming", *bad)
        assert code == 2 and "finite number >= 0" in stderr, bad


def test_background_recordings_too_short_to_use_are_named_not_dropped_silently(cli_words, tmp_path, caplog):
    import soundfile as sf

    backgrounds = sorted(str(p) for p in (cli_words / "test" / "_silence_").iterdir())[:1]
    sf.write(tmp_path / "blip.wav", np.zeros(8000, np.float32) + 0.01, 16000)  # half a second
    clips = [(str(p), "yes") for p in sorted((cli_words / "test" / "yes").iterdir())[:2]]
    with caplog.at_level("WARNING", logger="mm_browserfft"):
        recordings = list(build_test_recordings(clips, backgrounds + [str(tmp_path / "blip.wav")]))
    assert recordings and sum(len(r.events) for r in recordings) == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"1 background recordings shorter than one second left out: {tmp_path / 'blip.wav'}"]
