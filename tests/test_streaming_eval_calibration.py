"""Calibration: the threshold an exported model listens at, moved from the default only on evidence."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli
from mm_browserfft.errors import DatasetError, InvalidInputError
from mm_browserfft.listen import ListeningOptions, read_listening_options
from mm_browserfft.predict import TFLitePredictor
from mm_browserfft.streaming_eval import (
    CALIBRATION_BUDGET,
    CALIBRATION_CONFIDENCE,
    DEFAULT_THRESHOLDS,
    LOWEST_CALIBRATED_THRESHOLD,
    background_paths_of,
    build_test_recordings,
    calibrate_listening,
    poisson_upper_bound,
    streaming_report,
)


@pytest.mark.parametrize("count", [0, 1, 4, 11, 52])
def test_the_poisson_upper_bound_is_the_mean_at_which_so_few_counts_are_that_unlikely(count):
    def at_most(mean: float) -> float:
        return sum(np.exp(-mean) * mean**k / np.prod(np.arange(1, k + 1, dtype=float)) for k in range(count + 1))

    bound = poisson_upper_bound(count, 0.8)
    assert bound > count and at_most(bound) == pytest.approx(0.2, abs=1e-9)
    assert poisson_upper_bound(count, 0.95) > bound > poisson_upper_bound(count, 0.5)
    assert poisson_upper_bound(0, 0.8) == pytest.approx(-np.log(0.2))
    with pytest.raises(InvalidInputError, match="0 < confidence < 1"):
        poisson_upper_bound(count, 1.0)


def _calibrated(predictor, test, **kwargs):
    clips = [(str(p), d.name) for d in sorted(test.iterdir()) for p in sorted(d.iterdir())]
    section = calibrate_listening(predictor, clips, background_paths_of(test), **kwargs)
    cal = section["calibration"]
    hours = cal["minutes"] / 60
    counted = round(cal["false_accepts_per_hour"] * hours)
    assert cal["false_accepts_per_hour_bound"] == pytest.approx(poisson_upper_bound(counted, cal["confidence"]) / hours,
                                                                rel=1e-3)  # minutes are rounded to 0.01  # fmt: skip
    return section["options"]["probability_threshold"], cal


def test_calibration_lowers_the_threshold_only_with_a_margin_for_false_accepts_it_could_not_count(cli_trained, cli_words):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    start = ListeningOptions(probability_threshold=0.95)  # a high start, so that there is room to go down
    chosen = {}
    for confidence in (0.5, 0.8, 0.95):
        chosen[confidence], cal = _calibrated(predictor, cli_words / "test", options=start, confidence=confidence,
                                              false_accepts_per_hour_budget=60.0)  # fmt: skip
        assert cal["confidence"] == confidence and cal["budget_met"]
        if chosen[confidence] < 0.95:
            assert cal["false_accepts_per_hour"] < cal["false_accepts_per_hour_bound"] <= 60.0 and cal["moved"] == "down"
    assert chosen[0.5] <= chosen[0.8] <= chosen[0.95] and chosen[0.5] < 0.95


def test_calibration_goes_down_no_further_than_the_test_words_need(cli_trained, cli_words):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    test = cli_words / "test"
    start = 0.95
    chosen, cal = _calibrated(predictor, test, options=ListeningOptions(probability_threshold=start), confidence=0.5,
                              false_accepts_per_hour_budget=60.0)  # fmt: skip
    assert cal["moved"] == "down" and chosen < start
    # the same audio, judged at every threshold of the grid: each step down from the start to the
    # chosen threshold was within the budget, and none above the chosen one heard as many words
    said = [(str(p), d.name) for d in sorted(test.iterdir()) if d.name != "_silence_" for p in sorted(d.iterdir())]
    grid = sorted({float(t) for t in DEFAULT_THRESHOLDS if t >= LOWEST_CALIBRATED_THRESHOLD} | {start})
    report = streaming_report(predictor, build_test_recordings(said, background_paths_of(test), seed=0),
                              options=ListeningOptions(probability_threshold=start), thresholds=grid)  # fmt: skip
    hours = report["hours"]
    rejected = {d["threshold"]: d["all"]["false_rejects"] for d in report["det"]}
    accepted = {d["threshold"]: d["all"]["false_accepts"] for d in report["det"]}
    assert rejected[chosen] < rejected[start] and rejected[chosen] == round(cal["false_reject_rate"] * 40)
    assert all(rejected[t] > rejected[chosen] for t in grid if chosen < t < start)
    assert all(poisson_upper_bound(accepted[t], 0.5) / hours <= 60.0 for t in grid if chosen <= t < start)


def test_calibration_raises_the_threshold_as_far_as_the_counted_false_accepts_require(cli_trained, cli_words):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    low = ListeningOptions(probability_threshold=0.1)  # under the lowest threshold calibration chooses: starts there
    at_start, cal = _calibrated(predictor, cli_words / "test", options=low, false_accepts_per_hour_budget=1e6)
    assert at_start == LOWEST_CALIBRATED_THRESHOLD and cal["budget_met"]  # nothing to lower to, and within budget
    assert cal["start_threshold"] == LOWEST_CALIBRATED_THRESHOLD and cal["moved"] == "kept"
    assert cal["false_accepts_per_hour"] > 0  # this model fires at the lowest threshold, so a budget can be too strict
    strict = cal["false_accepts_per_hour"] / 2  # half of what the start fires: it must go up
    raised, cal = _calibrated(predictor, cli_words / "test", options=low, false_accepts_per_hour_budget=strict)
    assert raised > LOWEST_CALIBRATED_THRESHOLD and cal["budget_met"] and cal["false_accepts_per_hour"] <= strict
    assert cal["moved"] == "up"
    kept, cal = _calibrated(predictor, cli_words / "test", false_accepts_per_hour_budget=0.0)
    default = ListeningOptions().probability_threshold
    if cal["budget_met"]:  # no false accept at all from some threshold up: never lower, where none is certain
        assert cal["false_accepts_per_hour"] == 0 and kept >= default
    else:
        assert kept == default
    with pytest.raises(InvalidInputError, match="confidence must be in"):
        calibrate_listening(predictor, [], [], confidence=1.0)  # refused before any audio is built


def test_calibration_needs_keyword_clips_and_a_background_to_listen_to(cli_trained, cli_words, tmp_path):
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    test = cli_words / "test"
    silence = [(str(p), "_silence_") for p in sorted((test / "_silence_").iterdir())]
    with pytest.raises(InvalidInputError, match="no test clip of any keyword"):  # noise alone: nothing to move on
        calibrate_listening(predictor, silence, background_paths_of(test))
    empty = tmp_path / "background"
    empty.mkdir()
    with pytest.raises(DatasetError, match=f"{re.escape(str(empty))}: no audio file"):
        background_paths_of(test, empty)


def test_train_whose_background_is_too_short_to_listen_over_exports_uncalibrated_and_says_why(cli_words, tmp_path):
    data = tmp_path / "data"
    for split in ("train", "test"):
        for label in ("_silence_", "yes", "no"):
            shutil.copytree(cli_words / split / label, data / split / label)
        for clip in (data / split / "_silence_").iterdir():  # 0.9 s of noise: trained on padded, too short to listen over
            audio, rate = sf.read(clip, dtype="float32")
            sf.write(clip, audio[: int(0.9 * rate)], rate)
    out = tmp_path / "export"
    code, _, stderr = run_cli("train", data / "train", "--export", out, "--test-dir", data / "test", "--epochs", 2,
                              "--pad-short-clips", "--seed", "0")  # fmt: skip
    assert code == 0, stderr
    assert "listening not calibrated" in stderr and "no background recording of at least one second" in stderr
    assert (out / "model.tflite").is_file() and read_listening_options(out / "model.tflite") is None  # the defaults
    assert "not calibrated: " in (out / "report.md").read_text()


def test_train_calibrated_the_listening_threshold_into_the_sidecar(cli_trained):
    sidecar = json.loads((cli_trained[0] / "model.json").read_text())
    assert "subgraph_metadata" in sidecar  # Model Maker's metadata JSON is still all there
    listening = sidecar["listening"]
    cal = listening["calibration"]
    assert listening["options"]["probability_threshold"] >= LOWEST_CALIBRATED_THRESHOLD
    assert cal["words"] == 40 and cal["false_accepts_per_hour_budget"] == CALIBRATION_BUDGET
    # only the words said over background are listened to (gaps of 1.5-6 s): no minutes of background alone
    assert 40 * 1.5 / 60 < cal["minutes"] < 40 * 7.0 / 60
    assert cal["confidence"] == CALIBRATION_CONFIDENCE
    assert cal["false_accepts_per_hour_bound"] > cal["false_accepts_per_hour"]
    if cal["budget_met"]:
        assert cal["false_accepts_per_hour"] <= CALIBRATION_BUDGET
    assert read_listening_options(cli_trained[0] / "model.tflite").as_dict() == listening["options"]
    report = (cli_trained[0] / "report.md").read_text()
    assert f"listening threshold | {listening['options']['probability_threshold']}" in report
    # and the console says what it chose, and when its few minutes cannot show the budget met
    stderr = cli_trained[2]
    assert (f"listening calibrated on {cal['minutes']:.1f} minutes of test audio ({cal['words']} words" in stderr
            and f"threshold {listening['options']['probability_threshold']:g} ({cal['moved']} from" in stderr)  # fmt: skip
    shown = f"cannot show the budget of {CALIBRATION_BUDGET:g} false accepts per hour met" in stderr
    assert shown == (cal["false_accepts_per_hour_bound"] > CALIBRATION_BUDGET)
