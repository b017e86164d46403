"""Listening: the recogniser fed a stream or a file, on long recordings with real words at known times.

The model is the one ``mm-browserfft train`` makes once per session (``cli_trained``:
``_silence_``, left, no, stop, yes). The words spliced into the recordings are clips of
held-out speakers that neither the base nor the model ever heard.
"""

from __future__ import annotations

import json
from typing import List

import numpy as np
import pytest
import soundfile as sf

from conftest import SPEECH_DIR, speaker_clips
from mm_browserfft.audio import load_audio, pad_to_window, resample, split_windows
from mm_browserfft.errors import InvalidInputError
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from mm_browserfft.listen import DecisionRule, ListeningOptions, Recognizer, is_word, listen_file, read_listening_options
from mm_browserfft.predict import Predictor, TFLitePredictor
from mm_browserfft.streaming_eval import build_test_recording, window_scores

SPOKEN = ("yes", "no", "stop", "left")


@pytest.fixture(scope="module")
def model(cli_trained):
    return cli_trained[0] / "model.tflite"


def _named_right_where_said(predictor, recording) -> List[bool]:
    """Per event: does a window of the listener (overlap 0.75) in time for it name its word with probability > 0.8?

    A detection must be decided after its word begins and at most 0.5 s after it ends (the matching
    rule of :mod:`mm_browserfft.streaming_eval`, and of the tests below); the default listener decides
    on the mean of the last 350 ms of scores, which lags a window's own by about half that. So the
    windows asked end after the word begins and at most 0.25 s after it ends.
    """
    starts, probs = window_scores(predictor, recording.waveform, hop_samples=WAVEFORM_LENGTH // 4)
    ends = (starts + WAVEFORM_LENGTH) / SAMPLE_RATE
    named = []
    for e in recording.events:
        may_fire = (ends >= e.start_s) & (ends <= e.end_s + 0.25)
        named.append(bool(np.any(probs[may_fire, predictor.labels.index(e.label)] > 0.8)))
    return named


@pytest.fixture(scope="module")
def spoken(model):
    """A 16 kHz FLAC of 8 words (2 of each of ``SPOKEN``, unseen speakers) and its events.

    Every word is one the model names right (probability > 0.8) on its own and in a window of the
    recording in time for it (:func:`_named_right_where_said`): a clip that fails there (trimmed, at another
    level, over noise) is replaced by the next clip of its word. What is tested is the
    recogniser's rule, not the model's accuracy (the streaming benchmark measures that).
    """
    predictor = TFLitePredictor(model)
    candidates = {}
    for label in SPOKEN:
        candidates[label] = []
        for clip in speaker_clips(label, heldout=True):
            x = load_audio(clip)
            p = predictor.predict(split_windows(x, pad_short=True)[:1])[0]
            if predictor.labels[int(np.argmax(p))] == label and p.max() > 0.8:
                candidates[label].append(x)
        assert len(candidates[label]) >= 2, f"fewer than 2 clips of {label!r} the model names right"
    slots = [(label, slot) for label in SPOKEN for slot in range(2)]
    chosen = {label: [0, 1] for label in SPOKEN}
    backgrounds = [np.concatenate([load_audio(p) for p in sorted((SPEECH_DIR / "_silence_").glob("*.flac"))])]
    while True:
        words = [(candidates[label][chosen[label][slot]], label) for label, slot in slots]
        order = np.random.default_rng(1).permutation(len(words))
        recording = build_test_recording(
            [words[i] for i in order], backgrounds, rng=np.random.default_rng(2), gap_s=(2.2, 3.0), snr_db=(20.0, 30.0)
        )
        failed = [order[k] for k, ok in enumerate(_named_right_where_said(predictor, recording)) if not ok]
        if not failed:
            return recording, resample(recording.waveform, SAMPLE_RATE, 16000)
        label, slot = slots[failed[0]]
        chosen[label][slot] = max(chosen[label]) + 1
        assert chosen[label][slot] < len(candidates[label]), f"no 2 clips of {label!r} named right in the recording"


@pytest.fixture(scope="module")
def spoken_file(spoken, tmp_path_factory):
    path = tmp_path_factory.mktemp("listen") / "spoken.flac"
    sf.write(path, spoken[1], 16000)
    return path


@pytest.mark.parametrize(
    "options",
    [{}, {"probability_threshold": 0.7, "suppression_ms": 1000, "overlap_factor": 0.75, "average_ms": 0}],
    ids=["the defaults (overlap 0.9, scores averaged over 350 ms)", "one window's score, as the browser decides"],
)  # fmt: skip
def test_every_word_is_found_once_where_it_was_said(model, spoken, spoken_file, options):
    events = spoken[0].events
    found = listen_file(model, spoken_file, **options)
    assert [d.label for d in found] == [e.label for e in events]
    for d, e in zip(found, events):  # decided while the word was said, or within half a second after it
        assert e.start_s <= d.end_s <= e.end_s + 0.5 and d.end_s - d.start_s == pytest.approx(WAVEFORM_LENGTH / SAMPLE_RATE)


def test_suppression_keeps_detections_apart_and_without_it_a_word_fires_in_several_windows(model, spoken_file):
    spaced = listen_file(model, spoken_file, probability_threshold=0.6, suppression_ms=1500, overlap_factor=0.75)
    gaps = np.diff([d.end_s for d in spaced])
    assert len(spaced) >= 6 and np.all(gaps >= 1.5)
    repeated = listen_file(model, spoken_file, probability_threshold=0.6, suppression_ms=0, overlap_factor=0.75)
    assert len(repeated) > len(spaced)
    assert np.min(np.diff([d.end_s for d in repeated])) == pytest.approx(11 * 1024 / SAMPLE_RATE)  # next window


@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.99])
def test_the_threshold_is_honoured(model, spoken_file, threshold):
    found = listen_file(model, spoken_file, probability_threshold=threshold, suppression_ms=0)
    assert found and all(d.score >= threshold for d in found)
    looser = listen_file(model, spoken_file, probability_threshold=threshold - 0.2, suppression_ms=0)
    assert len(looser) >= len(found) and {(d.label, d.end_s) for d in found} <= {(d.label, d.end_s) for d in looser}


def test_a_word_said_at_the_very_end_of_a_file_is_heard(model, spoken, tmp_path):
    """The hop grid's last window may end before the file does; one more ends at its last sample."""
    recording, last = spoken[0], spoken[0].events[-1]
    for options in ({}, {"overlap_factor": 0.75, "average_ms": 0}):  # hops of 93 ms and 0.26 s
        hop = ListeningOptions(**options).hop_samples
        end = int(round(last.end_s * SAMPLE_RATE))
        end += (-(end - WAVEFORM_LENGTH) % hop or hop) // 2  # ends half a hop after a window of the grid ends
        path = tmp_path / "cut.wav"
        sf.write(path, recording.waveform[:end], SAMPLE_RATE, subtype="FLOAT")
        found = listen_file(model, path, **options)
        assert found and found[-1].label == last.label and found[-1].end_s >= last.start_s, (options, found)
        assert [d.label for d in found] == [e.label for e in spoken[0].events], options


def test_chunked_feeding_at_16_khz_equals_the_whole_file(model, spoken_file):
    whole = listen_file(model, spoken_file, probability_threshold=0.6)
    recognizer = Recognizer(model, sample_rate=16000, probability_threshold=0.6)
    audio, rate = sf.read(spoken_file, dtype="float32")  # the file's own samples, as a microphone would give them
    assert rate == 16000
    sizes = np.random.default_rng(3).integers(1, 6000, size=audio.size)
    streamed, start, held = [], 0, []
    for size in sizes:
        if start >= audio.size:
            break
        streamed += recognizer.feed(audio[start : start + size])
        held.append(recognizer.buffered_samples)
        start += size
    streamed += recognizer.finish()
    assert [(d.label, d.start_s, d.end_s) for d in streamed] == [(d.label, d.start_s, d.end_s) for d in whole]
    assert np.allclose([d.score for d in streamed], [d.score for d in whole], atol=1e-4)
    assert max(held) < 2 * WAVEFORM_LENGTH  # bounded memory: under two windows held, for a 30 s stream


def test_a_recogniser_given_to_listen_file_hears_the_whole_band_whatever_rate_it_is_fed(model, spoken_file):
    whole = listen_file(model, spoken_file, probability_threshold=0.6)
    at_8k = Recognizer(model, sample_rate=8000, probability_threshold=0.6)  # made for a telephone-band microphone
    heard = listen_file(at_8k, spoken_file)  # the 16 kHz file is decoded to 44.1 kHz, not through 8 kHz
    assert [(d.label, d.start_s, d.end_s) for d in heard] == [(d.label, d.start_s, d.end_s) for d in whole]
    assert np.allclose([d.score for d in heard], [d.score for d in whole], atol=1e-6)
    assert at_8k.sample_rate == 8000 and at_8k.buffered_samples == 0  # still fed at 8 kHz, from a new stream
    with pytest.raises(InvalidInputError, match="own labels and options"):
        listen_file(at_8k, spoken_file, probability_threshold=0.9)  # would be silently ignored


def test_options_changed_mid_stream_apply_from_then_on_without_losing_time_or_audio(model, spoken, spoken_file):
    events = spoken[0].events
    switch_s = (events[3].end_s + events[4].start_s) / 2  # between two words, over a second from each
    assert events[4].start_s - events[3].end_s > 2.0
    strict = listen_file(model, spoken_file, probability_threshold=0.95)
    loose = listen_file(model, spoken_file, probability_threshold=0.6)
    audio, rate = sf.read(spoken_file, dtype="float32")
    recognizer = Recognizer(model, sample_rate=rate, probability_threshold=0.95)
    heard = recognizer.feed(audio[: int(switch_s * rate)])
    recognizer.set_options(probability_threshold=0.6)  # the threshold alone; the other options as they were
    heard += recognizer.feed(audio[int(switch_s * rate) :]) + recognizer.finish()
    assert recognizer.options == ListeningOptions(probability_threshold=0.6)
    expected = [d for d in strict if d.end_s < switch_s] + [d for d in loose if d.end_s > switch_s]
    assert len(loose) > len([d for d in strict if d.end_s > switch_s])  # the switch matters
    assert [(d.label, d.start_s, d.end_s) for d in heard] == [(d.label, d.start_s, d.end_s) for d in expected]


def test_after_finish_the_recogniser_hears_a_new_stream_from_time_zero(model, spoken_file):
    audio, rate = sf.read(spoken_file, dtype="float32")
    recognizer = Recognizer(model, sample_rate=rate, probability_threshold=0.6)
    first = recognizer.feed(audio) + recognizer.finish()
    again = recognizer.feed(audio) + recognizer.finish()
    assert first and [(d.label, d.start_s) for d in again] == [(d.label, d.start_s) for d in first]
    assert recognizer.finish() == []  # an empty stream hears nothing


class _BatchSizes(Predictor):
    """A real predictor that records how many windows each call asked it about."""

    def __init__(self, inner):
        self.inner, self.labels, self.sizes = inner, inner.labels, []

    def predict(self, windows):
        self.sizes.append(len(windows))
        return self.inner.predict(windows)


def test_a_long_chunk_is_scored_a_batch_of_windows_at_a_time(model, spoken_file):
    audio, rate = sf.read(spoken_file, dtype="float32")
    counted = _BatchSizes(TFLitePredictor(model))
    recognizer = Recognizer(counted, sample_rate=rate, probability_threshold=0.6)
    found = recognizer.feed(audio) + recognizer.finish()  # 30 s in one chunk: ~320 windows at overlap 0.9
    assert sum(counted.sizes) > 300 and max(counted.sizes) <= 64
    assert [d.label for d in found] == [d.label for d in listen_file(model, spoken_file, probability_threshold=0.6)]


def test_several_channels_are_refused_and_a_single_column_is_mono(model):
    clip = load_audio(speaker_clips("yes", heldout=True)[0])
    with pytest.raises(InvalidInputError, match=r"mono audio .* shape \(44100, 2\)"):
        Recognizer(model).feed(np.stack([clip, clip], axis=1))
    column, flat = Recognizer(model, probability_threshold=0.0), Recognizer(model, probability_threshold=0.0)
    assert column.feed(clip[:, np.newaxis]) + column.finish() == flat.feed(clip) + flat.finish()


def test_the_recogniser_takes_keras_models_and_agrees_with_their_tflite(random_base_dir, tmp_path):
    from mm_browserfft.spec import BrowserFftSpec

    spec = BrowserFftSpec(base_model=random_base_dir)
    model = spec.create_model(3)
    spec.export_tflite(model, str(tmp_path / "m.tflite"), index_to_label=["_background_noise_", "a", "b"])
    audio = load_audio(speaker_clips("yes", heldout=True)[0])
    audio = np.concatenate([audio, audio, audio])
    options = ListeningOptions(probability_threshold=0.0, suppression_ms=0, include_non_words=True)
    keras_found = Recognizer(spec.create_serving_model(model), labels=["_background_noise_", "a", "b"], options=options)
    tflite_found = Recognizer(tmp_path / "m.tflite", options=options)
    a, b = keras_found.feed(audio) + keras_found.finish(), tflite_found.feed(audio) + tflite_found.finish()
    # every window of the hop grid fires (threshold 0), then the one ending at the last sample
    assert len(a) == len(b) == (audio.size - WAVEFORM_LENGTH) // options.hop_samples + 2
    assert [d.end_s for d in a] == [d.end_s for d in b] and a[-1].end_s == pytest.approx(audio.size / SAMPLE_RATE)
    assert np.allclose([d.score for d in a], [d.score for d in b], atol=1e-3)
    with pytest.raises(InvalidInputError, match="labels"):
        Recognizer(spec.create_serving_model(model))


def test_a_recording_shorter_than_one_window_is_heard_once_centred(model):
    clip = load_audio(speaker_clips("stop", heldout=True)[0])[:30000]
    recognizer = Recognizer(model, probability_threshold=0.0, include_non_words=True)
    assert recognizer.feed(clip) == []
    (only,) = recognizer.finish()
    assert (only.start_s, only.end_s) == (0.0, WAVEFORM_LENGTH / SAMPLE_RATE)
    predictor = TFLitePredictor(model)
    centred = predictor.predict(pad_to_window(clip)[np.newaxis])[0]
    at_start = predictor.predict(np.pad(clip, (0, WAVEFORM_LENGTH - clip.size))[np.newaxis])[0]
    assert not np.allclose(centred, at_start, atol=1e-3)  # where the clip sits in the window shows
    assert only.label == predictor.labels[int(np.argmax(centred))]
    assert only.score == pytest.approx(float(centred.max()), abs=1e-5)


def _rule(**options):
    return DecisionRule(["_silence_", "_unknown_", "yes", "no"], ListeningOptions(**options))


def _labels(detections):
    return [d.label for d in detections]


def test_noise_and_unknown_never_fire_unless_asked():
    scores = np.array([0.97, 0.01, 0.01, 0.01])
    assert _rule(probability_threshold=0.5).step(0.0, 1.0, scores) == []
    assert _labels(_rule(probability_threshold=0.5, include_non_words=True).step(0.0, 1.0, scores)) == ["_silence_"]
    assert _rule(probability_threshold=0.5).step(0.0, 1.0, np.array([0.01, 0.97, 0.01, 0.01])) == []
    assert _labels(_rule(probability_threshold=0.5).step(0.0, 1.0, np.array([0.1, 0.1, 0.7, 0.1]))) == ["yes"]


@pytest.mark.parametrize("noise", ["_background_noise_", "_silence_", "background_noise", "background", "Background Noise"])
def test_the_noise_class_never_fires_under_any_of_its_names(noise):
    """Model Maker's speech tutorial and Google's Android sample call it ``background``; TM ``Background Noise``."""
    rule = DecisionRule([noise, "yes"], ListeningOptions(probability_threshold=0.5, average_ms=0, suppression_ms=0))
    assert not is_word(noise)
    assert rule.step(0.0, 1.0, np.array([0.97, 0.03])) == []
    assert _labels(rule.step(0.0, 1.0, np.array([0.2, 0.8]))) == ["yes"]


def test_suppression_counts_from_the_last_detection():
    rule = _rule(probability_threshold=0.5, suppression_ms=1000)
    yes = np.array([0.0, 0.0, 0.9, 0.1])
    fired = [bool(rule.step(t - 1.0, t, yes)) for t in (1.0, 1.5, 1.99, 2.0, 2.5, 3.0)]
    assert fired == [True, False, False, True, False, True]


def test_averaging_waits_for_min_count_and_smooths_a_single_spike():
    rule = _rule(probability_threshold=0.6, suppression_ms=0, average_ms=1000, min_count=3)
    quiet, spike = np.array([0.9, 0.0, 0.1, 0.0]), np.array([0.0, 0.0, 1.0, 0.0])
    results = [rule.step(t - 1.0, t, s) for t, s in ((1.0, spike), (1.25, spike), (1.5, quiet), (1.75, quiet))]
    assert results[0] == [] and results[1] == []  # fewer than 3 windows in the average
    (yes,) = results[2]
    assert yes.label == "yes" and yes.score == pytest.approx(0.7)
    assert results[3] == []  # (1 + 0.1 + 0.1) / 3 of the windows ending after 0.75 s


def test_each_word_is_its_own_detector_under_the_wake_word_rule():
    """``no`` at 0.3 under ``yes`` at 0.6: the recogniser hears only ``yes``; at threshold 0.25 each word fires."""
    scores = np.array([0.05, 0.05, 0.6, 0.3])
    best = _rule(probability_threshold=0.25, suppression_ms=0, average_ms=0)
    each = _rule(probability_threshold=0.25, suppression_ms=0, average_ms=0, decision="each_word")
    assert _labels(best.step(0.0, 1.0, scores)) == ["yes"]
    assert sorted(_labels(each.step(0.0, 1.0, scores))) == ["no", "yes"]
    assert _rule(probability_threshold=0.25, decision="each_word").step(0.0, 1.0, np.array([0.7, 0.1, 0.1, 0.1])) == []


def test_under_the_wake_word_rule_each_word_has_its_own_suppression():
    rule = _rule(probability_threshold=0.5, suppression_ms=1000, average_ms=0, decision="each_word")
    yes, no = np.array([0.0, 0.0, 0.9, 0.1]), np.array([0.0, 0.0, 0.1, 0.9])
    heard = [_labels(rule.step(t - 1.0, t, s)) for t, s in ((1.0, yes), (1.3, no), (1.6, yes), (1.9, no), (2.0, yes))]
    assert heard == [["yes"], ["no"], [], [], ["yes"]]


@pytest.mark.parametrize(
    "options, message",
    [({"overlap_factor": 1.0}, "overlap_factor"), ({"probability_threshold": 1.5}, "probability_threshold"),
     ({"suppression_ms": -1}, "suppression_ms"), ({"min_count": 0}, "min_count"), ({"decision": "loudest"}, "decision"),
     ({"suppression_ms": float("nan")}, "finite"), ({"average_ms": float("inf")}, "finite"),
     ({"probability_threshold": float("nan")}, "finite"),
     ({"average_ms": 350, "min_count": 5}, "min_count 5 can never be reached: 350 ms .* at most 4 window"),
     ({"average_ms": 0, "min_count": 2}, "min_count 2 can never be reached")],
)  # fmt: skip
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(InvalidInputError, match=message):
        ListeningOptions(**options)


def test_options_round_trip_through_json_values_and_unknown_keys_are_refused():
    options = ListeningOptions(overlap_factor=0.5, probability_threshold=0.9, average_ms=1100, min_count=2)
    assert ListeningOptions.from_dict(options.as_dict()) == options
    assert options.hop_samples == 22 * 1024  # the browser's 22 frames at overlap 0.5
    assert options.windows_averaged == 3  # 1100 ms holds three windows that end 511 ms apart
    assert ListeningOptions().windows_averaged == 4  # the default: 350 ms over windows 93 ms apart
    assert ListeningOptions(average_ms=0).windows_averaged == 1
    with pytest.raises(InvalidInputError, match="unknown listening options"):
        ListeningOptions.from_dict({"treshold": 0.5})


def test_nan_audio_is_refused(model):
    with pytest.raises(InvalidInputError, match="NaN"):
        Recognizer(model).feed(np.array([0.0, np.nan], np.float32))


def test_listen_cli_prints_one_json_object_of_detections(cli_trained, spoken, spoken_file):
    from conftest import run_cli

    model = cli_trained[0] / "model.tflite"
    code, stdout, stderr = run_cli("listen", model, spoken_file, spoken_file, "--json", "--threshold", "0.7",
                                   "--overlap", "0.75", "--suppression-ms", "1000")  # fmt: skip
    assert code == 0, stderr
    detections = json.loads(stdout)["detections"]
    assert all(set(d) == {"file", "label", "score", "start_s", "end_s"} for d in detections)
    expected = [(e.label) for e in spoken[0].events]
    assert [d["label"] for d in detections] == expected * 2 and {d["file"] for d in detections} == {str(spoken_file)}
    api = listen_file(model, spoken_file, probability_threshold=0.7, overlap_factor=0.75, suppression_ms=1000)
    assert [d.as_dict() for d in api] == [{k: v for k, v in d.items() if k != "file"} for d in detections[: len(api)]]
    code, text, _ = run_cli("listen", model, spoken_file, "--threshold", "0.7", "--overlap", "0.75")
    lines = text.splitlines()
    assert code == 0 and len(lines) == len(expected) and all(line.split("\t")[2] in SPOKEN for line in lines)


def test_listen_cli_uses_the_models_calibrated_settings_unless_told(cli_trained, spoken_file):
    from conftest import run_cli

    model = cli_trained[0] / "model.tflite"
    calibrated = read_listening_options(model)
    code, stdout, _ = run_cli("listen", model, spoken_file, "--json")
    heard = [{k: v for k, v in d.items() if k != "file"} for d in json.loads(stdout)["detections"]]
    assert code == 0 and heard and heard == [d.as_dict() for d in listen_file(model, spoken_file, options=calibrated)]
    code, stdout, _ = run_cli("listen", model, spoken_file, "--json", "--threshold", "0.3", "--suppression-ms", "0")
    told = [{k: v for k, v in d.items() if k != "file"} for d in json.loads(stdout)["detections"]]
    assert told == [d.as_dict() for d in listen_file(model, spoken_file, options=calibrated, probability_threshold=0.3,
                                                     suppression_ms=0)] and len(told) > len(heard)  # fmt: skip
    for bad in (["--threshold", "1.5"], ["--overlap", "1"], ["--suppression-ms", "-5"], ["--decision", "loudest"]):
        assert run_cli("listen", model, spoken_file, *bad)[0] == 2
    code, _, stderr = run_cli("listen", model, spoken_file.with_name("missing.wav"))
    assert code == 2 and "missing.wav" in stderr
    for bad in (["--suppression-ms", "nan"], ["--average-ms", "inf"]):
        code, _, stderr = run_cli("listen", model, spoken_file, *bad)
        assert code == 2 and "finite number >= 0" in stderr


def test_listen_cli_json_keeps_the_files_heard_before_one_that_fails(cli_trained, spoken_file, tmp_path):
    from conftest import run_cli

    model = cli_trained[0] / "model.tflite"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(40))  # a WAV header and nothing a decoder can read
    alone = json.loads(run_cli("listen", model, spoken_file, "--json")[1])["detections"]
    code, stdout, stderr = run_cli("listen", model, spoken_file, broken, "--json")
    assert code == 2 and str(broken) in stderr
    assert alone and json.loads(stdout)["detections"] == alone


def test_a_saved_model_beside_the_export_reads_the_settings_train_calibrated(cli_trained):
    export = cli_trained[0]
    assert (export / "saved_model").is_dir() and not (export / "saved_model.json").exists()
    assert read_listening_options(export / "saved_model") == read_listening_options(export / "model.tflite") is not None


def test_listen_cli_decides_each_word_on_its_own_when_asked(cli_trained, spoken, spoken_file):
    from conftest import run_cli

    model = cli_trained[0] / "model.tflite"
    code, stdout, stderr = run_cli("listen", model, spoken_file, "--json", "--decision", "each_word", "--threshold", "0.3")
    assert code == 0, stderr
    detections = [{k: v for k, v in d.items() if k != "file"} for d in json.loads(stdout)["detections"]]
    api = listen_file(model, spoken_file, options=read_listening_options(model), decision="each_word", probability_threshold=0.3)
    assert detections == [d.as_dict() for d in api]
    assert all(d["score"] >= 0.3 for d in detections)
    assert {e.label for e in spoken[0].events} <= {d["label"] for d in detections}


def test_relabelling_a_predictor_leaves_the_callers_predictor_alone(model):
    from mm_browserfft.predict import as_predictor

    mine = TFLitePredictor(model)
    before = list(mine.labels)
    renamed = as_predictor(mine, labels=[f"class {i}" for i in range(len(before))])
    assert renamed.labels == [f"class {i}" for i in range(len(before))]
    assert mine.labels == before and as_predictor(mine) is mine
