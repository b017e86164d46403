"""What the student learns from the teacher: its embeddings as regression targets, and its word probabilities.

Two kinds of target, both made of the teacher's embeddings of the training rows (``prepare.py``):

* regression targets (:func:`teacher_targets`, scaled by :func:`scale_targets`): the teacher's
  pooled embedding or its span embeddings, standardised per dimension or with the within-word
  scatter whitened (:func:`discriminant_targets`);
* soft word targets (:func:`soft_word_targets`): a softmax regression fitted on the teacher's
  scaled embeddings of the labelled rows names every row's word the way the teacher hears it,
  as probabilities over the pretraining vocabulary (Hinton et al. 2015, "Distilling the
  knowledge in a neural network"). Which other words a window sounds like is what one-hot
  labels do not say, and the unlabelled rows (word pairs) get a word target too.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = [
    "TARGETS", "TARGET_SPACES", "teacher_targets", "standardise_targets", "discriminant_targets", "scale_targets",
    "soft_word_targets",
]  # fmt: skip

TARGETS = ("pooled", "spans")
"""What the student regresses of the teacher: its pooled embedding, or its embedding of every span."""


def teacher_targets(t: np.ndarray, kind: str = "pooled") -> np.ndarray:
    """The regression targets ``[n, d]`` float32 of the teacher's embeddings ``t``.

    Args:
      t: ``[n, SPANS, 96]`` span by span (``prepare.py``), or ``[n, 192]`` already pooled (older sets).
      kind: one of :data:`TARGETS`: ``"pooled"`` -> ``d = 192`` (mean then max over the spans);
        ``"spans"`` -> ``d = SPANS * 96``, the spans in time order.
    """
    from .teacher import pool

    if kind not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {kind!r}")
    if t.ndim == 2:
        if kind != "pooled":
            raise ValueError("this prepared set holds pooled teacher embeddings only: rebuild it with prepare.py")
        return t.astype(np.float32)
    return pool(t) if kind == "pooled" else t.reshape(len(t), -1).astype(np.float32)


def standardise_targets(t_train: np.ndarray, *others: np.ndarray):
    """Teacher embeddings ``[n, ...]`` as ``[n, d]`` float32, standardised by the training statistics."""
    flat = t_train.reshape(len(t_train), -1).astype(np.float32)
    mean, std = flat.mean(axis=0), flat.std(axis=0) + 1e-6
    return [(flat - mean) / std] + [(o.reshape(len(o), -1).astype(np.float32) - mean) / std for o in others]


def discriminant_targets(t_train: np.ndarray, y_train: np.ndarray, *others: np.ndarray, shrinkage: float = 0.2):
    """Teacher targets ``[n, d]`` mapped so that distance counts what tells words apart.

    The within-word scatter of the labelled rows (``y_train >= 0``) is whitened: with the
    within-class covariance ``S`` (shrunk towards ``mean(diag S) * I`` by ``shrinkage``),
    every target becomes ``(t - mean) @ S^-1/2``, scaled to a mean variance of 1 per dimension
    (as :func:`standardise_targets`, so the distillation weight keeps its meaning). Speaker and channel variation (what varies
    within a word) weighs little in the regression; what varies between words weighs much.

    Args:
      t_train: ``[n, d]`` float32 training targets; y_train: int ``[n]`` word indices (-1: none).
      others: more ``[m, d]`` targets mapped the same way (the validation set).
      shrinkage: in ``[0, 1]``; 1 is plain centring and scaling by one number.
    """
    labelled = y_train >= 0
    t, y = t_train[labelled].astype(np.float64), y_train[labelled]
    classes, inverse = np.unique(y, return_inverse=True)
    means = np.zeros((len(classes), t.shape[1]))
    np.add.at(means, inverse, t)
    means /= np.bincount(inverse)[:, None]
    residual = t - means[inverse]
    within = residual.T @ residual / max(1, len(t) - len(classes))
    within = (1 - shrinkage) * within + shrinkage * np.mean(np.diag(within)) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    transform = (vectors / np.sqrt(values)) @ vectors.T
    centre = t_train.astype(np.float64).mean(axis=0)
    transform /= np.sqrt(np.mean(np.var(t_train.astype(np.float64) @ transform, axis=0)))
    return [((a.astype(np.float64) - centre) @ transform).astype(np.float32) for a in (t_train, *others)]


TARGET_SPACES = ("standardised", "discriminant")
"""How the teacher's targets are scaled: per dimension (:func:`standardise_targets`) or :func:`discriminant_targets`."""




def scale_targets(t_train: np.ndarray, y_train: np.ndarray, t_val: np.ndarray, space: str) -> List[np.ndarray]:
    """``[t_train, t_val]`` (``[n, d]`` and ``[m, d]`` float32) scaled as :data:`TARGET_SPACES` ``space`` says."""
    if space == "discriminant":
        return discriminant_targets(t_train.reshape(len(t_train), -1), y_train, t_val.reshape(len(t_val), -1))
    if space == "standardised":
        return standardise_targets(t_train, t_val)
    raise ValueError(f"target_space must be one of {TARGET_SPACES}, got {space!r}")


def soft_word_targets(
    t_train: np.ndarray,
    y_train: np.ndarray,
    t_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    *,
    temperature: float = 2.0,
    steps: int = 1000,
    l2: float = 1e-4,
    seed: int = 0,
) -> Tuple[np.ndarray, float]:
    """The teacher's word probabilities of every training row, and how well they name held-out speakers' words.

    A softmax regression (``Dense(num_classes)``, L2 ``l2`` on the kernel, Adam, ``steps`` updates
    of 1024 rows drawn with reshuffling) is fitted on the scaled teacher targets of the labelled rows (``y_train >= 0``);
    its logits divided by ``temperature`` (> 1 spreads the probability over the words a row
    sounds like) give every row's soft target, the unlabelled rows' included.

    Args:
      t_train: float32 ``[n, d]`` scaled teacher targets; y_train: int ``[n]`` word indices (-1: none).
      t_val, y_val: the held-out speakers' targets ``[m, d]`` and words ``[m]``.
      num_classes: size of the pretraining vocabulary.

    Returns:
      ``(soft [n, num_classes] float16, one distribution per row; the regression's accuracy on the held-out rows)``.
    """
    import tensorflow as tf

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tf.keras.utils.set_random_seed(seed)
    labelled = y_train >= 0
    head = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(t_train.shape[1],)),
            tf.keras.layers.Dense(num_classes, kernel_regularizer=tf.keras.regularizers.L2(l2), name="teacher_words"),
        ]
    )
    head.compile(
        optimizer=tf.keras.optimizers.Adam(3e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rows = tf.data.Dataset.from_tensor_slices((t_train[labelled], y_train[labelled]))
    rows = rows.shuffle(int(labelled.sum()), seed=seed).repeat().batch(1024)
    head.fit(rows, steps_per_epoch=steps, epochs=1, verbose=0)
    accuracy = float(np.mean(np.argmax(head.predict(t_val, batch_size=4096, verbose=0), axis=1) == y_val))
    logits = head.predict(t_train, batch_size=8192, verbose=0)
    return tf.nn.softmax(logits / temperature, axis=1).numpy().astype(np.float16), accuracy
