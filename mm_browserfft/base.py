"""The pretrained base: the TF.js speech-commands "18w" topology and where its weights come from.

The 18w network (tfjs-models speech-commands, v0.3) maps a spectrogram
``[batch, 43, 232, 1]`` to 20 word probabilities; ``dense_1`` (2000 ReLU units)
is the embedding that transfer learning builds on. Sources of weights:

* ``"bundled"`` -- the base trained by ``tools/pretrain`` and shipped in
  ``mm_browserfft/assets/base/`` (TF.js format, float16);
* a local folder holding a TF.js layers model (the official 18w files, a
  Teachable Machine audio export, or one written by :func:`mm_browserfft.tfjs.save_tfjs`);
* an ``http(s)`` URL of a ``model.json``, downloaded once into a cache
  (``$MM_BROWSERFFT_CACHE`` or ``~/.cache/mm_browserfft``), optionally checked
  against a sha256; offline use reads the cache and never touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from importlib import resources
from typing import List, Optional

from . import cache, tfjs
from .errors import DownloadError, ModelFormatError
from .frontend import SPECTROGRAM_SHAPE

__all__ = [
    "NUM_BASE_CLASSES",
    "EMBEDDING_LAYER",
    "BASE_LABELS_18W",
    "build_18w",
    "bundled_base_dir",
    "OFFICIAL_18W_URL",
    "CACHE_ENV",
    "OFFLINE_ENV",
    "default_cache_dir",
    "fetch_tfjs",
    "load_base",
    "flatten_base",
    "nonfinite_weights",
]

NUM_BASE_CLASSES = 20
"""Outputs of the official 18w model."""
EMBEDDING_LAYER = "dense_1"
"""The 2000-unit layer whose output is the transfer-learning embedding."""
BASE_LABELS_18W = (
    "_background_noise_", "_unknown_", "down", "eight", "five", "four", "go", "left", "nine", "no",
    "one", "right", "seven", "six", "stop", "three", "two", "up", "yes", "zero",
)  # fmt: skip
"""The official 18w vocabulary, in its (sorted) output order."""
OFFICIAL_18W_URL = "https://storage.googleapis.com/tfjs-models/tfjs/speech-commands/v0.3/browser_fft/18w/model.json"
"""The TF.js speech-commands v0.3 18w model that Model Maker downloads (no checksum is published)."""
CACHE_ENV = cache.CACHE_ENV
"""Environment variable naming the cache folder (downloads, embeddings, decoded audio)."""
OFFLINE_ENV = "MM_BROWSERFFT_OFFLINE"
"""Environment variable; ``1``/``true``/``yes``/``on`` forbids network access."""
_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def build_18w(num_classes: int = NUM_BASE_CLASSES, *, name: str = "browser_fft_18w"):
    """Build the 18w topology with fresh weights.

    Layer names, kernel sizes and strides follow the v0.3 TF.js model; with 20
    classes it has exactly 1,468,684 parameters.

    Args:
      num_classes: units of the final softmax layer (``dense_2``).
      name: the model's name.

    Returns:
      an uncompiled ``keras.Sequential``: ``[batch, 43, 232, 1]`` -> ``[batch, num_classes]``.
    """
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Input(shape=SPECTROGRAM_SHAPE, name="conv2d_1_input"),
            layers.Conv2D(8, (2, 8), activation="relu", name="conv2d_1"),
            layers.MaxPooling2D((2, 2), strides=(2, 2), name="max_pooling2d_1"),
            layers.Conv2D(32, (2, 4), activation="relu", name="conv2d_2"),
            layers.MaxPooling2D((2, 2), strides=(2, 2), name="max_pooling2d_2"),
            layers.Conv2D(32, (2, 4), activation="relu", name="conv2d_3"),
            layers.MaxPooling2D((2, 2), strides=(2, 2), name="max_pooling2d_3"),
            layers.Conv2D(32, (2, 4), activation="relu", name="conv2d_4"),
            layers.MaxPooling2D((2, 2), strides=(1, 2), name="max_pooling2d_4"),
            layers.Flatten(name="flatten_1"),
            layers.Dropout(0.25, name="dropout_1"),
            layers.Dense(2000, activation="relu", name=EMBEDDING_LAYER),
            layers.Dropout(0.5, name="dropout_2"),
            layers.Dense(num_classes, activation="softmax", name="dense_2"),
        ],
        name=name,
    )


def bundled_base_dir() -> str:
    """Folder of the base shipped inside the package (``model.json``, weights, ``metadata.json``)."""
    return os.fspath(resources.files("mm_browserfft") / "assets" / "base")


def default_cache_dir() -> str:
    """The package's cache folder (:func:`mm_browserfft.cache.default_cache_dir`), where downloads go too."""
    return os.fspath(cache.default_cache_dir())


def _offline(offline: Optional[bool]) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def _download(url: str, dest: str, *, limit: int, optional: bool = False) -> bool:
    """Fetch ``url`` into ``dest`` (temp file + rename); ``False`` if optional and absent (HTTP 404)."""
    part = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(part, "wb") as f:
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"larger than the {limit} bytes allowed", path=url)
                f.write(chunk)
        os.replace(part, dest)
        return True
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        if optional and exc.code == 404:
            return False
        raise DownloadError(f"HTTP {exc.code} {exc.reason}", path=url) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"download failed: {getattr(exc, 'reason', exc)}", path=url) from None
    finally:
        if os.path.exists(part):
            os.remove(part)


def _complete(folder: str, sha256: Optional[tfjs.Sha256]) -> bool:
    """Whether ``folder`` holds a model.json (matching ``sha256``) and every shard it names."""
    if not os.path.isfile(os.path.join(folder, tfjs.MODEL_JSON)):
        return False
    spec = tfjs.read_model_json(folder, sha256=sha256)
    return all(os.path.isfile(p) for p in tfjs.shard_paths(spec, folder))


def _fetch_into(url: str, folder: str, sha256: Optional[tfjs.Sha256]) -> None:
    json_path = os.path.join(folder, tfjs.MODEL_JSON)
    _download(url, json_path, limit=tfjs.MAX_JSON_BYTES)
    with open(json_path, "rb") as f:
        try:
            doc = json.loads(f.read())
        except ValueError:
            doc = None  # read_model_json below reports it
    if isinstance(doc, dict) and "weightsManifest" not in doc:  # the separated layout
        for name in tfjs.SEPARATE_MANIFESTS:
            dest = os.path.join(folder, name)
            if _download(urllib.parse.urljoin(url, name), dest, limit=tfjs.MAX_JSON_BYTES, optional=True):
                break
    spec = tfjs.read_model_json(folder, sha256=sha256)
    budget = tfjs.MAX_WEIGHT_BYTES
    for rel, dest in zip((p for g in spec["weightsManifest"] for p in g["paths"]), tfjs.shard_paths(spec, folder)):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        _download(urllib.parse.urljoin(url, urllib.parse.quote(rel)), dest, limit=budget)
        budget -= os.path.getsize(dest)
    metadata = os.path.join(folder, tfjs.METADATA_JSON)
    _download(urllib.parse.urljoin(url, tfjs.METADATA_JSON), metadata, limit=tfjs.MAX_JSON_BYTES, optional=True)


def fetch_tfjs(
    url: str, *, sha256: Optional[tfjs.Sha256] = None, cache_dir: Optional[str] = None, offline: Optional[bool] = None
) -> str:
    """Download a TF.js layers model (model.json, shards, metadata.json if any) once into a cache.

    Args:
      url: ``http(s)://.../model.json``; shards are fetched relative to it.
      sha256: expected hex sha256 of ``model.json``, or a manifest pinning every file
        (:func:`mm_browserfft.tfjs.file_hashes`); checked before the shards are fetched and
        again whenever the cached copy is used.
      cache_dir: cache root; default :func:`default_cache_dir`. The model goes to
        ``<cache_dir>/<sha256 of url>/``.
      offline: never touch the network (default: ``$MM_BROWSERFFT_OFFLINE``).

    Returns:
      the local model folder.

    Raises:
      DownloadError: the fetch failed, or the model is not cached while offline.
      UnsafeModelError: sha256 mismatch, shard paths leaving the folder.
    """
    if not _is_url(url):
        raise DownloadError("not an http(s) URL", path=url)
    root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = os.path.join(root, hashlib.sha256(url.encode("utf-8")).hexdigest()[:32])
    offline = _offline(offline)
    try:
        if _complete(folder, sha256):
            return folder
    except ModelFormatError:  # a stale or damaged copy: fetch it again unless offline
        if offline:
            raise
    if offline:
        raise DownloadError(f"not in the cache ({folder}) and offline mode forbids downloading", path=url)
    try:
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".download-", dir=root)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder: {exc}", path=root) from None
    try:
        _fetch_into(url, tmp, sha256)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except OSError as exc:
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"cannot store the download: {exc}", path=folder) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_base(
    source: str = "bundled",
    *,
    sha256: Optional[tfjs.Sha256] = None,
    cache_dir: Optional[str] = None,
    offline: Optional[bool] = None,
):
    """Load a pretrained base as a ``tf.keras`` model.

    Args:
      source: ``"bundled"`` (:func:`bundled_base_dir`), a local TF.js model folder or
        ``model.json`` path, or an ``http(s)://.../model.json`` URL (e.g.
        :data:`OFFICIAL_18W_URL`), downloaded once with :func:`fetch_tfjs`.
      sha256: expected hex sha256 of ``model.json``, or a manifest of every file's
        (:func:`mm_browserfft.tfjs.file_hashes`), if any.
      cache_dir: download cache root (URLs only).
      offline: forbid network access (URLs only; default ``$MM_BROWSERFFT_OFFLINE``).

    Returns:
      the model (``[batch, 43, 232, 1]`` -> ``[batch, classes]`` for an 18w base).

    Raises:
      ModelFormatError, UnsafeModelError: see :func:`mm_browserfft.tfjs.load_tfjs`.
      DownloadError: see :func:`fetch_tfjs`.
    """
    source = os.fspath(source)
    if source == "bundled":
        path = bundled_base_dir()
    elif _is_url(source):
        path = fetch_tfjs(source, sha256=sha256, cache_dir=cache_dir, offline=offline)
    else:
        path = source
    return tfjs.load_tfjs(path, sha256=sha256)


def flatten_base(model):
    """A base as one flat Sequential ending ``dense_1[, dropout], softmax Dense``.

    Accepts the 18w layout (``... dense_1, dropout_2, dense_2``) and Teachable Machine's
    audio export (``... dense_1`` then a nested Sequential holding ``NewHeadDense``),
    whose nested head is unpacked.

    Raises:
      ModelFormatError: any other layout.
    """
    import tensorflow as tf

    keras = tf.keras
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        layers += [inner for inner in layer.layers if not isinstance(inner, keras.layers.InputLayer)] if isinstance(
            layer, keras.Model
        ) else [layer]
    names = [layer.name for layer in layers]
    tail = layers[names.index(EMBEDDING_LAYER) + 1 :] if EMBEDDING_LAYER in names else []
    kinds = [type(layer).__name__ for layer in tail]
    if kinds not in (["Dropout", "Dense"], ["Dense"]):
        raise ModelFormatError(
            f"the base must end in {EMBEDDING_LAYER}, an optional dropout and a softmax Dense (the 18w model, or a "
            f"Teachable Machine audio export with its nested head); got layers {names}"
        )
    if len(layers) == len(model.layers) and isinstance(model, keras.Sequential):
        return model
    return keras.Sequential([keras.Input(shape=SPECTROGRAM_SHAPE), *layers], name=model.name)


def nonfinite_weights(model) -> List[str]:
    """The names of ``model``'s weights that hold a NaN or an infinite value (none: ``[]``)."""
    import numpy as np

    return [getattr(w, "path", w.name) for w in model.weights if not np.all(np.isfinite(np.asarray(w)))]
