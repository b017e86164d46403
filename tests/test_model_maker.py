"""The Model Maker bridge where Model Maker cannot run (TF >= 2.16 or not installed).

Where it can run, tests/modelmaker/test_plugin.py drives the real thing (``tox -e mm043``).
"""

from __future__ import annotations

import sys

import pytest

from mm_browserfft import model_maker
from mm_browserfft.errors import BrowserFftError, ModelMakerUnavailableError

pytestmark = [pytest.mark.env_dependent(env="py311"), pytest.mark.skipif(
    model_maker.is_available(), reason="Model Maker is importable here: tests/modelmaker covers the bridge"
)]


def test_nothing_is_imported_or_shimmed_where_model_maker_cannot_run():
    assert model_maker.install() is False
    assert model_maker.install() is False  # idempotent
    assert "tflite_model_maker" not in sys.modules
    assert not set(model_maker.PLACEHOLDER_MODULES) & set(sys.modules)


def test_import_model_maker_says_why_it_cannot():
    with pytest.raises(ModelMakerUnavailableError, match="TensorFlow must be older than 2.16") as caught:
        model_maker.import_model_maker()
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, BrowserFftError)
    assert not set(model_maker.PLACEHOLDER_MODULES) & set(sys.modules)

