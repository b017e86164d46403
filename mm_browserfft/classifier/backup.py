"""Which training run is which, and the per-epoch backup that lets exactly that run resume.

A backup in ``<model_dir>/backup`` carries ``run.json``, the run's fingerprint
(:func:`run_fingerprint`: labels, mode, epochs, batch size, the spec's options, the
base's weights and every file's path, size and time); only a run with an equal
fingerprint is restored, any other backup is discarded with a warning naming what differs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import warnings
from typing import Any, Dict, List, Optional

import numpy as np

__all__ = ["BACKUP_FOLDER", "run_fingerprint", "backup_differences", "backup_callback", "checkpoint_callback", "weights_digest"]

BACKUP_FOLDER = "backup"
"""Sub-folder of ``model_dir`` holding the per-epoch backup of an unfinished training run."""
_RUN_FILE = "run.json"  # inside the backup: which run it belongs to


def _keras():
    import tensorflow as tf

    return tf.keras


def checkpoint_callback(model, path: str):
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


def weights_digest(model) -> str:
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
        "base": weights_digest(base) if base is not None else None,
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


def backup_callback(folder: str, run: Dict[str, Any], strategy: Any):
    """A backup callback in ``<folder>/backup``, for the training run described by ``run``.

    A backup left by another run (:func:`run_fingerprint` differs: other data, base, options or
    epochs) is discarded, with a warning that says what differs, rather than restored. Keras'
    ``BackupAndRestore``; under a multi-worker strategy a :class:`~mm_browserfft.distributed.ClusterBackup`,
    whose folder only the chief prepares.
    """
    keras = _keras()
    backup = os.path.join(folder, BACKUP_FOLDER)
    from .. import distributed

    if distributed.is_chief(strategy):
        differs = backup_differences(folder, run)
        if differs:
            warnings.warn(f"{backup}: discarding the backup of a different training run ({', '.join(differs)} differ)",
                          stacklevel=3)  # fmt: skip
            shutil.rmtree(backup)
        os.makedirs(backup, exist_ok=True)
        from ..export import write_files_atomically

        write_files_atomically({os.path.join(backup, _RUN_FILE): json.dumps(run).encode("utf-8")})
    if distributed.is_multi_worker(strategy):
        return distributed.ClusterBackup(backup, strategy=strategy)
    options = {}
    if "double_checkpoint" in inspect.signature(keras.callbacks.BackupAndRestore).parameters:
        options["double_checkpoint"] = True  # Keras 3: keep the previous epoch if the last save was cut short
    return keras.callbacks.BackupAndRestore(backup, **options)
