"""Where a larger data set lives: one setting, ``$MM_BROWSERFFT_DATA``."""

import pytest

from conftest import SPEECH_DIR
from mm_browserfft import datasets
from mm_browserfft.errors import DatasetError


def test_the_variable_names_the_folder(monkeypatch):
    monkeypatch.setenv(datasets.DATA_ENV, str(SPEECH_DIR.parent))
    assert datasets.data_dir() == SPEECH_DIR.parent
    assert datasets.speech_commands_dir() == SPEECH_DIR


def test_unset_or_missing_is_a_clear_error_or_none_when_optional(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    with pytest.raises(DatasetError, match="set MM_BROWSERFFT_DATA"):
        datasets.data_dir()
    assert datasets.data_dir(required=False) is None
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="nowhere: MM_BROWSERFFT_DATA names no folder"):
        datasets.data_dir()
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path))
    with pytest.raises(DatasetError, match="has no speech_commands/ folder"):
        datasets.speech_commands_dir()
    assert datasets.speech_commands_dir(required=False) is None
