"""TF.js layers-model reading and writing (mm_browserfft.tfjs)."""

from __future__ import annotations

import copy
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorflow as tf

from mm_browserfft import tfjs
from mm_browserfft.errors import BrowserFftError, ExportError, ModelFormatError, UnsafeModelError

keras = tf.keras
RNG = np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------
# helpers: models written by hand in the published format, independent of save_tfjs


def write_by_hand(folder, topology, tensors, *, split_at=None, paths=None, manifest_file=None, **top):
    """Write model.json + shards; tensors = [(name, float array, stored dtype, quantization or None)].

    Stored dtype is "float32", "uint8" (codes given as the array) or "float16".
    """
    os.makedirs(folder, exist_ok=True)
    blobs, weights = [], []
    for name, array, stored, quant in tensors:
        entry = {"name": name, "shape": list(array.shape), "dtype": "float32"}
        if quant is not None:
            entry["quantization"] = quant
        weights.append(entry)
        blobs.append(np.asarray(array).astype({"float32": "<f4", "uint8": "<u1", "float16": "<f2"}[stored]).tobytes())
    data = b"".join(blobs)
    cuts = [0] + ([split_at] if split_at is not None else []) + [len(data)]
    paths = paths or [f"group1-shard{i + 1}of{len(cuts) - 1}" for i in range(len(cuts) - 1)]
    for path, lo, hi in zip(paths, cuts[:-1], cuts[1:]):
        with open(os.path.join(folder, path), "wb") as f:
            f.write(data[lo:hi])
    manifest = [{"paths": paths, "weights": weights}]
    doc = {"modelTopology": topology, **top}
    if manifest_file:
        with open(os.path.join(folder, manifest_file), "w") as f:
            json.dump(manifest, f)
    else:
        doc["weightsManifest"] = manifest
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(doc, f)
    return folder


def dense_cfg(name, units, activation, **extra):
    return {"class_name": "Dense", "config": {"name": name, "units": units, "activation": activation,
                                              "use_bias": True, "trainable": True, "dtype": "float32", **extra}}


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def relu(z):
    return np.maximum(z, 0.0)


def small_model():
    """A small Sequential with every allowlisted leaf class and non-trivial weights."""
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 6, 1)),
            keras.layers.Conv2D(3, (2, 3), strides=(1, 1), activation="relu", name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.MaxPooling2D((2, 2), strides=(2, 1), name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dropout(0.25, name="drop"),
            keras.layers.Dense(5, name="d1"),
            keras.layers.Activation("tanh", name="act"),
            keras.layers.Reshape((5, 1), name="resh"),
            keras.layers.Flatten(name="flat2"),
            keras.layers.Dense(3, activation="softmax", name="d2"),
        ],
        name="small",
    )
    model.set_weights([RNG.uniform(0.5, 1.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def features(shape, n=4):
    return RNG.standard_normal((n,) + tuple(shape)).astype("float32")


# ------------------------------------------------------------------------------------------
# round trips


def test_float32_round_trip_is_exact(tmp_path):
    model = small_model()
    folder = tfjs.save_tfjs(model, tmp_path / "m", quantization=None, shard_bytes=64)
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert doc["format"] == "layers-model" and doc["generatedBy"].startswith("mm_browserfft ")
    first = doc["modelTopology"]["config"]["layers"][0]["config"]
    assert first["batch_input_shape"] == [None, 8, 6, 1] and first["kernel_size"] == [2, 3]
    paths = doc["weightsManifest"][0]["paths"]
    assert len(paths) > 3 and paths[0] == f"group1-shard1of{len(paths)}.bin"
    assert all(os.path.getsize(os.path.join(folder, p)) <= 64 for p in paths)

    weights = tfjs.read_weights(folder)
    assert set(weights) == {"c1/kernel", "c1/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
                            "d1/kernel", "d1/bias", "d2/kernel", "d2/bias"}
    np.testing.assert_array_equal(weights["bn/moving_variance"], model.get_layer("bn").get_weights()[3])
    np.testing.assert_array_equal(weights["d1/kernel"], model.get_layer("d1").get_weights()[0])

    loaded = tfjs.load_tfjs(folder)
    assert isinstance(loaded, keras.Sequential)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    x = features((8, 6, 1))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("mode, bound", [("float16", lambda w: np.abs(w) * 2.0**-11 + 1e-7),
                                         ("uint8", lambda w: (w.max() - w.min()) / 510 * (1 + 1e-5) + 1e-7)])
def test_quantized_round_trip_within_quantization_error(tmp_path, mode, bound):
    model = small_model()
    folder = tfjs.save_tfjs(model, tmp_path / mode, quantization=mode)
    entries = json.loads((tmp_path / mode / "model.json").read_text())["weightsManifest"][0]["weights"]
    assert {e["quantization"]["dtype"] for e in entries} == {mode}
    weights = tfjs.read_weights(folder)
    for layer in model.layers:
        for wname, value in zip(tfjs.SUPPORTED_LAYERS[type(layer).__name__].weights(layer.get_config()),
                                layer.get_weights()):
            got = weights[f"{layer.name}/{wname}"]
            assert got.dtype == np.float32
            assert np.all(np.abs(got - value) <= bound(value)), (mode, layer.name, wname)
    loaded = tfjs.load_tfjs(folder)
    x = features((8, 6, 1))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)


def test_float16_halves_the_files(tmp_path):
    model = small_model()
    size = {}
    for mode in (None, "float16", "uint8"):
        folder = tfjs.save_tfjs(model, tmp_path / str(mode), quantization=mode)
        size[mode] = sum(os.path.getsize(os.path.join(folder, p)) for p in os.listdir(folder) if p.endswith(".bin"))
    assert size["float16"] * 2 == size[None] and size["uint8"] * 4 == size[None]


# ------------------------------------------------------------------------------------------
# files written by hand in the published formats


def test_hand_written_wrapped_bare_list_two_shards_uint8(tmp_path):
    w1 = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]], np.float32)
    b1 = np.array([0.1, -0.2], np.float32)
    codes = np.array([[0, 1], [2, 3]], np.uint8)
    w2 = codes * 0.5 - 1.0  # scale 0.5, min -1
    b2 = np.array([0.3, 0.0], np.float32)
    topology = {
        "keras_version": "2.1.4",
        "backend": "tensorflow",
        "model_config": {
            "class_name": "Sequential",
            "config": [  # the old bare-list form
                dense_cfg("dense_1", 2, "relu", batch_input_shape=[None, 3],
                          kernel_initializer={"class_name": "VarianceScaling", "config": {"scale": 1.0}}),
                dense_cfg("dense_2", 2, "softmax"),
            ],
        },
        "training_config": {"loss": "categorical_crossentropy", "optimizer_config": {"class_name": "RMSprop"}},
    }
    tensors = [("dense_1/kernel", w1, "float32", None), ("dense_1/bias", b1, "float32", None),
               ("dense_2/kernel", codes, "uint8", {"dtype": "uint8", "scale": 0.5, "min": -1.0}),
               ("dense_2/bias", b2, "float32", None)]
    folder = write_by_hand(tmp_path / "m", topology, tensors, split_at=10)  # the cut is inside dense_1/kernel
    assert sorted(os.listdir(folder)) == ["group1-shard1of2", "group1-shard2of2", "model.json"]

    spec = tfjs.read_model_json(folder)
    assert spec["modelTopology"]["class_name"] == "Sequential"
    weights = tfjs.read_weights(folder)
    np.testing.assert_array_equal(weights["dense_1/kernel"], w1)
    np.testing.assert_array_equal(weights["dense_2/kernel"], w2.astype(np.float32))

    model = tfjs.load_tfjs(folder)
    x = features((3,))
    expected = softmax(relu(x @ w1 + b1) @ w2 + b2)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def conv_valid(x, kernel, bias):
    """Reference 2-D 'valid' convolution, stride 1: x [n, h, w, c], kernel [kh, kw, c, f]."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[3]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,abcf->nf", x[:, i:i + kh, j:j + kw], kernel)
    return out + bias


def test_hand_written_dict_form_with_input_layer_and_float16(tmp_path):
    kernel = RNG.standard_normal((2, 2, 1, 2)).astype(np.float16)
    bias = np.array([0.5, -0.5], np.float32)
    dense = RNG.standard_normal((4, 3)).astype(np.float32)
    topology = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3, 5, 1], "dtype": "float32",
                                                "sparse": False, "name": "inp"}},
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "filters": 2, "kernel_size": [2, 2],
                                            "strides": [1, 1], "padding": "valid", "activation": "linear"}},
        {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [2, 2], "strides": None,
                                                  "padding": "valid"}},
        {"class_name": "Flatten", "config": {"name": "flatten_1"}},
        dense_cfg("dense_1", 3, "linear", use_bias=False),
    ]}}
    tensors = [("conv2d_1/kernel", kernel, "float16", {"dtype": "float16"}),
               ("conv2d_1/bias", bias, "float32", None), ("dense_1/kernel", dense, "float32", None)]
    folder = write_by_hand(tmp_path / "m", topology, tensors, format="layers-model", convertedBy="TensorFlow.js Converter")
    model = tfjs.load_tfjs(folder / "model.json")
    x = features((3, 5, 1))
    conv = conv_valid(x, kernel.astype(np.float64), bias)  # [n, 2, 4, 2]
    pooled = conv.reshape(-1, 1, 2, 2, 2, 2).max(axis=(2, 4))  # pool 2x2 stride 2 -> [n, 1, 2, 2]
    np.testing.assert_allclose(model.predict(x, verbose=0), pooled.reshape(len(x), -1) @ dense, rtol=1e-4, atol=1e-5)


def test_separated_manifest_file(tmp_path):
    topology = {"class_name": "Sequential", "config": [dense_cfg("dense_1", 2, "linear", batch_input_shape=[None, 2])]}
    w = np.eye(2, dtype=np.float32) * 3
    tensors = [("dense_1/kernel", w, "float32", None), ("dense_1/bias", np.ones(2, np.float32), "float32", None)]
    folder = write_by_hand(tmp_path / "m", topology, tensors, paths=["weights.bin"], manifest_file="weights_manifest.json")
    assert "weightsManifest" not in json.loads((folder / "model.json").read_text())
    model = tfjs.load_tfjs(folder)
    np.testing.assert_allclose(model.predict(np.array([[1.0, 2.0]], np.float32), verbose=0), [[4.0, 7.0]])


def teachable_machine_topology(input_shape=(4, 4, 1)):
    """Teachable Machine audio export shape: base conv2d_1..dense_1, then a nested Sequential head."""
    def node(name, index=0):
        return [[[name, index, 0, {}]]]
    return {"class_name": "Model", "config": {
        "name": "model1",
        "layers": [
            {"name": "conv2d_1_input", "class_name": "InputLayer", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, *input_shape], "dtype": "float32", "sparse": False,
                        "name": "conv2d_1_input"}},
            {"name": "conv2d_1", "class_name": "Conv2D", "inbound_nodes": node("conv2d_1_input"),
             "config": {"name": "conv2d_1", "filters": 2, "kernel_size": [2, 2], "activation": "relu",
                        "trainable": False, "padding": "valid", "strides": [1, 1], "use_bias": True}},
            {"name": "flatten_1", "class_name": "Flatten", "inbound_nodes": node("conv2d_1"),
             "config": {"name": "flatten_1", "trainable": False}},
            {"name": "dense_1", "class_name": "Dense", "inbound_nodes": node("flatten_1"),
             **dense_cfg("dense_1", 4, "relu", trainable=False)},
            {"name": "sequential_1", "class_name": "Sequential", "inbound_nodes": node("dense_1"),
             "config": {"name": "sequential_1", "layers": [
                 dense_cfg("NewHeadDense", 2, "softmax", batch_input_shape=[None, 4])]}},
        ],
        "input_layers": [["conv2d_1_input", 0, 0]],
        "output_layers": [["sequential_1", 1, 0]],  # node 0 of a nested model is its own input node
    }}


def test_hand_written_teachable_machine_nested_model(tmp_path):
    kernel = RNG.standard_normal((2, 2, 1, 2)).astype(np.float32)
    cbias = np.array([0.1, -0.1], np.float32)
    dense = RNG.standard_normal((18, 4)).astype(np.float32)
    dbias = np.zeros(4, np.float32)
    head = RNG.standard_normal((4, 2)).astype(np.float32)
    hbias = np.array([0.2, -0.2], np.float32)
    tensors = [("conv2d_1/kernel", kernel, "float32", None), ("conv2d_1/bias", cbias, "float32", None),
               ("dense_1/kernel", dense, "float32", None), ("dense_1/bias", dbias, "float32", None),
               ("NewHeadDense/kernel", head, "float32", None), ("NewHeadDense/bias", hbias, "float32", None)]
    folder = write_by_hand(tmp_path / "tm", teachable_machine_topology(), tensors, paths=["weights.bin"])
    with open(folder / "metadata.json", "w") as f:
        json.dump({"tfjsSpeechCommandsVersion": "0.4.0", "modelName": "TMv2", "timeStamp": "2021-01-01T00:00:00Z",
                   "wordLabels": ["Background Noise", "Clap"]}, f)

    model = tfjs.load_tfjs(folder)
    assert [l.name for l in model.layers][-1] == "sequential_1"
    assert model.get_layer("sequential_1").layers[0].name == "NewHeadDense"
    assert not model.get_layer("conv2d_1").trainable
    x = features((4, 4, 1))
    emb = relu(relu(conv_valid(x, kernel, cbias)).reshape(len(x), -1) @ dense + dbias)
    np.testing.assert_allclose(model.predict(x, verbose=0), softmax(emb @ head + hbias), rtol=1e-4, atol=1e-6)
    assert tfjs.read_labels(folder) == ["Background Noise", "Clap"]

    # and it writes back in the same shape: nested head referenced as node 1
    out = tfjs.save_tfjs(model, tmp_path / "again", quantization=None)
    topo = json.loads((tmp_path / "again" / "model.json").read_text())["modelTopology"]
    assert topo["class_name"] == "Model" and topo["config"]["output_layers"] == [["sequential_1", 1, 0]]
    np.testing.assert_array_equal(tfjs.load_tfjs(out).predict(x, verbose=0), model.predict(x, verbose=0))


def test_sequential_in_sequential(tmp_path):
    topology = {"class_name": "Sequential", "config": {"name": "outer", "layers": [
        dense_cfg("dense_1", 3, "relu", batch_input_shape=[None, 2]),
        {"class_name": "Sequential", "config": {"name": "inner", "layers": [dense_cfg("dense_2", 2, "linear")]}},
    ]}}
    w1, w2 = RNG.standard_normal((2, 3)).astype(np.float32), RNG.standard_normal((3, 2)).astype(np.float32)
    tensors = [("dense_1/kernel", w1, "float32", None), ("dense_1/bias", np.zeros(3, np.float32), "float32", None),
               ("dense_2/kernel", w2, "float32", None), ("dense_2/bias", np.ones(2, np.float32), "float32", None)]
    model = tfjs.load_tfjs(write_by_hand(tmp_path / "m", topology, tensors))
    x = features((2,))
    np.testing.assert_allclose(model.predict(x, verbose=0), relu(x @ w1) @ w2 + 1, rtol=1e-5, atol=1e-6)
    again = tfjs.load_tfjs(tfjs.save_tfjs(model, tmp_path / "w", quantization=None))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------------------------------------
# metadata.json


def test_speech_commands_metadata_and_labels(tmp_path):
    meta = tfjs.speech_commands_metadata(["_background_noise_", "yes", "no"], model_name="demo")
    assert meta["tfjsSpeechCommandsVersion"] == "0.4.0" and meta["modelName"] == "demo"
    assert meta["wordLabels"] == meta["words"] == ["_background_noise_", "yes", "no"]
    assert meta["timeStamp"].endswith("Z")
    folder = tfjs.save_tfjs(small_model(), tmp_path / "m", metadata=meta)
    assert tfjs.read_labels(folder) == ["_background_noise_", "yes", "no"]
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "metadata.json").write_text(json.dumps({"words": ["a", "b"], "frameSize": 232}))
    assert tfjs.read_labels(tmp_path / "legacy") == ["a", "b"]
    (tmp_path / "legacy" / "metadata.json").write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(ModelFormatError, match="metadata.json"):
        tfjs.read_labels(tmp_path / "legacy")
    with pytest.raises(ModelFormatError):
        tfjs.speech_commands_metadata([])


# ------------------------------------------------------------------------------------------
# writing is atomic and refuses what it cannot express


def test_save_replaces_a_model_and_keeps_it_on_failure(tmp_path):
    target = tmp_path / "m"
    tfjs.save_tfjs(small_model(), target, quantization=None)
    first = (target / "model.json").read_bytes()
    bad = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2, name="lam")])
    with pytest.raises(ModelFormatError, match="Lambda"):
        tfjs.save_tfjs(bad, target)
    assert (target / "model.json").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folders left behind
    tfjs.save_tfjs(small_model(), target, quantization="uint8")
    assert (target / "model.json").read_bytes() != first


def test_save_refuses_foreign_folders_and_reports_os_errors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="docs"):
        tfjs.save_tfjs(small_model(), tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="file"):
        tfjs.save_tfjs(small_model(), tmp_path / "file" / "m")
    with pytest.raises(ModelFormatError):
        tfjs.save_tfjs(small_model(), tmp_path / "q", quantization="int4")


def test_save_refuses_an_export_folder_whose_model_json_is_not_a_tfjs_model(tmp_path):
    export = tmp_path / "export"  # what train --export leaves: the .tflite and Model Maker's JSON sidecar
    export.mkdir()
    (export / "model.tflite").write_bytes(b"TFL3 model")
    (export / "model.json").write_text(json.dumps({"name": "AudioClassifier", "subgraph_metadata": []}))
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    with pytest.raises(ExportError, match=r"not part of a TF.js model \(\['model.json', 'model.tflite'\]\)"):
        tfjs.save_tfjs(small_model(), export)
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before
    model_dir = tmp_path / "m"
    tfjs.save_tfjs(small_model(), model_dir)
    (model_dir / "notes.txt").write_text("mine")  # a TF.js model folder the user wrote into
    with pytest.raises(ExportError, match=r"\['notes.txt'\]"):
        tfjs.save_tfjs(small_model(), model_dir)
    assert (model_dir / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------
# unsafe and malformed models


@pytest.fixture()
def good(tmp_path):
    """A valid hand-written model folder: Dense(2) on [None, 2], two shards."""
    topology = {"class_name": "Sequential", "config": [dense_cfg("dense_1", 2, "linear", batch_input_shape=[None, 2])]}
    tensors = [("dense_1/kernel", np.eye(2, dtype=np.float32), "float32", None),
               ("dense_1/bias", np.zeros(2, np.float32), "float32", None)]
    return write_by_hand(tmp_path / "good", topology, tensors, split_at=8)


def edit(folder, change):
    doc = json.loads((folder / "model.json").read_text())
    change(doc)
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def test_good_fixture_loads(good):
    assert tfjs.load_tfjs(good).count_params() == 6


def test_rejects_lambda_and_unknown_layers(good):
    def add_lambda(doc):
        doc["modelTopology"]["config"].append({"class_name": "Lambda", "config": {
            "name": "lam", "function": ["4wEAAAAAAAAAAQAAAAIAAABDAAAAcwgAAAB8AGQBFABTACkCTukCAAAAqQApAdoBeHIBAAAAcgEAAAD6"
                                        "AHoIPGxhbWJkYT5yAgAAAHMAAAAA", None, None], "function_type": "lambda"}})
    with pytest.raises(UnsafeModelError, match="Lambda.*model.json|model.json.*Lambda"):
        tfjs.load_tfjs(edit(good, add_lambda))


def test_rejects_unknown_top_level_class(good):
    with pytest.raises(UnsafeModelError, match="Custom"):
        tfjs.read_model_json(edit(good, lambda d: d["modelTopology"].update(class_name="Custom")))


@pytest.mark.parametrize("bad_path", ["../evil.bin", "sub/../../evil.bin", "/etc/passwd", "C:\\evil.bin"])
def test_rejects_paths_leaving_the_folder(good, bad_path):
    (good.parent / "evil.bin").write_bytes(b"\0" * 8)
    edit(good, lambda d: d["weightsManifest"][0]["paths"].__setitem__(1, bad_path))
    with pytest.raises(UnsafeModelError, match="model.json"):
        tfjs.read_weights(good)


def test_rejects_symlink_escaping(good):
    outside = good.parent / "outside.bin"
    outside.write_bytes((good / "group1-shard2of2").read_bytes())
    (good / "group1-shard2of2").unlink()
    os.symlink(outside, good / "group1-shard2of2")
    with pytest.raises(UnsafeModelError, match="outside"):
        tfjs.load_tfjs(good)


def test_rejects_short_and_long_shards(good):
    data = (good / "group1-shard2of2").read_bytes()
    (good / "group1-shard2of2").write_bytes(data[:-1])
    with pytest.raises(ModelFormatError, match="bytes"):
        tfjs.read_weights(good)
    (good / "group1-shard2of2").write_bytes(data + b"\0")
    with pytest.raises(ModelFormatError, match="bytes"):
        tfjs.read_weights(good)
    (good / "group1-shard2of2").unlink()
    with pytest.raises(ModelFormatError, match="missing"):
        tfjs.read_weights(good)


def test_checks_sha256_of_model_json(good):
    import hashlib

    digest = hashlib.sha256((good / "model.json").read_bytes()).hexdigest()
    assert tfjs.load_tfjs(good, sha256=digest.upper()).count_params() == 6
    with pytest.raises(UnsafeModelError, match="sha256"):
        tfjs.read_weights(good, sha256="0" * 64)
    with pytest.raises(UnsafeModelError, match="sha256"):
        tfjs.load_tfjs(good, sha256="0" * 64)


def test_a_sha256_manifest_pins_every_shard(good):
    # A shard of the right size but other bytes loads under a model.json digest (the sizes match),
    # never under the manifest of every file's digest.
    manifest = tfjs.file_hashes(good)
    assert set(manifest) == {"model.json", "group1-shard1of2", "group1-shard2of2"}
    assert tfjs.load_tfjs(good, sha256=manifest).count_params() == 6
    shard = good / "group1-shard2of2"
    data = bytearray(shard.read_bytes())
    data[0] ^= 0xFF
    shard.write_bytes(bytes(data))
    tfjs.load_tfjs(good, sha256=manifest["model.json"])  # the old check cannot see it
    with pytest.raises(UnsafeModelError, match="group1-shard2of2: sha256"):
        tfjs.load_tfjs(good, sha256=manifest)
    with pytest.raises(UnsafeModelError, match="does not name the shard group1-shard1of2"):
        tfjs.read_weights(good, sha256={"model.json": manifest["model.json"]})
    with pytest.raises(UnsafeModelError, match="does not name model.json"):
        tfjs.read_weights(good, sha256={"group1-shard1of2": manifest["group1-shard1of2"]})


def test_rejects_missing_extra_and_misshapen_weights(good):
    def rename(doc):
        doc["weightsManifest"][0]["weights"][1]["name"] = "dense_9/bias"
    with pytest.raises(ModelFormatError, match="dense_1/bias"):
        tfjs.load_tfjs(edit(good, rename))

    def extra(doc):
        doc["weightsManifest"][0]["weights"][1]["name"] = "dense_1/bias"
        doc["weightsManifest"][0]["weights"].append({"name": "other/kernel", "shape": [0], "dtype": "float32"})
    with pytest.raises(ModelFormatError, match="other/kernel"):
        tfjs.load_tfjs(edit(good, extra))

    def reshape(doc):
        doc["weightsManifest"][0]["weights"].pop()
        doc["weightsManifest"][0]["weights"][0]["shape"] = [1, 4]
    with pytest.raises(ModelFormatError, match="shape"):
        tfjs.load_tfjs(edit(good, reshape))


def test_rejects_absurd_shapes_before_reading(good):
    edit(good, lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[100000, 100000]))
    with pytest.raises(UnsafeModelError, match="bytes"):
        tfjs.read_weights(good)


def test_rejects_a_layer_too_big_for_its_weights(good):
    # units 10**9 would allocate gigabytes if built before checking the manifest
    edit(good, lambda d: d["modelTopology"]["config"][0]["config"].update(units=10**9))
    with pytest.raises(ModelFormatError, match="shape"):
        tfjs.load_tfjs(good)


def test_missing_model_json_names_the_file(tmp_path):
    with pytest.raises(ModelFormatError, match="model.json"):
        tfjs.read_model_json(tmp_path)


# ------------------------------------------------------------------------------------------
# fuzz: only our errors may come out of the readers


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
SPECIAL = st.sampled_from([None, -1, 0, 1, 3, 2**62, 1.5, "", "..", "../x", "/abs", "uint8", "float16", "int32",
                           "Lambda", "Sequential", [], {}, [None, 2], [2, 2], True])


def _containers(obj, path=()):
    yield path, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _containers(value, path + (key,))


BASE_DOC = {
    "format": "layers-model",
    "modelTopology": {"model_config": {"class_name": "Sequential", "config": [
        dense_cfg("dense_1", 2, "linear", batch_input_shape=[None, 2])]}},
    "weightsManifest": [{"paths": ["group1-shard1of2", "group1-shard2of2"], "weights": [
        {"name": "dense_1/kernel", "shape": [2, 2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "dense_1/bias", "shape": [2], "dtype": "float32"}]}],
}


def _mutate(root, data, *, max_rounds: int) -> None:
    """Delete or overwrite 1..max_rounds entries anywhere inside ``root``, in place."""
    for _ in range(data.draw(st.integers(1, max_rounds))):
        spots = [p for p, _ in _containers(root) if p]
        if not spots:
            return
        path = data.draw(st.sampled_from(spots))
        parent = root
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(data.draw(SPECIAL | JSON_VALUES))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_readers_raise_only_our_errors(data):
    doc = copy.deepcopy(BASE_DOC)
    _mutate(doc, data, max_rounds=4)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "model.json"), "w") as f:
            json.dump(doc, f)
        with open(os.path.join(tmp, "group1-shard1of2"), "wb") as f:
            f.write(bytes(4))
        with open(os.path.join(tmp, "group1-shard2of2"), "wb") as f:
            f.write(bytes(8))
        for reader in (tfjs.read_model_json, tfjs.read_weights):
            try:
                reader(tmp)
            except BrowserFftError:
                pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_load_tfjs_topology_raises_only_our_errors(data):
    doc = copy.deepcopy(BASE_DOC)
    doc["modelTopology"]["model_config"] = teachable_machine_topology((3, 3, 1))
    doc["weightsManifest"] = [{"paths": ["w.bin"], "weights": [
        {"name": n, "shape": s, "dtype": "float32"} for n, s in [
            ("conv2d_1/kernel", [2, 2, 1, 2]), ("conv2d_1/bias", [2]), ("dense_1/kernel", [8, 4]),
            ("dense_1/bias", [4]), ("NewHeadDense/kernel", [4, 2]), ("NewHeadDense/bias", [2])]]}]
    _mutate(doc["modelTopology"], data, max_rounds=3)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "model.json"), "w") as f:
            json.dump(doc, f)
        with open(os.path.join(tmp, "w.bin"), "wb") as f:
            f.write(bytes(4 * (8 + 2 + 32 + 4 + 8 + 2)))
        try:
            tfjs.load_tfjs(tmp)
        except BrowserFftError:
            pass
