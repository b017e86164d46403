"""Shared test fixtures: the real clips in ``tests/data``, and the rule that nothing is skipped under CI.

The suite needs nothing outside the repository: its real speech is
``tests/data/speech_commands`` (360 Speech Commands clips, CC BY 4.0; see
``tests/data/README.md``), 24 training speakers and 12 held-out speakers per label.
"""

from __future__ import annotations

import os
import pathlib
from typing import List

import pytest

from mm_browserfft.speakers import is_heldout_speaker, speaker_id

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEECH_DIR = REPO_ROOT / "tests" / "data" / "speech_commands"
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
TOX_ENVS = ("py311", "keras2", "mm043", "tasklib")
"""The envs of tox.ini; an env-dependent test names the one that runs it."""


@pytest.fixture(scope="session")
def speech_dir() -> pathlib.Path:
    """``tests/data/speech_commands``: one folder per label of real 16 kHz FLAC clips."""
    return SPEECH_DIR


def real_clips(label: str, count: int) -> List[pathlib.Path]:
    """The first ``count`` clips (sorted by name) of one label folder, speakers of both subsets."""
    clips = sorted((SPEECH_DIR / label).glob("*.flac"))
    assert len(clips) >= count, f"tests/data has {len(clips)} clips of {label!r}, {count} asked"
    return clips[:count]


def speaker_clips(label: str, *, heldout: bool) -> List[pathlib.Path]:
    """Every clip of one label whose speaker is (``heldout``) or is not held out, sorted by name."""
    return [p for p in sorted((SPEECH_DIR / label).glob("*.flac")) if is_heldout_speaker(speaker_id(p)) == heldout]


@pytest.fixture(scope="session")
def random_base_dir(tmp_path_factory) -> pathlib.Path:
    """A TF.js 18w base with random (seeded) weights: stands in for the pretrained base in fast tests."""
    import tensorflow as tf

    from mm_browserfft import base, tfjs

    tf.keras.utils.set_random_seed(0)
    return pathlib.Path(tfjs.save_tfjs(base.build_18w(), tmp_path_factory.mktemp("base") / "random_18w"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "env_dependent(env): skipped legitimately where another tox env, named by `env`, runs it",
    )


def _under_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (``CI=true``) a skipped test is a failure, unless it names the env that runs it.

    Tests whose skip depends on which tox env runs them carry ``@pytest.mark.env_dependent(env="...")``.
    """
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and _under_ci()):
        return
    marker = item.get_closest_marker("env_dependent")
    env = marker.kwargs.get("env") if marker else None
    if env in TOX_ENVS:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    why = "names no tox env that runs it" if marker else "is not marked env_dependent"
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where every test must run ({why}): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under CI a module that skips itself as a whole (``pytest.skip(allow_module_level=True)``,
    ``pytest.importorskip`` at import) fails too: tox only collects a module in the envs that
    can run it (see the ``--ignore`` options in tox.ini), so such a skip means something is missing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _under_ci() and isinstance(collector, pytest.Module):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI, where every collected module must run: {reason}"
