"""Train the base on the prepared set, fit the 18w head, write the weights the package ships.

Two stages:

1. the 18w body (the student: ``student.py``), trained jointly (a) to classify every word of
   the prepared set (plus ``_silence_``) with a wide word head after ``dense_1`` (label
   smoothing; by default a cosine classifier with a margin, :data:`COSINE_SCALE` and
   :data:`COSINE_MARGIN`; ``word_head="softmax"``: the 18w linear softmax),
   and (b) to reproduce the teacher's embeddings of the same audio (knowledge
   distillation: a linear projection ``teacher_projection`` from ``dense_1``
   regresses the teacher's embeddings (``targets``: ``"pooled"``, their mean and max,
   192 values, or ``"spans"``, the 9 x 96 of the window's spans in time order; see
   ``teacher.py``), standardised per dimension, mean squared error times
   ``distill_weight``, :data:`DISTILL_WEIGHT` = 30 by default: the teacher leads and
   the words steer); Adam, a cosine learning-rate decay and SpecAugment-style masks (``batches.py``).
   It starts from the weights of a base (``init``: the bundled one by default) or
   from scratch, and resumes after an interruption (Keras ``BackupAndRestore`` in ``<work>/backup``)
   with the draws and the history (``<work>/history.csv``) an uninterrupted run would have;
2. the 20-unit ``dense_2`` of the 18w vocabulary (:data:`mm_browserfft.base.BASE_LABELS_18W`:
   ``_silence_`` -> ``_background_noise_``, words outside the vocabulary -> ``_unknown_``)
   fitted on the frozen ``dense_1`` embeddings, so the shipped model is exactly
   the 18w topology (20 outputs, 1,468,684 parameters).

Validation is on real clips of held-out speakers only. Writes
``<work>/base.weights.h5``, ``<work>/train_metrics.json`` and the curves PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Dict, List, Sequence

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from mm_browserfft.base import BASE_LABELS_18W, EMBEDDING_LAYER, NUM_BASE_CLASSES, build_18w  # noqa: E402

from .batches import spectrogram_batches  # noqa: E402
from .student import PROJECTION_LAYER, WORD_HEAD, WORD_HEADS, body_weights, build_student, relation_loss  # noqa: E402
from .student import warm_start, word_loss  # noqa: E402
from .targets import TARGET_SPACES, TARGETS, scale_targets, soft_word_targets, teacher_targets  # noqa: E402

__all__ = [
    "DISTILL_WEIGHT", "EPOCHS", "COSINE_SCALE", "COSINE_MARGIN", "map_to_18w", "load_prepared", "drop_words",
    "train_body", "fit_18w_head", "train", "read_history",
]  # fmt: skip

DISTILL_WEIGHT = 30.0
"""Default weight of the teacher regression beside the word cross-entropy (chosen by measurement: model card)."""
EPOCHS = 8
"""Default epochs of stage 1 (one generation, starting from the bundled base)."""
COSINE_SCALE = 20.0
"""Default scale of the cosine word head's logits (``word_head="cosine"``)."""
COSINE_MARGIN = 0.25
"""Default additive cosine margin of the true word (``word_head="cosine"``)."""
HISTORY_FILE = "history.csv"
"""Stage 1's per-epoch metrics in the work folder, kept across a resume (:func:`read_history`)."""

SILENCE = "_silence_"
_BACKGROUND, _UNKNOWN = BASE_LABELS_18W[0], BASE_LABELS_18W[1]


def _tf():
    import tensorflow as tf

    return tf


def map_to_18w(labels: Sequence[str]) -> np.ndarray:
    """Index into :data:`BASE_LABELS_18W` of each word label (``[len(labels)]`` int)."""
    index = {w: i for i, w in enumerate(BASE_LABELS_18W)}
    out = []
    for w in labels:
        if w == SILENCE:
            out.append(index[_BACKGROUND])
        else:
            out.append(index.get(w, index[_UNKNOWN]))
    return np.asarray(out, np.int64)


def _measure_step_seconds(model, batches, *, steps: int = 12) -> float:
    x, y, w = batches[0]
    model.train_on_batch(x, y, sample_weight=w)
    steps = max(1, min(steps, len(batches) - 1))
    start = time.perf_counter()
    for i in range(1, steps + 1):
        x, y, w = batches[i]
        model.train_on_batch(x, y, sample_weight=w)
    return (time.perf_counter() - start) / steps


def train_body(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    val_t: np.ndarray,
    num_classes: int,
    *,
    minutes: float,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    label_smoothing: float = 0.1,
    distill_weight: float = DISTILL_WEIGHT,
    relation_weight: float = 0.0,
    soft: "np.ndarray | None" = None,
    soft_weight: float = 0.0,
    freq_warp: float = 1.0,
    bottleneck: int = 0,
    word_head: str = WORD_HEAD,
    cosine_scale: float = COSINE_SCALE,
    cosine_margin: float = COSINE_MARGIN,
    init: str = "bundled",
    seed: int = 0,
    epochs: int = 0,
    max_epochs: int = 60,
    work_dir: str = "",
):
    """Stage 1: the 18w body, word head plus teacher regression, trained for about ``minutes``.

    Args:
      x: float16 ``[n, 43, 232]`` z-scored spectrograms; y: int ``[n]`` word indices;
        t: float32 ``[n, d]`` standardised teacher embeddings of the same audio.
      val_x, val_y, val_t: the held-out-speaker validation set, same layout.
      minutes: wall-clock budget, used to size the run when ``epochs`` is 0.
      distill_weight: weight of the teacher regression (mean squared error) beside the cross-entropy.
      relation_weight: weight of :func:`relation_loss` on ``dense_1`` (0: not used).
      soft, soft_weight: the teacher's word probabilities ``[n, num_classes]``
        (:func:`~tools.pretrain.targets.soft_word_targets`) and their share of each row's word target
        (0: one-hot words only; see :class:`~tools.pretrain.batches.SpectrogramBatches`).
      freq_warp: largest factor of the random frequency stretch of the training spectrograms (1: none).
      bottleneck: rank of a factorised ``dense_1`` whose bottleneck regresses the teacher (0: not factorised;
        :func:`~tools.pretrain.student.build_student`).
      word_head: ``"cosine"`` (the default: a cosine classifier on ``dense_1``, logits
        ``cosine_scale * (cos - cosine_margin * target)``; :mod:`tools.pretrain.student`) or ``"softmax"``
        (the 18w ``dense_2``).
      init: a base to start from (``"bundled"``, a folder or URL), or ``"random"``.
      epochs: a fixed number of epochs (reproducible; 0 = fit ``minutes``).
      work_dir: if set, weights are saved to ``pretrain.weights.h5`` after every epoch and
        ``backup/`` lets an interrupted run resume where it stopped.

    Returns:
      ``(student, history dict, epochs, seconds per epoch measured up front)``.
    """
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)

    relations = relation_weight > 0

    def compiled(learning):
        student = build_student(num_classes, t.shape[1], relations=relations, bottleneck=bottleneck, word_head=word_head)
        if init != "random":
            warm_start(student, init)
        words = word_loss(word_head, label_smoothing=label_smoothing, scale=cosine_scale, margin=cosine_margin)
        losses = [words, "mse"]
        student.compile(
            optimizer=tf.keras.optimizers.Adam(learning),
            loss=losses + ([relation_loss] if relations else []),
            loss_weights=[1.0, distill_weight] + ([relation_weight] if relations else []),
            weighted_metrics=[["accuracy"], []] + ([[]] if relations else []),  # word accuracy over labelled rows only
        )
        return student

    options = dict(
        batch_size=batch_size, seed=seed, freq_warp=freq_warp, relations=relations, soft=soft, soft_weight=soft_weight
    )
    batches = spectrogram_batches()(x, y, t, num_classes, **options)
    step = _measure_step_seconds(compiled(learning_rate), batches)
    epoch_seconds = step * len(batches) * 1.08  # validation and batch assembly
    if epochs <= 0:
        epochs = int(max(1, min(max_epochs, math.floor(minutes * 60 / epoch_seconds))))
    print(f"train: {len(x)} examples, {num_classes} classes, {epoch_seconds:.0f} s/epoch -> {epochs} epochs")
    tf.keras.utils.set_random_seed(seed)
    batches = spectrogram_batches()(x, y, t, num_classes, **options)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * len(batches), alpha=0.02)
    student = compiled(schedule)
    # Keras starts a resumed run at the epoch it stopped in; the batches draw that epoch's order and masks
    callbacks = [tf.keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: batches.set_epoch(epoch))]
    if work_dir:
        backup, log = os.path.join(work_dir, "backup"), os.path.join(work_dir, HISTORY_FILE)
        if not os.path.isdir(backup) and os.path.exists(log):
            os.remove(log)  # a finished run's: this one starts from epoch 1
        callbacks += [
            tf.keras.callbacks.ModelCheckpoint(os.path.join(work_dir, "pretrain.weights.h5"), save_weights_only=True),
            tf.keras.callbacks.CSVLogger(log, append=True),  # before the backup: a row may repeat, never go missing
            tf.keras.callbacks.BackupAndRestore(backup),
        ]
    val_onehot = np.eye(num_classes, dtype=np.float32)[val_y]
    history = student.fit(
        batches,
        epochs=epochs,
        validation_data=(val_x.astype(np.float32)[..., None], (val_onehot, val_t) + ((val_t,) if relations else ())),
        callbacks=callbacks,
        verbose=2,
    )
    if work_dir:  # every epoch's, those before a resume too
        return student, read_history(os.path.join(work_dir, HISTORY_FILE)), epochs, epoch_seconds
    return student, {k: [float(v) for v in vals] for k, vals in history.history.items()}, epochs, epoch_seconds


def read_history(path: str) -> Dict[str, List[float]]:
    """The per-epoch metrics a ``CSVLogger`` wrote (``{metric: [value per epoch]}``, in epoch order).

    An epoch logged twice (a run stopped after its row and before its backup) counts once, its
    last row.
    """
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = {int(r["epoch"]): r for r in csv.DictReader(handle)}
    ordered = [rows[e] for e in sorted(rows)]
    names = [k for k in (ordered[0] if ordered else {}) if k != "epoch"]
    return {name: [float(r[name]) for r in ordered] for name in names}


def fit_18w_head(body, x: np.ndarray, words: np.ndarray, labels: Sequence[str], *, seed: int = 0, epochs: int = 30):
    """Stage 2: the shipped 18w model: ``body``'s layers up to ``dense_1`` plus a fitted 20-way ``dense_2``.

    Args:
      body: the stage-1 model (:func:`~tools.pretrain.student.build_student`; a factorised ``dense_1`` is
        folded, :func:`~tools.pretrain.student.body_weights`).
      x: float16 ``[n, 43, 232]`` training spectrograms; words: int ``[n]`` indices into ``labels``.

    Returns:
      a :func:`build_18w` model with 20 outputs.
    """
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    model = build_18w(NUM_BASE_CLASSES)
    for name, weights in body_weights(body).items():
        model.get_layer(name).set_weights(weights)
    target = map_to_18w(labels)[words]
    counts = np.bincount(target, minlength=NUM_BASE_CLASSES).astype(np.float64)
    class_weight = {i: float(len(target) / (NUM_BASE_CLASSES * c)) for i, c in enumerate(counts) if c > 0}
    embedder = tf.keras.Model(model.inputs, model.get_layer(EMBEDDING_LAYER).output)
    emb = np.concatenate(
        [embedder.predict_on_batch(x[i : i + 512].astype(np.float32)[..., None]) for i in range(0, len(x), 512)]
    )
    head = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(emb.shape[1],)),
            tf.keras.layers.Dropout(0.5),
            tf.keras.layers.Dense(NUM_BASE_CLASSES, activation="softmax"),
        ]
    )
    head.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    head.fit(emb, target, batch_size=256, epochs=epochs, class_weight=class_weight, verbose=0)
    model.get_layer("dense_2").set_weights(head.layers[-1].get_weights())
    return model


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    probs = model.predict(x.astype(np.float32)[..., None], batch_size=512, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def plot_curves(history: Dict[str, List[float]], path: str) -> None:
    """Loss and accuracy per epoch (training vs held-out speakers) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, _series(history, PROJECTION_LAYER + "_loss"), label="train (augmented)")
    ax_loss.plot(epochs, _series(history, "val_" + PROJECTION_LAYER + "_loss"), label="held-out speakers")
    ax_loss.set(xlabel="epoch", ylabel="MSE to the standardised teacher", title="distillation loss")
    ax_acc.plot(epochs, _series(history, "accuracy"), label="train (augmented)")
    ax_acc.plot(epochs, _series(history, "val_accuracy"), label="held-out speakers")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="word accuracy (all pretraining classes)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def drop_words(labels: Sequence[str], holdout: Sequence[str], y: np.ndarray, sources: np.ndarray, *arrays):
    """Remove every row made of any clip of the words in ``holdout``, and their classes.

    Args:
      labels: class names; holdout: words to hold out of pretraining.
      y: int ``[n]`` indices into ``labels`` (-1: no word label).
      sources: int ``[n, 2]`` the word indices of the clips each row was made of.
      arrays: more row-aligned arrays ``[n, ...]``.

    Returns:
      ``(labels without holdout, y re-indexed, arrays...)`` of the kept rows.
    """
    unknown = sorted(set(holdout) - set(labels))
    if unknown:
        raise ValueError(f"held-out words not in the prepared set: {unknown}")
    kept_labels = [w for w in labels if w not in set(holdout)]
    new_index = np.array([kept_labels.index(w) if w in kept_labels else -1 for w in labels])
    keep = np.all(new_index[sources] >= 0, axis=1)
    new_y = np.where(y >= 0, new_index[np.maximum(y, 0)], -1)
    return (kept_labels, new_y[keep], *[a[keep] for a in arrays])


def load_prepared(prep: str, parts: Sequence[str]):
    """The rows of the prepared ``parts`` that exist, concatenated.

    Returns:
      ``(x [n, 43, 232] float16, y [n] int32, t [n, SPANS, 96] float16 (``[n, 192]``, pooled, when
      any part is older), sources [n, 2] int32, rows per part)``.
    """
    found = [p for p in parts if os.path.exists(os.path.join(prep, f"{p}_x.npy"))]
    if not found:
        raise FileNotFoundError(f"no prepared part of {list(parts)} in {prep}: run `python -m tools.pretrain.prepare`")

    def part(name, p):
        return np.load(os.path.join(prep, f"{p}_{name}.npy"))

    for p in found:  # rows of every array of a part must agree: never train on a part half rebuilt
        rows = {name: np.load(os.path.join(prep, f"{p}_{name}.npy"), mmap_mode="r").shape[0]
                for name in ("x", "t", "y") + (("src",) if os.path.exists(os.path.join(prep, f"{p}_src.npy")) else ())}
        if len(set(rows.values())) != 1:
            raise ValueError(f"{prep}: the arrays of part {p!r} disagree in rows {rows}: prepare it again")
    ys = [part("y", p) for p in found]
    srcs = []
    for p, y in zip(found, ys):
        path = os.path.join(prep, f"{p}_src.npy")
        srcs.append(np.load(path) if os.path.exists(path) else np.stack([y, y], axis=1))
    x = np.concatenate([part("x", p) for p in found])
    ts = [part("t", p) for p in found]
    if len({t.ndim for t in ts}) > 1:  # a part rebuilt span by span beside older pooled ones: pool them all
        from .teacher import pool

        print(f"load_prepared: parts {[p for p, t in zip(found, ts) if t.ndim == 2]} hold pooled teacher "
              "embeddings only; every part is pooled (rebuild them all for --targets spans)")
        ts = [pool(t).astype(np.float16) if t.ndim == 3 else t for t in ts]
    t = np.concatenate(ts)
    return x, np.concatenate(ys), t, np.concatenate(srcs), {p: int(len(y)) for p, y in zip(found, ys)}


def _series(history: Dict[str, List[float]], name: str) -> List[float]:
    """The one history entry ending in ``name`` (Keras names multi-output metrics after the layer)."""
    val = name.startswith("val_")
    metric = name[4:] if val else name
    keys = [k for k in history if k.endswith(metric) and k.startswith("val_") == val]
    if len(keys) != 1:
        raise KeyError(f"{name!r}: expected one match in {sorted(history)}")
    return history[keys[0]]


def train(
    work_dir: str,
    *,
    minutes: float = 25.0,
    epochs: int = 0,
    seed: int = 0,
    distill_weight: float = DISTILL_WEIGHT,
    relation_weight: float = 0.0,
    soft_weight: float = 0.0,
    temperature: float = 2.0,
    init: str = "bundled",
    holdout_words: Sequence[str] = (),
    parts: Sequence[str] = ("train", "rooms", "pairs"),
    targets: str = "pooled",
    freq_warp: float = 1.0,
    bottleneck: int = 0,
    word_head: str = WORD_HEAD,
    cosine_scale: float = COSINE_SCALE,
    cosine_margin: float = COSINE_MARGIN,
    target_space: str = "standardised",
    curves_png: str = "",
) -> Dict[str, object]:
    """Run both stages on ``<work_dir>/prep``; returns the metrics (also written to ``train_metrics.json``).

    ``holdout_words`` are left out entirely (every real, new-voice and synthetic row of
    them, in training and validation, and every word pair with one of them), to measure
    transfer to words the base never heard. ``parts`` are the prepared training parts
    to train on (those that exist; see ``prepare.py``); ``targets`` what of the teacher
    the student regresses (:func:`teacher_targets`); ``freq_warp`` the largest factor of the
    random frequency stretch of the training spectrograms (1: none); ``bottleneck`` the rank of a
    factorised ``dense_1`` (:func:`~tools.pretrain.student.build_student`; 0: not factorised);
    ``word_head``, ``cosine_scale`` and ``cosine_margin`` the pretraining word head (:func:`train_body`);
    ``target_space`` how the
    targets are scaled (:data:`TARGET_SPACES`); ``soft_weight`` the share of the teacher's word
    probabilities at ``temperature`` in every row's word target (:func:`~tools.pretrain.targets.soft_word_targets`;
    0: one-hot words only).
    Writes ``<work_dir>/base.weights.h5`` (the 18w model) and, if ``curves_png`` is given, the curves.
    """
    prep = os.path.join(work_dir, "prep")
    with open(os.path.join(prep, "labels.json")) as f:
        labels = json.load(f)
    x, y, t, sources, part_rows = load_prepared(prep, parts)
    val_x = np.load(os.path.join(prep, "val_x.npy"))
    val_y = np.load(os.path.join(prep, "val_y.npy"))
    val_t = np.load(os.path.join(prep, "val_t.npy"))
    if holdout_words:
        all_labels = labels
        labels, y, x, t = drop_words(all_labels, holdout_words, y, sources, x, t)
        _, val_y, val_x, val_t = drop_words(all_labels, holdout_words, val_y, np.stack([val_y, val_y], 1), val_x, val_t)
    t, val_t = scale_targets(teacher_targets(t, targets), y, teacher_targets(val_t, targets), target_space)
    soft, teacher_word_accuracy = None, None
    if soft_weight > 0:
        soft, teacher_word_accuracy = soft_word_targets(t, y, val_t, val_y, len(labels), temperature=temperature, seed=seed)
        print(f"train: the teacher's softmax regression names {teacher_word_accuracy:.3f} of the held-out words")
    start = time.time()
    student, history, epochs, epoch_seconds = train_body(
        x, y, t, val_x, val_y, val_t, len(labels), minutes=minutes, epochs=epochs, seed=seed,
        distill_weight=distill_weight, relation_weight=relation_weight, soft=soft, soft_weight=soft_weight,
        freq_warp=freq_warp, bottleneck=bottleneck, word_head=word_head, cosine_scale=cosine_scale,
        cosine_margin=cosine_margin, init=init, work_dir=work_dir,
    )  # fmt: skip
    labelled = y >= 0
    model = fit_18w_head(student, x[labelled], y[labelled], labels, seed=seed)
    val_18w = map_to_18w(labels)[val_y]
    metrics = {
        "train_examples": int(len(x)),
        "unlabelled_examples": int(np.sum(~labelled)),
        "parts": part_rows,
        "pretrain_classes": len(labels),
        "heldout_clips": int(len(val_x)),
        "epochs": epochs,
        "init": init,
        "distill_weight": distill_weight,
        "relation_weight": relation_weight,
        "soft_weight": soft_weight,
        "temperature": temperature,
        "teacher_word_accuracy": None if teacher_word_accuracy is None else round(teacher_word_accuracy, 4),
        "targets": targets,
        "freq_warp": freq_warp,
        "bottleneck": bottleneck,
        "word_head": word_head,
        "cosine_scale": cosine_scale if word_head == "cosine" else None,
        "cosine_margin": cosine_margin if word_head == "cosine" else None,
        "target_space": target_space,
        "holdout_words": list(holdout_words),
        "seconds_per_epoch_estimate": round(epoch_seconds, 1),
        "heldout_word_accuracy_pretrain_head": round(_series(history, "val_accuracy")[-1], 4),
        "heldout_teacher_mse": round(_series(history, "val_" + PROJECTION_LAYER + "_loss")[-1], 4),
        "heldout_accuracy_18w": round(_accuracy(model, val_x, val_18w), 4),
        "train_minutes": round((time.time() - start) / 60, 1),
        "params": int(model.count_params()),
        "history": history,
    }
    model.save_weights(os.path.join(work_dir, "base.weights.h5"))
    with open(os.path.join(work_dir, "train_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    if curves_png:
        plot_curves(history, curves_png)
    return metrics


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/work/pretrain_work")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of stage 1 (0: fit --minutes)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of stage 1 with --epochs 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT, help="weight of the teacher regression")
    parser.add_argument("--init", default="bundled", help="base to start from: bundled, a folder, a URL, or random")
    parser.add_argument("--holdout-words", default="", help="comma-separated words to leave out entirely")
    parser.add_argument("--parts", default="train,rooms,pairs", help="prepared training parts to train on")
    parser.add_argument("--targets", choices=TARGETS, default="pooled", help="what of the teacher to regress")
    parser.add_argument("--freq-warp", type=float, default=1.0, help="largest random frequency stretch (1: none)")
    parser.add_argument("--relation-weight", type=float, default=0.0, help="weight of the dense_1 similarity loss")
    parser.add_argument("--soft-weight", type=float, default=0.0, help="share of the teacher's word probabilities")
    parser.add_argument("--temperature", type=float, default=2.0, help="temperature of the teacher's word probabilities")
    parser.add_argument("--bottleneck", type=int, default=0, help="rank of a factorised dense_1 (0: not factorised)")
    parser.add_argument("--word-head", choices=WORD_HEADS, default=WORD_HEAD, help="pretraining word head on dense_1")
    parser.add_argument("--cosine-scale", type=float, default=COSINE_SCALE, help="logit scale of --word-head cosine")
    parser.add_argument("--cosine-margin", type=float, default=COSINE_MARGIN, help="cosine margin of --word-head cosine")
    parser.add_argument("--target-space", choices=TARGET_SPACES, default="standardised", help="scaling of the targets")
    parser.add_argument("--curves", default=os.path.join("docs", "images", "pretrain-curves.png"))
    args = parser.parse_args(argv)
    metrics = train(
        args.work, minutes=args.minutes, epochs=args.epochs, seed=args.seed, distill_weight=args.distill_weight,
        init=args.init, holdout_words=[w for w in args.holdout_words.split(",") if w],
        parts=[p for p in args.parts.split(",") if p], targets=args.targets,
        freq_warp=args.freq_warp, relation_weight=args.relation_weight, soft_weight=args.soft_weight,
        temperature=args.temperature, bottleneck=args.bottleneck, word_head=args.word_head,
        cosine_scale=args.cosine_scale, cosine_margin=args.cosine_margin, target_space=args.target_space, curves_png=args.curves,
    )  # fmt: skip
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
