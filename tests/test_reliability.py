"""Reliability: bad input, faults (kill, disk full, read-only), determinism, distribution, scale, fuzzing.

What other test files already cover is not repeated here (see docs/guarantees.md for the map):
decoding of every sample width and channel count (test_audio), truncated/empty/text files
(test_audio), skip_bad_files (test_data), atomic .tflite writes under "disk full"
(test_export), unsafe TF.js models and their fuzzing (test_tfjs).

Subprocess tests run ``python -c`` with the repository on ``PYTHONPATH``: a killed
training run, logical CPU devices (which must be set before TensorFlow starts) and
peak-memory measurements (``ru_maxrss`` of a fresh process).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT, SPEECH_DIR, real_clips
from mm_browserfft import audio, audio_classifier, tfjs
from mm_browserfft.audio_classifier import AudioClassifier, BrowserFftSpec, DataLoader
from mm_browserfft.classifier import BACKUP_FOLDER
from mm_browserfft.errors import AudioDecodeError, BrowserFftError, DatasetError, ExportError
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH

MB = 1024 * 1024


def run_python(code: str, *args: str, timeout: float = 300) -> dict:
    """Run ``code`` in a fresh interpreter (repository importable, 1 TF thread each); returns its last stdout line as JSON."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def link_real_clips(root, words, count: int):
    """``root/<word>/<clip>`` links to the first ``count`` real clips of each word; returns root."""
    for word in words:
        os.makedirs(root / word, exist_ok=True)
        for clip in real_clips(word, count):
            os.symlink(clip, root / word / clip.name)
    return root


def write_audio(path, data, rate: int = SAMPLE_RATE, **kwargs):
    """Write ``data`` with soundfile, making the folder first; returns ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, rate, **kwargs)
    return path


def tone(seconds: float, rate: int = SAMPLE_RATE, *, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


# ============================================================================ bad input


def test_an_empty_data_folder_is_a_dataset_error_naming_it(tmp_path):
    with pytest.raises(DatasetError, match="No audio files found") as info:
        DataLoader.from_folder(BrowserFftSpec(), tmp_path)
    assert info.value.path == str(tmp_path)


def test_bad_files_in_a_folder_are_named_or_skipped_and_counted(tmp_path):
    word = tmp_path / "sí señor"  # unicode and a space in a label
    word.mkdir()
    sf.write(word / "clip ünï 1.wav", tone(1.2), SAMPLE_RATE)  # unicode and spaces in a file name
    sf.write(word / ".hidden.wav", tone(1.2), SAMPLE_RATE)
    (word / "notes.txt").write_text("not audio")
    (word / "zero.wav").write_bytes(b"")
    (word / "text.wav").write_text("this is text named .wav\n")
    whole = (word / "clip ünï 1.wav").read_bytes()
    (word / "cut.wav").write_bytes(whole[:44])  # header only
    write_audio(tmp_path / "other" / "a.flac", tone(1.2))
    with pytest.raises(AudioDecodeError) as info:
        DataLoader.from_folder(BrowserFftSpec(), tmp_path, shuffle=False)
    assert info.value.path in {str(word / n) for n in ("zero.wav", "text.wav", "cut.wav")}
    with pytest.warns(UserWarning) as caught:
        loader = DataLoader.from_folder(BrowserFftSpec(), tmp_path, shuffle=False, skip_bad_files=True)
    report = loader.report
    assert sorted(os.path.basename(p) for p in report.unreadable) == ["cut.wav", "text.wav", "zero.wav"]
    assert len([w for w in caught if "skipping" in str(w.message)]) == 3
    assert {os.path.basename(p) for p in report.skipped} == {".hidden.wav", "notes.txt"}
    assert report.files_per_class == {"other": 1, "sí señor": 1}
    assert "unreadable, skipped: 3" in str(report)
    windows, labels, _ = loader.waveforms()
    assert windows.shape == (2, WAVEFORM_LENGTH) and np.isfinite(windows).all()


@pytest.mark.parametrize("rate", [8000, 11025, 96000])
def test_extreme_sample_rates_give_the_right_number_of_windows(tmp_path, rate):
    write_audio(tmp_path / "w" / "a.wav", tone(2.1, rate), rate)
    loader = DataLoader.from_folder(BrowserFftSpec(), tmp_path)
    windows, _, _ = loader.waveforms()
    assert loader.report.num_clips == 2 == len(windows)
    spectrum = np.abs(np.fft.rfft(windows[0]))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / WAVEFORM_LENGTH - 440) < 2  # the tone survived resampling


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_infinite_samples_are_refused_by_every_loader(tmp_path, bad):
    data = tone(2.0, 16000)
    data[20000] = bad
    path = tmp_path / "inf.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="inf.wav: 1 samples are NaN or infinite"):
        audio.load_audio(path)
    with pytest.raises(AudioDecodeError, match="inf.wav"):
        list(audio.iter_audio_blocks(path, block_seconds=0.5))


def test_labels_differing_only_in_case_stay_distinct_with_a_warning(tmp_path):
    for label in ("Yes", "yes", "no"):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / "a.wav", tone(1.1), SAMPLE_RATE)
    with pytest.warns(UserWarning, match="labels 'Yes' and 'yes' differ only in case"):
        loader = DataLoader.from_folder(BrowserFftSpec(), tmp_path)
    assert loader.index_to_label == ["Yes", "no", "yes"]  # Python string order, as Model Maker


def test_labels_differing_in_unicode_form_or_spaces_warn_and_a_line_break_is_refused(tmp_path):
    composed, decomposed = "caf\u00e9", "cafe\u0301"  # the same word, as macOS and Linux may spell it
    for label in (composed, decomposed, "no", "no "):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / "a.wav", tone(1.1), SAMPLE_RATE)
    with pytest.warns(UserWarning) as caught:
        DataLoader.from_folder(BrowserFftSpec(), tmp_path)
    (message,) = [str(w.message) for w in caught if "differ only" in str(w.message)]
    assert f"{decomposed!r} and {composed!r}" in message and "'no' and 'no '" in message
    for name in ("two\nlines", "two\u2028lines"):  # any break str.splitlines splits on, as readers of labels.txt do
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "a.wav", tone(1.1), SAMPLE_RATE)
        with pytest.raises(DatasetError, match="hold a line break"):
            DataLoader.from_folder(BrowserFftSpec(), tmp_path)
        (tmp_path / name / "a.wav").unlink()
        (tmp_path / name).rmdir()


def test_silent_and_clipped_clips_train_a_finite_model(tmp_path, random_base_dir):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_audio(tmp_path / "data" / "silence" / f"{i}.wav", np.zeros(50000, np.float32))
        loud = np.clip(20 * tone(1.1) + rng.normal(0, 1, int(1.1 * SAMPLE_RATE)), -1, 1)  # pinned at +-1
        write_audio(tmp_path / "data" / "clipped" / f"{i}.wav", loud, subtype="PCM_16")
    spec = BrowserFftSpec(base_model=str(random_base_dir), seed=0)
    data = DataLoader.from_folder(spec, tmp_path / "data", seed=0)
    model = audio_classifier.create(data, spec, batch_size=2, epochs=3, model_dir=str(tmp_path / "m"))
    assert all(np.isfinite(w).all() for w in model.model.get_weights())
    probs = np.array([p for row in model.predict_top_k(data, k=2) for _, p in row])
    assert np.isfinite(probs).all() and np.isfinite(model.history.history["loss"]).all()


def test_a_diverging_run_raises_instead_of_returning_a_nan_model(tmp_path, random_base_dir):
    import tensorflow as tf

    class Reckless(BrowserFftSpec):
        def compile_model(self, model):
            model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=1e38), loss="categorical_crossentropy")

    link_real_clips(tmp_path / "data", ("yes", "no"), 3)
    spec = Reckless(base_model=str(random_base_dir), seed=0)
    data = DataLoader.from_folder(spec, tmp_path / "data", seed=0)
    with pytest.raises(BrowserFftError, match="diverged"):
        audio_classifier.create(data, spec, batch_size=2, epochs=3, model_dir=str(tmp_path / "m"))


# ---------------------------------------------------------------------------- fuzzing the audio loaders


def _valid_file(kind: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"x.{kind}")
        sf.write(path, tone(0.2, 16000), 16000, subtype="PCM_16")
        with open(path, "rb") as handle:
            return handle.read()


SEEDS = {kind: _valid_file(kind) for kind in ("wav", "flac")}


@st.composite
def damaged_audio(draw):
    """``(suffix, bytes)``: garbage, or a valid WAV/FLAC with bytes overwritten and/or cut short."""
    if draw(st.booleans()):
        return draw(st.sampled_from(["wav", "flac", "ogg"])), draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, min(len(data) - 1, 200)))  # the header is where parsers go wrong
        data[at] = draw(st.integers(0, 255))
    return kind, bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_audio())
def test_fuzz_audio_loaders_return_finite_audio_or_raise_audio_decode_error(case):
    kind, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"fuzz.{kind}")
        with open(path, "wb") as handle:
            handle.write(data)
        for load in (audio.audio_info, audio.load_audio, lambda p: np.concatenate(list(audio.iter_audio_blocks(p)))):
            try:
                out = load(path)
            except AudioDecodeError as exc:
                assert exc.path == path
                continue
            if isinstance(out, np.ndarray):
                assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()


# ============================================================================ faults


def test_export_of_a_tfjs_model_gets_readable_permissions(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    mask = os.umask(0o022)
    try:
        folder = tfjs.save_tfjs(model, tmp_path / "web" / "model")
    finally:
        os.umask(mask)
    assert os.stat(folder).st_mode & 0o777 == 0o755
    assert all(os.stat(os.path.join(folder, n)).st_mode & 0o777 == 0o644 for n in os.listdir(folder))


def test_tfjs_export_on_a_full_disk_keeps_the_previous_model(tmp_path):
    import tensorflow as tf

    target = tmp_path / "model"
    tfjs.save_tfjs(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]), target, quantization=None)
    before = {n: (target / n).read_bytes() for n in os.listdir(target)}
    big = tf.keras.Sequential([tf.keras.Input((300,)), tf.keras.layers.Dense(300)])  # 361 kB of weights
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))  # "disk full" after 100 kB per file
    try:
        with pytest.raises(ExportError, match="model: cannot write the TF.js model"):
            tfjs.save_tfjs(big, target, quantization=None)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert {n: (target / n).read_bytes() for n in os.listdir(target)} == before
    assert os.listdir(tmp_path) == ["model"]  # no temporary folder left


def _fail_the_nth_fsync(monkeypatch, n: int):
    """Make the ``n``-th ``os.fsync`` from now fail as a full disk does (ENOSPC)."""
    import errno

    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_tflite_export_leaves_the_previous_model_and_its_json_whole(tmp_path, random_base_dir, monkeypatch):
    spec = BrowserFftSpec(base_model=str(random_base_dir))
    task = AudioClassifier(spec, ["a", "b"])
    task.create_model()
    task.export(str(tmp_path / "out"))
    before = _snapshot(tmp_path / "out")
    assert set(before) == {"model.tflite", "model.json"}
    task.create_model()  # other weights: a new export would differ
    _fail_the_nth_fsync(monkeypatch, 2)  # the .tflite is written, its JSON hits a full disk
    with pytest.raises(ExportError, match="model.json"):
        task.export(str(tmp_path / "out"))
    assert _snapshot(tmp_path / "out") == before  # neither replaced, no temporary file left


def test_a_failed_report_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    from mm_browserfft.report import write_report

    def report(accuracy):
        metrics = {"accuracy": accuracy, "num_examples": 2, "labels": ["a", "b"], "confusion_matrix": [[1, 0], [0, 1]],
                   "per_class": [{"label": l, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1} for l in "ab"]}
        write_report(tmp_path, data_summary={}, history={"loss": [1.0, 0.5], "acc": [0.5, accuracy]}, metrics=metrics,
                     worst=[], examples=None, example_titles=[], model_info={"tflite_bytes": 1})  # fmt: skip

    report(1.0)
    before = _snapshot(tmp_path)
    assert {"report.md", "report.json", "report_images/training_curves.png"} <= set(before)
    _fail_the_nth_fsync(monkeypatch, 4)  # curves, confusion matrix and report.json written; report.md fails
    with pytest.raises(ExportError, match="report.md"):
        report(0.5)
    assert _snapshot(tmp_path) == before


def test_export_into_an_unwritable_place_names_it(tmp_path, random_base_dir):
    # Tests run as root, for whom chmod 0o555 stops nothing; a path below a *file* cannot be written by anyone.
    (tmp_path / "a_file").write_text("x")
    spec = BrowserFftSpec(base_model=str(random_base_dir))
    task = AudioClassifier(spec, ["a", "b"])
    task.create_model()
    for where in (tmp_path / "a_file" / "export", "/proc/version/export"):
        with pytest.raises(ExportError) as info:
            task.export(str(where))
        assert str(where) in str(info.value)


_KILLED_RUN = """
    import os, sys, time
    import numpy as np, tensorflow as tf
    from mm_browserfft.audio_classifier import AudioClassifier, BrowserFftSpec, DataLoader
    data_dir, base, model_dir, mark, phase = sys.argv[1:6]
    spec = BrowserFftSpec(model_dir, base_model=base, seed=0)
    data = DataLoader.from_folder(spec, data_dir, seed=0)

    class Probe(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # runs after the backup was restored
            np.save(mark + ".start.npy", self.model.get_layer("classification_head").get_weights()[0])

        def on_epoch_end(self, epoch, logs=None):
            if phase == "first" and epoch == 1:  # the backup of epoch 2 is written; freeze here to be killed
                np.save(mark + ".tmp.npy", self.model.get_layer("classification_head").get_weights()[0])
                os.replace(mark + ".tmp.npy", mark + ".npy")
                time.sleep(600)

    history = AudioClassifier(spec, data.index_to_label, model_dir=model_dir).train(
        data, epochs=5, batch_size=4, callbacks=[Probe()])
    print('{"epochs": %s}' % list(history.epoch))
"""


@pytest.mark.slow
def test_training_resumes_after_the_process_is_killed(tmp_path, random_base_dir):
    data = link_real_clips(tmp_path / "data", ("yes", "no"), 8)
    model_dir, mark = tmp_path / "model_dir", str(tmp_path / "mark")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1")
    args = [str(data), str(random_base_dir), str(model_dir), mark]
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_KILLED_RUN), *args, "first"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(mark + ".npy"):
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended before epoch 2"
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    backup = model_dir / BACKUP_FOLDER
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    saved = np.load(mark + ".npy")
    resumed = run_python(_KILLED_RUN, *args, "resume")
    assert resumed["epochs"] == [2, 3, 4]  # only the missing epochs ran
    np.testing.assert_array_equal(np.load(mark + ".start.npy"), saved)  # from the saved weights, not from scratch
    assert not backup.exists()  # a finished run removes its backup


def test_a_backup_of_another_run_is_discarded_not_restored(tmp_path, random_base_dir):
    data_dir = link_real_clips(tmp_path / "data", ("yes", "no"), 2)
    backup = tmp_path / "m" / BACKUP_FOLDER
    backup.mkdir(parents=True)
    (backup / "run.json").write_text(json.dumps({"labels": ["cat", "dog", "eel"], "train_whole_model": False}))
    (backup / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    spec = BrowserFftSpec(base_model=str(random_base_dir), seed=0)
    data = DataLoader.from_folder(spec, data_dir, seed=0)
    with pytest.warns(UserWarning, match="discarding the backup"):
        model = audio_classifier.create(data, spec, batch_size=2, epochs=2, model_dir=str(tmp_path / "m"))
    assert model.history.epoch == [0, 1]


def _run_of(spec, data, *, epochs=2, batch_size=2):
    from mm_browserfft.classifier import run_fingerprint

    return run_fingerprint(AudioClassifier(spec, data.index_to_label), data, None, epochs=epochs, batch_size=batch_size)


@pytest.mark.parametrize("change", ["other data", "more epochs", "other base", "other options"])
def test_a_backup_is_restored_only_into_the_very_same_run(tmp_path, random_base_dir, change):
    from mm_browserfft.classifier import backup_differences

    data_dir = link_real_clips(tmp_path / "data", ("yes", "no"), 3)
    spec = BrowserFftSpec(base_model=str(random_base_dir), seed=0)
    data = DataLoader.from_folder(spec, data_dir, seed=0)
    backup = tmp_path / "m" / BACKUP_FOLDER
    backup.mkdir(parents=True)
    (backup / "run.json").write_text(json.dumps(_run_of(spec, data)))
    assert backup_differences(str(tmp_path / "m"), _run_of(spec, data)) == []
    epochs, now_spec, now_data = 2, spec, data
    if change == "other data":
        victim = sorted((data_dir / "yes").iterdir())[0]
        os.unlink(victim)
        shutil.copy(sorted((SPEECH_DIR / "yes").glob("*.flac"))[-1], victim)  # same name, other clip
        now_data = DataLoader.from_folder(spec, data_dir, seed=0)
    elif change == "more epochs":
        epochs = 3
    elif change == "other base":
        now_spec = BrowserFftSpec(seed=0)  # the bundled base
    else:
        now_spec = BrowserFftSpec(base_model=str(random_base_dir), seed=0, time_shift_s=0.1)
    expected = {"other data": "train_files", "more epochs": "epochs", "other base": "base", "other options": "spec"}
    assert expected[change] in backup_differences(str(tmp_path / "m"), _run_of(now_spec, now_data, epochs=epochs))
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    with pytest.warns(UserWarning, match=f"discarding the backup.*{expected[change]}"):
        model = audio_classifier.create(now_data, now_spec, batch_size=2, epochs=epochs, model_dir=str(tmp_path / "m"))
    assert model.history.epoch == list(range(epochs))  # every epoch ran: nothing was restored


# ============================================================================ determinism


def test_a_seed_gives_identical_splits_weights_and_metrics(tmp_path, random_base_dir):
    data_dir = link_real_clips(tmp_path / "data", ("yes", "no", "up"), 6)

    def run(i, *, base_loaded_before=False):
        spec = BrowserFftSpec(base_model=str(random_base_dir), seed=7)
        if base_loaded_before:  # as `train --resume` does, and as a second training with one spec does
            spec.base
        train, test = DataLoader.from_folder(spec, data_dir, seed=7).split(0.7, by_speaker=True)
        model = audio_classifier.create(train, spec, batch_size=4, epochs=4, model_dir=str(tmp_path / f"m{i}"))
        return train.files, test.files, model.model.get_layer("classification_head").get_weights(), model.evaluate(test)

    first, second, third = run(0), run(1), run(2, base_loaded_before=True)
    assert first[0] == second[0] == third[0] and first[1] == second[1] == third[1]
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(first[2], second[2], third[2]))
    assert first[3] == second[3] == third[3]


def test_a_seed_gives_identical_weights_with_augmentation_on(tmp_path, random_base_dir):
    # 288 clips: five batches of the front end per epoch, which tf.data may run in parallel
    data_dir = link_real_clips(tmp_path / "data", ("yes", "no", "up", "down", "left", "right", "stop", "go"), 36)
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(noise / "hiss.wav", np.random.default_rng(0).normal(0, 0.05, 88200).astype(np.float32), 44100)

    def run(i):
        spec = BrowserFftSpec(base_model=str(random_base_dir), seed=7, time_shift_s=0.1, time_masks=1,
                              freq_masks=1, background_noise=noise, background_prob=0.8)  # fmt: skip
        data = DataLoader.from_folder(spec, data_dir, seed=7)
        model = audio_classifier.create(data, spec, batch_size=32, epochs=2, model_dir=str(tmp_path / f"m{i}"))
        return model.model.get_layer("classification_head").get_weights()

    first, second = run(0), run(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_a_seed_gives_identical_weights_when_the_whole_model_trains(tmp_path, random_base_dir):
    data_dir = link_real_clips(tmp_path / "data", ("yes", "no", "up"), 12)

    def run(i):
        spec = BrowserFftSpec(base_model=str(random_base_dir), seed=3, time_shift_s=0.1)
        data = DataLoader.from_folder(spec, data_dir, seed=3)
        model = audio_classifier.create(data, spec, batch_size=8, epochs=2, train_whole_model=True,
                                        model_dir=str(tmp_path / f"m{i}"))  # fmt: skip
        return model.model.get_weights()

    first, second = run(0), run(1)
    assert len(first) > 2  # the base's layers trained too
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


# ============================================================================ scale


_MIRRORED = """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader, create

    def accuracy(strategy):
        spec = BrowserFftSpec(sys.argv[2], strategy=strategy, seed=0)
        train, test = DataLoader.from_folder(spec, sys.argv[1], seed=0).split(0.7, by_speaker=True)
        model = create(train, spec, batch_size=8, epochs=10)
        # (model.evaluate under MirroredStrategy trips on a short last batch in Keras 3; predictions do not)
        predicted = [row[0][0] for row in model.predict_top_k(test)]
        truth = [model.index_to_label[i] for i in test.labels()]
        return sum(p == t for p, t in zip(predicted, truth)) / len(truth)

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({"default": accuracy(None), "mirrored": accuracy(mirrored),
                      "replicas": mirrored.num_replicas_in_sync}))
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_devices_trains_as_well(tmp_path):
    data = link_real_clips(tmp_path / "data", ("yes", "no", "up"), 30)
    result = run_python(_MIRRORED, str(data), str(tmp_path / "m"))
    print("MirroredStrategy:", result)
    assert result["replicas"] == 2
    assert result["default"] > 0.6 and abs(result["mirrored"] - result["default"]) <= 0.1


_MANY_CLIPS = """
    import json, resource, sys, time
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader, create
    start = time.time()
    spec = BrowserFftSpec(sys.argv[2], seed=0)
    data = DataLoader.from_folder(spec, sys.argv[1], cache=sys.argv[3], seed=0)
    model = create(data, spec, batch_size=64, epochs=1)
    print(json.dumps({"files": len(data), "clips": data.report.num_clips, "seconds": time.time() - start,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "acc": model.history.history["acc"][-1]}))
"""


def _many_clips(root, count: int, per_word: int = 36):
    """``root/<yes|no>/<i>_<clip>``: ``count`` links to 72 real one-second clips; returns root."""
    sources = {word: real_clips(word, per_word) for word in ("yes", "no")}
    for word, clips in sources.items():
        (root / word).mkdir(parents=True)
        link = os.link if os.stat(clips[0]).st_dev == os.stat(root).st_dev else os.symlink
        for i in range(count // 2):
            link(clips[i % per_word], root / word / f"{i:05d}_{clips[i % per_word].name}")
    return root


@pytest.mark.slow
def test_twenty_thousand_clips_train_with_a_disk_cache_in_bounded_memory(tmp_path):
    """20,000 one-second clips -> 20,000 windows (3,360 MB of float32), against 2,000 of the same kind.

    What bounds memory is what grows with the folder: 18,000 more windows may add their
    float16 embeddings (72 MB) and bookkeeping, never their waveforms (3,024 MB).
    """
    runs = {}
    for count in (2_000, 20_000):
        cache = tmp_path / f"cache{count}"
        try:
            runs[count] = run_python(_MANY_CLIPS, str(_many_clips(tmp_path / f"data{count}", count)),
                                     str(tmp_path / f"m{count}"), str(cache), timeout=900)  # fmt: skip
            cached = sum(f.stat().st_size for f in cache.iterdir())
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print(f"{count} clips:", runs[count], f"cache {cached / MB:.0f} MB")
        result = runs[count]
        assert result["files"] == count and result["clips"] >= 0.95 * count
        assert cached > result["clips"] * WAVEFORM_LENGTH * 4  # every waveform went to disk
        assert result["acc"] > 0.7
    growth = runs[20_000]["peak_rss_mb"] - runs[2_000]["peak_rss_mb"]
    assert growth < 500, growth  # the 18,000 more waveforms would be 3,024 MB
    assert runs[20_000]["peak_rss_mb"] < 20_000 * WAVEFORM_LENGTH * 4 / MB  # under the windows alone (3,360 MB)


_LONG_FILE = """
    import json, resource, sys
    import numpy as np, soundfile as sf
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path, root, cache, seconds, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), 16000
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:  # written in 10 s blocks
        for _ in range(seconds // 10):
            out.write(rng.normal(0, 0.05, 10 * rate).astype(np.float32))
    from mm_browserfft import audio
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader
    spec = BrowserFftSpec()  # imports TensorFlow (about 500 MB) before the baseline
    base = rss()
    total = sum(block.size for block in audio.iter_audio_blocks(path))
    streamed = rss()
    loader = DataLoader.from_folder(spec, root, shuffle=False, cache=cache)
    passes = [sum(len(w) for _, _, w in loader.iter_waveforms()) for _ in range(2)]  # decode + write, then read
    loaded = rss()
    batches = sum(1 for _ in loader.gen_dataset(batch_size=64))
    print(json.dumps({"samples": total, "clips": loader.report.num_clips, "passes": passes, "batches": batches,
                      "base_mb": base, "stream_mb": streamed, "loader_mb": loaded, "dataset_mb": rss()}))
"""


@pytest.mark.slow
def test_an_hour_long_file_streams_in_bounded_memory(tmp_path):
    """10 min and 60 min recordings: the loader's peak memory does not grow with the file's length."""
    results = {}
    for seconds in (600, 3600):
        folder = tmp_path / str(seconds)
        (folder / "rec").mkdir(parents=True)
        path = folder / "rec" / "long.flac"
        results[seconds] = result = run_python(
            _LONG_FILE, str(path), str(folder), str(folder / "cache"), str(seconds), timeout=600
        )
        print(f"{seconds} s file:", result)
        clips = seconds * SAMPLE_RATE // WAVEFORM_LENGTH
        assert abs(result["samples"] - seconds * SAMPLE_RATE) <= 8
        assert result["clips"] == clips and result["passes"] == [clips, clips] and result["batches"] == -(-clips // 64)
        assert result["stream_mb"] - result["base_mb"] < 150  # 30 s blocks, vs 635 MB for the decoded hour
        assert result["loader_mb"] - result["base_mb"] < 100  # streamed windows, disk cache written and read back
    hour, ten = results[3600], results[600]
    assert hour["dataset_mb"] - ten["dataset_mb"] < 50  # six times the audio, the same peak (measured: +0.5 MB)
