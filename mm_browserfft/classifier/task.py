"""AudioClassifier and create: a trained transfer model and what can be done with it."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..base import nonfinite_weights
from ..errors import BrowserFftError, DatasetError, ExportError, InvalidInputError

__all__ = ["AudioClassifier", "create", "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS"]

from .backup import backup_callback, checkpoint_callback, run_fingerprint
from .embeddings import batches, embed, embedded_rows, embedding_context, groups, partial_word_rows

log = logging.getLogger("mm_browserfft")

DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 5
_SHUFFLE_BUFFER = 4096  # embeddings (32 MB) mixed across files when augmented embeddings are streamed
_TFLITE_KWARGS = ("with_metadata", "export_metadata_json_file", "quantization_config")


def _keras():
    import tensorflow as tf

    return tf.keras


def _check_finite_weights(model) -> None:
    """Raise rather than hand back a model with NaN or infinite weights."""
    bad = nonfinite_weights(model)
    if bad:
        raise BrowserFftError(
            f"training diverged: the weights {bad} are NaN or infinite (lower the learning rate or check the data)"
        )


class AudioClassifier:
    """Model Maker's ``AudioClassifier``: a trained transfer model and what can be done with it.

    Args:
      model_spec: a :class:`~mm_browserfft.spec.BrowserFftSpec` (or a compatible spec).
      index_to_label: class names, index = class id.
      shuffle: shuffle the training data every epoch.
      train_whole_model: train the base as well as the head.
      model_dir: folder for checkpoints and logs; the spec's ``model_dir`` when omitted.
      embedding_cache: folder of the on-disk embedding cache (:mod:`mm_browserfft.cache`), or None.

    Attributes:
      model: the Keras training model (spectrogram in), after :meth:`train` or :meth:`create_model`.
      history: the Keras ``History`` of the last :meth:`train`.
    """

    DEFAULT_EXPORT_FORMAT = ("TFLITE",)
    ALLOWED_EXPORT_FORMAT = ("TFLITE", "LABEL", "SAVED_MODEL", "TFJS")

    def __init__(
        self,
        model_spec,
        index_to_label: Sequence[str],
        shuffle: bool = True,
        train_whole_model: bool = False,
        *,
        model_dir: Optional[str] = None,
        embedding_cache: "Optional[os.PathLike[str] | str]" = None,
    ) -> None:
        self.model_spec = model_spec
        self.embedding_cache = None if embedding_cache is None else os.fspath(embedding_cache)
        self.index_to_label = list(index_to_label)
        self.num_classes = len(self.index_to_label)
        self.shuffle = shuffle
        self.train_whole_model = train_whole_model
        self.model_dir = model_dir
        self.model = None
        self.history = None

    # ------------------------------------------------------------------ training

    def create_model(self, num_classes: Optional[int] = None, train_whole_model: Optional[bool] = None):
        """Build (and compile) a fresh model from the spec; returns it and keeps it as :attr:`model`.

        Args:
          num_classes: Model Maker's argument: must equal ``len(index_to_label)`` when given.
          train_whole_model: Model Maker's argument: when given, replaces :attr:`train_whole_model`.

        Raises:
          InvalidInputError: ``num_classes`` is not the number of labels.
        """
        if num_classes is not None and num_classes != self.num_classes:
            raise InvalidInputError(f"num_classes {num_classes} differs from the {self.num_classes} labels "
                                    f"{self.index_to_label}")  # fmt: skip
        if train_whole_model is not None:
            self.train_whole_model = bool(train_whole_model)
        self.model = self.model_spec.create_model(self.num_classes, train_whole_model=self.train_whole_model)
        if hasattr(self.model_spec, "compile_model"):
            self.model_spec.compile_model(self.model)
        return self.model

    def _callbacks(self, tensorboard: bool, run: Dict[str, Any]) -> list:
        keras = _keras()
        folder = self.model_dir or self.model_spec.model_dir
        os.makedirs(folder, exist_ok=True)
        callbacks = [backup_callback(folder, run, getattr(self.model_spec, "strategy", None))]
        if not self._writes_files():
            return callbacks
        callbacks.append(checkpoint_callback(self.model, os.path.join(folder, "checkpoint.weights.h5")))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(folder, "summaries")))
        return callbacks

    def _writes_files(self) -> bool:
        """False on a cluster's workers other than the chief, which write no checkpoint or log."""
        from .. import distributed

        return distributed.is_chief(getattr(self.model_spec, "strategy", None))

    def _uses_embeddings(self, train_data) -> bool:
        spec_can = all(hasattr(self.model_spec, m) for m in ("embedding_model", "head_model", "featurize"))
        return not self.train_whole_model and spec_can and hasattr(train_data, "iter_waveforms")

    def train(
        self,
        train_data,
        validation_data=None,
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        *,
        tensorboard: bool = False,
        callbacks: Sequence[Any] = (),
    ):
        """Train a fresh model on ``train_data`` (a :class:`~mm_browserfft.data.DataLoader`).

        Every epoch is backed up into ``<model_dir>/backup``; when a backup of an
        interrupted run of the same training is there (same data files, base, options
        and epochs: :func:`run_fingerprint`), its weights, optimizer state and epoch
        counter are restored and only the remaining epochs run (the returned ``History``
        then covers those); a backup of any other run is discarded with a warning. With ``model_spec.seed`` set, the
        global generators are seeded first (``keras.utils.set_random_seed``).

        Args:
          train_data, validation_data: loaders with this classifier's labels.
          epochs: passes over the data (default 5).
          batch_size: windows per step (default 32).
          tensorboard: also write TensorBoard logs to ``<model_dir>/summaries``.
          callbacks: more Keras callbacks.

        Returns:
          the Keras ``History``.

        Raises:
          DatasetError: fewer files than ``batch_size``, fewer than 2 classes, or
            labels that differ from the classifier's.
          BrowserFftError: training diverged to NaN or infinite weights.
        """
        epochs = DEFAULT_EPOCHS if epochs is None else epochs
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        for data in (train_data, validation_data):
            if data is not None and list(data.index_to_label) != self.index_to_label:
                raise DatasetError(f"data labels {data.index_to_label} differ from the classifier's {self.index_to_label}")
        if self.num_classes < 2:
            raise DatasetError(f"training needs at least 2 classes, got {self.index_to_label}")
        if len(train_data) < batch_size:
            raise DatasetError(
                f"The size of the train_data ({len(train_data)}) couldn't be smaller than batch_size "
                f"({batch_size}). To solve this problem, set the batch_size smaller or increase the size of the "
                "train_data."
            )
        seed = getattr(self.model_spec, "seed", None)
        if seed is not None:
            # the base is loaded (once per spec) before seeding: its first loading draws from the global
            # generators, and the new head's weights must not depend on whether it was loaded already
            getattr(self.model_spec, "base", None)
            _keras().utils.set_random_seed(seed)
        with self.model_spec.strategy.scope():
            self.create_model()
        run = run_fingerprint(self, train_data, validation_data, epochs=epochs, batch_size=batch_size)
        callbacks = self._callbacks(tensorboard, run) + list(callbacks)
        if self._uses_embeddings(train_data):
            self.history = self._train_head(train_data, validation_data, epochs, batch_size, callbacks)
        else:
            train_ds = train_data.gen_dataset(batch_size, is_training=True, shuffle=self.shuffle)
            val_ds = None if validation_data is None else validation_data.gen_dataset(batch_size)
            self.history = self.model_spec.run_classifier(self.model, epochs, train_ds, val_ds, callbacks=callbacks)
        _check_finite_weights(self.model)
        return self.history

    def _train_head(self, train_data, validation_data, epochs: int, batch_size: int, callbacks: list):
        import tensorflow as tf

        spec = self.model_spec
        embedder, head = spec.embedding_model(self.model), spec.head_model(self.model)
        context = None if self.embedding_cache is None else embedding_context(spec, embedder)  # once per training
        one_hot = lambda y: tf.one_hot(y, self.num_classes)  # noqa: E731
        partial = partial_word_rows(spec, embedder, train_data, self.index_to_label, cache_dir=self.embedding_cache,
                                    context=context)  # fmt: skip
        if spec.augments:
            labels = train_data.labels()  # from the headers; the windows are decoded anew every epoch
            if partial is not None:
                labels = np.concatenate([labels, partial[1]])

            def fresh_epoch():  # new augmentation, hence new embeddings, every epoch, in bounded memory
                for windows, window_labels in groups(train_data.iter_waveforms(shuffle=self.shuffle)):
                    pick = np.random.permutation(len(windows)) if self.shuffle else np.arange(len(windows))
                    yield embed(spec, embedder, windows[pick], is_training=True), window_labels[pick]
                if partial is not None:
                    yield partial[0].astype(np.float32), partial[1]

            width = embedder.output_shape[-1]
            train_ds = tf.data.Dataset.from_generator(
                fresh_epoch,
                output_signature=(tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.int32)),
            ).unbatch()
            if self.shuffle:
                train_ds = train_ds.shuffle(_SHUFFLE_BUFFER)
            train_ds = train_ds.batch(batch_size)
            if not getattr(train_data, "skip_bad_files", False):  # else a file may turn out unreadable mid-epoch
                train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(-(-len(labels) // batch_size)))
        else:
            x, labels = embedded_rows(spec, embedder, train_data, is_training=True, cache_dir=self.embedding_cache, context=context)
            train_ds = batches([(x, labels)] + ([partial] if partial is not None else []), batch_size, shuffle=self.shuffle, seed=getattr(spec, 'seed', None))
        if len(labels) == 0:
            raise DatasetError("the training data holds no clip of 44032 samples (all files too short?)")
        train_ds = train_ds.map(lambda e, y: (e, one_hot(y)))
        val_ds = None
        if validation_data is not None:
            vx, vy = embedded_rows(spec, embedder, validation_data, is_training=False, cache_dir=self.embedding_cache, context=context)
            val_ds = batches([(vx, vy)], batch_size, shuffle=self.shuffle, seed=getattr(spec, 'seed', None)).map(lambda e, y: (e, one_hot(y)))
        history = spec.run_classifier(head, epochs, train_ds, val_ds, callbacks=callbacks)
        spec.compile_model(self.model)  # ready for evaluate()
        return history

    # ------------------------------------------------------------------ inference

    def _require_model(self):
        if self.model is None:
            raise InvalidInputError("the classifier has no model yet: call train() or create_model() first")
        return self.model

    def _predict_with_labels(self, data, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(probabilities [m, N], true labels [m])`` over every window of ``data``."""
        model = self._require_model()
        probs, labels = [np.zeros((0, self.num_classes), np.float32)], [np.zeros(0, np.int64)]
        for x, y in data.gen_dataset(batch_size):
            probs.append(model(x, training=False).numpy())
            labels.append(np.argmax(y.numpy(), axis=-1))
        return np.concatenate(probs), np.concatenate(labels)

    def evaluate(self, data, batch_size: int = 32) -> List[float]:
        """``[loss, accuracy]`` over every window of ``data`` (Keras ``evaluate``).

        Under a multi-worker strategy (where Keras 3's ``evaluate`` fails), each worker
        computes the same two figures from its own predictions of every window.
        """
        from .. import distributed

        model = self._require_model()
        if not distributed.is_multi_worker(getattr(self.model_spec, "strategy", None)):
            return model.evaluate(data.gen_dataset(batch_size), verbose=0)
        probs, labels = self._predict_with_labels(data, batch_size)
        if len(labels) == 0:
            raise DatasetError("the data holds no window to evaluate")
        one_hot = np.eye(self.num_classes, dtype=np.float32)[labels]
        loss = np.asarray(_keras().losses.categorical_crossentropy(one_hot, probs), np.float64)
        return [float(loss.mean()), float(np.mean(np.argmax(probs, axis=-1) == labels))]

    def predict_top_k(self, data, k: int = 1, batch_size: int = 32) -> List[List[Tuple[str, float]]]:
        """The ``k`` most likely ``(label, probability)`` per window, best first.

        Args:
          data: a DataLoader, or spectrograms ``[m, 43, 232, 1]`` (array or tensor).
        """
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        if hasattr(data, "gen_dataset"):
            probs, _ = self._predict_with_labels(data, batch_size)
        else:
            probs = np.asarray(self._require_model().predict(data, batch_size=batch_size, verbose=0))
        top = np.argsort(-probs, axis=-1, kind="stable")[:, : min(k, self.num_classes)]
        return [[(self.index_to_label[i], float(row[i])) for i in order] for row, order in zip(probs, top)]

    def confusion_matrix(self, data, batch_size: int = 32):
        """``tf.math.confusion_matrix`` ``[N, N]`` over the windows of ``data`` (rows truth, columns prediction)."""
        import tensorflow as tf

        probs, labels = self._predict_with_labels(data, batch_size)
        return tf.math.confusion_matrix(labels, np.argmax(probs, axis=-1), num_classes=self.num_classes)

    def evaluate_tflite(self, tflite_filepath: str, data, postprocess_fn=None) -> Dict[str, float]:
        """Accuracy of an exported .tflite on ``data``, fed waveform windows ``[1, 44032]``.

        (Model Maker fed spectrograms to the waveform model here; see the module notes.)

        Args:
          postprocess_fn: optional function applied to each output ``[1, N]`` before the argmax.

        Returns:
          ``{"accuracy": float}``.
        """
        import pathlib

        from ..export import run_tflite

        model = pathlib.Path(tflite_filepath).read_bytes()
        correct = total = 0
        for windows, labels in groups(data.iter_waveforms()):
            scores = run_tflite(model, windows)
            if postprocess_fn is not None:
                scores = np.stack([np.asarray(postprocess_fn(row[np.newaxis])).reshape(-1) for row in scores])
            correct += int(np.sum(np.argmax(scores, axis=-1) == labels))
            total += len(labels)
        if total == 0:
            raise DatasetError("the data holds no clip of 44032 samples to evaluate")
        return {"accuracy": correct / total}

    # ------------------------------------------------------------------ export

    def create_serving_model(self):
        """The waveform model ``[None, 44032]`` -> ``[None, N]`` (noise floor + front end + training model)."""
        return self.model_spec.create_serving_model(self._require_model())

    def summary(self) -> None:
        """Print the training model's Keras summary."""
        self._require_model().summary()

    def export(
        self,
        export_dir: str,
        tflite_filename: str = "model.tflite",
        label_filename: str = "labels.txt",
        vocab_filename: str = "vocab.txt",
        saved_model_filename: str = "saved_model",
        tfjs_folder_name: str = "tfjs",
        export_format=None,
        **kwargs,
    ) -> None:
        """Write the model in one or more formats into ``export_dir``.

        Args:
          export_dir: output folder (created).
          tflite_filename: ``.tflite`` name (TFLITE: waveform in, metadata and labels inside).
          label_filename: labels file name (LABEL: one label per line, no trailing newline).
          vocab_filename: accepted for Model Maker compatibility (audio models have no vocabulary).
          saved_model_filename: SavedModel folder name (SAVED_MODEL: the waveform serving model).
          tfjs_folder_name: TF.js folder name (TFJS: spectrogram in, with speech-commands ``metadata.json``).
          export_format: an :class:`mm_browserfft.config.ExportFormat` (or Model Maker's enum, or a
            name) or a list of them; TFLITE by default.
          **kwargs: ``with_metadata``, ``export_metadata_json_file`` and
            ``quantization_config`` (``"default"`` is the spec's default) for TFLITE;
            others are ignored with a warning.

        TFLITE, LABEL and TFJS files are written beside their target and renamed into
        place, so a failed export leaves a previous model there intact.

        Raises:
          ExportError: the folder cannot be created or written (read-only, disk full, ...).
        """
        from ..config import ExportFormat

        del vocab_filename  # no vocabulary in audio models (Model Maker ignores it as well)
        model = self._require_model()
        formats = export_format if export_format is not None else list(self.DEFAULT_EXPORT_FORMAT)
        formats = list(formats) if isinstance(formats, (list, tuple, set)) else [formats]
        formats = [ExportFormat.coerce(f) for f in formats]
        for fmt in formats:
            if fmt.name not in self.ALLOWED_EXPORT_FORMAT:
                raise InvalidInputError(f"export format {fmt} is not supported; choose from {self.ALLOWED_EXPORT_FORMAT}")
        unknown = sorted(set(kwargs) - set(_TFLITE_KWARGS))
        if unknown:
            warnings.warn(f"export ignores the arguments {unknown}", stacklevel=2)
        created = not os.path.lexists(export_dir)
        try:
            os.makedirs(export_dir, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the export folder ({exc.strerror or exc})", path=export_dir) from None
        try:
            self._export_formats(model, export_dir, formats, tflite_filename=tflite_filename,
                                 label_filename=label_filename, saved_model_filename=saved_model_filename,
                                 tfjs_folder_name=tfjs_folder_name, tflite_kwargs=kwargs)  # fmt: skip
        except BaseException:
            if created and os.path.isdir(export_dir) and not os.listdir(export_dir):
                os.rmdir(export_dir)  # a failed first export leaves no empty folder behind
            raise

    def _export_formats(self, model, export_dir: str, formats: list, *, tflite_filename: str, label_filename: str,
                        saved_model_filename: str, tfjs_folder_name: str, tflite_kwargs: Dict[str, Any]) -> None:
        """Write each of ``formats`` into the existing ``export_dir`` (see :meth:`export`)."""
        from ..config import ExportFormat

        for fmt in formats:
            if fmt == ExportFormat.TFLITE:
                options = {k: tflite_kwargs[k] for k in _TFLITE_KWARGS if k in tflite_kwargs}
                if options.get("quantization_config", None) == "default":
                    options["quantization_config"] = self.model_spec.get_default_quantization_config()
                self.model_spec.export_tflite(
                    model, os.path.join(export_dir, tflite_filename), index_to_label=self.index_to_label, **options
                )
            elif fmt == ExportFormat.LABEL:
                from ..export import write_files_atomically

                labels = "\n".join(self.index_to_label).encode("utf-8")
                write_files_atomically({os.path.join(export_dir, label_filename): labels})
            elif fmt == ExportFormat.SAVED_MODEL:
                from ..export import save_saved_model

                save_saved_model(
                    self.create_serving_model(), os.path.join(export_dir, saved_model_filename),
                    labels=list(self.index_to_label),
                )  # fmt: skip
            elif fmt == ExportFormat.TFJS:
                self._export_tfjs(model, os.path.join(export_dir, tfjs_folder_name))

    def _export_tfjs(self, model, folder: str) -> None:
        """The TF.js folder, laid out for the speech-commands recogniser (:func:`~mm_browserfft.listen.recognizer_labels`).

        The noise class is renamed ``_background_noise_`` and moved first (the head's
        outputs permuted to match); a log line says so.
        """
        from ..listen import recognizer_labels
        from ..tfjs import save_tfjs, speech_commands_metadata

        order, names = recognizer_labels(self.index_to_label)
        if order != list(range(len(order))) or names != self.index_to_label:
            log.info("TF.js export: class %r is named %r and comes first, as the speech-commands recogniser expects",
                     self.index_to_label[order[0]], names[0])  # fmt: skip
            model = _reordered_outputs(model, order)
        save_tfjs(model, folder, metadata=speech_commands_metadata(names))


def _reordered_outputs(model, order: Sequence[int]):
    """``model`` (a Sequential ending in a Dense head) with output ``i`` = old output ``order[i]``; layers shared."""
    keras = _keras()
    head = model.layers[-1]
    kernel, bias = head.get_weights()
    new_head = keras.layers.Dense(len(order), activation=head.activation, name=head.name)
    reordered = keras.Sequential([keras.Input(shape=model.input_shape[1:]), *model.layers[:-1], new_head])
    new_head.set_weights([kernel[:, list(order)], bias[list(order)]])
    return reordered


def _resolve_spec(model_spec, model_dir: Optional[str]):
    """A spec instance from an instance, a spec class, or a registered name."""
    if isinstance(model_spec, str):
        from ..model_spec import get

        return get(model_spec, model_dir=model_dir)
    if isinstance(model_spec, type):
        return model_spec(model_dir=model_dir)
    for method in ("create_model", "preprocess_ds", "run_classifier", "export_tflite"):
        if not callable(getattr(model_spec, method, None)):
            raise InvalidInputError(f"model_spec must be an audio spec, a spec class or a name; got {model_spec!r}")
    return model_spec


def create(
    train_data,
    model_spec,
    validation_data=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    model_dir: Optional[str] = None,
    do_train: bool = True,
    train_whole_model: bool = False,
    *,
    tensorboard: bool = False,
    embedding_cache: "Optional[os.PathLike[str] | str]" = None,
) -> AudioClassifier:
    """Model Maker's ``audio_classifier.create``: build and (by default) train a classifier.

    Args:
      train_data: a :class:`~mm_browserfft.data.DataLoader`.
      model_spec: a spec instance, a spec class, or a registered name
        (``"audio_browser_fft"``, ``"audio_teachable_machine"``, or a third-party
        name, see :func:`mm_browserfft.model_spec.get`). Model Maker accepted only
        instances (its name lookup was broken).
      validation_data: a loader evaluated after every epoch.
      batch_size, epochs: training settings (Model Maker's defaults 32 and 5).
      model_dir: folder for checkpoints (default: the spec's).
      do_train: train; otherwise only build and compile the model.
      train_whole_model: fine-tune the base as well (slower; see the module notes).
      tensorboard: write TensorBoard logs to ``<model_dir>/summaries``.
      embedding_cache: a folder for the on-disk cache of embeddings
        (:mod:`mm_browserfft.cache`; head-only training without augmentation): reruns skip
        decoding and the base; None: no cache.

    Returns:
      the :class:`AudioClassifier`.
    """
    spec = _resolve_spec(model_spec, model_dir)
    task = AudioClassifier(
        spec, train_data.index_to_label, shuffle=True, train_whole_model=train_whole_model, model_dir=model_dir,
        embedding_cache=embedding_cache,
    )
    if do_train:
        task.train(train_data, validation_data, epochs, batch_size, tensorboard=tensorboard)
    else:
        with spec.strategy.scope():
            task.create_model()
    return task
