"""Shared test fixtures: where the real data lives, and small real clips."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(os.environ.get("MM_BROWSERFFT_SHARED", REPO_ROOT.parent / "shared")).resolve()
DATA_DIR = SHARED_DIR / "data"
SPEECH_DIR = DATA_DIR / "speech_commands"
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")

if not SPEECH_DIR.is_dir():  # the data is part of the project's contract: fail loudly, never skip
    raise RuntimeError(f"real test data not found at {SPEECH_DIR} (set MM_BROWSERFFT_SHARED)")


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    return SHARED_DIR


@pytest.fixture(scope="session")
def speech_dir() -> pathlib.Path:
    """``shared/data/speech_commands``: one folder per label of real 16 kHz FLAC clips."""
    return SPEECH_DIR


def real_clips(label: str, count: int) -> list:
    """The first ``count`` clips (sorted by name) of one label folder."""
    return sorted((SPEECH_DIR / label).glob("*.flac"))[:count]


@pytest.fixture(scope="session")
def random_base_dir(tmp_path_factory) -> pathlib.Path:
    """A TF.js 18w base with random (seeded) weights: stands in for the pretrained base in fast tests."""
    import tensorflow as tf

    from mm_browserfft import base, tfjs

    tf.keras.utils.set_random_seed(0)
    return pathlib.Path(tfjs.save_tfjs(base.build_18w(), tmp_path_factory.mktemp("base") / "random_18w"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "env_dependent: may be skipped legitimately in some tox envs (e.g. Model Maker present or not)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (``CI=true``) a skip is a failure: every test must really run in some env.

    Tests whose skip depends on which tox env runs them carry ``@pytest.mark.env_dependent``.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not item.get_closest_marker("env_dependent"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {reason}"
