"""The student of the pretraining recipe: the 18w body with a word head and a projection to the teacher.

The student is the 18w topology up to ``dense_1`` (the 2000-d embedding that Model Maker's head
reads) with two heads on it:

* the word head, over every class of the prepared set: the 18w ``dense_2`` (a linear softmax), or a
  cosine classifier (:class:`CosineClassifier`: the scaled cosine between ``dense_1`` and one learned
  direction per word, with an additive margin; "Baseline++" of Chen et al. 2019, CosFace of Wang et
  al. 2018), which makes the words angularly compact in ``dense_1`` itself rather than linearly
  separable along a few of its directions;
* ``teacher_projection``, a linear map to the teacher's (scaled) embedding space.

Stage 2 of the recipe (``train.fit_18w_head``) keeps only the body (:func:`body_weights`) and fits
the shipped 18w ``dense_2`` on it, so neither head changes the shipped topology.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from mm_browserfft.base import EMBEDDING_LAYER, NUM_BASE_CLASSES, build_18w

__all__ = [
    "PROJECTION_LAYER", "FACTOR_LAYER", "WORD_HEADS", "WORD_HEAD", "CosineClassifier", "cosine_word_loss", "word_loss",
    "build_student", "body_weights", "factorise", "relation_loss", "warm_start",
]  # fmt: skip

PROJECTION_LAYER = "teacher_projection"
"""The linear layer from ``dense_1`` (or the bottleneck) to the teacher's (standardised) embedding space."""

FACTOR_LAYER = "dense_1_factor"
"""The linear bottleneck before a factorised ``dense_1`` (pretraining only; folded away at export)."""

WORD_LAYER = "dense_2"
"""The word head's layer name (that of the 18w output layer, whichever head it is)."""

WORD_HEADS = ("softmax", "cosine")
"""The word heads of :func:`build_student`: the 18w linear softmax, or :class:`CosineClassifier`."""

WORD_HEAD = "cosine"
"""The default word head (chosen by measurement: the model card's "The word head: a cosine classifier")."""


@tf.keras.utils.register_keras_serializable(package="mm_browserfft_pretrain")
class CosineClassifier(tf.keras.layers.Layer):
    """Cosine similarity of each input row to one learned direction per class: ``[b, d]`` -> ``[b, units]``.

    The output lies in ``[-1, 1]`` (``[0, 1]`` for ReLU inputs such as ``dense_1``); it is not
    a probability: :func:`cosine_word_loss` scales it into logits.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.units), initializer="glorot_uniform"
        )

    def call(self, inputs):
        rows = tf.math.l2_normalize(inputs, axis=-1, epsilon=1e-6)
        return tf.matmul(rows, tf.math.l2_normalize(self.kernel, axis=0, epsilon=1e-6))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def cosine_word_loss(*, scale: float, margin: float, label_smoothing: float):
    """Cross-entropy of the logits ``scale * (cos - margin * target)`` (CosFace's additive margin): ``[b]``.

    ``target [b, classes]`` is one-hot (or a distribution: the margin is then shared in
    proportion); ``cos [b, classes]`` is :class:`CosineClassifier`'s output. A margin makes the
    true class win by ``margin`` in cosine before the loss lets go of a row.
    """

    def loss(target, cos):
        logits = scale * (cos - margin * target)
        return tf.keras.losses.categorical_crossentropy(
            target, logits, from_logits=True, label_smoothing=label_smoothing
        )

    return loss


def word_loss(word_head: str, *, label_smoothing: float, scale: float, margin: float):
    """The loss of the word head ``word_head`` (:data:`WORD_HEADS`) of :func:`build_student`: ``[b]``.

    ``"cosine"``: :func:`cosine_word_loss` with ``scale`` and ``margin``; ``"softmax"``: the
    cross-entropy of the 18w ``dense_2``'s probabilities (``scale`` and ``margin`` unused).
    """
    if word_head not in WORD_HEADS:
        raise ValueError(f"word_head {word_head!r}: expected one of {WORD_HEADS}")
    if word_head == "cosine":
        return cosine_word_loss(scale=scale, margin=margin, label_smoothing=label_smoothing)
    return tf.keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


def build_student(
    num_classes: int, target_dim: int, *, relations: bool = False, bottleneck: int = 0, word_head: str = WORD_HEAD
):
    """The 18w body with two outputs: words ``[b, num_classes]`` and ``[b, target_dim]`` teacher space.

    ``word_head`` (:data:`WORD_HEADS`, default :data:`WORD_HEAD`): ``"softmax"``, the 18w ``dense_2``
    (probabilities), or ``"cosine"``, a :class:`CosineClassifier` on the same dropout of ``dense_1`` (cosines).
    With ``bottleneck`` > 0, ``dense_1`` is factorised: ``flatten_1 [b, 704]`` -> a linear
    :data:`FACTOR_LAYER` ``[b, bottleneck]`` -> ``dense_1`` (2000 ReLU units), and the teacher is
    regressed from the bottleneck, so every direction ``dense_1`` reads is one the teacher shaped
    (the two linear maps fold into one 18w kernel of rank ``bottleneck``: :func:`body_weights`).
    Without it, the projection reads ``dense_1`` itself.
    With ``relations``, a third output: the ``dense_1`` embedding itself ``[b, 2000]`` (for :func:`relation_loss`).
    """
    if word_head not in WORD_HEADS:
        raise ValueError(f"word_head {word_head!r}: expected one of {WORD_HEADS}")
    body = build_18w(num_classes, name="browser_fft_pretrain")
    inputs = tf.keras.Input(shape=body.input_shape[1:], name="spectrogram")
    x, embedding, teacher_input = inputs, None, None
    for layer in body.layers:
        if layer.name == EMBEDDING_LAYER and bottleneck:
            teacher_input = tf.keras.layers.Dense(bottleneck, use_bias=False, name=FACTOR_LAYER)(x)
            x = tf.keras.layers.Dense(layer.units, activation="relu", name=EMBEDDING_LAYER)(teacher_input)
        elif layer.name == WORD_LAYER and word_head == "cosine":
            x = CosineClassifier(num_classes, name=WORD_LAYER)(x)
        else:
            x = layer(x)
        if layer.name == EMBEDDING_LAYER:
            embedding = x
    projection = tf.keras.layers.Dense(target_dim, name=PROJECTION_LAYER)(
        embedding if teacher_input is None else teacher_input
    )
    outputs = [x, projection] + ([embedding] if relations else [])
    return tf.keras.Model(inputs, outputs, name="browser_fft_student")


def body_weights(student) -> Dict[str, list]:
    """The weights of every 18w layer up to ``dense_1`` of ``student``, by layer name.

    A factorised ``dense_1`` (:func:`build_student` with a bottleneck) is folded into the one
    ``[704, 2000]`` kernel of the 18w topology: ``factor [704, r] @ dense_1 [r, 2000]``.
    """
    out: Dict[str, list] = {}
    for layer in build_18w(NUM_BASE_CLASSES).layers:
        if layer.name == WORD_LAYER or not layer.get_weights():
            continue
        weights = student.get_layer(layer.name).get_weights()
        if layer.name == EMBEDDING_LAYER and _has_layer(student, FACTOR_LAYER):
            (factor,) = student.get_layer(FACTOR_LAYER).get_weights()
            weights = [factor @ weights[0], weights[1]]
        out[layer.name] = weights
    return out


def _has_layer(model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def factorise(kernel: np.ndarray, rank: int):
    """``kernel [m, n]`` as ``(a [m, rank], b [rank, n])`` with ``a @ b`` its best rank-``rank`` approximation.

    The singular values are split evenly between the two factors (``a = U S^1/2``, ``b = S^1/2 V^T``).
    """
    u, s, vt = np.linalg.svd(kernel.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root).astype(np.float32), (root[:, None] * vt[:rank]).astype(np.float32)


def relation_loss(teacher, embedding):
    """How far the batch's pairwise similarities in ``dense_1`` are from the teacher's: ``[b]``.

    Both ``teacher [b, d]`` and ``embedding [b, 2000]`` are centred over the batch and scaled to unit
    length per row; the loss of row ``i`` is the mean squared difference of its cosine similarities
    to every row of the batch (similarity-preserving distillation, Tung and Mori 2019). Unlike the
    projection's regression, it shapes the embedding that Model Maker's head reads, not a linear
    image of it.
    """

    def similarities(v):
        v = v - tf.reduce_mean(v, axis=0, keepdims=True)
        v = tf.math.l2_normalize(v, axis=1)
        return tf.matmul(v, v, transpose_b=True)

    return tf.reduce_mean(tf.square(similarities(embedding) - similarities(teacher)), axis=1)


def warm_start(student, init: str) -> None:
    """Copy every layer up to ``dense_1`` from the base ``init`` (a :func:`~mm_browserfft.base.load_base` source).

    A factorised ``dense_1`` starts from the truncated SVD of the base's kernel (:func:`factorise`).
    """
    from mm_browserfft.base import load_base

    base = load_base(init)
    for layer in base.layers:
        if layer.name == WORD_LAYER or not layer.get_weights():
            continue
        weights = layer.get_weights()
        if layer.name == EMBEDDING_LAYER and _has_layer(student, FACTOR_LAYER):
            factor = student.get_layer(FACTOR_LAYER)
            a, b = factorise(weights[0], factor.units)
            factor.set_weights([a])
            weights = [b, weights[1]]
        student.get_layer(layer.name).set_weights(weights)
