"""The 18w base: its topology, and loading it from a folder, a URL (+ cache) or the package."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from mm_browserfft import base, cache, tfjs
from mm_browserfft.errors import DownloadError, ModelFormatError, UnsafeModelError
from mm_browserfft.frontend import SPECTROGRAM_SHAPE

keras = tf.keras

EXPECTED_18W = [  # name, class, kernel or pool size, strides, output shape
    ("conv2d_1", "Conv2D", (2, 8), (1, 1), (None, 42, 225, 8)),
    ("max_pooling2d_1", "MaxPooling2D", (2, 2), (2, 2), (None, 21, 112, 8)),
    ("conv2d_2", "Conv2D", (2, 4), (1, 1), (None, 20, 109, 32)),
    ("max_pooling2d_2", "MaxPooling2D", (2, 2), (2, 2), (None, 10, 54, 32)),
    ("conv2d_3", "Conv2D", (2, 4), (1, 1), (None, 9, 51, 32)),
    ("max_pooling2d_3", "MaxPooling2D", (2, 2), (2, 2), (None, 4, 25, 32)),
    ("conv2d_4", "Conv2D", (2, 4), (1, 1), (None, 3, 22, 32)),
    ("max_pooling2d_4", "MaxPooling2D", (2, 2), (1, 2), (None, 2, 11, 32)),
    ("flatten_1", "Flatten", None, None, (None, 704)),
    ("dropout_1", "Dropout", None, None, (None, 704)),
    ("dense_1", "Dense", None, None, (None, 2000)),
    ("dropout_2", "Dropout", None, None, (None, 2000)),
    ("dense_2", "Dense", None, None, (None, 20)),
]


def check_18w_topology(model):
    assert [l.name for l in model.layers] == [e[0] for e in EXPECTED_18W]
    shape = (None,) + SPECTROGRAM_SHAPE
    assert tuple(model.inputs[0].shape) == shape
    for layer, (name, cls, size, strides, out) in zip(model.layers, EXPECTED_18W):
        cfg = layer.get_config()
        assert type(layer).__name__ == cls, name
        if cls == "Conv2D":
            assert tuple(cfg["kernel_size"]) == size and tuple(cfg["strides"]) == strides
            assert cfg["padding"] == "valid" and cfg["activation"] == "relu"
        if cls == "MaxPooling2D":
            assert tuple(cfg["pool_size"]) == size and tuple(cfg["strides"]) == strides and cfg["padding"] == "valid"
        shape = tuple(layer.compute_output_shape(shape))
        assert shape == out, name
    assert model.get_layer("dropout_1").rate == 0.25 and model.get_layer("dropout_2").rate == 0.5
    assert model.get_layer("dense_1").get_config()["activation"] == "relu"
    assert model.get_layer("dense_2").get_config()["activation"] == "softmax"
    assert model.count_params() == 1_468_684
    assert tuple(model.outputs[0].shape) == (None, 20)


def test_build_18w_topology():
    check_18w_topology(base.build_18w())
    assert base.build_18w(5).count_params() == 1_468_684 - 2001 * 15


@pytest.fixture(scope="module")
def model_18w():
    model = base.build_18w()
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def folder_18w(model_18w, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfjs") / "18w"
    meta = tfjs.speech_commands_metadata(base.BASE_LABELS_18W)
    return tfjs.save_tfjs(model_18w, folder, metadata=meta, quantization=None)


def spectrograms(n=3):
    return np.random.default_rng(0).standard_normal((n,) + SPECTROGRAM_SHAPE).astype("float32")


def test_load_base_from_folder_keeps_topology_and_weights(model_18w, folder_18w):
    # 1,468,684 float32 values = 5.87 MB, split into 2 shards of at most 4 MiB like the official files
    assert sorted(p for p in os.listdir(folder_18w) if p.endswith(".bin")) == [
        "group1-shard1of2.bin", "group1-shard2of2.bin"]
    loaded = base.load_base(folder_18w)
    check_18w_topology(loaded)
    x = spectrograms()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model_18w.predict(x, verbose=0))
    via_json = base.load_base(os.path.join(folder_18w, "model.json"))
    np.testing.assert_array_equal(via_json.get_layer("dense_1").get_weights()[0],
                                  model_18w.get_layer("dense_1").get_weights()[0])
    assert tfjs.read_labels(folder_18w) == list(base.BASE_LABELS_18W)


@pytest.mark.skipif(not os.path.isfile(os.path.join(base.bundled_base_dir(), "model.json")),
                    reason="the bundled base is not built yet")
def test_bundled_base_is_an_18w_model():
    check_18w_topology(base.load_base("bundled"))
    assert len(tfjs.read_labels(base.bundled_base_dir())) == base.NUM_BASE_CLASSES


# ------------------------------------------------------------------------------------------
# URLs, served from 127.0.0.1


class _Server:
    """A loopback HTTP server for one folder, counting the requests it answers."""

    def __init__(self, folder):
        self.requests = []

        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=os.fspath(folder), **kwargs)

            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture()
def small_folder(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="dense_1")])
    return model, tfjs.save_tfjs(model, tmp_path / "served" / "small", quantization=None, shard_bytes=16,
                                 metadata=tfjs.speech_commands_metadata(["a", "b", "c"]))


@pytest.fixture()
def server(small_folder):
    srv = _Server(os.path.dirname(small_folder[1]))
    yield srv
    srv.close()


def test_url_is_downloaded_once_then_served_from_cache(small_folder, server, tmp_path):
    model, folder = small_folder
    url = f"{server.url}/small/model.json"
    digest = hashlib.sha256(open(os.path.join(folder, "model.json"), "rb").read()).hexdigest()
    loaded = base.load_base(url, sha256=digest, cache_dir=tmp_path / "cache")
    x = np.random.default_rng(1).standard_normal((2, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    num_shards = len([p for p in os.listdir(folder) if p.endswith(".bin")])
    assert num_shards > 1 and len(server.requests) == 2 + num_shards  # model.json, shards, metadata.json

    cached = base.fetch_tfjs(url, cache_dir=tmp_path / "cache")
    assert sorted(os.listdir(cached)) == sorted(os.listdir(folder))
    assert tfjs.read_labels(cached) == ["a", "b", "c"]
    server.close()  # from now on only the cache can answer
    again = base.load_base(url, sha256=digest, cache_dir=tmp_path / "cache", offline=True)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(server.requests) == 2 + num_shards
    assert [p for p in os.listdir(tmp_path / "cache") if p.startswith(".")] == []


def test_cache_dir_from_environment(small_folder, server, tmp_path, monkeypatch):
    monkeypatch.setenv(base.CACHE_ENV, os.fspath(tmp_path / "envcache"))
    assert base.default_cache_dir() == os.fspath(tmp_path / "envcache")
    folder = base.fetch_tfjs(f"{server.url}/small/model.json")
    assert os.path.dirname(folder) == os.fspath(tmp_path / "envcache")
    monkeypatch.delenv(base.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", os.fspath(tmp_path / "xdg"))  # downloads sit beside the embeddings
    assert base.default_cache_dir() == os.fspath(cache.default_cache_dir()) == os.fspath(tmp_path / "xdg" / "mm_browserfft")


def test_offline_never_touches_the_network(server, tmp_path, monkeypatch):
    url = f"{server.url}/small/model.json"
    with pytest.raises(DownloadError, match="offline"):
        base.load_base(url, cache_dir=tmp_path / "cache", offline=True)
    monkeypatch.setenv(base.OFFLINE_ENV, "1")
    with pytest.raises(DownloadError, match="offline"):
        base.fetch_tfjs(url, cache_dir=tmp_path / "cache")
    assert server.requests == []


def test_sha_mismatch_and_missing_files_are_not_cached(small_folder, server, tmp_path):
    url = f"{server.url}/small/model.json"
    with pytest.raises(UnsafeModelError, match="sha256"):
        base.load_base(url, sha256="0" * 64, cache_dir=tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []
    assert len(server.requests) == 1  # model.json only: no shard is fetched after a mismatch
    with pytest.raises(DownloadError, match="404"):
        base.fetch_tfjs(f"{server.url}/nothing/model.json", cache_dir=tmp_path / "cache")
    shard = sorted(p for p in os.listdir(small_folder[1]) if p.endswith(".bin"))[1]
    os.remove(os.path.join(small_folder[1], shard))
    with pytest.raises(DownloadError, match=shard):
        base.fetch_tfjs(url, cache_dir=tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_bad_sources():
    with pytest.raises(DownloadError):
        base.fetch_tfjs("ftp://example.com/model.json")
    with pytest.raises(ModelFormatError, match="model.json"):
        base.load_base("/nonexistent/folder")
    assert base.OFFICIAL_18W_URL.endswith("/v0.3/browser_fft/18w/model.json")
