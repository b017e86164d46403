"""The bridge into an installed TFLite Model Maker 0.4.3 (TF 2.15 / Keras 2 only).

Model Maker's ``audio_classifier.create`` and ``DataLoader.from_folder`` accept a
spec only if ``isinstance(spec, audio_spec.BaseSpec)``. :func:`install` registers
:class:`mm_browserfft.spec.BrowserFftSpec` as a *virtual* subclass of that
``abc.ABC`` (``BaseSpec.register``), so our spec passes the check without
inheriting Model Maker's constructor (which would need TF < 2.16 everywhere).

Nothing here imports Model Maker unless it is installed *and* importable:
Model Maker 0.4.3 cannot be imported on TensorFlow >= 2.16 (``tf.estimator``
is gone), so :func:`is_available` checks the package's presence with
:func:`importlib.util.find_spec` and TensorFlow's version before any import.

Why the import shim (:func:`import_model_maker`). ``import tflite_model_maker``
imports every task, and through ``tflite_support/__init__.py`` the Task
Library's pybind11 extensions, whose ``StatusCode`` type clashes with the one
TensorFlow already registered ("generic_type: cannot initialize type
StatusCode: an object with that name is already defined"). The audio path never
calls those extensions, so a placeholder module stands in for each of them in
:data:`sys.modules` before the import. Metadata writing
(``tflite_support.metadata_writers``) does not go through them and keeps working.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Optional, Tuple

from .errors import ModelMakerUnavailableError

__all__ = [
    "MAX_TF_VERSION",
    "PLACEHOLDER_MODULES",
    "is_available",
    "import_model_maker",
    "base_spec_class",
    "install",
]

MAX_TF_VERSION = (2, 16)
"""Model Maker 0.4.3 imports on TensorFlow below this (major, minor) version only."""

PLACEHOLDER_MODULES = (
    "tflite_support.task",
    "tensorflow_lite_support.python.task.vision.image_embedder",
    "tensorflow_lite_support.python.task.vision.core.tensor_image",
    "tensorflow_lite_support.scann_ondevice.cc.python.index_builder",
)
"""Task Library modules replaced by placeholders before Model Maker is imported."""

_AUDIO_SPEC_MODULE = "tensorflow_examples.lite.model_maker.core.task.model_spec.audio_spec"
_installed: Optional[bool] = None


class _PlaceholderModule(types.ModuleType):
    """A module whose every public attribute is an empty placeholder class.

    Model Maker only imports names from the replaced modules (for type hints
    and vision/searcher tasks); the audio classifier never calls them.
    """

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = type(name, (), {"__module__": self.__name__})
        setattr(self, name, placeholder)
        return placeholder


def _tensorflow_version() -> Optional[Tuple[int, int]]:
    """``(major, minor)`` of the installed TensorFlow, or None if there is none."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    import tensorflow as tf

    major, minor = tf.__version__.split(".")[:2]
    return int(major), int(minor)


def is_available() -> bool:
    """Whether Model Maker is installed and can be imported next to this TensorFlow.

    Imports TensorFlow (to read its version) but never Model Maker.
    """
    if importlib.util.find_spec("tflite_model_maker") is None:
        return False
    version = _tensorflow_version()
    return version is not None and version < MAX_TF_VERSION


def import_model_maker() -> types.ModuleType:
    """Import ``tflite_model_maker`` behind the Task Library shim (module docstring).

    Placeholders go only where no real module is loaded yet, so a process that
    already imported one of them keeps it.

    Returns:
      the ``tflite_model_maker`` package.

    Raises:
      ModelMakerUnavailableError: Model Maker is missing or TensorFlow is too new.
    """
    if not is_available():
        raise ModelMakerUnavailableError(
            "tflite_model_maker is not importable here: it must be installed and "
            f"TensorFlow must be older than {'.'.join(map(str, MAX_TF_VERSION))} "
            f"(found TensorFlow {_tensorflow_version()})"
        )
    for name in PLACEHOLDER_MODULES:
        if name not in sys.modules:
            sys.modules[name] = _PlaceholderModule(name)
    return importlib.import_module("tflite_model_maker")


def base_spec_class() -> type:
    """Model Maker's ``audio_spec.BaseSpec`` (an ``abc.ABC``), importing Model Maker."""
    import_model_maker()
    return importlib.import_module(_AUDIO_SPEC_MODULE).BaseSpec


def install() -> bool:
    """Make Model Maker accept :class:`~mm_browserfft.spec.BrowserFftSpec`, if Model Maker is here.

    Registers the spec (and so its subclasses) as a virtual subclass of Model
    Maker's ``BaseSpec``. Idempotent and cheap after the first call; a no-op
    returning False where Model Maker is not importable.

    Returns:
      True if Model Maker is importable and the spec is registered.
    """
    global _installed
    if _installed is None:
        if is_available():
            from .spec import BrowserFftSpec

            base_spec_class().register(BrowserFftSpec)
            _installed = True
        else:
            _installed = False
    return _installed
