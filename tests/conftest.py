"""Shared test fixtures: the real clips in ``tests/data``, and the rule that nothing is skipped under CI.

The suite needs nothing outside the repository: its real speech is
``tests/data/speech_commands`` (360 Speech Commands clips, CC BY 4.0; see
``tests/data/README.md``), 24 training speakers and 12 held-out speakers per label.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
from typing import List

import pytest

from mm_browserfft.speakers import is_heldout_speaker, speaker_id

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEECH_DIR = REPO_ROOT / "tests" / "data" / "speech_commands"
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
TOX_ENVS = ("py311", "keras2", "mm043", "tasklib")
"""The envs of tox.ini; an env-dependent test names the one that runs it."""


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory) -> pathlib.Path:
    """The package's on-disk cache points into this session's temporary folder, never at ~/.cache."""
    from mm_browserfft.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("mm_browserfft_cache")
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


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


def run_cli(*args) -> tuple:
    """``mm_browserfft.cli.main(args)`` in this process: ``(exit code, stdout, stderr)``."""
    from mm_browserfft import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def copy_clips(clips, folder: pathlib.Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        shutil.copy(clip, folder / clip.name)


CLI_LABELS = ("_silence_", "left", "no", "stop", "yes")
"""The labels of the model that ``mm-browserfft train`` makes once per session (:func:`cli_trained`)."""
CLI_TRAIN_PER_LABEL, CLI_TEST_PER_LABEL, CLI_EPOCHS = 24, 10, 20


@pytest.fixture(scope="session")
def cli_words(tmp_path_factory) -> pathlib.Path:
    """``train/<label>``: 24 clips of pretraining speakers; ``test/<label>``: 10 clips of held-out speakers."""
    root = tmp_path_factory.mktemp("words")
    for label in CLI_LABELS:
        seen, held = speaker_clips(label, heldout=False), speaker_clips(label, heldout=True)
        copy_clips(seen[:CLI_TRAIN_PER_LABEL], root / "train" / label)
        copy_clips(held[:CLI_TEST_PER_LABEL], root / "test" / label)
    return root


@pytest.fixture(scope="session")
def cli_trained(cli_words, tmp_path_factory):
    """``mm-browserfft train`` (20 epochs, a test folder, a SavedModel): ``(export folder, stdout, stderr)``."""
    out = tmp_path_factory.mktemp("trained") / "export"
    code, stdout, stderr = run_cli(
        "train", cli_words / "train", "--export", out, "--test-dir", cli_words / "test",
        "--epochs", CLI_EPOCHS, "--saved-model", "--seed", "0",
    )  # fmt: skip
    assert code == 0, stderr
    return out, stdout, stderr
