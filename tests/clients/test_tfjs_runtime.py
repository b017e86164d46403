"""Our TF.js export in real TF.js: ``@tensorflow/tfjs`` on Node and the speech-commands recognizer.

The model that ``ExportFormat.TFJS`` writes (``BrowserFftSpec.create_model``: 18w
layers + a 4-word head), trained for a few epochs on real clips so that its classes
differ, is exported with :func:`mm_browserfft.tfjs.save_tfjs` (float32, float16,
uint8) plus :func:`~mm_browserfft.tfjs.speech_commands_metadata` and run on the
clips' spectrograms by

* ``js/predict.mjs`` (Node, pure JS CPU backend): ``tf.loadLayersModel`` and the
  speech-commands ``BROWSER_FFT`` recognizer's ``recognize(tensor)``;
* ``js/recognizer.html`` in headless Chromium: the same recognizer from the
  packages' browser bundles, loading model.json and metadata.json over http.

Each must give the Keras model's probabilities, the probabilities of the export
as our :func:`~mm_browserfft.tfjs.load_tfjs` reads it back, and the top class of
the TFLite serving model (``BrowserFftSpec.create_serving_model``, run with LiteRT).

The JavaScript packages are pinned in ``js/package.json``/``package-lock.json``;
when ``js/node_modules`` is missing a session fixture runs ``npm ci`` there.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse

import numpy as np
import pytest

import chromium
from clients_common import JS_DIR, node_modules, pinned, serve  # noqa: F401  (node_modules: a fixture)
from conftest import real_clips

LABELS = ("down", "go", "no", "yes")
CLIPS = 8  # per label, trained on and predicted
EPOCHS = 15
VARIANTS = {"float32": None, "float16": "float16", "uint8": "uint8"}
"""Export variant -> ``save_tfjs(quantization=...)``."""
TOLERANCE = {"float32": 1e-4, "float16": 1e-3, "uint8": 2e-2}
"""Largest |p_tfjs - p_keras| against the trained model; measured 5.4e-7, 2.9e-4, 6.6e-3 (Node and Chromium).

Where the Keras model's top two probabilities lie within twice this, a quantized
export may rank them either way: the top class is compared on the other clips only
(all of them for float32 and float16, see test_classifier_is_worth_comparing)."""
SAME_WEIGHTS_TOLERANCE = 1e-5
"""Largest |p_tfjs - p| against the export read back by our load_tfjs (same decoded weights); measured 5.4e-7."""


def _windows(label: str, count: int) -> np.ndarray:
    """``[count, 44032]``: the first ``count`` clips of ``label``, one window each."""
    from mm_browserfft.audio import load_audio, split_windows

    return np.concatenate([split_windows(load_audio(p), pad_short=True) for p in real_clips(label, count)])


@pytest.fixture(scope="module")
def classifier(random_base_dir, tmp_path_factory):
    """The classifier, its clips' spectrograms ``[n, 43, 232, 1]``, and its Keras and TFLite scores ``[n, 4]``.

    The model is what ``AudioClassifier.export(..., ExportFormat.TFJS)`` writes:
    :meth:`BrowserFftSpec.create_model` (18w layers + ``classification_head``),
    here on the random base with every layer trained for a few epochs on the very
    clips it is then run on: the point is distinct, confident top classes to compare
    between runtimes, not accuracy. TFLite runs :meth:`BrowserFftSpec.create_serving_model`.
    """
    import tensorflow as tf

    from mm_browserfft import export
    from mm_browserfft.frontend import spectrogram
    from mm_browserfft.spec import BrowserFftSpec

    per_label = [_windows(label, CLIPS) for label in LABELS]
    waves = np.concatenate(per_label)
    targets = np.concatenate([np.full(len(w), i) for i, w in enumerate(per_label)])
    specs = spectrogram(waves)
    spec = BrowserFftSpec(str(tmp_path_factory.mktemp("model_dir")), base_model=str(random_base_dir), seed=0)
    tf.keras.utils.set_random_seed(0)
    model = spec.create_model(len(LABELS), train_whole_model=True)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(specs, targets, epochs=EPOCHS, batch_size=32, verbose=0)
    return {
        "model": model,
        "specs": specs,
        "keras": model.predict(specs, verbose=0),
        "tflite": export.run_tflite(export.convert_to_tflite(spec.create_serving_model(model)), waves),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory, classifier) -> pathlib.Path:
    """One model folder per :data:`VARIANTS` (model.json, shards, metadata.json) and ``specs.json``."""
    from mm_browserfft import tfjs

    root = tmp_path_factory.mktemp("tfjs_runtime")
    for name, quantization in VARIANTS.items():
        metadata = tfjs.speech_commands_metadata(LABELS)
        tfjs.save_tfjs(classifier["model"], root / name, metadata=metadata, quantization=quantization)
    specs = classifier["specs"]
    (root / "specs.json").write_text(json.dumps({"shape": list(specs.shape), "data": specs.ravel().tolist()}))
    return root


@pytest.fixture(scope="module")
def read_back(classifier, exported) -> dict:
    """Variant -> probabilities ``[n, 4]`` of the export as our own :func:`~mm_browserfft.tfjs.load_tfjs` reads it."""
    from mm_browserfft import tfjs

    return {name: tfjs.load_tfjs(exported / name).predict(classifier["specs"], verbose=0) for name in VARIANTS}


def _clear_winners(probs: np.ndarray, tolerance: float) -> np.ndarray:
    """``[n]`` bool: the top probability beats the runner-up by more than ``2 * tolerance``."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] > 2 * tolerance


def test_classifier_is_worth_comparing(classifier):
    """Keras and TFLite agree, predict several classes, and float32/float16 have no near tie."""
    keras, lite = classifier["keras"], classifier["tflite"]
    np.testing.assert_array_equal(keras.argmax(1), lite.argmax(1))
    assert len(set(keras.argmax(1))) >= 3
    assert _clear_winners(keras, TOLERANCE["float16"]).all()
    assert _clear_winners(keras, TOLERANCE["uint8"]).mean() >= 0.75


def _check_scores(scores, variant: str, classifier: dict, read_back: dict) -> None:
    """TF.js scores ``[n, 4]``: the TFLite model's top classes (where clear), the Keras model's probabilities."""
    scores = np.asarray(scores, dtype=np.float64)
    assert scores.shape == classifier["keras"].shape
    clear = _clear_winners(classifier["keras"], TOLERANCE[variant])
    np.testing.assert_array_equal(scores.argmax(1)[clear], classifier["tflite"].argmax(1)[clear])
    np.testing.assert_allclose(scores, classifier["keras"], rtol=0, atol=TOLERANCE[variant])
    # TF.js decodes the (quantized) weights exactly as our reader does
    np.testing.assert_allclose(scores, read_back[variant], rtol=0, atol=SAME_WEIGHTS_TOLERANCE)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tfjs_on_node_matches_keras_and_tflite(node_modules, classifier, exported, read_back, variant, tmp_path):
    out = tmp_path / "out.json"
    done = subprocess.run(
        ["node", str(JS_DIR / "predict.mjs"), str(exported / variant), str(exported / "specs.json"), str(out)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["tfjsVersion"] == pinned("@tensorflow/tfjs") and result["backend"] == "cpu"
    assert result["speechCommandsVersion"] == pinned("@tensorflow-models/speech-commands")
    _check_scores(result["probabilities"], variant, classifier, read_back)
    # speech-commands' recognizer, on Node: the same artifacts in memory, metadata.json through file://
    assert result["recognizer"]["wordLabels"] == list(LABELS)
    np.testing.assert_array_equal(result["recognizer"]["scores"], result["probabilities"])


# ------------------------------------------------------------------------------------------
# The recognizer in headless Chromium


@pytest.fixture(scope="module")
def site(node_modules, exported):
    """http://127.0.0.1:PORT serving ``/js/`` (the pages and node_modules) and ``/data/`` (the exports)."""
    with serve({"js": JS_DIR, "data": exported}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if chromium.missing():
        pytest.skip(chromium.missing())
    with chromium.driver() as driver:
        yield driver


@pytest.mark.browser
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_speech_commands_recognizer_in_chromium(browser, site, classifier, read_back, variant):
    """create() + ensureModelLoaded() over http, wordLabels(), recognize(tensor): no microphone needed.

    TF.js picks its backend (Chromium headless with --disable-gpu: WebGL on SwiftShader).
    """
    urls = {"model": f"/data/{variant}/model.json", "metadata": f"/data/{variant}/metadata.json"}
    query = urllib.parse.urlencode({**urls, "specs": "/data/specs.json"})
    browser.get(f"{site}/js/recognizer.html?{query}")
    result = browser.execute_async_script("window.recognizerResult.then(arguments[arguments.length - 1]);")
    assert result["ok"], result.get("error")
    assert result["speechCommandsVersion"] == pinned("@tensorflow-models/speech-commands")
    assert result["wordLabels"] == list(LABELS)
    _check_scores(result["scores"], variant, classifier, read_back)
