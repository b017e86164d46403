"""TFLite conversion of the 18w serving model: shapes, parity with Keras, quantization, writing."""

from __future__ import annotations

import os
import resource
import signal

import numpy as np
import pytest

from mm_browserfft import audio
from mm_browserfft.config import QuantizationConfig
from mm_browserfft.errors import ExportError, InvalidInputError
from mm_browserfft.export import (
    check_saved_model_replaceable, convert_to_tflite, replace_path, run_tflite, staged_folder, write_tflite_atomically,
)
from mm_browserfft.frontend import WAVEFORM_LENGTH

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def serving_model():
    """Front end + 18w conv stack (random, seeded) + a 3-class head: waveform [b, 44032] -> [b, 3]."""
    import tensorflow as tf

    from mm_browserfft.base import build_18w
    from mm_browserfft.layers import BrowserFftLayer

    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential(
        [tf.keras.layers.Input((WAVEFORM_LENGTH,)), BrowserFftLayer(), build_18w(NUM_CLASSES)]
    )


@pytest.fixture(scope="module")
def clips(speech_dir) -> np.ndarray:
    """One real 1-s clip of each of 4 words, as model windows [4, 44032]."""
    files = [sorted((speech_dir / word).glob("*.flac"))[0] for word in ("yes", "no", "up", "down")]
    return np.concatenate([audio.split_windows(audio.load_audio(f), pad_short=True)[:1] for f in files])


@pytest.fixture(scope="module")
def float_model(serving_model) -> bytes:
    return convert_to_tflite(serving_model)


def _op_input_types(model: bytes) -> dict:
    """``{op name: set of its first input's dtype names}`` as LiteRT runs the model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    types: dict = {}
    for op in interpreter._get_ops_details():
        if op["inputs"].size and op["op_name"] != "DELEGATE":
            types.setdefault(op["op_name"], set()).add(np.dtype(tensors[op["inputs"][0]]["dtype"]).name)
    return types


def _io(model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def test_float_model_takes_one_waveform_and_returns_scores(float_model):
    source, sink = _io(float_model)
    assert source["name"] == "audio_clip"
    assert list(source["shape_signature"]) == [1, WAVEFORM_LENGTH] and source["dtype"] == np.float32
    assert list(sink["shape_signature"]) == [1, NUM_CLASSES] and sink["dtype"] == np.float32
    assert 5.0e6 < len(float_model) < 7.0e6  # Model Maker's test: 6 MB +- 1 MB


def test_float_model_uses_builtin_ops_only(float_model):
    ops = set(_op_input_types(float_model))
    assert {"RFFT2D", "LOG", "CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops)


def test_float_model_matches_keras_on_real_clips(serving_model, float_model, clips):
    expected = serving_model(clips, training=False).numpy()
    np.testing.assert_allclose(run_tflite(float_model, clips), expected, atol=1e-4)


def test_silence_gives_finite_scores(float_model):
    scores = run_tflite(float_model, np.zeros((1, WAVEFORM_LENGTH), np.float32))
    assert np.all(np.isfinite(scores)) and abs(scores.sum() - 1) < 1e-5


def test_dynamic_range_model_is_small_and_close(serving_model, clips):
    model = convert_to_tflite(serving_model, quantization_config=QuantizationConfig.for_dynamic())
    assert 1.0e6 < len(model) < 2.0e6
    expected = serving_model(clips, training=False).numpy()
    np.testing.assert_allclose(run_tflite(model, clips), expected, atol=0.02)
    assert _op_input_types(model)["RFFT2D"] == {"float32"}


def test_float16_model_halves_the_size(serving_model, float_model, clips):
    model = convert_to_tflite(serving_model, quantization_config=QuantizationConfig.for_float16())
    assert 0.4 < len(model) / len(float_model) < 0.6
    expected = serving_model(clips, training=False).numpy()
    np.testing.assert_allclose(run_tflite(model, clips), expected, atol=0.02)


def test_float16_model_is_finite_on_digital_silence(serving_model, clips):
    # A float16 .tflite stores the front end's constants in float16: none of them may underflow
    # (a threshold of 1e-19 once became 0 there and gave NaN on clips with silent frames).
    model = convert_to_tflite(serving_model, quantization_config=QuantizationConfig.for_float16())
    silent = np.zeros_like(clips[:2])
    silent[1, 20000:] = clips[1, 20000:]  # leading digital silence, then speech
    probs = run_tflite(model, silent)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs, serving_model(silent, training=False).numpy(), atol=0.02)


def test_int8_runs_int8_kernels_behind_a_float_front_end(serving_model, clips):
    config = QuantizationConfig.for_int8(clips, quantization_steps=3)
    model = convert_to_tflite(serving_model, quantization_config=config)
    types = _op_input_types(model)
    assert types["CONV_2D"] == {"int8"} and types["FULLY_CONNECTED"] == {"int8"}
    for front_end_op in ("PAD", "MUL", "RFFT2D", "LOG", "DIV"):
        assert types[front_end_op] == {"float32"}, front_end_op
    source, sink = _io(model)
    assert source["dtype"] == np.float32 and sink["dtype"] == np.float32
    assert len(model) < 2.0e6
    expected = serving_model(clips, training=False).numpy()
    np.testing.assert_allclose(run_tflite(model, clips), expected, atol=0.05)
    assert np.all(np.isfinite(run_tflite(model, np.zeros(WAVEFORM_LENGTH, np.float32))))


def test_configs_that_cannot_hold_a_float_waveform_are_refused(serving_model, clips):
    import tensorflow as tf

    with pytest.raises(InvalidInputError, match="inference_input_type"):
        int8_input = QuantizationConfig.for_int8(clips, inference_input_type=tf.int8)
        convert_to_tflite(serving_model, quantization_config=int8_input)
    int8_only = QuantizationConfig.for_int8(clips, supported_ops=tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
    with pytest.raises(InvalidInputError, match="supported_ops"):
        convert_to_tflite(serving_model, quantization_config=int8_only)


def test_serving_model_must_return_a_score_matrix():
    import tensorflow as tf

    from mm_browserfft.layers import BrowserFftLayer

    spectrogram_out = tf.keras.Sequential([tf.keras.layers.Input((WAVEFORM_LENGTH,)), BrowserFftLayer()])
    with pytest.raises(InvalidInputError, match=r"one \[1, N\] tensor"):
        convert_to_tflite(spectrogram_out)


def test_run_tflite_checks_the_waveform_shape(float_model):
    with pytest.raises(InvalidInputError, match="44032"):
        run_tflite(float_model, np.zeros((2, 16000), np.float32))


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    write_tflite_atomically(b"new model", path)
    assert path.read_bytes() == b"new model"
    assert os.listdir(tmp_path) == ["model.tflite"]
    assert path.stat().st_mode & 0o644 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # a "disk full" after 1000 bytes
    try:
        with pytest.raises(ExportError, match="model.tflite: cannot write"):
            write_tflite_atomically(b"x" * 5000, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_write_into_a_missing_folder_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="missing"):
        write_tflite_atomically(b"data", tmp_path / "missing" / "model.tflite")


def _tree(folder) -> dict:
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}  # fmt: skip


def test_replace_path_swaps_a_folder_for_a_folder_and_puts_it_back_on_failure(tmp_path):
    old, new = tmp_path / "saved_model", tmp_path / ".new"
    (old / "variables").mkdir(parents=True)
    (old / "saved_model.pb").write_bytes(b"old")
    new.mkdir()
    (new / "saved_model.pb").write_bytes(b"new")
    replace_path(new, old)
    assert _tree(tmp_path) == {"saved_model/saved_model.pb": b"new"}  # the old folder is gone, nothing left aside
    with pytest.raises(FileNotFoundError):
        replace_path(tmp_path / "never_written", old)  # the second rename fails: the folder is put back
    assert _tree(tmp_path) == {"saved_model/saved_model.pb": b"new"} and os.listdir(tmp_path) == ["saved_model"]
    (tmp_path / "a.tflite").write_bytes(b"old file")
    (tmp_path / "b.tflite").write_bytes(b"new file")
    replace_path(tmp_path / "b.tflite", tmp_path / "a.tflite")
    assert (tmp_path / "a.tflite").read_bytes() == b"new file" and not (tmp_path / "b.tflite").exists()
    with pytest.raises(IsADirectoryError, match="cannot replace a folder with a file"):
        replace_path(tmp_path / "a.tflite", f"{tmp_path / 'saved_model'}/")  # a trailing slash is the same folder
    with pytest.raises(NotADirectoryError, match="cannot replace a file or link with a folder"):
        replace_path(tmp_path / "saved_model", tmp_path / "a.tflite")
    assert _tree(tmp_path) == {"saved_model/saved_model.pb": b"new", "a.tflite": b"new file"}


def test_only_a_saved_model_folder_is_replaced_by_one(tmp_path):
    folder = tmp_path / "saved_model"
    check_saved_model_replaceable(folder)  # missing
    folder.mkdir()
    check_saved_model_replaceable(folder)  # empty
    (folder / "variables").mkdir()
    for name in ("saved_model.pb", "fingerprint.pb", "labels.txt"):
        (folder / name).write_bytes(b"")
    check_saved_model_replaceable(folder)  # what TensorFlow and save_saved_model write
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"saved_model: holds files that are not part of a SavedModel \(\['notes.txt'\]\)"):
        check_saved_model_replaceable(folder)
    (folder / "notes.txt").unlink()
    (folder / ".DS_Store").write_bytes(b"")
    (folder / "assets.extra").mkdir()
    check_saved_model_replaceable(folder)  # TensorFlow's extra assets, and a hidden file, are fine
    (folder / "saved_model.pb").unlink()  # labels.txt and variables/ without a graph: someone else's
    with pytest.raises(ExportError, match=r"\['assets.extra', 'fingerprint.pb', 'labels.txt', 'variables'\]"):
        check_saved_model_replaceable(folder)
    with pytest.raises(ExportError, match="exists and is not a folder"):
        check_saved_model_replaceable(folder / "labels.txt")


def test_a_staged_export_replaces_its_entries_together_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    (out / "report_images").mkdir(parents=True)
    (out / "report_images" / "old_plot.png").write_bytes(b"old")
    (out / "model.tflite").write_bytes(b"old model")
    (out / "notes.txt").write_bytes(b"mine")
    with staged_folder(out) as stage:
        assert stage.parent == out and stage.name.startswith(".")
        (stage / "model.tflite").write_bytes(b"new model")
        (stage / "report_images").mkdir()
        (stage / "report_images" / "plot.png").write_bytes(b"new")
        assert (out / "model.tflite").read_bytes() == b"old model"  # nothing moves before the block ends
    assert _tree(out) == {"model.tflite": b"new model", "report_images/plot.png": b"new", "notes.txt": b"mine"}


def test_a_staged_export_that_fails_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="a test clip"):
        with staged_folder(out) as stage:
            (stage / "model.tflite").write_bytes(b"new model")
            raise RuntimeError("a test clip does not decode")
    assert _tree(out) == {"model.tflite": b"old model"}
    # an entry of the other kind in the way is found before anything moves
    (out / "report_images").write_bytes(b"a file where the export puts a folder")
    with pytest.raises(ExportError, match="cannot write a folder here: a file is in its place") as caught:
        with staged_folder(out) as stage:
            (stage / "model.tflite").write_bytes(b"new model")
            (stage / "report_images").mkdir()
    assert caught.value.path == os.fspath(out / "report_images")
    assert _tree(out) == {"model.tflite": b"old model", "report_images": b"a file where the export puts a folder"}
    (out / "report_images").unlink()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", out / "report_images")  # a link to a folder: not replaced by renames either
    with pytest.raises(ExportError, match="cannot write a folder here: a link is in its place"):
        with staged_folder(out) as stage:
            (stage / "model.tflite").write_bytes(b"new model")
            (stage / "report_images").mkdir()
    assert (out / "model.tflite").read_bytes() == b"old model"


def test_a_staging_folder_a_killed_run_left_is_removed_by_the_next_export(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    killed = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from mm_browserfft.export import staged_folder\n"
        "with staged_folder(sys.argv[1]) as stage:\n"
        "    (stage / 'model.tflite').write_bytes(b'half')\n"
        "    print('staged', flush=True)\n"
        "    time.sleep(60)\n"), str(out)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert killed.stdout.readline() == "staged\n"
    killed.terminate()  # SIGTERM: no `finally` runs
    killed.wait(timeout=30)
    assert [p.name.startswith(".staging-") for p in out.iterdir()] == [True]
    with staged_folder(out) as stage:
        (stage / "labels.txt").write_bytes(b"yes")
    assert _tree(out) == {"labels.txt": b"yes"}
