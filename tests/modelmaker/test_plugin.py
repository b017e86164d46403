"""Our BrowserFftSpec driven by the real TFLite Model Maker 0.4.3 (``tox -e mm043``, TF 2.15 / Keras 2).

Model Maker's own ``DataLoader.from_folder``, ``audio_classifier.create``,
``evaluate`` and ``export`` run unchanged on real Speech Commands clips
(converted to the 16-bit 44.1 kHz WAV that Model Maker reads), and the
exported .tflite classifies held-out speakers.
"""

from __future__ import annotations

import json
import pathlib
import zipfile

import numpy as np
import pytest

from mm_browserfft import audio, frontend, model_maker
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

if not model_maker.is_available():
    pytest.skip(
        "needs the real tflite-model-maker 0.4.3, which imports only on TensorFlow < 2.16 "
        "(run `tox -e mm043`; recipe in shared/reference/model-maker-reference-env.md)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.modelmaker

WORDS = ("no", "up", "yes")  # already in Model Maker's (sorted) label order
TRAIN_PER_WORD = 24
TEST_PER_WORD = 12
ONE_SECOND_16K = 16000


@pytest.fixture(scope="module")
def mm():
    """The ``tflite_model_maker`` package, imported behind the Task Library shim."""
    return model_maker.import_model_maker()


def _full_clips(folder: pathlib.Path, *, heldout: bool, count: int) -> list:
    """The first ``count`` full-second clips in ``folder`` from (non-)held-out speakers."""
    paths = [
        path
        for path in sorted(folder.glob("*.flac"))
        if is_heldout_speaker(speaker_id(path)) == heldout and audio.audio_info(path).frames == ONE_SECOND_16K
    ]
    assert len(paths) >= count, f"only {len(paths)} full clips in {folder}"
    return paths[:count]


def _write_wav_folder(root: pathlib.Path, speech_dir: pathlib.Path, *, heldout: bool, count: int) -> pathlib.Path:
    """``root/<word>/<stem>.wav``: 16-bit PCM, 44.1 kHz (the only format Model Maker decodes)."""
    import soundfile as sf

    for word in WORDS:
        (root / word).mkdir(parents=True)
        for path in _full_clips(speech_dir / word, heldout=heldout, count=count):
            sf.write(root / word / f"{path.stem}.wav", audio.load_audio(path), frontend.SAMPLE_RATE, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def wav_folders(tmp_path_factory, speech_dir):
    """``(train, test)`` WAV folders, speaker-disjoint."""
    root = tmp_path_factory.mktemp("mm_wavs")
    return (
        _write_wav_folder(root / "train", speech_dir, heldout=False, count=TRAIN_PER_WORD),
        _write_wav_folder(root / "test", speech_dir, heldout=True, count=TEST_PER_WORD),
    )


def _read_wav(path: pathlib.Path) -> np.ndarray:
    """float32 ``[n]`` as ``tf.audio.decode_wav`` decodes 16-bit PCM (int16 / 32768)."""
    import soundfile as sf

    return sf.read(path, dtype="int16")[0].astype(np.float32) / 32768.0


def test_model_maker_takes_our_spec_as_its_own(mm):
    from tensorflow_examples.lite.model_maker.core.task.model_spec.audio_spec import BaseSpec

    from mm_browserfft.spec import BrowserFftSpec

    spec = BrowserFftSpec()
    assert isinstance(spec, BaseSpec)
    assert model_maker.install() is True  # idempotent
    assert issubclass(type("Custom", (BrowserFftSpec,), {}), BaseSpec)
    assert not issubclass(int, BaseSpec)


def test_model_maker_data_loader_yields_our_spectrograms(mm, wav_folders):
    from mm_browserfft.spec import BrowserFftSpec

    train_dir, _ = wav_folders
    loader = mm.audio_classifier.DataLoader.from_folder(BrowserFftSpec(), str(train_dir), shuffle=False)
    assert list(loader.index_to_label) == list(WORDS)
    assert len(loader) == len(WORDS) * TRAIN_PER_WORD

    spectrograms, labels = next(iter(loader.gen_dataset(batch_size=4, is_training=False)))
    assert spectrograms.shape == (4, *frontend.SPECTROGRAM_SHAPE)
    assert labels.shape == (4, len(WORDS))
    first = sorted((train_dir / WORDS[0]).glob("*.wav"))[0]  # from_folder sorts when not shuffling
    window = _read_wav(first)[: frontend.WAVEFORM_LENGTH] + audio.noise_floor()  # evaluation: the fixed floor, then the front end
    np.testing.assert_allclose(spectrograms[0].numpy(), frontend.spectrogram(window), atol=1e-3)
    np.testing.assert_array_equal(labels[0].numpy(), [1.0, 0.0, 0.0])


def test_model_maker_training_windows_carry_our_augmentation(mm, wav_folders, tmp_path):
    import soundfile as sf

    from mm_browserfft.spec import BrowserFftSpec

    # a background recording that whistles at 3 kHz, mixed into every training window at 0 dB; Model Maker's
    # pipeline first asks for it inside a traced map function
    t = np.arange(2 * frontend.SAMPLE_RATE) / frontend.SAMPLE_RATE
    hiss = 0.01 * np.random.default_rng(2).standard_normal(t.size)
    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "noise" / "whistle.wav", (hiss + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32),
             frontend.SAMPLE_RATE, subtype="PCM_16")  # fmt: skip
    spec = BrowserFftSpec(background_noise=tmp_path / "noise", background_prob=1.0, background_snr_db=(0, 0), seed=0)
    loader = mm.audio_classifier.DataLoader.from_folder(spec, str(wav_folders[0]), shuffle=False)
    at_3k = lambda batch: batch.numpy()[:, :, 138:142, 0].mean(axis=(1, 2))  # noqa: E731  (21.5 Hz bins)
    training = np.concatenate([at_3k(x) for x, _ in loader.gen_dataset(batch_size=16, is_training=True)])
    evaluation = np.concatenate([at_3k(x) for x, _ in loader.gen_dataset(batch_size=16, is_training=False)])
    assert len(training) and len(evaluation)
    assert training.min() > 1.5 > 0.5 > evaluation.max()  # our own DataLoader on the suite's clips: 2.55 and 0.27


def _interpreter(path: pathlib.Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _classify(interpreter, waveform: np.ndarray) -> np.ndarray:
    """Probabilities ``[N]`` for one window ``[44032]``."""
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], waveform[np.newaxis].astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0]


@pytest.mark.slow
def test_model_maker_create_evaluate_export_classifies_heldout_speakers(mm, wav_folders, tmp_path):
    from mm_browserfft.spec import BrowserFftSpec

    train_dir, test_dir = wav_folders
    spec = BrowserFftSpec(model_dir=str(tmp_path / "model_dir"))
    train = mm.audio_classifier.DataLoader.from_folder(spec, str(train_dir), cache=True)
    test = mm.audio_classifier.DataLoader.from_folder(spec, str(test_dir), shuffle=False)

    model = mm.audio_classifier.create(train, spec, epochs=8, batch_size=16)
    assert model.model_spec is spec
    loss, accuracy = model.evaluate(test)
    assert np.isfinite(loss) and accuracy > 0.7, (loss, accuracy)  # chance is 1/3

    export_dir = tmp_path / "export"
    model.export(str(export_dir), export_format=[mm.ExportFormat.TFLITE, mm.ExportFormat.LABEL])
    tflite_path = export_dir / "model.tflite"
    assert (export_dir / "labels.txt").read_text() == "\n".join(WORDS)

    # Metadata: Model Maker's JSON beside the model, the labels zipped into it.
    metadata = json.loads((export_dir / "model.json").read_text())
    assert metadata["subgraph_metadata"][0]["input_tensor_metadata"][0]["name"] == "audio_clip"
    with zipfile.ZipFile(tflite_path) as bundle:
        (label_file,) = bundle.namelist()
        assert bundle.read(label_file).decode().split() == list(WORDS)

    interpreter = _interpreter(tflite_path)
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape"]) == [1, frontend.WAVEFORM_LENGTH]
    truth, predicted = [], []
    for index, word in enumerate(WORDS):
        for path in sorted((test_dir / word).glob("*.wav")):
            probabilities = _classify(interpreter, _read_wav(path)[: frontend.WAVEFORM_LENGTH])
            assert probabilities.shape == (len(WORDS),)
            np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-4)
            truth.append(index)
            predicted.append(int(np.argmax(probabilities)))
    tflite_accuracy = float(np.mean(np.array(truth) == np.array(predicted)))
    assert tflite_accuracy > 0.7, tflite_accuracy
    # The .tflite and the Keras model agree (same windows, deterministic evaluation).
    assert abs(tflite_accuracy - accuracy) < 0.1, (tflite_accuracy, accuracy)

    # Model Maker's own QuantizationConfig reaches our export_tflite and works (dynamic range).
    dynamic_dir = tmp_path / "dynamic"
    model.export(str(dynamic_dir), quantization_config=mm.config.QuantizationConfig.for_dynamic())
    dynamic_path = dynamic_dir / "model.tflite"
    assert dynamic_path.stat().st_size < tflite_path.stat().st_size / 2
    dynamic = _interpreter(dynamic_path)
    first = sorted((test_dir / WORDS[0]).glob("*.wav"))[0]
    window = _read_wav(first)[: frontend.WAVEFORM_LENGTH]
    np.testing.assert_allclose(_classify(dynamic, window), _classify(interpreter, window), atol=0.05)
