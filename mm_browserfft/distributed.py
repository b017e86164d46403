"""Training on a cluster: ``tf.distribute.MultiWorkerMirroredStrategy``.

Keras 3's ``Model.fit`` fails under a multi-worker strategy before its first step
(it reduces the first distributed batch to build the model, which the collective
strategy cannot do: keras-team/keras#20585, open since Keras 3.0). A spec whose
strategy is multi-worker therefore trains with :func:`fit`, a synchronous
data-parallel loop written on public TensorFlow APIs, for Keras 3 and Keras 2 alike:

* each step runs ``strategy.run`` on every worker's share of the global batch;
  the loss is the sum of per-window losses over the number of windows of the
  whole step (all-reduced), and the optimizer sums the gradients across workers,
  so a step equals one step on the global batch; a worker whose share is empty
  (the last, short batch) contributes nothing;
* the training and validation ``loss`` and ``acc`` are all-reduced sums over
  every worker's windows, so every worker logs the same figures, which go into
  the returned Keras ``History`` and to the Keras callbacks as ``fit`` would;
* :class:`ClusterBackup` takes the place of Keras' ``BackupAndRestore``: the chief
  writes model and optimizer state and the epoch counter each epoch
  (``tf.train.CheckpointManager``), every worker restores the same backup, so
  ``model_dir`` must be on storage every worker reads (as Keras asks of its own).

The chief (``task.type == "chief"``, or worker 0 of a cluster without one) writes
the backup, checkpoints and TensorBoard logs; the other workers write nothing.

Importing this module imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from . import progress

__all__ = ["is_multi_worker", "is_chief", "ClusterBackup", "fit"]

_CHECKPOINTS = "cluster"  # inside the backup folder


def is_multi_worker(strategy: Any) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (one worker or many)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run's files: any strategy but a multi-worker one's non-chief workers."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


class ClusterBackup(tf.keras.callbacks.Callback):
    """Back up model, optimizer and epoch counter every epoch; restore them when the run starts again.

    Used by :func:`fit` in place of Keras' ``BackupAndRestore``, which a hand-written
    loop cannot drive. Only the chief writes (into ``<folder>/cluster``, two
    checkpoints kept, so an epoch cut short leaves the previous one); every worker
    restores the latest one in :meth:`restore`; the chief deletes it when training ends.

    Args:
      folder: the backup folder (``<model_dir>/backup``).
      strategy: the training strategy (who writes).
    """

    def __init__(self, folder: str, *, strategy: Any) -> None:
        super().__init__()
        self.folder = folder
        self.strategy = strategy
        self.initial_epoch = 0
        self._manager = None
        self._epoch = None

    def restore(self, model) -> int:
        """Restore the latest backup into ``model`` (built, with its optimizer built); returns the next epoch."""
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self._epoch)
        directory = os.path.join(self.folder, _CHECKPOINTS)
        latest = tf.train.latest_checkpoint(directory)
        if latest is not None:
            checkpoint.read(latest).expect_partial()
            self.initial_epoch = int(self._epoch.numpy())
        if is_chief(self.strategy):
            self._manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
        return self.initial_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self._manager is not None:
            self._epoch.assign(epoch + 1)
            self._manager.save(checkpoint_number=epoch + 1)

    def on_train_end(self, logs=None):
        if self._manager is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _step_functions(model, strategy):
    """``(train_step, test_step)``: tf.functions of a distributed batch -> ``[loss sum, correct, windows]`` (summed over workers)."""
    loss_of = tf.keras.losses.get(model.loss)

    def sums(x, y, training: bool):
        probabilities = model(x, training=training)
        per_window = tf.cast(loss_of(y, probabilities), tf.float32)
        correct = tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(y, -1)), tf.float32)
        return per_window, tf.reduce_sum(correct)

    def replica_train(x, y):
        context = tf.distribute.get_replica_context()
        windows = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.shape(x)[0], tf.float32))
        with tf.GradientTape() as tape:
            per_window, correct = sums(x, y, True)
            loss = tf.reduce_sum(per_window) / tf.maximum(windows, 1.0)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.stack([tf.reduce_sum(per_window), correct, tf.cast(tf.shape(x)[0], tf.float32)])

    def replica_test(x, y):
        per_window, correct = sums(x, y, False)
        return tf.stack([tf.reduce_sum(per_window), correct, tf.cast(tf.shape(x)[0], tf.float32)])

    @tf.function
    def train_step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_train, args=batch), axis=None)

    @tf.function
    def test_step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_test, args=batch), axis=None)

    return train_step, test_step


def _barrier(strategy) -> None:
    """Return once every worker has called it (an all-reduce of one number)."""

    def one():
        return tf.ones([])

    @tf.function
    def all_reduce():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(one), axis=None)

    all_reduce()


def _run_epoch(step, dataset) -> dict:
    """``{"loss": mean per-window loss, "acc": accuracy}`` of one pass of ``step`` over a distributed data set."""
    totals = np.zeros(3)
    for batch in dataset:
        totals += np.asarray(step(batch), np.float64)
    count = max(totals[2], 1.0)
    return {"loss": totals[0] / count, "acc": totals[1] / count}


def fit(
    model,
    train_ds,
    *,
    epochs: int,
    strategy: Any,
    validation_ds=None,
    callbacks: Sequence[Any] = (),
    verbose: Optional[int] = None,
):
    """Train a compiled classifier ``model`` data-parallel under a multi-worker ``strategy``.

    Args:
      model: a Keras model built and compiled in ``strategy.scope()`` with a
        categorical loss (one-hot labels) and the ``acc`` metric.
      train_ds, validation_ds: ``tf.data`` sets of ``(x, one-hot y [b, N])`` global batches;
        every worker passes the same set and ``tf.distribute`` shards it.
      epochs: the number of epochs (a restored backup's epochs are not run again).
      callbacks: Keras callbacks, given ``fit``'s logs; a :class:`ClusterBackup` among
        them restores the run first.
      verbose: 1 for Keras' progress bar, 0 for one line per epoch on standard output
        (:func:`mm_browserfft.progress.epoch_logger`); by default, the bar on a terminal.

    Returns:
      the Keras ``History`` (``loss``, ``acc`` and with validation ``val_loss``, ``val_acc`` per epoch).
    """
    callbacks = list(callbacks)
    if verbose is None:
        verbose = 1 if progress.on_terminal(sys.stdout) else 0
    if verbose == 0 and is_chief(strategy):
        callbacks.append(progress.epoch_logger())
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        _barrier(strategy)  # the chief has prepared the backup folder (AudioClassifier.train)
        initial_epoch = 0
        for callback in callbacks:
            if isinstance(callback, ClusterBackup):
                initial_epoch = max(initial_epoch, callback.restore(model))
        train_step, test_step = _step_functions(model, strategy)
        train = strategy.experimental_distribute_dataset(train_ds)
        validation = None if validation_ds is None else strategy.experimental_distribute_dataset(validation_ds)
    cardinality = int(train_ds.cardinality().numpy())
    steps = cardinality if cardinality >= 0 else None
    hooks = tf.keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0 and is_chief(strategy), model=model,
        verbose=verbose, epochs=epochs, steps=steps,
    )  # fmt: skip
    hooks.on_train_begin()
    logs: dict = {}
    model.stop_training = False
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        logs = _run_epoch(train_step, train)
        if validation is not None:
            logs.update({f"val_{k}": v for k, v in _run_epoch(test_step, validation).items()})
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:  # a callback (EarlyStopping, ...) asked to stop, as Keras' fit honours
            break
    hooks.on_train_end(logs)
    return model.history
