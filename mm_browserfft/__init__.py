"""mm_browserfft: TFLite Model Maker's BrowserFftSpec, reimplemented on current TensorFlow.

``from mm_browserfft import audio_classifier`` is Model Maker's
``tflite_model_maker.audio_classifier``; ``model_spec.get(name)`` and ``config``
(``ExportFormat``, ``QuantizationConfig``) likewise. Submodules load on first
use, so ``import mm_browserfft`` does not import TensorFlow.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["BrowserFftSpec", "audio_classifier", "model_spec", "config", "__version__"]

_SUBMODULES = ("audio_classifier", "model_spec", "config")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "BrowserFftSpec":
        from .spec import BrowserFftSpec

        return BrowserFftSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
