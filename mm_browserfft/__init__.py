"""mm_browserfft: TFLite Model Maker's BrowserFftSpec, reimplemented on current TensorFlow."""

__version__ = "0.1.0"
