"""What a trained model scores on folders of clips, and the figures the training report gives of its data.

The model is the one ``mm-browserfft train`` makes once per session (``cli_trained``); its test
folder holds clips of held-out speakers.
"""

from __future__ import annotations

import shutil

import pytest
import soundfile as sf

from conftest import CLI_LABELS, CLI_TEST_PER_LABEL
from mm_browserfft.audio import load_audio, split_windows
from mm_browserfft.errors import DatasetError
from mm_browserfft.evaluation import count_per_label, data_summary, evaluate_folder
from mm_browserfft.predict import TFLitePredictor


@pytest.fixture(scope="module")
def predictor(cli_trained):
    return TFLitePredictor(cli_trained[0] / "model.tflite")


def test_every_window_of_every_clip_is_scored_once_and_counted_in_the_metrics(predictor, cli_words):
    result = evaluate_folder(predictor, cli_words / "test")
    rows = result["predictions"]
    clips = sorted((cli_words / "test").glob("*/*"))
    assert len(rows) == sum(len(split_windows(load_audio(c))) for c in clips) == result["num_examples"]
    assert sorted({r["file"] for r in rows}) == sorted(str(c) for c in clips)
    right = sum(r["label"] == r["predicted"] for r in rows)
    assert result["accuracy"] == pytest.approx(right / len(rows))
    first = rows[0]  # the score is the true label's, from the model itself
    again = predictor.predict(split_windows(load_audio(first["file"]))[:1])[0]
    assert first["score"] == pytest.approx(float(again[predictor.labels.index(first["label"])]), abs=1e-6)


def test_short_clips_and_other_entries_are_counted_and_unknown_labels_refused(predictor, cli_words, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cli_words / "test" / "yes", data / "yes")
    clip = next((data / "yes").iterdir())
    samples, rate = sf.read(clip, dtype="float32")
    sf.write(data / "yes" / "short.wav", samples[: rate // 2], rate)
    (data / "yes" / "notes.txt").write_text("who said what")
    result = evaluate_folder(predictor, data)
    assert result["dropped_short"] == [str(data / "yes" / "short.wav")]
    assert result["skipped"] == [str(data / "yes" / "notes.txt")]
    assert len({r["file"] for r in result["predictions"]}) == CLI_TEST_PER_LABEL
    padded = evaluate_folder(predictor, data, pad_short=True)
    assert padded["dropped_short"] == [] and str(data / "yes" / "short.wav") in {r["file"] for r in padded["predictions"]}
    (data / "maybe").mkdir()  # no audio in it: no class, as when training
    assert evaluate_folder(predictor, data)["skipped"] == [str(data / "maybe"), str(data / "yes" / "notes.txt")]
    shutil.copy(clip, data / "maybe")
    with pytest.raises(DatasetError, match=r"maybe: label folder 'maybe' is not one of the model's labels"):
        evaluate_folder(predictor, data)


def test_the_data_summary_counts_each_label_as_the_loader_does(cli_words, tmp_path):
    from mm_browserfft.data import DataLoader
    from mm_browserfft.spec import BrowserFftSpec

    data = tmp_path / "data"
    for label in CLI_LABELS[:2]:
        shutil.copytree(cli_words / "test" / label, data / label)
    clip = next((data / CLI_LABELS[1]).iterdir())
    samples, rate = sf.read(clip, dtype="float32")
    sf.write(data / CLI_LABELS[1] / "short.wav", samples[: rate // 2], rate)
    summary = data_summary(DataLoader.from_folder(BrowserFftSpec(), data))
    assert summary["per_class"][CLI_LABELS[0]] == {"files": CLI_TEST_PER_LABEL, "clips": CLI_TEST_PER_LABEL, "padded": 0,
                                                   "dropped_short": 0, "unreadable": 0}  # fmt: skip
    assert summary["per_class"][CLI_LABELS[1]]["dropped_short"] == 1
    assert summary["files"] == 2 * CLI_TEST_PER_LABEL + 1 and summary["clips"] == 2 * CLI_TEST_PER_LABEL
    assert summary["sample_rates_hz"] == [16000] and summary["duration_s"]["min"] == pytest.approx(0.5)
    assert count_per_label([str(data / "a" / "x.wav"), str(data / "a" / "y.wav")], ["a", "b"]) == {"a": 2, "b": 0}
