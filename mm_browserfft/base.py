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

import os
from importlib import resources
from typing import List, Optional

from .frontend import SPECTROGRAM_SHAPE

__all__ = [
    "NUM_BASE_CLASSES",
    "EMBEDDING_LAYER",
    "BASE_LABELS_18W",
    "build_18w",
    "bundled_base_dir",
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
