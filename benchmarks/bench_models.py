"""Exported models: size, held-out accuracy and single-thread latency of every .tflite variant.

A 10-class head (eight words, ``_unknown_``, ``_silence_``) is trained on the
bundled base with the clips of the speakers that
:func:`mm_browserfft.speakers.is_heldout_speaker` does not hold out, exported as
float, dynamic-range, float16 and int8 (calibrated on the training loader), and
each ``.tflite`` is judged on every clip of the held-out speakers through
LiteRT. Latency is the median of single-window runs (1 s clip, ``num_threads=1``)
after a warm-up; the Keras serving model, as a ``tf.function`` on one thread, is
timed in the same run as the reference, and so is a ``.tflite`` of the front end
alone (the floor every variant pays, since the front end stays float32); all of them
(with the bare FFTs in LiteRT and in NumPy) are called in turn in every timing round, so load from elsewhere hits them alike.

Also: Model Maker's speech-recognition tutorial flow (from_folder -> split(0.8)
-> create(batch_size=25, epochs=25) -> evaluate), on speaker-disjoint folders.

usage: python -m benchmarks.bench_models [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from benchmarks.common import (
    CLASSES,
    MB,
    TUTORIAL_TRAIN_FILES,
    WORDS,
    median_ms,
    row,
    speaker_split_folders,
    table,
    tensorflow_with_threads,
)

VARIANTS = ("float", "dynamic", "float16", "int8")
TARGET_SIZE_MB = {"float": 6.0, "int8": 1.6}
TARGET_LATENCY_MS = {"float": 2.5, "int8": 1.0}
MAX_ACCURACY_DROP = 0.01
"""A quantized variant may lose at most 1 point of accuracy against float."""
MODEL_MAKER_FLOAT_MB = 6.0
"""Model Maker's unit tests expect a float export of 6 MB (+-1 MB): a published constant, not measured here."""
MODEL_MAKER_DEMO_ACCURACY = 0.927
"""Test accuracy printed in Model Maker's audio demo docstring (mini_speech_commands, 8 words, random file
split, 5 epochs): a published constant on other data, not measured here."""


def _quantization(name: str, train_loader, *, steps: int):
    from mm_browserfft.config import QuantizationConfig

    return {
        "float": lambda: None,
        "dynamic": QuantizationConfig.for_dynamic,
        "float16": QuantizationConfig.for_float16,
        "int8": lambda: QuantizationConfig.for_int8(train_loader, quantization_steps=steps),
    }[name]()


def _frontend_only_tflite(path: str) -> None:
    """A .tflite of the front end alone (waveform -> flattened spectrogram), for its latency."""
    import tensorflow as tf

    from mm_browserfft.export import convert_to_tflite, write_tflite_atomically
    from mm_browserfft.frontend import WAVEFORM_LENGTH
    from mm_browserfft.layers import BrowserFftLayer

    model = tf.keras.Sequential([tf.keras.Input(shape=(WAVEFORM_LENGTH,)), BrowserFftLayer(), tf.keras.layers.Flatten()])
    write_tflite_atomically(convert_to_tflite(model), path)


def _bare_fft(waveform):
    """The 43 real 2048-point FFTs the front end computes (on 1024-sample blocks, zero-padded): ``[b, 43 * 1025]``."""
    import tensorflow as tf

    from mm_browserfft.frontend import FFT_SIZE, HOP_LENGTH, NUM_FRAMES

    blocks = tf.reshape(waveform[:, : NUM_FRAMES * HOP_LENGTH], [-1, NUM_FRAMES, HOP_LENGTH])
    return tf.reshape(tf.math.real(tf.signal.rfft(blocks, fft_length=[FFT_SIZE])), [tf.shape(waveform)[0], -1])


def _fft_only_tflite(path: str) -> None:
    """A .tflite of the bare FFTs alone (:func:`_bare_fft`), for LiteRT's FFT cost."""
    import tensorflow as tf

    from mm_browserfft.export import convert_to_tflite, write_tflite_atomically
    from mm_browserfft.frontend import WAVEFORM_LENGTH

    model = tf.keras.Sequential([tf.keras.Input(shape=(WAVEFORM_LENGTH,)), tf.keras.layers.Lambda(_bare_fft)])
    write_tflite_atomically(convert_to_tflite(model), path)


def _numpy_fft_call(window: np.ndarray):
    """NumPy's real FFTs of the same 43 zero-padded blocks as :func:`_bare_fft`, on one window ``[1, 44032]``."""
    from mm_browserfft.frontend import FFT_SIZE, HOP_LENGTH, NUM_FRAMES

    blocks = np.ascontiguousarray(window[0, : NUM_FRAMES * HOP_LENGTH].reshape(NUM_FRAMES, HOP_LENGTH))
    return lambda: np.fft.rfft(blocks, n=FFT_SIZE, axis=-1)


def _keras_call(serving_model, window: np.ndarray):
    """One call of the Keras serving model on one window, traced once as a ``tf.function``."""
    import tensorflow as tf

    from mm_browserfft.frontend import WAVEFORM_LENGTH

    fn = tf.function(lambda x: serving_model(x, training=False), input_signature=[tf.TensorSpec([1, WAVEFORM_LENGTH])])
    x = tf.constant(window)
    return lambda: fn(x).numpy()


def _litert_call(path: str, window: np.ndarray):
    """One single-threaded LiteRT run of a .tflite on one window."""
    from mm_browserfft.predict import TFLitePredictor

    predictor = TFLitePredictor(path, labels=(), num_threads=1)
    return lambda: predictor.predict(window)


def _loaders(root: str, *, quick: bool):
    """(train, test) loaders of the ten classes, split by speaker."""
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader

    train_dir, test_dir = speaker_split_folders(root, CLASSES, train_per_label=30 if quick else None)
    spec = BrowserFftSpec(model_dir=os.path.join(root, "checkpoints"), seed=0)
    train = DataLoader.from_folder(spec, train_dir, cache=True, seed=0)
    test = DataLoader.from_folder(spec, test_dir, cache=True, seed=0)
    if quick:
        test, _ = test.split(0.25)
    return spec, train, test


def _variant_notes(name: str, m: Dict, float_m: Dict, latency: Dict[str, float], params: int) -> Dict[str, str]:
    """Why a variant misses a target, from what was measured: {"size"|"latency"|"accuracy": text}.

    ``latency`` holds the medians (ms) of the ``frontend`` and ``fft`` .tflite files and of ``numpy_fft``.
    """
    notes = {}
    frontend_ms = latency["frontend"]
    stack_ms = m["latency_ms"] - frontend_ms
    notes["latency"] = (
        f"the float32 front end alone takes {frontend_ms:.2f} ms ({100 * frontend_ms / m['latency_ms']:.0f}% of "
        f"{m['latency_ms']:.2f} ms) in LiteRT, and within it the 43 real 2048-point FFTs (RFFT2D) alone take "
        f"{latency['fft']:.2f} ms, {latency['fft'] / latency['numpy_fft']:.1f}x what NumPy's rfft takes for the same "
        f"FFTs ({latency['numpy_fft']:.2f} ms, same run); the conv/dense stack takes the other {stack_ms:.2f} ms"
        + (f" (float: {float_m['latency_ms'] - frontend_ms:.2f} ms)" if name != "float" else "")
    )
    per_param = {"float": 4, "float16": 2, "dynamic": 1, "int8": 1}[name]
    weights_mb = params * per_param / MB
    notes["size"] = (
        f"{params:,} weights at {per_param} byte(s) each are {weights_mb:.2f} MB of the {m['size_mb']:.2f} MB; "
        f"metadata, labels and float tensors (biases, front-end window) make up the other {m['size_mb'] - weights_mb:.2f} MB"
    )
    notes["accuracy"] = (
        f"{m['accuracy'] * 100:.1f}% vs float {float_m['accuracy'] * 100:.1f}%: {m['changed']} of {m['clips']} "
        f"held-out clips change their top class against the float model"
    )
    return notes


def _variant_rows(metrics: Dict[str, Dict], keras: Dict, latency: Dict[str, float], params: int) -> List[Dict]:
    rows = []
    float_m = metrics["float"]
    for name, m in metrics.items():
        notes = _variant_notes(name, m, float_m, latency, params)
        size_target = TARGET_SIZE_MB.get(name)
        if name == "float":
            ref, ref_label, ratio_of = MODEL_MAKER_FLOAT_MB, "Model Maker's unit-test size (published, not measured here)", "size / Model Maker's"
        else:
            ref, ref_label, ratio_of = float_m["size_mb"], "float .tflite, same run", "size / float size"
        met = None if size_target is None else m["size_mb"] <= size_target
        rows.append(row(
            f"{name} .tflite size", m["size_mb"], "MB", reference=ref, reference_label=ref_label,
            ratio=m["size_mb"] / ref, ratio_of=ratio_of, target=None if size_target is None else f"<= {size_target:g} MB",
            met=met, note=notes["size"] if met is False else "",
        ))  # fmt: skip
        lat_target = TARGET_LATENCY_MS.get(name)
        met = None if lat_target is None else m["latency_ms"] <= lat_target
        rows.append(row(
            f"{name} .tflite latency per 1 s clip (LiteRT, 1 thread, median of {m['runs']})", m["latency_ms"], "ms",
            reference=keras["latency_ms"], reference_label="Keras serving model (tf.function, 1 thread), same run",
            ratio=m["latency_ms"] / keras["latency_ms"], ratio_of="LiteRT time / Keras time",
            target=None if lat_target is None else f"<= {lat_target:g} ms", met=met,
            note=notes["latency"] if met is False else "",
        ))  # fmt: skip
        if name == "float":
            rows.append(row(
                f"float .tflite accuracy, {m['clips']} clips of held-out speakers", 100 * m["accuracy"], "%",
                reference=100 * keras["accuracy"], reference_label="Keras model on the same clips, same run",
                ratio=m["accuracy"] / keras["accuracy"], ratio_of="accuracy / Keras accuracy",
            ))  # fmt: skip
        else:
            drop = float_m["accuracy"] - m["accuracy"]
            met = drop <= MAX_ACCURACY_DROP + 1e-12
            rows.append(row(
                f"{name} .tflite accuracy, {m['clips']} clips of held-out speakers", 100 * m["accuracy"], "%",
                reference=100 * float_m["accuracy"], reference_label="float .tflite, same run",
                ratio=100 * (m["accuracy"] - float_m["accuracy"]), ratio_of="points vs float",
                target="within 1 point of float", met=met, note=notes["accuracy"] if not met else "",
            ))  # fmt: skip
    return rows


def _tutorial_flow(root: str, *, quick: bool) -> Dict:
    """Model Maker's speech tutorial (8 words, 150 files per word, split 0.8, batch 25, 25 epochs), held-out test."""
    import tensorflow as tf

    from mm_browserfft import audio_classifier

    train_dir, test_dir = speaker_split_folders(root, WORDS, train_per_label=40 if quick else TUTORIAL_TRAIN_FILES)
    epochs = 5 if quick else 25
    start = time.perf_counter()
    tf.keras.utils.set_random_seed(0)
    spec = audio_classifier.BrowserFftSpec(model_dir=os.path.join(root, "checkpoints"))
    train_data = audio_classifier.DataLoader.from_folder(spec, train_dir, cache=True)
    train_data, validation_data = train_data.split(0.8)
    test_data = audio_classifier.DataLoader.from_folder(spec, test_dir, cache=True)
    model = audio_classifier.create(
        train_data=train_data, model_spec=spec, validation_data=validation_data, batch_size=25, epochs=epochs
    )
    _, accuracy = model.evaluate(test_data)
    return {
        "train_files": len(train_data),
        "validation_files": len(validation_data),
        "test_clips": test_data.report.num_clips,
        "epochs": epochs,
        "accuracy": float(accuracy),
        "seconds": time.perf_counter() - start,
    }


def run(quick: bool = False) -> Dict:
    """Train, export and judge the four variants, and run the tutorial flow.

    Args:
      quick: 30 training clips per class, a quarter of the held-out clips, 5 epochs,
        100 calibration waveforms, 50 latency rounds (instead of all, all, 25, 500, 300).

    Returns:
      ``{"rows", "tables", "details"}`` (see :mod:`benchmarks.common`).
    """
    tf = tensorflow_with_threads(1)
    from mm_browserfft import audio_classifier
    from mm_browserfft.predict import TFLitePredictor

    epochs, steps, runs = (5, 100, 50) if quick else (25, 500, 300)
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        tf.keras.utils.set_random_seed(0)
        spec, train, test = _loaders(os.path.join(tmp, "data"), quick=quick)
        start = time.perf_counter()
        classifier = audio_classifier.create(train, spec, batch_size=32, epochs=epochs)
        train_s = time.perf_counter() - start
        windows, labels, _ = test.waveforms()
        serving = classifier.create_serving_model()
        keras_pred = np.argmax(serving.predict(windows, batch_size=64, verbose=0), axis=1)
        keras = {"accuracy": float(np.mean(keras_pred == labels))}
        paths = {"frontend": os.path.join(tmp, "frontend.tflite"), "fft": os.path.join(tmp, "fft.tflite")}
        _frontend_only_tflite(paths["frontend"])
        _fft_only_tflite(paths["fft"])

        metrics: Dict[str, Dict] = {}
        float_pred: Optional[np.ndarray] = None
        for name in VARIANTS:
            start = time.perf_counter()
            classifier.export(tmp, tflite_filename=f"{name}.tflite", quantization_config=_quantization(name, train, steps=steps))
            export_s = time.perf_counter() - start
            paths[name] = os.path.join(tmp, f"{name}.tflite")
            pred = np.argmax(TFLitePredictor(paths[name], num_threads=1).predict(windows), axis=1)
            float_pred = pred if float_pred is None else float_pred
            metrics[name] = {
                "size_mb": os.path.getsize(paths[name]) / MB,
                "accuracy": float(np.mean(pred == labels)),
                "changed": int(np.sum(pred != float_pred)),
                "clips": int(len(labels)),
                "runs": runs,
                "export_s": export_s,
            }
        calls = {name: _litert_call(path, windows[:1]) for name, path in paths.items()}
        calls["keras"] = _keras_call(serving, windows[:1])
        calls["numpy_fft"] = _numpy_fft_call(windows[:1])
        latency = median_ms(calls, runs=runs)
        keras["latency_ms"] = latency["keras"]
        frontend_ms = latency["frontend"]
        for name in VARIANTS:
            metrics[name]["latency_ms"] = latency[name]
        params = int(classifier.model.count_params())
        tutorial = _tutorial_flow(os.path.join(tmp, "tutorial"), quick=quick)

    rows = _variant_rows(metrics, keras, latency, params)
    rows.append(row(
        f"Model Maker tutorial flow accuracy (8 words, {tutorial['train_files']} train files, "
        f"{tutorial['test_clips']} clips of held-out speakers, {tutorial['epochs']} epochs)",
        100 * tutorial["accuracy"], "%", reference=100 * MODEL_MAKER_DEMO_ACCURACY,
        reference_label="Model Maker's audio demo, 8 words of mini_speech_commands, random split (published, not measured here)",
        ratio=tutorial["accuracy"] / MODEL_MAKER_DEMO_ACCURACY, ratio_of="accuracy / published",
    ))  # fmt: skip
    variant_table = table(
        f"Exported variants: 10 classes, head trained {epochs} epochs on {train.report.num_clips} clips, "
        f"judged on {len(labels)} clips of held-out speakers",
        ["variant", "size (MB)", "accuracy (%)", "vs float (points)", "top class changed vs float",
         "latency (ms, 1 thread)", "export (s)"],
        [[name, round(m["size_mb"], 3), round(100 * m["accuracy"], 2),
          round(100 * (m["accuracy"] - metrics["float"]["accuracy"]), 2), m["changed"], round(m["latency_ms"], 3),
          round(m["export_s"], 1)] for name, m in metrics.items()]
        + [["Keras (reference)", "", round(100 * keras["accuracy"], 2), "", "", round(keras["latency_ms"], 3), ""],
           ["front end alone (.tflite)", "", "", "", "", round(frontend_ms, 3), ""],
           ["43 FFTs alone (.tflite, RFFT2D)", "", "", "", "", round(latency["fft"], 3), ""],
           ["43 FFTs alone (NumPy rfft)", "", "", "", "", round(latency["numpy_fft"], 3), ""]],
        note=f"int8 calibrated on {steps} training windows; latency: median of {runs} runs after 5 warm-up runs, the eight models called in turn in every round so that load from elsewhere hits them alike; sizes in MB of 10^6 bytes.",
    )  # fmt: skip
    return {
        "rows": rows,
        "tables": [variant_table],
        "details": {
            "quick": quick,
            "threads": 1,
            "train_clips": train.report.num_clips,
            "test_clips": int(len(labels)),
            "head_epochs": epochs,
            "head_training_s": train_s,
            "params": params,
            "keras": keras,
            "latency_ms": latency,
            "variants": metrics,
            "tutorial": tutorial,
            "tensorflow": tf.__version__,
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
