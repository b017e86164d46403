"""Our TF.js export in the real speech-commands recogniser's ``listen()``, hearing a fake microphone in Chromium.

A model is trained with the Python API on real clips (``_silence_``, left, no, stop, yes;
the bundled base) and exported with ``ExportFormat.TFJS``. Headless Chromium plays a
recording of words of speakers nobody trained on (held-out speakers), spliced into real
background noise, as its microphone (``--use-file-for-fake-audio-capture``); the
recogniser listens through ``getUserMedia`` -> ``AudioContext`` -> ``AnalyserNode``, as
in any web page, with the settings of Teachable Machine's snippet. The words it reports
are compared with the words said.

The export names the noise class ``_background_noise_``: with the folder's name
``_silence_``, the recogniser would report it as a word every time nobody speaks.
"""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
import soundfile as sf

import chromium
from clients_common import JS_DIR, node_modules, serve  # noqa: F401  (node_modules: a fixture)
from conftest import SPEECH_DIR, speaker_clips

SPOKEN = ("yes", "no", "stop", "left")
LEAD_IN_S = 3.0


@pytest.fixture(scope="module")
def tfjs_export(cli_words, tmp_path_factory):
    """The TF.js export of a classifier trained on the session's CLI words, and the classifier."""
    import tensorflow as tf

    from mm_browserfft import audio_classifier, config
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader

    tf.keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("tfjs_listen")
    spec = BrowserFftSpec(model_dir=str(out / "checkpoints"), seed=0)
    data = DataLoader.from_folder(spec, cli_words / "train", seed=0)
    model = audio_classifier.create(data, spec, epochs=20, batch_size=16)
    model.export(str(out), export_format=config.ExportFormat.TFJS)
    return out / "tfjs", model


@pytest.fixture(scope="module")
def microphone(tfjs_export, tmp_path_factory):
    """A 44.1 kHz WAV: 3 s of background, then 8 words (2 of each of ``SPOKEN``) 2.5-3.5 s apart; and their labels."""
    from mm_browserfft.audio import load_audio, split_windows
    from mm_browserfft.streaming_eval import build_test_recording

    model = tfjs_export[1]
    words = []
    for label in SPOKEN:
        clips = [load_audio(p) for p in speaker_clips(label, heldout=True)]
        probs = model.model.predict(model.model_spec.featurize(np.stack([split_windows(c, pad_short=True)[0] for c in clips])), verbose=0)
        right = [c for c, p in zip(clips, probs) if model.index_to_label[int(np.argmax(p))] == label and p.max() > 0.9]
        assert len(right) >= 2, f"the model names fewer than 2 held-out clips of {label!r} right"
        words += [(c, label) for c in right[:2]]
    order = np.random.default_rng(4).permutation(len(words))
    background = [np.concatenate([load_audio(p) for p in sorted((SPEECH_DIR / "_silence_").glob("*.flac"))])]
    rec = build_test_recording([words[i] for i in order], background, rng=np.random.default_rng(5),
                               gap_s=(2.5, 3.5), snr_db=(20.0, 30.0))  # fmt: skip
    lead = int(LEAD_IN_S * 44100) - int(rec.events[0].start_s * 44100)
    waveform = np.concatenate([rec.waveform[:lead] if lead > 0 else np.zeros(0, np.float32), rec.waveform])
    path = tmp_path_factory.mktemp("microphone") / "words.wav"
    sf.write(path, waveform, 44100, subtype="PCM_16")
    return path, [e.label for e in rec.events], waveform.size / 44100


def _matched(said, heard) -> int:
    """Length of the longest common subsequence: words heard in the order they were said."""
    table = np.zeros((len(said) + 1, len(heard) + 1), int)
    for i, a in enumerate(said):
        for j, b in enumerate(heard):
            table[i + 1, j + 1] = table[i, j] + 1 if a == b else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])


@pytest.mark.browser
def test_the_recogniser_listening_to_a_microphone_reports_the_words_said(node_modules, tfjs_export, microphone):
    if chromium.missing():
        pytest.skip(chromium.missing())
    wav, said, seconds = microphone
    flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required")  # fmt: skip
    with serve({"js": JS_DIR, "data": tfjs_export[0]}) as site, chromium.driver(extra_flags=flags) as browser:
        query = urllib.parse.urlencode({"model": "/data/model.json", "metadata": "/data/metadata.json",
                                        "seconds": f"{seconds - 0.5:.2f}", "threshold": 0.75, "overlap": 0.5,
                                        "suppression": 1000})  # fmt: skip
        browser.get(f"{site}/js/listen.html?{query}")
        result = browser.execute_async_script("window.listenResult.then(arguments[arguments.length - 1]);")
    assert result["ok"], result.get("error")
    assert result["wordLabels"][0] == "_background_noise_" and "_silence_" not in result["wordLabels"]
    heard = [d["label"] for d in result["detections"]]
    assert all(label in SPOKEN for label in heard), heard  # noise never fires as a word
    matched = _matched(said, heard)
    assert matched >= 6, (said, result["detections"])
    assert len(heard) - matched <= 2, (said, result["detections"])  # at most two words heard that were not said
