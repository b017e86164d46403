"""TFLite conversion of the serving model, atomic writes, and a LiteRT runner.

The serving model maps waveforms ``[batch, 44032]`` (float32, 44.1 kHz) to
probabilities ``[batch, N]``; its first layers are
:class:`~mm_browserfft.layers.NoiseFloorLayer` and
:class:`~mm_browserfft.layers.BrowserFftLayer`. The ``.tflite`` has a fixed
batch of 1 (input float32 ``[1, 44032]``, output float32 ``[1, N]``) and builtin
ops only, as the Task Library and MediaPipe audio classifiers require.

Conversion goes through a ``tf.function`` with a fixed input signature (Keras 3
and Keras 2 alike) rather than ``TFLiteConverter.from_keras_model``. With int8
quantization everything up to the first learned layer (the noise floor and the
front end: framing, window, RFFT2D, LOG, z-score) is kept in float32 and only the conv / dense
stack runs int8 kernels: quantizing a waveform or a log spectrum to 8 bits
destroys it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil
import tempfile
import warnings
from typing import Callable, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import frontend, progress
from .config import QuantizationConfig
from .errors import ExportError, InvalidInputError
from .frontend import WAVEFORM_LENGTH
from .metadata import INPUT_NAME, read_operators

__all__ = [
    "convert_to_tflite", "write_files_atomically", "staged_folder", "replace_path", "write_tflite_atomically",
    "check_replaceable_folder", "check_saved_model_replaceable", "save_saved_model", "run_tflite",
]

ModelSource = Union[bytes, bytearray, str, "os.PathLike[str]"]

# tflite BuiltinOperator codes of the ops that carry learned weights.
_WEIGHT_OPS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 126: "BATCH_MATMUL"}


def _concrete_function(serving_model):
    """The serving model traced for one waveform ``[1, 44032]`` float32 named ``audio_clip``."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, WAVEFORM_LENGTH], tf.float32, name=INPUT_NAME)])
    def serve(waveform):
        return serving_model(waveform, training=False)

    with frontend.float32_graph():  # the front end's float32, builtin-ops graph
        concrete = serve.get_concrete_function()
    outputs = tf.nest.flatten(concrete.structured_outputs)
    if len(outputs) != 1 or outputs[0].shape.rank != 2:
        shapes = [tuple(o.shape) for o in outputs]
        raise InvalidInputError(f"the serving model must return one [1, N] tensor, it returns {shapes}")
    return concrete


def _check_config(config: QuantizationConfig) -> None:
    import tensorflow as tf

    for what in ("inference_input_type", "inference_output_type"):
        dtype = getattr(config, what)
        if dtype is not None and dtype != tf.float32:
            raise InvalidInputError(f"{what} must be tf.float32 (audio clients feed and read float32), got {dtype}")
    if config.supported_ops and tf.lite.OpsSet.TFLITE_BUILTINS not in config.supported_ops:
        raise InvalidInputError(
            f"supported_ops {config.supported_ops} cannot hold the float FFT front end; "
            "include tf.lite.OpsSet.TFLITE_BUILTINS (or leave it None)"
        )


def _frontend_tensors(float_model: bytes) -> List[str]:
    """Output tensor names of every op that feeds the first learned layer: the front end."""
    operators = read_operators(float_model)
    first = next((op for op in operators if op.code in _WEIGHT_OPS), None)
    if first is None:
        raise InvalidInputError("int8 quantization needs a conv or dense layer; the serving model has none")
    producers = {name: op for op in operators for name in op.outputs}
    keep: set = set()
    pending = [first.inputs[0]]
    while pending:
        op = producers.get(pending.pop())
        if op is not None and not keep.issuperset(op.outputs):
            keep.update(op.outputs)
            pending.extend(op.inputs)
    return sorted(keep)


def convert_to_tflite(serving_model, *, quantization_config: Optional[QuantizationConfig] = None) -> bytes:
    """Convert a serving model to a ``.tflite`` flatbuffer (no metadata).

    Args:
      serving_model: Keras model, waveform ``[batch, 44032]`` -> scores ``[batch, N]``.
      quantization_config: None for float32; :meth:`QuantizationConfig.for_dynamic`,
        :meth:`~QuantizationConfig.for_float16` or :meth:`~QuantizationConfig.for_int8`.
        With int8, the front end stays float32 (see the module docstring).

    Returns:
      the model bytes: input ``audio_clip`` float32 ``[1, 44032]``, output float32 ``[1, N]``.

    Raises:
      InvalidInputError: the model does not return one ``[batch, N]`` tensor, or
        the config asks for non-float input/output or int8-only ops.
    """
    calibrated = quantization_config is not None and quantization_config.representative_data is not None
    with progress.bar(desc="converting to TFLite", total=3 if calibrated else 2, unit="step") as shown:
        content = _convert(serving_model, quantization_config, shown)
        shown.update()
    return content


def _convert(serving_model, quantization_config: Optional[QuantizationConfig], shown) -> bytes:
    """:func:`convert_to_tflite`, advancing the progress bar ``shown`` after each step but the last."""
    import tensorflow as tf

    concrete = _concrete_function(serving_model)
    shown.update()

    def converter():
        conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return conv

    if quantization_config is None:
        return bytes(converter().convert())
    _check_config(quantization_config)
    quantizing = quantization_config.get_converter_with_quantization(converter())
    if quantization_config.representative_data is None:
        return bytes(quantizing.convert())
    keep_float = _frontend_tensors(bytes(converter().convert()))
    shown.update()
    with warnings.catch_warnings():
        # The debugger runs TF's own (deprecated) interpreter internally, and the
        # float input needs no input statistics; neither is the caller's concern.
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=quantizing,
            debug_dataset=quantizing.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float),
        )
        return bytes(debugger.get_nondebug_quantized_model())


def write_files_atomically(contents: "Mapping[os.PathLike[str] | str, bytes]") -> None:
    """Write several files so that a failure leaves every previous one whole.

    Each file's bytes go to a temporary file beside it (same folder, so the rename stays
    on one file system) and are flushed to disk; only when every one is written are they
    renamed over their targets, one after the other (a rename cannot fail for want of
    space). New files get the usual permissions (``0o666`` minus the umask).

    Raises:
      ExportError: a folder is missing or read-only, the disk is full, ... (names the path);
        every target is then untouched and no temporary file is left behind.
    """
    temps: List[Tuple[str, str]] = []
    try:
        for path, data in contents.items():
            target = os.fspath(path)
            folder = os.path.dirname(os.path.abspath(target))
            temp = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except OSError as exc:
                raise ExportError(f"cannot write the file ({exc.strerror or exc})", path=target) from None
            temps.append((temp, target))
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise ExportError(f"cannot write the file ({exc.strerror or exc})", path=target) from None
        for temp, target in temps:
            try:
                os.replace(temp, target)
            except OSError as exc:
                raise ExportError(f"cannot write the file ({exc.strerror or exc})", path=target) from None
    finally:
        for temp, _ in temps:
            if os.path.exists(temp):
                os.unlink(temp)


def write_tflite_atomically(data: bytes, path: "os.PathLike[str] | str") -> None:
    """Write bytes to ``path`` so that readers see the old file or the new one, never half.

    (:func:`write_files_atomically` of one file.)

    Raises:
      ExportError: the folder is missing or read-only, the disk is full, ...
        ``path`` is then untouched and no temporary file is left behind.
    """
    write_files_atomically({path: data})


_STAGE_PREFIX = ".staging-"


@contextlib.contextmanager
def staged_folder(target: "os.PathLike[str] | str") -> Iterator[pathlib.Path]:
    """A hidden folder inside ``target`` to write a whole export into; its entries replace ``target``'s at the end.

    When the block ends normally, each entry of the staging folder is renamed over the entry of
    ``target`` of the same name (a folder there is first renamed aside, then removed); other
    entries of ``target`` stay. When the block raises, ``target`` is as it was. Either way the
    staging folder is removed; one a killed process left behind is removed by the next export into
    ``target``. Only a rename failing while the entries are moved (a fault of the file system,
    not of the export) could leave some entries new and others old.

    Raises:
      ExportError: ``target`` cannot be made, or an entry cannot be moved into it (names the path):
        a file or a link where the export has a folder, or a folder where it has a file, is found
        before anything is moved.
    """
    target = pathlib.Path(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for left in target.glob(f"{_STAGE_PREFIX}*"):  # a killed run's (SIGTERM, SIGKILL: no `finally`)
            shutil.rmtree(left, ignore_errors=True)
        stage = pathlib.Path(tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=target))
    except OSError as exc:
        raise ExportError(f"cannot write the folder ({exc.strerror or exc})", path=target) from None
    try:
        yield stage
        entries = sorted(stage.iterdir())
        for entry in entries:
            there = target / entry.name
            if (there.is_symlink() and entry.is_dir()) or (there.exists() and there.is_dir() != entry.is_dir()):
                found = "a link" if there.is_symlink() else "a file" if entry.is_dir() else "a folder"
                raise ExportError(f"cannot write {'a folder' if entry.is_dir() else 'a file'} here: {found} is in its "
                                  "place", path=there)  # fmt: skip
        for entry in entries:
            try:
                replace_path(entry, target / entry.name)
            except OSError as exc:
                raise ExportError(f"cannot move the new export into place ({exc.strerror or exc})",
                                  path=target / entry.name) from None  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_path(new: "os.PathLike[str] | str", old: "os.PathLike[str] | str") -> None:
    """Rename ``new`` to ``old``, replacing the file or folder of the same kind there.

    A folder at ``old`` (renaming over a folder that holds files fails) is first renamed
    aside, removed once ``new`` is in place, and put back if ``new`` cannot be moved in.
    Both paths must be on one file system (a rename).

    Raises:
      OSError: from the renames, ``old`` then as it was (unless putting it back fails too,
        which leaves it beside its place as ``.<name>.old-<hex>``, and says so); or a file and a
        folder, one at each path (``IsADirectoryError`` / ``NotADirectoryError``), nothing moved.
    """
    new, old = os.path.normpath(os.fspath(new)), os.path.normpath(os.fspath(old))
    old_is_folder = os.path.isdir(old) and not os.path.islink(old)
    if os.path.lexists(new) and os.path.lexists(old) and os.path.isdir(new) != old_is_folder:
        kind = IsADirectoryError if old_is_folder else NotADirectoryError
        raise kind(f"cannot replace {'a folder' if old_is_folder else 'a file or link'} with "
                   f"{'a folder' if os.path.isdir(new) else 'a file'}: {old}")  # fmt: skip
    if not old_is_folder:
        os.replace(new, old)
        return
    aside = os.path.join(os.path.dirname(old), f".{os.path.basename(old)}.old-{secrets.token_hex(4)}")
    os.rename(old, aside)
    try:
        os.rename(new, old)
    except OSError as exc:
        try:
            os.rename(aside, old)
        except OSError as again:
            raise OSError(f"{exc}; the old folder could not be put back and is at {aside}: {again}") from exc
        raise
    shutil.rmtree(aside, ignore_errors=True)


_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "saved_model.cpb")  # .cpb: TensorFlow's chunked proto
_SAVED_MODEL_ENTRIES = frozenset(_SAVED_MODEL_FILES + ("variables", "assets", "assets.extra", "debug", "fingerprint.pb",
                                                       "keras_metadata.pb", "labels.txt"))  # fmt: skip


def check_replaceable_folder(folder: "os.PathLike[str] | str", *, foreign: Callable[[str], List[str]],
                             kind: str) -> None:  # fmt: skip
    """Refuse to replace ``folder`` unless it is missing, or a folder that holds only what ``kind`` holds.

    Args:
      folder: the path an export will replace.
      foreign: the entries of an existing folder that are not part of ``kind`` (sorted; ``[]``: safe).
      kind: what the folder holds, for the message ("a SavedModel").

    Raises:
      ExportError: naming ``folder``: not a folder, or it holds other entries (the first five named).
    """
    folder = os.fspath(folder)
    if not os.path.lexists(folder):
        return
    if not os.path.isdir(folder) or os.path.islink(folder):
        raise ExportError("exists and is not a folder", path=folder)
    found = foreign(folder)
    if found:
        raise ExportError(f"holds files that are not part of {kind} ({found[:5]}); refusing to replace it", path=folder)


def check_saved_model_replaceable(folder: "os.PathLike[str] | str") -> None:
    """Refuse to replace ``folder`` unless it is missing, empty, or a SavedModel and nothing else.

    A SavedModel folder holds ``saved_model.pb`` (or ``.pbtxt``, or ``.cpb``) and what TensorFlow
    writes beside it (``variables/``, ``assets/``, ``assets.extra/``, ``debug/``, ``fingerprint.pb``,
    ``keras_metadata.pb``), and the ``labels.txt`` :func:`save_saved_model` adds; hidden entries
    (``.DS_Store``) do not count. Anything else is not ours to delete.

    Raises:
      ExportError: naming ``folder`` (:func:`check_replaceable_folder`).
    """
    check_replaceable_folder(folder, foreign=_not_saved_model_files, kind="a SavedModel")


def _not_saved_model_files(folder: str) -> List[str]:
    """The entries of ``folder`` that are not part of a SavedModel (all of them, if it has no graph)."""
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    if entries and not any(name in entries for name in _SAVED_MODEL_FILES):
        return entries
    return [e for e in entries if e not in _SAVED_MODEL_ENTRIES]


def save_saved_model(serving_model, path: str, *, labels: Optional[List[str]] = None) -> None:
    """A SavedModel whose ``serving_default`` maps ``audio_clip`` ``[None, 44032]`` to ``probability`` ``[None, N]``.

    Written with ``tf.saved_model.save`` so it is the same under Keras 3 and Keras 2. The
    front end is traced as :func:`~mm_browserfft.frontend.float32_graph` builds it (float32,
    TFLite builtin ops), so ``tf.lite.TFLiteConverter.from_saved_model`` converts the folder,
    as it did Model Maker's. ``labels`` (one per line) are written inside it as ``labels.txt``,
    where :class:`~mm_browserfft.predict.SavedModelPredictor` reads them, whatever name the
    export's own labels file has. The folder is
    written beside ``path`` and swapped into place: a failure leaves a previous export whole.
    A folder already at ``path`` is replaced only if it is a SavedModel
    (:func:`check_saved_model_replaceable`).

    Raises:
      ExportError: the folder cannot be written, or ``path`` holds something else.
    """
    import tensorflow as tf

    check_saved_model_replaceable(path)

    signature = [tf.TensorSpec([None, WAVEFORM_LENGTH], tf.float32, name="audio_clip")]
    holder = tf.Module()
    if hasattr(serving_model, "stateless_call"):  # Keras 3: the weights go in as constants
        # A SavedModel with variables makes TFLite's converter keep them as resource variables
        # (VAR_HANDLE, uninitialised in most runtimes): constants convert to a plain model.
        trainable = [tf.constant(v) for v in serving_model.trainable_variables]
        non_trainable = [tf.constant(v) for v in serving_model.non_trainable_variables]

        def probability(audio_clip):
            return serving_model.stateless_call(trainable, non_trainable, audio_clip, training=False)[0]

    else:  # Keras 2: the converter of that era freezes variables itself

        def probability(audio_clip):
            return serving_model(audio_clip, training=False)

        holder.model = serving_model
    holder.serve = tf.function(lambda audio_clip: {"probability": probability(audio_clip)}, input_signature=signature)
    with frontend.float32_graph():
        concrete = holder.serve.get_concrete_function()  # saved as it is: saving does not trace it again
    target = os.path.abspath(os.fspath(path))
    temp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    try:
        tf.saved_model.save(holder, temp, signatures={"serving_default": concrete})
        if labels is not None:
            with open(os.path.join(temp, "labels.txt"), "w", encoding="utf-8") as handle:
                handle.write("\n".join(labels))
        replace_path(temp, target)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise ExportError(f"cannot write the SavedModel ({exc.strerror or exc})", path=target) from None


def run_tflite(model: ModelSource, waveforms: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
    """Run a ``.tflite`` classifier with LiteRT, one waveform at a time.

    Args:
      model: ``.tflite`` bytes or path (metadata and packed files are fine).
      waveforms: float ``[n, 44032]`` (or one ``[44032]``) at 44.1 kHz.
      num_threads: interpreter threads; 1 gives reproducible timing on shared machines.

    Returns:
      float32 ``[n, N]`` scores.
    """
    from .predict import TFLitePredictor

    batch = np.asarray(waveforms, dtype=np.float32)
    return TFLitePredictor(model, labels=(), num_threads=num_threads).predict(batch[np.newaxis] if batch.ndim == 1 else batch)
