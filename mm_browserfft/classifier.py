"""AudioClassifier and create: Model Maker's audio task, with fast head-only training.

Head-only training (``train_whole_model=False``, the default) runs the frozen
base once per training window to get its 2000-d ``dense_1`` embedding (with the
1e-5 training noise drawn once per window, as Model Maker's cached pipeline
freezes it) and then trains only ``dropout_2`` + ``classification_head`` on the
embeddings, so every epoch after the first costs almost nothing. The head's
layers are shared with the full model, which is therefore trained in place.
With training augmentation on, fresh augmented embeddings are computed every
epoch (a forward pass of the frozen base, no back-propagation through it) from
windows streamed from the loader in bounded chunks (decoded again, or read from
its cache), shuffled by file and within a 4096-window buffer.
One deliberate difference from Model Maker: embeddings are computed in
inference mode, so the base's ``dropout_1`` is inactive while the head trains.

Whole-model training feeds spectrograms through the full model, as Model Maker does.

Fault tolerance: every epoch, the fitted model's weights, its optimizer state and
the epoch counter are backed up into ``<model_dir>/backup`` (Keras'
``BackupAndRestore``). If the process dies, training again with the same
``model_dir`` and the same labels restores that state and runs only the missing
epochs; a finished run deletes its backup. With a ``seed`` on the spec, training
also seeds Python's, NumPy's and TensorFlow's generators
(``keras.utils.set_random_seed``), so a run is repeatable on one machine.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import pathlib
import shutil
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import progress
from .errors import BrowserFftError, DatasetError, ExportError, InvalidInputError

__all__ = ["AudioClassifier", "create", "run_fingerprint", "backup_differences", "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS"]

log = logging.getLogger("mm_browserfft")

DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 5
_EMBED_BATCH = 256  # windows per forward pass of the base
_SHUFFLE_BUFFER = 4096  # embeddings (32 MB) mixed across files when augmented embeddings are streamed
_TFLITE_KWARGS = ("with_metadata", "export_metadata_json_file", "quantization_config")
BACKUP_FOLDER = "backup"
"""Sub-folder of ``model_dir`` holding the per-epoch backup of an unfinished training run."""
_RUN_FILE = "run.json"  # inside the backup: which run it belongs to


def _keras():
    import tensorflow as tf

    return tf.keras


def _file_groups(per_file, size: int = _EMBED_BATCH) -> Iterator[Tuple[List[Tuple[int, int, int]], np.ndarray]]:
    """Regroup ``(file_index, label, windows [k, 44032])`` into ``([(file_index, label, k), ...], windows [~size, 44032])``.

    A long file's consecutive pieces (same index) become one entry.
    """
    owners: List[Tuple[int, int, int]] = []
    windows: List[np.ndarray] = []
    count = 0
    for index, label, chunk in per_file:
        if owners and owners[-1][0] == index:
            owners[-1] = (index, label, owners[-1][2] + len(chunk))
        else:
            owners.append((index, label, len(chunk)))
        windows.append(chunk)
        count += len(chunk)
        if count >= size:
            yield owners, np.concatenate(windows)
            owners, windows, count = [], [], 0
    if owners:
        yield owners, np.concatenate(windows)


def _groups(per_file, size: int = _EMBED_BATCH) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Regroup ``(file_index, label, windows [k, 44032])`` per file into ``(windows [~size, 44032], labels int32)``."""
    for owners, windows in _file_groups(per_file, size):
        yield windows, np.repeat(np.array([label for _, label, _ in owners], np.int32), [k for _, _, k in owners])


def _checkpoint(model, path: str):
    """A ModelCheckpoint that saves ``model``'s weights whatever model ``fit`` runs on."""
    keras = _keras()

    class _Checkpoint(keras.callbacks.ModelCheckpoint):
        def set_model(self, _fitted):
            super().set_model(model)

    return _Checkpoint(path, save_weights_only=True)


def _files_digest(data) -> Optional[str]:
    """SHA-256 over every file of a loader: path, label, size and modification time (None without a file list)."""
    files = getattr(data, "files", None)
    if data is None or files is None:
        return None
    digest = hashlib.sha256()
    for path, label in files:
        try:
            info = os.stat(path)
            stamp = f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{os.path.abspath(path)}\0{label}\0{stamp}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _weights_digest(model) -> str:
    """SHA-256 of a model's weights (their float32 bytes, in order)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
    return digest.hexdigest()


def run_fingerprint(classifier, train_data, validation_data, *, epochs: int, batch_size: int) -> Dict[str, Any]:
    """What makes a training run the same run: only a backup with an equal fingerprint is restored.

    The labels and training mode, the epochs, batch size and shuffling, the spec's options
    (:meth:`~mm_browserfft.spec.BrowserFftSpec.training_options` where it has them), the
    base's weights, and every training and validation file (path, label, size, modification time).
    """
    spec = classifier.model_spec
    options = spec.training_options() if hasattr(spec, "training_options") else {"spec": type(spec).__name__}
    base = getattr(spec, "base", None)
    return {
        "labels": classifier.index_to_label,
        "train_whole_model": bool(classifier.train_whole_model),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "shuffle": bool(classifier.shuffle),
        "spec": options,
        "base": _weights_digest(base) if base is not None else None,
        "train_files": _files_digest(train_data),
        "validation_files": _files_digest(validation_data),
    }


def _read_run(backup: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(backup, _RUN_FILE), encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def backup_differences(folder: str, run: Dict[str, Any]) -> Optional[List[str]]:
    """What differs between ``run`` and the backup in ``<folder>/backup``: None without a backup, [] when it is the same run."""
    backup = os.path.join(folder, BACKUP_FOLDER)
    if not os.path.isdir(backup):
        return None
    saved = _read_run(backup)
    if saved is None:
        return ["the backup's run.json is missing or unreadable"]
    return sorted(k for k in set(run) | set(saved) if run.get(k) != saved.get(k))


def _backup_and_restore(folder: str, run: Dict[str, Any], strategy: Any):
    """A backup callback in ``<folder>/backup``, for the training run described by ``run``.

    A backup left by another run (:func:`run_fingerprint` differs: other data, base, options or
    epochs) is discarded, with a warning that says what differs, rather than restored. Keras'
    ``BackupAndRestore``; under a multi-worker strategy a :class:`~mm_browserfft.distributed.ClusterBackup`,
    whose folder only the chief prepares.
    """
    keras = _keras()
    backup = os.path.join(folder, BACKUP_FOLDER)
    from . import distributed

    if distributed.is_chief(strategy):
        differs = backup_differences(folder, run)
        if differs:
            warnings.warn(f"{backup}: discarding the backup of a different training run ({', '.join(differs)} differ)",
                          stacklevel=3)  # fmt: skip
            shutil.rmtree(backup)
        os.makedirs(backup, exist_ok=True)
        from .export import write_files_atomically

        write_files_atomically({os.path.join(backup, _RUN_FILE): json.dumps(run).encode("utf-8")})
    if distributed.is_multi_worker(strategy):
        return distributed.ClusterBackup(backup, strategy=strategy)
    options = {}
    if "double_checkpoint" in inspect.signature(keras.callbacks.BackupAndRestore).parameters:
        options["double_checkpoint"] = True  # Keras 3: keep the previous epoch if the last save was cut short
    return keras.callbacks.BackupAndRestore(backup, **options)


def _check_finite_weights(model) -> None:
    """Raise rather than hand back a model with NaN or infinite weights."""
    bad = [getattr(w, "path", w.name) for w in model.weights if not np.all(np.isfinite(np.asarray(w)))]
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

    def create_model(self):
        """Build (and compile) a fresh model from the spec; returns it and keeps it as :attr:`model`."""
        self.model = self.model_spec.create_model(self.num_classes, train_whole_model=self.train_whole_model)
        if hasattr(self.model_spec, "compile_model"):
            self.model_spec.compile_model(self.model)
        return self.model

    def _callbacks(self, tensorboard: bool, run: Dict[str, Any]) -> list:
        keras = _keras()
        folder = self.model_dir or self.model_spec.model_dir
        os.makedirs(folder, exist_ok=True)
        callbacks = [_backup_and_restore(folder, run, getattr(self.model_spec, "strategy", None))]
        if not self._writes_files():
            return callbacks
        callbacks.append(_checkpoint(self.model, os.path.join(folder, "checkpoint.weights.h5")))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(folder, "summaries")))
        return callbacks

    def _writes_files(self) -> bool:
        """False on a cluster's workers other than the chief, which write no checkpoint or log."""
        from . import distributed

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

    def _embed(self, embedder, windows: np.ndarray, *, is_training: bool) -> np.ndarray:
        """Embeddings ``[m, 2000]`` float32 of windows ``[m, 44032]`` (front end + frozen base)."""
        import tensorflow as tf

        spec = self.model_spec
        out = [np.zeros((0, embedder.output_shape[-1]), np.float32)]
        for start in range(0, len(windows), _EMBED_BATCH):
            batch = tf.constant(windows[start : start + _EMBED_BATCH])
            out.append(embedder(spec.featurize(batch, is_training=is_training), training=False).numpy())
        return np.concatenate(out)

    def _embedding_context(self, embedder) -> Optional[Dict[str, Any]]:
        """What fixes the meaning of an embedding of this embedder (for the cache's keys), or None without a cache.

        Computed once per training: the embedder's weight digest and a digest of the front end's
        output on a fixed probe (any change of the front end's numbers gives new keys).
        """
        if self.embedding_cache is None:
            return None
        from . import __version__

        spec = self.model_spec
        probe = np.random.default_rng(0).normal(0.0, 0.1, (1, spec.EXPECTED_WAVEFORM_LENGTH)).astype(np.float32)
        frontend = hashlib.sha256(np.asarray(spec.featurize(probe), np.float32).tobytes()).hexdigest()
        return {
            "package": __version__, "spec": type(spec).__name__, "embedder": _weights_digest(embedder),
            "frontend": frontend, "pad_short_clips": bool(getattr(spec, "pad_short_clips", False)),
            "seed": getattr(spec, "seed", None),
        }  # fmt: skip

    def _embedded(
        self, embedder, data, *, is_training: bool, context: Optional[Dict[str, Any]] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``(embeddings [m, d] float16, labels [m] int32)`` of every window of ``data``, in the loader's order.

        One preallocated float16 array holds them (for the full Speech Commands, about 0.4 GB);
        the waveforms are decoded file by file. With a ``context`` (:meth:`_embedding_context`),
        a file whose embeddings are in :attr:`embedding_cache` is not even decoded, and new ones are stored.
        """
        width = int(embedder.output_shape[-1])
        if not hasattr(data, "clips_per_file"):  # another loader: no header counts, no cache
            parts = [(self._embed(embedder, w, is_training=is_training), y) for w, y in _groups(data.iter_waveforms())]
            x = np.concatenate([p[0] for p in parts] or [np.zeros((0, width), np.float32)]).astype(np.float16)
            return x, np.concatenate([p[1] for p in parts] or [np.zeros(0, np.int32)])
        cache = None
        if context is not None:
            from .cache import EmbeddingCache

            cache = EmbeddingCache(self.embedding_cache, context={**context, "training_noise": bool(is_training)})
        counts = data.clips_per_file()
        paths = [path for path, _ in data.files]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        x = np.zeros((int(offsets[-1]), width), np.float16)
        labels = np.full(len(x), -1, np.int32)  # -1: a row no file filled (unreadable, skipped)
        file_labels = [data.index_to_label.index(label) for _, label in data.files]
        hits = set()
        if cache is not None:
            for i, (path, count) in enumerate(zip(paths, counts)):
                cached = cache.get(path, count) if count else None
                if cached is not None and cached.shape[1] == width:
                    x[offsets[i] : offsets[i + 1]] = cached
                    labels[offsets[i] : offsets[i + 1]] = file_labels[i]
                    hits.add(i)
        with progress.bar(desc="embedding", total=int(offsets[-1]), unit="clip") as shown:
            shown.update(int(sum(counts[i] for i in hits)))
            for owners, windows in _file_groups(data.iter_waveforms(exclude=hits)):
                embedded = self._embed(embedder, windows, is_training=is_training).astype(np.float16)
                start = 0
                for index, _, count in owners:
                    rows = embedded[start : start + count]
                    start += count
                    fill = offsets[index] + np.arange(count)
                    if count > counts[index]:
                        raise BrowserFftError(f"{paths[index]}: decoding gave more windows than its header promised")
                    x[fill], labels[fill] = rows, file_labels[index]
                    if cache is not None and count == counts[index]:
                        cache.put(paths[index], rows)
                shown.update(len(windows))
        if cache is not None:
            log.info("embeddings of %d files from the cache %s, %d computed", len(hits), cache.folder, len(paths) - len(hits))
        kept = labels >= 0
        return (x, labels) if kept.all() else (x[kept], labels[kept])

    def _embedded_batches(self, parts: Sequence[Tuple[np.ndarray, np.ndarray]], batch_size: int):
        """A dataset of ``(float32 [b, d], int32 [b])`` batches of the rows of ``parts``, reshuffled every epoch.

        ``parts`` are ``(float16 [m_i, d], int32 [m_i])`` pairs, taken as one set. Rows are
        gathered per batch, so the training set is never copied whole.
        """
        import tensorflow as tf

        seed = getattr(self.model_spec, "seed", None)
        rng = np.random.default_rng(seed)
        ends = np.cumsum([len(y) for _, y in parts])
        total = int(ends[-1]) if len(ends) else 0

        def batches():
            order = rng.permutation(total) if self.shuffle else np.arange(total)
            for start in range(0, total, batch_size):
                idx = np.sort(order[start : start + batch_size])
                which = np.searchsorted(ends, idx, side="right")
                rows = [(x[i - (ends[p] - len(y))], y[i - (ends[p] - len(y))]) for p, (x, y) in enumerate(parts)
                        for i in [idx[which == p]] if i.size]  # fmt: skip
                yield np.concatenate([r[0] for r in rows]).astype(np.float32), np.concatenate([r[1] for r in rows])

        width = parts[0][0].shape[1]
        dataset = tf.data.Dataset.from_generator(
            batches, output_signature=(tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.int32))
        )
        return dataset.apply(tf.data.experimental.assert_cardinality(-(-total // batch_size)))

    def _negative_class(self) -> Optional[int]:
        """Index of the class a window without a whole word belongs to: ``_unknown_``, else the background class."""
        from .listen import NOISE_LABELS

        for names in (("_unknown_",), NOISE_LABELS):
            found = [i for i, label in enumerate(self.index_to_label) if label in names]
            if found:
                return found[0]
        return None

    def _partial_word_rows(self, embedder, data, *, context: Optional[Dict[str, Any]]):
        """``(float16 [k, d], int32 [k])``: embeddings of partial-word windows taught as the negative class, or None.

        A share ``spec.partial_word_negatives`` of the files of each word (chosen by a
        seeded draw per label folder and file name), but no more windows than the largest class holds (so the
        negative class does not swamp the words of a large data set), gives one window
        (:func:`mm_browserfft.augment.partial_word` of its first window), filled with a window
        of the background class's files (up to 64 of them, or silence without any). Cached
        like the loader's embeddings.
        """
        import zlib

        from . import augment
        from .listen import NOISE_LABELS

        spec = self.model_spec
        share = float(getattr(spec, "partial_word_negatives", 0.0) or 0.0)
        negative = self._negative_class()
        if share <= 0 or negative is None or not hasattr(data, "clips_per_file"):
            if share > 0:
                log.info("partial-word negatives: no _unknown_ or background class among %s, none made", self.index_to_label)
            return None
        seed = getattr(spec, "seed", None) or 0
        noise = {i for i, label in enumerate(self.index_to_label) if label in NOISE_LABELS}
        counts = data.clips_per_file()
        files = [(i, path, data.index_to_label.index(label)) for i, ((path, label), count) in
                 enumerate(zip(data.files, counts)) if count]  # fmt: skip
        def key(path: str) -> int:  # the label folder and file name: the same draw wherever the data set lies
            return zlib.crc32("/".join(pathlib.PurePath(path).parts[-2:]).encode("utf-8", "surrogatepass"))

        draws = {i: np.random.default_rng([seed, key(path)]).random()
                 for i, path, label in files if label != negative and label not in noise}  # fmt: skip
        per_class = np.bincount([label for _, _, label in files], weights=[counts[i] for i, _, _ in files])
        cap = int(per_class.max()) if len(per_class) else 0  # no more than the largest class holds
        picked = sorted((i for i, r in draws.items() if r < share), key=lambda i: (draws[i], i))[:cap]
        chosen = [(i, data.files[i][0]) for i in sorted(picked)]
        if not chosen:
            return None
        fill_files = {i for i, _, label in files if label in noise}
        fill_files = set(sorted(fill_files)[:64])
        fills = [w for _, _, windows in data.iter_waveforms(exclude=set(range(len(counts))) - fill_files) for w in windows]
        width = int(embedder.output_shape[-1])
        cache = None
        if context is not None:
            from .cache import EmbeddingCache

            fill_digest = hashlib.sha256("\0".join(data.files[i][0] for i in sorted(fill_files)).encode()).hexdigest()
            cache = EmbeddingCache(self.embedding_cache, context={**context, "partial_word": fill_digest})
        x = np.zeros((len(chosen), width), np.float16)
        done = set()
        if cache is not None:
            for row, (_, path) in enumerate(chosen):
                hit = cache.get(path, 1)
                if hit is not None and hit.shape == (1, width):
                    x[row] = hit[0]
                    done.add(row)
        row_of = {i: row for row, (i, _) in enumerate(chosen)}
        todo = {i for row, (i, _) in enumerate(chosen) if row not in done}
        pending: List[Tuple[int, np.ndarray]] = []

        def flush():
            if pending:
                embedded = self._embed(embedder, np.stack([w for _, w in pending]), is_training=True).astype(np.float16)
                for (row, _), e in zip(pending, embedded):
                    x[row] = e
                    if cache is not None:
                        cache.put(chosen[row][1], e[None])
                pending.clear()

        for index, _, windows in data.iter_waveforms(exclude=set(range(len(counts))) - todo):
            if not len(windows) or index not in row_of:
                continue
            path = chosen[row_of[index]][1]
            rng = np.random.default_rng([seed, key(path), 1])
            fill = fills[int(rng.integers(len(fills)))] if fills else np.zeros(spec.EXPECTED_WAVEFORM_LENGTH, np.float32)
            pending.append((row_of[index], augment.partial_word(windows[0], fill, rng)))
            todo.discard(index)
            if len(pending) >= _EMBED_BATCH:
                flush()
        flush()
        log.info("partial-word negatives: %d windows taught as %r", len(chosen), self.index_to_label[negative])
        return x, np.full(len(chosen), negative, np.int32)

    def _train_head(self, train_data, validation_data, epochs: int, batch_size: int, callbacks: list):
        import tensorflow as tf

        spec = self.model_spec
        embedder, head = spec.embedding_model(self.model), spec.head_model(self.model)
        context = self._embedding_context(embedder)  # once: it digests the weights and runs the front end
        one_hot = lambda y: tf.one_hot(y, self.num_classes)  # noqa: E731
        partial = self._partial_word_rows(embedder, train_data, context=context)
        if spec.augments:
            labels = train_data.labels()  # from the headers; the windows are decoded anew every epoch
            if partial is not None:
                labels = np.concatenate([labels, partial[1]])

            def fresh_epoch():  # new augmentation, hence new embeddings, every epoch, in bounded memory
                for windows, window_labels in _groups(train_data.iter_waveforms(shuffle=self.shuffle)):
                    pick = np.random.permutation(len(windows)) if self.shuffle else np.arange(len(windows))
                    yield self._embed(embedder, windows[pick], is_training=True), window_labels[pick]
                if partial is not None:
                    yield partial[0].astype(np.float32), partial[1]

            width = embedder.output_shape[-1]
            train_ds = tf.data.Dataset.from_generator(
                fresh_epoch,
                output_signature=(tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.int32)),
            ).unbatch()
            if self.shuffle:
                train_ds = train_ds.shuffle(_SHUFFLE_BUFFER)
            train_ds = train_ds.batch(batch_size).apply(
                tf.data.experimental.assert_cardinality(-(-len(labels) // batch_size))
            )
        else:
            x, labels = self._embedded(embedder, train_data, is_training=True, context=context)
            train_ds = self._embedded_batches([(x, labels)] + ([partial] if partial is not None else []), batch_size)
        if len(labels) == 0:
            raise DatasetError("the training data holds no clip of 44032 samples (all files too short?)")
        train_ds = train_ds.map(lambda e, y: (e, one_hot(y)))
        val_ds = None
        if validation_data is not None:
            vx, vy = self._embedded(embedder, validation_data, is_training=False, context=context)
            val_ds = self._embedded_batches([(vx, vy)], batch_size).map(lambda e, y: (e, one_hot(y)))
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
        from . import distributed

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

        from .export import run_tflite

        model = pathlib.Path(tflite_filepath).read_bytes()
        correct = total = 0
        for windows, labels in _groups(data.iter_waveforms()):
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
        """The waveform model ``[None, 44032]`` -> ``[None, N]`` (front end + training model)."""
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
        from .config import ExportFormat

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
        try:
            os.makedirs(export_dir, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the export folder ({exc.strerror or exc})", path=export_dir) from None
        for fmt in formats:
            if fmt == ExportFormat.TFLITE:
                options = {k: kwargs[k] for k in _TFLITE_KWARGS if k in kwargs}
                if options.get("quantization_config", None) == "default":
                    options["quantization_config"] = self.model_spec.get_default_quantization_config()
                self.model_spec.export_tflite(
                    model, os.path.join(export_dir, tflite_filename), index_to_label=self.index_to_label, **options
                )
            elif fmt == ExportFormat.LABEL:
                from .export import write_files_atomically

                labels = "\n".join(self.index_to_label).encode("utf-8")
                write_files_atomically({os.path.join(export_dir, label_filename): labels})
            elif fmt == ExportFormat.SAVED_MODEL:
                from .export import save_saved_model

                save_saved_model(
                    self.create_serving_model(), os.path.join(export_dir, saved_model_filename),
                    labels=list(self.index_to_label), label_filename=label_filename,
                )  # fmt: skip
            elif fmt == ExportFormat.TFJS:
                self._export_tfjs(model, os.path.join(export_dir, tfjs_folder_name))

    def _export_tfjs(self, model, folder: str) -> None:
        """The TF.js folder, laid out for the speech-commands recogniser (:func:`~mm_browserfft.listen.recognizer_labels`).

        The noise class is renamed ``_background_noise_`` and moved first (the head's
        outputs permuted to match); a log line says so.
        """
        from .listen import recognizer_labels
        from .tfjs import save_tfjs, speech_commands_metadata

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
        from .model_spec import get

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
