"""Model Maker's ``tflite_model_maker.audio_classifier``, name for name.

Change only the import::

    from mm_browserfft import audio_classifier   # was: from tflite_model_maker import audio_classifier

    spec = audio_classifier.BrowserFftSpec()
    data = audio_classifier.DataLoader.from_folder(spec, "data/", cache=True)
    train_data, test_data = data.split(0.8)
    model = audio_classifier.create(train_data, spec, epochs=5)
    model.evaluate(test_data)
    model.export("out/")
"""

from .classifier import AudioClassifier, create
from .data import DataLoader
from .spec import BrowserFftSpec

__all__ = ["DataLoader", "AudioClassifier", "create", "BrowserFftSpec"]
