"""The ``mm-browserfft`` command line, driven as a user would: real clips in, files and JSON out.

One model is trained (module fixture) on real words of speakers the bundled base
never heard, and every subcommand runs against it; ``--version`` and ``demo``
also run as real subprocesses.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import CLI_EPOCHS as EPOCHS
from conftest import CLI_LABELS as LABELS
from conftest import CLI_TEST_PER_LABEL as TEST_PER_LABEL
from conftest import CLI_TRAIN_PER_LABEL as TRAIN_PER_LABEL
from conftest import REPO_ROOT, SPEECH_DIR, copy_clips, run_cli, speaker_clips
from mm_browserfft.speakers import is_heldout_speaker, speaker_id
from mm_browserfft.training import bundled_samples_dir
from mm_browserfft import __version__, cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: pathlib.Path) -> tuple:
    """``(width, height)`` from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def words(cli_words) -> pathlib.Path:
    return cli_words


@pytest.fixture(scope="module")
def trained(cli_trained):
    return cli_trained


@pytest.fixture(scope="module")
def predictions(trained, words):
    """``predict --json`` on every test clip: list of ``(true label, result)``."""
    clips = sorted((words / "test").glob("*/*.flac"))
    code, stdout, stderr = run_cli("predict", trained[0] / "model.tflite", *clips, "--json")
    assert code == 0, stderr
    results = json.loads(stdout)
    assert [r["file"] for r in results] == [os.fspath(c) for c in clips]
    return [(c.parent.name, r) for c, r in zip(clips, results)]


@pytest.fixture
def bad_data(tmp_path):
    """Folders that each break one rule, made of real clips (2 per label) and one text file."""
    good = tmp_path / "good"
    for label in ("yes", "no"):
        copy_clips(speaker_clips(label, heldout=True)[:2], good / label)
    one_class = tmp_path / "one_class"
    copy_clips(speaker_clips("yes", heldout=True)[:2], one_class / "yes")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(good, corrupt)
    (corrupt / "no" / "notes.wav").write_text("not audio, just a text file named .wav\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    short = tmp_path / "short"  # the good clips cut to half a second: no window in them
    for clip in good.glob("*/*"):
        samples, rate = sf.read(clip, dtype="float32")
        (short / clip.parent.name).mkdir(parents=True, exist_ok=True)
        sf.write(short / clip.parent.name / clip.name, samples[: rate // 2], rate)
    half_short = tmp_path / "half_short"  # every clip of `no` too short
    shutil.copytree(good / "yes", half_short / "yes")
    shutil.copytree(short / "no", half_short / "no")
    with_empty = tmp_path / "with_empty"  # a label folder holding no audio file
    shutil.copytree(good, with_empty)
    (with_empty / "maybe").mkdir()
    (with_empty / "maybe" / "notes.txt").write_text("to record\n")
    not_utf8 = tmp_path / "not_utf8"
    shutil.copytree(good, not_utf8)
    os.rename(not_utf8 / "no", os.fsencode(not_utf8) + b"/n\xffo")
    return {"good": good, "one_class": one_class, "corrupt": corrupt, "text_wav": corrupt / "no" / "notes.wav",
            "empty": empty, "short": short, "half_short": half_short, "short_no": half_short / "no",
            "with_empty": with_empty, "maybe": with_empty / "maybe", "not_utf8": not_utf8}


# ---------------------------------------------------------------- real subprocesses


def test_version_as_a_module():
    done = subprocess.run([sys.executable, "-m", "mm_browserfft", "--version"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == f"mm_browserfft {__version__}"


def test_demo_runs_end_to_end_with_clean_logs(tmp_path):
    # The README's first command, with output to a pipe as in CI: one line per epoch, no bars, no TF noise.
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "mm_browserfft", "demo", "--export", os.fspath(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{i}/30" for i in range(1, 31)]
    assert all(re.fullmatch(r"epoch \d+/30 - [\d.]+s - acc [\d.]+ - loss [\d.]+", line) for line in epochs)
    assert "\r" not in done.stdout and "\x1b" not in done.stdout + done.stderr
    result = re.search(r"^test accuracy ([\d.]+) on (\d+) clips of speakers not used for training "
                       r"\(nor by the bundled base\)$", done.stdout, re.M)  # fmt: skip
    heldout = [p for p in pathlib.Path(bundled_samples_dir()).glob("*/*.flac") if is_heldout_speaker(speaker_id(p))]
    assert int(result.group(2)) == len(heldout) == 34  # every bundled clip of a speaker the base never heard
    assert float(result.group(1)) >= 0.6  # 5 classes (chance 0.2); measured 0.79 on 34 clips
    for noise in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "WARNING:absl", "Epoch 1/"):
        assert noise not in done.stderr + done.stdout
    for name in ("model.tflite", "labels.txt", "model.json", "report.md", "report.json"):
        assert (out / name).is_file(), name
    assert (out / "labels.txt").read_text().split("\n") == ["_silence_", "down", "no", "up", "yes"]


# ---------------------------------------------------------------- train and the report


def test_train_prints_one_line_per_epoch_and_writes_every_artifact(trained):
    out, stdout, stderr = trained
    epochs = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == EPOCHS and all("val_acc" in line for line in epochs)
    assert "\r" not in stdout + stderr and "\x1b" not in stdout + stderr  # not a terminal: no bars
    assert re.search(r"^test accuracy [\d.]+ on 50 clips of the test folder$", stdout, re.M)
    assert f"{len(LABELS) * TRAIN_PER_LABEL} files, {len(LABELS) * TRAIN_PER_LABEL} clips" in stderr  # the data summary
    for name in ("model.tflite", "model.json", "labels.txt", "report.md", "report.json"):
        assert (out / name).is_file(), name
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "labels.txt").read_text().split("\n") == list(LABELS)


def test_report_has_every_section_and_valid_images(trained):
    out = trained[0]
    md = (out / "report.md").read_text()
    for section in ("## Data", "### train", "### validation", "### test", "## Training curves", "## Test results",
                    "## Worst-classified clips", "## Example spectrograms", "## Model"):  # fmt: skip
        assert f"\n{section}\n" in md, section
    for name in ("training_curves.png", "confusion_matrix.png", "spectrograms.png"):
        image = out / "report_images" / name
        assert f"](report_images/{name})" in md
        width, height = png_size(image)
        assert width >= 200 and height >= 150 and image.stat().st_size > 5000, name
    report = json.loads((out / "report.json").read_text())
    size = (out / "model.tflite").stat().st_size
    assert report["model"]["tflite_bytes"] == size and f"| tflite_bytes | {size} |" in md
    latency = report["model"]["latency_ms_per_clip (1 thread)"]
    assert 0 < latency < 1000 and f"| latency_ms_per_clip (1 thread) | {latency} |" in md
    assert len(report["history"]["loss"]) == EPOCHS and len(report["history"]["val_acc"]) == EPOCHS


def test_report_counts_equal_the_data(trained, words):
    report = json.loads((trained[0] / "report.json").read_text())
    data = report["data"]
    for label in LABELS:
        train_files = len(list((words / "train" / label).iterdir()))
        assert data["all"]["per_class"][label] == {
            "files": train_files, "clips": train_files, "padded": 0, "dropped_short": 0, "unreadable": 0
        }
        split = [data[part]["per_class"][label]["files"] for part in ("train", "validation")]
        assert sum(split) == train_files and split[1] in (2, 3)  # each label's 10 %, 2.4 files, rounded
        assert data["test"]["per_class"][label]["files"] == TEST_PER_LABEL
    validation = sum(data["validation"]["per_class"][label]["files"] for label in LABELS)
    assert validation == len(LABELS) * TRAIN_PER_LABEL - int(len(LABELS) * TRAIN_PER_LABEL * 0.9)
    assert data["all"]["sample_rates_hz"] == [16000] and data["all"]["duration_s"]["max"] == pytest.approx(1.0)
    md = (trained[0] / "report.md").read_text()
    assert f"| yes | {TEST_PER_LABEL} | {TEST_PER_LABEL} | 0 | 0 | 0 |" in md
    worst = report["worst"]
    assert 0 < len(worst) <= 8 and [w["score"] for w in worst] == sorted(w["score"] for w in worst)
    assert all(pathlib.Path(w["file"]).parent.parent == words / "test" for w in worst)


# ---------------------------------------------------------------- evaluate


def test_evaluate_json_matches_the_report(trained, words):
    out = trained[0]
    code, stdout, _ = run_cli("evaluate", out / "model.tflite", words / "test", "--json")
    assert code == 0
    result = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())["metrics"]
    assert result["labels"] == list(LABELS)
    assert result["confusion_matrix"] == report["confusion_matrix"]
    assert result["accuracy"] == pytest.approx(report["accuracy"]) and result["num_examples"] == 50
    assert result["accuracy"] >= 0.8  # measured 0.92: 4 words + silence, speakers never heard
    per_class = {row["label"]: row for row in result["per_class"]}
    assert all(per_class[label]["support"] == TEST_PER_LABEL for label in LABELS)
    assert len(result["predictions"]) == 50 and result["dropped_short"] == []


def test_evaluate_saved_model_agrees_with_tflite(trained, words):
    out = trained[0]
    code, stdout, _ = run_cli("evaluate", out / "saved_model", words / "test", "--json")
    assert code == 0
    saved = json.loads(stdout)
    tflite = json.loads((out / "report.json").read_text())["metrics"]
    assert saved["labels"] == list(LABELS) and saved["num_examples"] == 50
    differing = np.abs(np.array(saved["confusion_matrix"]) - np.array(tflite["confusion_matrix"])).sum()
    assert differing <= 2  # the same model; float32 rounding may flip a borderline clip


def test_predict_with_the_saved_model_names_the_same_words(trained, predictions):
    files = [result["file"] for _, result in predictions[::10]]
    code, stdout, _ = run_cli("predict", trained[0] / "saved_model", *files, "--json", "--top-k", "1")
    assert code == 0
    by_file = {result["file"]: result for _, result in predictions}
    for result in json.loads(stdout):
        (window,) = result["windows"]
        expected = by_file[result["file"]]["windows"][0]["top_k"][0]
        assert window["top_k"][0]["label"] == expected["label"]
        assert window["top_k"][0]["score"] == pytest.approx(expected["score"], abs=1e-3)


def test_predict_pads_a_short_recording_as_training_does(trained, tmp_path):
    # One rule for clips under one window: centred zero padding (audio.pad_to_window), in
    # training (split_windows(pad_short=True)) and in predict.
    from mm_browserfft.audio import load_audio, split_windows
    from mm_browserfft.predict import load_predictor

    speech = load_audio(speaker_clips("yes", heldout=True)[0])[: int(0.6 * 44100)]
    short = tmp_path / "short.wav"
    sf.write(short, speech, 44100, subtype="FLOAT")
    code, stdout, _ = run_cli("predict", trained[0] / "model.tflite", short, "--json", "--top-k", str(len(LABELS)))
    assert code == 0
    (window,) = json.loads(stdout)[0]["windows"]
    got = {entry["label"]: entry["score"] for entry in window["top_k"]}
    predictor = load_predictor(trained[0] / "model.tflite")
    expected = predictor.predict(split_windows(speech, pad_short=True))[0]
    for label, score in zip(predictor.labels, expected):
        assert got[label] == pytest.approx(float(score), abs=1e-5), label


def test_evaluate_text_output(trained, words):
    code, stdout, _ = run_cli("evaluate", trained[0] / "model.tflite", words / "test")
    assert code == 0
    assert re.match(r"accuracy [\d.]+ on 50 clips", stdout) and "confusion matrix" in stdout
    assert all(re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+10$", stdout, re.M) for label in LABELS)


def test_evaluate_counts_and_names_what_it_skipped_and_dropped(trained, words, tmp_path):
    data = tmp_path / "test"
    shutil.copytree(words / "test", data)
    (data / "yes" / "notes.txt").write_text("not audio")
    (data / "yes" / "more").mkdir()
    (data / "README").write_text("about these clips")
    samples, rate = sf.read(next((data / "no").iterdir()), dtype="float32")
    sf.write(data / "no" / "short.wav", samples[: rate // 2], rate)
    code, stdout, _ = run_cli("evaluate", trained[0] / "model.tflite", data)
    assert code == 0 and re.match(r"accuracy [\d.]+ on 50 clips", stdout)
    assert "1 files shorter than one window dropped" in stdout
    assert f"3 entries that are not audio files skipped: {data / 'README'}, {data / 'yes' / 'more'}" in stdout
    code, stdout, _ = run_cli("evaluate", trained[0] / "model.tflite", data, "--json")
    result = json.loads(stdout)
    assert result["skipped"] == [os.fspath(p) for p in (data / "README", data / "yes" / "more", data / "yes" / "notes.txt")]
    assert result["dropped_short"] == [os.fspath(data / "no" / "short.wav")]


# ---------------------------------------------------------------- predict


def test_predict_names_the_word_of_unseen_speakers(predictions):
    right = 0
    for label, result in predictions:
        (window,) = result["windows"]  # a 1 s clip is one window
        assert window["start_s"] == 0.0 and window["end_s"] == pytest.approx(0.998, abs=1e-3)
        scores = [t["score"] for t in window["top_k"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        right += window["top_k"][0]["label"] == label
    assert right / len(predictions) >= 0.8  # measured 46 of 50


def test_predict_text_output(trained, words):
    clip = sorted((words / "test" / "yes").iterdir())[0]
    code, stdout, _ = run_cli("predict", trained[0] / "model.tflite", clip, "--top-k", "2")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == os.fspath(clip)
    assert re.fullmatch(r"\s+0\.000-\s+0\.998 s  \S+ [\d.]+, \S+ [\d.]+", lines[1])


def test_predict_keeps_the_results_of_the_files_before_one_that_fails(trained, words, bad_data):
    clips = sorted((words / "test" / "yes").iterdir())[:2]
    for as_json in (False, True):
        code, stdout, stderr = run_cli("predict", trained[0] / "model.tflite", *clips, bad_data["text_wav"],
                                       *(["--json"] if as_json else []))  # fmt: skip
        assert code == 2 and os.fspath(bad_data["text_wav"]) in stderr
        heard = [r["file"] for r in json.loads(stdout)] if as_json else [l for l in stdout.splitlines() if not l.startswith(" ")]
        assert heard == [os.fspath(c) for c in clips]


def test_predict_slides_over_a_long_recording(trained, predictions, tmp_path):
    # Three correctly named words of unseen speakers at 0, 2 and 4 s, digital silence between.
    picks = {}
    for label, result in predictions:
        if label in ("yes", "no", "stop") and label not in picks and result["windows"][0]["top_k"][0]["label"] == label:
            picks[label] = result["file"]
    order = ["yes", "no", "stop"]
    gap = np.zeros(16000, np.float32)
    parts = []
    for label in order:
        clip, rate = sf.read(picks[label], dtype="float32")
        assert rate == 16000 and len(clip) == 16000
        parts += [clip, gap]
    recording = tmp_path / "three_words.flac"
    sf.write(recording, np.concatenate(parts[:-1]), 16000)  # 5 s

    model = trained[0] / "model.tflite"
    code, stdout, _ = run_cli("predict", model, recording, "--json", "--hop", "0.5")
    assert code == 0
    windows = json.loads(stdout)[0]["windows"]
    # every half second: the last ends at 4.998 s, under a frame before the end, so no window is added there
    assert [w["start_s"] for w in windows] == [0.5 * k for k in range(9)]
    code, stdout, _ = run_cli("predict", model, recording, "--json", "--hop", "0.7")
    ends = [w["end_s"] for w in json.loads(stdout)[0]["windows"]]
    assert ends[-2] == pytest.approx(3.5 + 0.9985, abs=1e-3) and ends[-1] == pytest.approx(5.0, abs=1e-3)  # the tail
    assert all(w["end_s"] == pytest.approx(w["start_s"] + 0.9985, abs=1e-3) for w in windows)
    assert [windows[k]["top_k"][0]["label"] for k in (0, 4, 8)] == order

    best = [w["top_k"][0]["score"] for w in windows]
    threshold = (min(best) + max(best)) / 2
    code, stdout, _ = run_cli("predict", model, recording, "--json", "--hop", "0.5", "--threshold", threshold)
    assert code == 0
    kept = json.loads(stdout)[0]["windows"]
    assert kept == [w for w in windows if w["top_k"][0]["score"] >= threshold]
    assert 0 < len(kept) < len(windows)


# ---------------------------------------------------------------- inspect


def test_inspect_json_shows_metadata_labels_tensors_ops(trained):
    code, stdout, _ = run_cli("inspect", trained[0] / "model.tflite", "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["labels"] == list(LABELS) and info["quantization"] == "float32"
    assert info["metadata"]["name"] == "AudioClassifier"
    assert info["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"][0]["content"]["content_properties"] == {
        "sample_rate": 44100, "channels": 1
    }
    assert info["inputs"] == [{"name": "audio_clip", "shape": [1, 44032], "dtype": "float32", "quantized": False}]
    assert info["outputs"][0]["shape"] == [1, len(LABELS)] and info["outputs"][0]["dtype"] == "float32"
    assert {"RFFT2D", "CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(info["ops"]) and info["ops"]["CONV_2D"] == 4
    assert info["size_bytes"] == (trained[0] / "model.tflite").stat().st_size


def test_inspect_reports_a_tflite_without_metadata_and_still_shows_tensors_and_ops(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(3, activation="softmax")])
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    code, stdout, stderr = run_cli("inspect", bare, "--json")
    assert code == 0, stderr
    info = json.loads(stdout)
    assert info["metadata"] is None and info["labels"] == []
    assert info["inputs"][0]["shape"] == [1, 4] and info["outputs"][0]["shape"] == [1, 3]
    assert "FULLY_CONNECTED" in info["ops"]
    code, stdout, _ = run_cli("inspect", bare)
    assert code == 0 and "metadata: none" in stdout and "FULLY_CONNECTED" in stdout


def test_inspect_describes_metadata_with_only_localised_labels_and_custom_bytes(trained, tmp_path):
    from mm_browserfft import metadata

    tflite = (trained[0] / "model.tflite").read_bytes()
    french = tmp_path / "fr_only.tflite"  # the package's own API: labels of one locale, none without
    french.write_bytes(metadata.write_classifier_metadata(tflite, {"fr": list(LABELS)}))
    code, stdout, stderr = run_cli("inspect", french)
    assert code == 0, stderr
    assert "labels: none (no TENSOR_AXIS_LABELS file for locale None)" in stdout and "CONV_2D" in stdout
    info = metadata.read_metadata(tflite)
    info["subgraph_metadata"][0]["custom_metadata"] = [{"name": "info", "data": b"\x01\x02"}]
    custom = tmp_path / "custom.tflite"
    custom.write_bytes(metadata.pack_metadata(tflite, info, metadata.read_associated_files(tflite)))
    code, stdout, stderr = run_cli("inspect", custom, "--json")
    assert code == 0, stderr
    described = json.loads(stdout)
    assert described["metadata"]["subgraph_metadata"][0]["custom_metadata"] == [{"name": "info", "data": [1, 2]}]
    assert described["labels"] == list(LABELS) and described["labels_missing"] is None


def test_quantized_training_without_test_data(bad_data, tmp_path):
    # A tiny run: dynamic-range quantization, a validation split and no test split; inspect and the report say so.
    out = tmp_path / "quantized"
    code, stdout, stderr = run_cli(
        "train", bad_data["good"], "--export", out, "--epochs", "2", "--batch-size", "2",
        "--validation-split", "0.5", "--test-split", "0", "--quantization", "dynamic",
    )  # fmt: skip
    assert code == 0, stderr
    assert "no test data" in stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report["data"]) == {"all", "train", "validation"} and report["metrics"] is None
    assert report["data"]["validation"]["files"] == 2 and len(report["history"]["val_acc"]) == 2
    code, stdout, _ = run_cli("inspect", out / "model.tflite")
    assert code == 0
    assert "dynamic_range" in stdout.splitlines()[0] and "labels (2): no, yes" in stdout
    md = (out / "report.md").read_text()
    assert "No test data" in md and not (out / "report_images" / "confusion_matrix.png").exists()
    assert (out / "report_images" / "training_curves.png").read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------- errors: exit code 2 names the culprit


@pytest.mark.parametrize(
    "args, culprit",
    [
        (("train", "{missing}", "--export", "{tmp}/out"), "{missing}"),
        (("train", "{one_class}", "--export", "{tmp}/out"), "{one_class}"),
        (("train", "{corrupt}", "--export", "{tmp}/out"), "{text_wav}"),
        (("train", "{good}", "--export", "{text_wav}"), "{text_wav}"),
        (("train", "{good}", "--export", "{tmp}/out", "--test-dir", "{one_class}"), "{one_class}"),
        (("train", "{good}", "--export", "{tmp}/out", "--test-dir", "{short}"), "{short}"),
        (("train", "{good}", "--export", "{tmp}/out", "--categories", "yes,no,mabye"), "{good}"),
        (("train", "{half_short}", "--export", "{tmp}/out"), "{short_no}"),
        (("train", "{with_empty}", "--export", "{tmp}/out", "--categories", "yes,no,maybe"), "{maybe}"),
        (("train", "{not_utf8}", "--export", "{tmp}/out"), "{not_utf8}"),
        (("train", "{good}", "--export", "{tmp}/out", "--test-split", "0.5", "--validation-split", "0", "--batch-size", "1",
          "--by-speaker", "--seed", "5"), "{good}/yes"),  # this seed's speakers hold both clips of `yes` out
        (("train", "{good}", "--export", "{tmp}/out", "--background-noise", "{missing}"), "{missing}"),
        (("train", "{good}", "--export", "{tmp}/out", "--background-noise", "{empty}"), "{empty}"),
        (("evaluate", "{model}", "{missing}"), "{missing}"),
        (("evaluate", "{model}", "{corrupt}"), "{text_wav}"),
        (("evaluate", "{missing}/model.tflite", "{good}"), "{missing}/model.tflite"),
        (("predict", "{model}", "{missing}/clip.wav"), "{missing}/clip.wav"),
        (("predict", "{model}", "{text_wav}"), "{text_wav}"),
        (("inspect", "{text_wav}"), "{text_wav}"),
        (("inspect", "{missing}/model.tflite", "--json"), "{missing}/model.tflite"),
        (("cache", "--cache-dir", "{text_wav}"), "{text_wav}"),
        (("cache", "--cache-dir", "{text_wav}", "--clear"), "{text_wav}"),
    ],
    ids=["train-missing", "train-one-class", "train-corrupt", "train-export-is-file", "train-test-labels-differ",
         "train-test-without-clips", "train-unknown-category", "train-label-without-clips", "train-empty-category",
         "train-label-not-utf8", "train-split-without-a-label", "train-background-missing", "train-background-empty",
         "evaluate-missing",
         "evaluate-corrupt", "evaluate-no-model", "predict-missing", "predict-corrupt", "inspect-not-tflite",
         "inspect-missing", "cache-is-a-file", "cache-clear-a-file"],  # fmt: skip
)
def test_bad_input_exits_2_naming_the_path(args, culprit, bad_data, trained, tmp_path):
    names = {key: os.fspath(value) for key, value in bad_data.items()}
    names.update(missing=os.fspath(tmp_path / "no_such_folder"), tmp=os.fspath(tmp_path),
                 model=os.fspath(trained[0] / "model.tflite"))  # fmt: skip
    code, stdout, stderr = run_cli(*(a.format(**names) for a in args))
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith(f"mm-browserfft: error: {culprit.format(**names)}: ")
    assert "Traceback" not in stderr


@pytest.mark.parametrize("args, message", [
    (("train", "somewhere", "--export", "out", "--epochs", "0"), "--epochs: must be a positive integer, got 0"),
    (("train", "somewhere", "--export", "out", "--seed", "-1"), "--seed: must be an integer in [0, 2**32), got -1"),
    (("demo", "--seed", "4294967296"), "--seed: must be an integer in [0, 2**32), got 4294967296"),
    (("train", "somewhere", "--export", "out", "--time-shift", "nan"), "--time-shift: must be a finite number >= 0"),
    (("predict", "model.tflite", "a.wav", "--hop", "inf"), "--hop: must be a finite number > 0, got inf"),
    (("predict", "model.tflite", "a.wav", "--hop", "nan"), "--hop: must be a finite number > 0, got nan"),
    (("studio", "--port", "70000"), "--port: must be a port number in [0, 65535], got 70000"),
    (("predict", "model.tflite", "a.wav", "--threshold", "nan"), "--threshold: must be in [0, 1], got nan"),
    (("predict", "model.tflite", "a.wav", "--threshold", "2"), "--threshold: must be in [0, 1], got 2"),
    (("evaluate", "model.tflite", "clips", "--minutes", "5", "--det-plot", "x.png"), "--minutes, --det-plot: only with --streaming"),
    (("evaluate", "model.tflite", "clips", "--threshold", "0.5"), "--threshold: only with --streaming"),
    (("train", "somewhere", "--export", "out", "--categories", " , "), "--categories: names no label (' , ')"),
])  # fmt: skip
def test_bad_options_exit_2_before_anything_runs(args, message):
    code, _, stderr = run_cli(*args)
    assert code == 2 and message in stderr
    assert run_cli("frobnicate")[0] == 2


def test_a_file_found_unreadable_while_training_with_augmentation_is_skipped_and_counted(bad_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(bad_data["good"], data)
    clip, rate = sf.read(next((data / "yes").iterdir()), dtype="float32")
    clip[100] = np.nan  # a header like any other; the samples fail only when decoded, every epoch
    sf.write(data / "yes" / "nan.wav", clip, rate, subtype="FLOAT")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("train", data, "--export", out, "--epochs", "2", "--batch-size", "1", "--no-cache",
                                   "--validation-split", "0", "--test-split", "0", "--skip-bad-files",
                                   "--time-shift", "0.1")  # fmt: skip
    assert code == 0, stderr
    assert (out / "model.tflite").is_file()
    train = json.loads((out / "report.json").read_text())["data"]["train"]
    assert train["unreadable"] == 1 and train["per_class"]["yes"] == {"files": 2, "clips": 2, "padded": 0,
                                                                      "dropped_short": 0, "unreadable": 1}  # fmt: skip
    assert "1 unreadable files skipped" in (out / "report.md").read_text()
    # the package's warning is one line of the command's, not Python's warning with its source line
    assert f"mm-browserfft: warning: skipping {data / 'yes' / 'nan.wav'}" in stderr and "UserWarning" not in stderr


def test_each_log_line_is_printed_once(bad_data, tmp_path):
    out = tmp_path / "out"
    args = ("train", bad_data["good"], "--export", out, "--epochs", "1", "--validation-split", "0", "--test-split", "0.5")
    code, _, stderr = run_cli(*args)  # 2 files to train on, and a batch of 32 by default
    assert code == 2 and "the training split holds 2 files, fewer than --batch-size 32" in stderr
    args += ("--batch-size", "2")
    assert run_cli(*args, "--saved-model")[0] == 0
    # TensorFlow's converter logs through the root logger, which then gets a handler of its own (basicConfig)
    root_lines = io.StringIO()
    root_handler = logging.StreamHandler(root_lines)
    logging.getLogger().addHandler(root_handler)
    try:
        code, _, stderr = run_cli(*args)
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert code == 0 and stderr.count(f"removing {out / 'saved_model'}") == 1, stderr
    assert "removing" not in root_lines.getvalue()  # not a second time, through the root logger's handler


def test_an_export_that_cannot_be_written_exits_1(bad_data, tmp_path):
    # Not the user's input but the file system: model.tflite is taken by a folder.
    out = tmp_path / "out"
    (out / "model.tflite" / "something").mkdir(parents=True)
    code, _, stderr = run_cli("train", bad_data["good"], "--export", out, "--epochs", "1", "--batch-size", "2",
                              "--validation-split", "0", "--test-split", "0")  # fmt: skip
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith(f"mm-browserfft: failed: {out / 'model.tflite'}: cannot write")


# ---------------------------------------------------------------- every label of the test data (slow)


@pytest.mark.slow
def test_train_on_every_label_of_the_test_data(tmp_path):
    # Every label of tests/data/speech_commands. Speakers the bundled base was pretrained on train
    # the head (test split by speaker); speakers nobody has heard judge predict.
    train, heldout = tmp_path / "train", tmp_path / "heldout"
    labels = sorted(p.name for p in SPEECH_DIR.iterdir() if p.is_dir())
    assert len(labels) == 10
    for label in labels:
        for folder, heldout_speakers in ((train, False), (heldout, True)):
            clips = speaker_clips(label, heldout=heldout_speakers)
            (folder / label).mkdir(parents=True)
            for clip in clips:
                os.symlink(clip, folder / label / clip.name)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("train", train, "--export", out, "--by-speaker", "--seed", "0")
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["num_examples"] >= 20  # whole speakers of the 240 training clips
    assert report["metrics"]["accuracy"] >= 0.5  # 10 classes (chance 0.1); measured 0.60 on 20 clips
    assert re.search(r"^test accuracy [\d.]+ on \d+ clips of speakers not used for training$", stdout, re.M)
    untested = [label for label in labels if not report["data"]["test"]["per_class"][label]["clips"]]
    assert ("the test split holds no clip of " + ", ".join(map(repr, untested)) in stderr) == bool(untested)

    code, stdout, _ = run_cli("evaluate", out / "model.tflite", heldout, "--json")
    assert code == 0
    assert json.loads(stdout)["accuracy"] >= 0.6  # measured 0.73 on 120 clips of unseen speakers

    clips = sorted(heldout.glob("*/*.flac"))
    code, stdout, _ = run_cli("predict", out / "model.tflite", *clips, "--json", "--top-k", "1")
    assert code == 0
    named = [r["windows"][0]["top_k"][0]["label"] for r in json.loads(stdout)]
    right = sum(name == clip.parent.name for name, clip in zip(named, clips))
    assert right / len(clips) >= 0.6


def test_training_again_into_an_export_folder_leaves_no_format_of_the_old_model(bad_data, tmp_path):
    out = tmp_path / "out"
    args = ("train", bad_data["good"], "--export", out, "--epochs", "1", "--batch-size", "2", "--test-split", "0",
            "--validation-split", "0", "--no-cache")  # fmt: skip
    code, stdout, stderr = run_cli(*args, "--saved-model")
    assert code == 0, stderr
    assert (out / "saved_model" / "saved_model.pb").is_file() and f"{out / 'saved_model'}" in stdout
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stderr
    assert not (out / "saved_model").exists() and "removing " + os.fspath(out / "saved_model") in stderr
    wrote = stdout.splitlines()[-1]
    assert wrote.startswith("wrote ") and "saved_model" not in wrote and os.fspath(out / "model.tflite") in wrote


def test_a_run_that_fails_after_training_leaves_the_earlier_export_as_it_was(bad_data, tmp_path):
    out = tmp_path / "out"
    args = ("train", bad_data["good"], "--export", out, "--epochs", "1", "--batch-size", "2", "--validation-split", "0",
            "--no-cache")  # fmt: skip
    code, _, stderr = run_cli(*args, "--test-split", "0")
    assert code == 0, stderr
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "checkpoints" not in p.parts}
    assert {pathlib.Path("model.tflite"), pathlib.Path("report.md")} <= set(before)
    # a test folder whose clip is NaN from its 100th sample: its header reads, the clip fails only once the model is made
    test_dir = tmp_path / "test"
    shutil.copytree(bad_data["good"], test_dir)
    clip, rate = sf.read(next((test_dir / "no").iterdir()), dtype="float32")
    clip[100:] = np.nan
    sf.write(test_dir / "no" / "nan.wav", clip, rate, subtype="FLOAT")
    code, stdout, stderr = run_cli(*args, "--test-dir", test_dir)
    assert code == 2 and "epoch 1/1" in stdout
    assert stderr.strip().splitlines()[-1].startswith(f"mm-browserfft: error: {test_dir / 'no' / 'nan.wav'}: ")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "checkpoints" not in p.parts}
    assert after == before  # the old model, labels, sidecar and report, whole; nothing of the new one
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("option, folder, kind", [("--tfjs", "tfjs", "a TF.js model"),
                                                  ("--saved-model", "saved_model", "a SavedModel")])  # fmt: skip
def test_an_export_folder_holding_other_files_is_refused_before_training(option, folder, kind, bad_data, tmp_path):
    out = tmp_path / "out"
    (out / folder).mkdir(parents=True)
    (out / folder / "notes.txt").write_text("mine")
    code, stdout, stderr = run_cli("train", bad_data["good"], "--export", out, option, "--epochs", "1", "--no-cache")
    assert code == 1 and "epoch" not in stdout
    assert stderr.strip().splitlines()[-1] == (f"mm-browserfft: failed: {out / folder}: holds files that are not part "
                                               f"of {kind} (['notes.txt']); refusing to replace it")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [folder] and (out / folder / "notes.txt").read_text() == "mine"


def test_train_resumes_only_when_asked_and_only_the_same_run(bad_data, tmp_path):
    from mm_browserfft.classifier import BACKUP_FOLDER

    out = tmp_path / "export"
    backup = out / "checkpoints" / BACKUP_FOLDER
    backup.mkdir(parents=True)
    (backup / "run.json").write_text(json.dumps({"labels": ["no", "yes"], "epochs": 99}))
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    args = ("train", bad_data["good"], "--export", out, "--epochs", "2", "--batch-size", "2", "--test-split", "0",
            "--validation-split", "0")  # fmt: skip
    code, _, stderr = run_cli(*args, "--resume")
    assert code == 2 and str(backup) in stderr and "another run" in stderr and "epochs" in stderr
    assert backup.is_dir()  # refused: nothing was touched
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stderr
    assert "removing the backup of an earlier run" in stderr and "epoch 2/2" in stdout + stderr
    assert not backup.exists()  # the finished run removed its own backup


def test_resume_continues_a_backup_of_the_very_same_run(bad_data, tmp_path):
    from mm_browserfft.classifier import BACKUP_FOLDER, AudioClassifier, run_fingerprint
    from mm_browserfft.data import DataLoader
    from mm_browserfft.spec import BrowserFftSpec

    out = tmp_path / "export"
    spec = BrowserFftSpec(model_dir=str(out / "checkpoints"), seed=0)
    data = DataLoader.from_folder(spec, bad_data["good"], shuffle=True, cache=True, seed=0)
    run = run_fingerprint(AudioClassifier(spec, data.index_to_label), data, None, epochs=2, batch_size=2)
    backup = out / "checkpoints" / BACKUP_FOLDER
    backup.mkdir(parents=True)
    (backup / "run.json").write_text(json.dumps(run))
    code, _, stderr = run_cli("train", bad_data["good"], "--export", out, "--epochs", "2", "--batch-size", "2",
                              "--test-split", "0", "--validation-split", "0", "--resume")  # fmt: skip
    assert code == 0, stderr
    assert "--resume: continuing the run backed up in" in stderr


def _arguments(parser, command=""):
    """``(command, argument, action)`` of every argument of ``parser`` and its subcommands (not -h)."""
    import argparse

    for action in parser._actions:  # argparse keeps no public list of its arguments
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _arguments(sub, f"{command} {name}".strip())
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield command, "/".join(action.option_strings) or action.dest, action


def test_every_argument_of_every_command_has_help_that_gives_its_default():
    import argparse

    arguments = list(_arguments(cli.build_parser()))
    assert len({c for c, _, _ in arguments}) == 8 and len(arguments) > 50
    assert [(c, a) for c, a, action in arguments if not action.help] == []
    defaults = [(c, a, action) for c, a, action in arguments
                if action.default not in (None, False, [], argparse.SUPPRESS)]  # fmt: skip
    assert len(defaults) >= 10
    assert [(c, a) for c, a, action in defaults if "(default" not in action.help] == []


@pytest.mark.parametrize("command", ["train", "demo", "evaluate", "predict", "listen", "cache", "inspect", "studio"])
def test_help_of_each_command_describes_its_arguments_and_defaults(command, capsys):
    assert cli.main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: mm-browserfft " + command)
    flat = " ".join(text.split())  # argparse wraps lines
    options = [(name, action) for c, name, action in _arguments(cli.build_parser()) if c == command and action.option_strings]
    assert options
    for name, action in options:  # each option is listed, and its default is the one the parser uses
        assert action.option_strings[-1] in flat, name
        if "%(default)s" in action.help:
            assert f"(default {action.default}" in flat, name
    if command == "train":
        assert "passes over the training data (default 5)" in text and "(default none)" in text
