"""model_spec.get: our names work in-tree (installed or not), and name lookups reach create()."""

from __future__ import annotations

import pytest

import mm_browserfft
from mm_browserfft import model_spec
from mm_browserfft.errors import InvalidInputError
from mm_browserfft.spec import BrowserFftSpec


def test_model_makers_names_give_browser_fft_specs():
    assert model_spec.AUDIO_CLASSIFICATION_MODELS == ["audio_browser_fft", "audio_teachable_machine"]
    for name in model_spec.AUDIO_CLASSIFICATION_MODELS:
        assert type(model_spec.get(name)) is BrowserFftSpec
        assert name in model_spec.available()


def test_get_passes_keyword_arguments_and_makes_new_instances(tmp_path):
    spec = model_spec.get("audio_browser_fft", model_dir=str(tmp_path), pad_short_clips=True)
    assert spec.model_dir == str(tmp_path) and spec.pad_short_clips
    assert model_spec.get("audio_browser_fft") is not model_spec.get("audio_browser_fft")


def test_get_returns_an_instance_and_makes_one_of_a_class_as_model_maker_does(tmp_path):
    spec = BrowserFftSpec(pad_short_clips=True)
    assert model_spec.get(spec) is spec
    made = model_spec.get(BrowserFftSpec, model_dir=str(tmp_path))
    assert type(made) is BrowserFftSpec and made.model_dir == str(tmp_path)
    with pytest.raises(InvalidInputError, match="already made"):
        model_spec.get(spec, model_dir=str(tmp_path))


def test_unknown_names_are_value_errors_listing_the_choices():
    with pytest.raises(InvalidInputError, match="audio_browser_fft") as info:
        model_spec.get("audio_yamnet")
    assert isinstance(info.value, ValueError)


def test_public_face_of_the_package():
    assert mm_browserfft.model_spec is model_spec
    assert mm_browserfft.BrowserFftSpec is BrowserFftSpec
    assert mm_browserfft.audio_classifier.BrowserFftSpec is BrowserFftSpec
    assert {"DataLoader", "AudioClassifier", "create", "BrowserFftSpec"} <= set(dir(mm_browserfft.audio_classifier))
    assert mm_browserfft.config.ExportFormat.TFLITE.name == "TFLITE"
    assert isinstance(mm_browserfft.__version__, str)
    with pytest.raises(AttributeError):
        mm_browserfft.no_such_thing
