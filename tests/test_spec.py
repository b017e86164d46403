"""BrowserFftSpec: Model Maker's audio_spec_test, and the fixes (copied base, padding, augmentation, strategy)."""

from __future__ import annotations

import inspect
import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from mm_browserfft import config
from mm_browserfft.audio import noise_floor
from mm_browserfft.errors import InvalidInputError, ModelFormatError
from mm_browserfft.frontend import SAMPLE_RATE, spectrogram
from mm_browserfft.metadata import read_associated_files, read_metadata
from mm_browserfft.spec import HEAD_LAYER, BrowserFftSpec

MB = 1024 * 1024


@pytest.fixture(scope="module")
def spec(random_base_dir):
    return BrowserFftSpec(base_model=str(random_base_dir), seed=0)


def test_the_seed_surface():
    params = inspect.signature(BrowserFftSpec).parameters
    assert list(params)[:2] == ["model_dir", "strategy"]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name not in ("model_dir", "strategy"))
    assert BrowserFftSpec.EXPECTED_WAVEFORM_LENGTH == 44032
    spec = BrowserFftSpec()
    assert spec.target_sample_rate == 44100 and spec.get_default_quantization_config() is None
    assert spec.strategy is tf.distribute.get_strategy()
    assert os.path.isdir(spec.model_dir) and BrowserFftSpec("/x/y").model_dir == "/x/y"
    os.rmdir(spec.model_dir)
    for method, names in {
        "create_model": ["num_classes", "train_whole_model"],
        "create_serving_model": ["training_model"],
        "export_tflite": ["model", "tflite_filepath", "with_metadata", "export_metadata_json_file", "index_to_label",
                          "quantization_config"],
        "preprocess_ds": ["ds", "is_training", "cache_fn"],
        "run_classifier": ["model", "epochs", "train_ds", "validation_ds", "kwargs"],
    }.items():  # fmt: skip
        assert list(inspect.signature(getattr(spec, method)).parameters) == names


def test_base_shapes(spec):
    assert tuple(spec.base.input_shape) == (None, 43, 232, 1) and tuple(spec.base.output_shape) == (None, 20)


@pytest.mark.parametrize("num_classes", [2, 5, 20])
def test_create_model_shapes_and_trainable_head(spec, num_classes):
    model = spec.create_model(num_classes)
    assert tuple(model.input_shape) == (None, 43, 232, 1) and tuple(model.output_shape) == (None, num_classes)
    assert model.layers[-1].name == HEAD_LAYER
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 2001 * num_classes
    assert model.count_params() == 1_428_664 + 2001 * num_classes


def test_create_model_is_repeatable_and_copies_the_base(spec):
    first, second = spec.create_model(3), spec.create_model(3, train_whole_model=True)
    assert not set(map(id, first.layers)) & set(map(id, second.layers))
    assert sum(int(np.prod(w.shape)) for w in second.trainable_weights) == 1_428_664 + 2001 * 3
    for layer in spec.base.layers[:-1]:
        for ours, theirs in zip(first.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    second.get_layer("dense_1").kernel.assign_add(tf.ones_like(second.get_layer("dense_1").kernel))
    assert not np.array_equal(second.get_layer("dense_1").get_weights()[0], spec.base.get_layer("dense_1").get_weights()[0])


@pytest.mark.parametrize("num_classes", [0, 1])
def test_create_model_rejects_fewer_than_two_classes(spec, num_classes):
    with pytest.raises(ValueError):
        spec.create_model(num_classes)


def test_a_base_with_nan_weights_is_refused_naming_it_before_training(random_base_dir, tmp_path):
    from mm_browserfft import tfjs

    model = tfjs.load_tfjs(random_base_dir)
    kernel = model.get_layer("dense_1").kernel
    kernel.assign(np.where(np.arange(kernel.shape[1]) == 7, np.nan, kernel.numpy()).astype(np.float32))
    broken = tfjs.save_tfjs(model, tmp_path / "broken")
    with pytest.raises(ModelFormatError, match=f"{broken}: the base's weights .*dense_1.* hold NaN or infinite values"):
        BrowserFftSpec(base_model=broken).create_model(2)


def test_models_are_built_in_the_strategy_scope(random_base_dir):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    spec = BrowserFftSpec(strategy=strategy, base_model=str(random_base_dir))
    model = spec.create_model(2)
    assert spec.strategy is strategy
    in_scope = strategy.extended.variable_created_in_scope
    assert all(in_scope(v) for v in _tf_variables(model))
    elsewhere = BrowserFftSpec(base_model=str(random_base_dir)).create_model(2)
    assert not any(in_scope(v) for v in _tf_variables(elsewhere))


def _tf_variables(model) -> list:
    """The ``tf.Variable`` behind each weight (Keras 2 weights are ones, Keras 3 ones wrap them)."""
    return [v if isinstance(v, tf.Variable) else v.value for v in model.weights]


def test_serving_model_equals_numpy_front_end_plus_training_model(spec):
    model = spec.create_model(4)
    serving = spec.create_serving_model(model)
    assert tuple(serving.input_shape) == (None, 44032) and tuple(serving.output_shape) == (None, 4)
    rng = np.random.default_rng(0)
    waves = rng.uniform(-0.3, 0.3, (3, 44032)).astype(np.float32)
    expected = model(spectrogram(waves + noise_floor()), training=False).numpy()  # the fixed floor, then the front end
    np.testing.assert_allclose(serving(waves, training=False).numpy(), expected, atol=1e-4)


def test_serving_model_and_tflite_put_the_noise_floor_under_digital_silence(spec):
    """The floor is in the waveform models themselves, where it changes what a trimmed clip scores."""
    from conftest import real_clips

    from mm_browserfft.audio import load_audio
    from mm_browserfft.export import convert_to_tflite, run_tflite

    window = np.zeros((1, 44032), np.float32)
    clip = load_audio(real_clips("no", 1)[0])[:44032]
    window[0, : len(clip)] = clip
    window[0, :13000] = 0.0  # a start trimmed to digital silence
    model = spec.create_model(4)
    serving = spec.create_serving_model(model)
    with_floor = model(spectrogram(window + noise_floor()), training=False).numpy()
    without = model(spectrogram(window), training=False).numpy()
    assert np.abs(with_floor - without).max() > 1e-3  # the floor matters on this clip
    np.testing.assert_allclose(serving(window, training=False).numpy(), with_floor, atol=1e-4)
    np.testing.assert_allclose(run_tflite(convert_to_tflite(serving), window), with_floor, atol=1e-3)


def _clips(*lengths, label=0):
    rng = np.random.default_rng(1)
    return [(rng.uniform(-0.5, 0.5, n).astype(np.float32), label) for n in lengths]


def _run(spec, clips, **kwargs):
    ds = tf.data.Dataset.from_generator(
        lambda: iter(clips), output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32))
    )
    return [(x.numpy(), int(y)) for x, y in spec.preprocess_ds(ds, **kwargs)]


def test_preprocess_ds_chunks_like_model_maker_and_can_pad():
    clips = _clips(44031, 44032, 2 * 44032 + 5, 3 * 44032)
    out = _run(BrowserFftSpec(), clips)
    assert len(out) == 6 and all(x.shape == (43, 232, 1) for x, _ in out)
    np.testing.assert_allclose(out[0][0], spectrogram(clips[1][0] + noise_floor()), atol=1e-4)
    np.testing.assert_allclose(out[2][0], spectrogram(clips[2][0][44032:88064] + noise_floor()), atol=1e-4)
    assert len(_run(BrowserFftSpec(pad_short_clips=True), clips)) == 7


def test_preprocess_ds_noise_only_in_training_and_cache_fn():
    clips = _clips(44032, 44032)
    spec = BrowserFftSpec(seed=1)
    evaluation = [x for x, _ in _run(spec, clips)]
    np.testing.assert_array_equal(evaluation[0], [x for x, _ in _run(spec, clips)][0])
    training = [x for x, _ in _run(spec, clips, is_training=True)]
    moved = np.abs(training[0] - evaluation[0])
    assert 0 < moved.max() < 0.1 and np.median(moved) < 1e-3  # 1e-5 noise against a loud clip
    seen = []
    cached = _run(spec, clips, cache_fn=lambda ds: (seen.append(ds.element_spec), ds)[1])
    assert len(cached) == 2 and seen[0][0].shape.as_list() == [43, 232, 1]  # cached after the front end


def test_inference_sees_a_trimmed_clip_as_training_did():
    """Digital silence: training adds fresh 1e-5 noise, inference the fixed floor; without it the plane shifts."""
    from conftest import real_clips

    from mm_browserfft.audio import load_audio

    window = np.zeros(44032, np.float32)
    clip = load_audio(real_clips("yes", 1)[0])[:44032]
    window[: len(clip)] = clip
    window[:13000] = 0.0  # a start trimmed to digital silence
    spec = BrowserFftSpec(seed=0)
    training = np.stack([spec.featurize(window[None], is_training=True).numpy()[0] for _ in range(3)])
    inference = spec.featurize(window[None]).numpy()[0]
    bare = spectrogram(window[None])[0]
    assert np.median(np.abs(inference - training)) < 0.03  # the noise's own bins differ; the plane does not
    assert np.median(np.abs(bare - training)) > 0.05  # zeros hundreds of dB down stretch the z-score


def test_augmentation_time_shift_masks_and_background(tmp_path):
    noise = np.random.default_rng(2).normal(0, 0.1, SAMPLE_RATE * 2).astype(np.float32)
    os.makedirs(tmp_path / "noise")
    sf.write(tmp_path / "noise" / "white.flac", noise, SAMPLE_RATE)
    t = np.arange(44032) / SAMPLE_RATE
    # a tone over a -60 dB noise floor: a bare tone's far bins would be FFT rounding noise only
    floor = 1e-3 * np.random.default_rng(3).standard_normal(t.size)
    tone = np.tile((0.5 * np.sin(2 * np.pi * 440 * t) + floor).astype(np.float32), (8, 1))
    masked = BrowserFftSpec(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=30, seed=0)
    x = masked.featurize(tone, is_training=True).numpy()
    zero_rows = (x == 0).all(axis=(2, 3)).sum(axis=1)
    zero_cols = (x == 0).all(axis=(1, 3)).sum(axis=1)
    assert zero_rows.max() > 0 and zero_cols.max() > 0 and zero_rows.max() <= 20 and zero_cols.max() <= 60
    assert masked.augments and not BrowserFftSpec().augments
    shifted = BrowserFftSpec(time_shift_s=0.2, seed=0)
    assert not np.allclose(shifted.featurize(tone, is_training=True), spectrogram(tone), atol=1e-2)
    unshifted = spectrogram(tone + noise_floor())  # evaluation: no shift, the fixed floor
    np.testing.assert_allclose(shifted.featurize(tone).numpy(), unshifted, atol=5e-3)  # float32 vs float64 FFT
    # the background recording whistles at 3 kHz: in every training window at 10 dB, never in evaluation
    whistle = 0.1 * np.sin(2 * np.pi * 3000 * np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE)
    sf.write(tmp_path / "noise" / "white.flac", (noise + whistle).astype(np.float32), SAMPLE_RATE)
    mixed = BrowserFftSpec(background_noise=tmp_path / "noise", background_snr_db=(10, 10), background_prob=1.0, seed=0)
    at_3k = lambda spectrograms: np.asarray(spectrograms)[:, :, 138:142, 0].mean(axis=(1, 2))  # noqa: E731  (21.5 Hz bins)
    assert at_3k(mixed.featurize(tone, is_training=True)).min() > 2.0 > 0.0 > at_3k(mixed.featurize(tone)).max()
    # the same through tf.data, the path of whole-model training and of Model Maker's own pipeline, on a fresh
    # spec: its recording is first asked for inside a traced map function
    fresh = BrowserFftSpec(background_noise=tmp_path / "noise", background_snr_db=(10, 10), background_prob=1.0, seed=0)
    clips = tf.data.Dataset.from_tensor_slices((tone[:4], [0, 1, 0, 1]))
    assert at_3k(np.stack([x for x, _ in fresh.preprocess_ds(clips, is_training=True)])).min() > 2.0
    with pytest.raises(InvalidInputError):
        BrowserFftSpec(background_snr_db=(20, 5))


def test_run_classifier_compiles_like_model_maker(spec):
    model = spec.create_model(2)
    x = spectrogram(np.random.default_rng(3).uniform(-0.5, 0.5, (4, 44032)).astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot([0, 1, 0, 1], 2))).batch(2)
    history = spec.run_classifier(model, 2, ds, ds, verbose=0)
    assert set(history.history) == {"acc", "loss", "val_acc", "val_loss"} and len(history.history["acc"]) == 2
    assert type(model.optimizer).__name__ == "Adam"


@pytest.mark.parametrize("num_classes", [2, 5])
def test_export_tflite_size_and_metadata(spec, tmp_path, num_classes):
    labels = [f"label_{i}" for i in range(num_classes)]
    path = tmp_path / "model.tflite"
    spec.export_tflite(spec.create_model(num_classes), str(path), index_to_label=labels)
    assert 5 * MB < os.path.getsize(path) < 7 * MB  # Model Maker: 6 MB +- 1 MB
    meta = read_metadata(path)
    assert meta["name"] == "AudioClassifier" and meta["author"] == "TensorFlow Lite Model Maker"
    audio_props = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["content"]["content_properties"]
    assert audio_props == {"sample_rate": 44100, "channels": 1}
    assert read_associated_files(path)["probability_labels.txt"].decode() == "\n".join(labels)
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert sidecar["subgraph_metadata"][0]["output_tensor_metadata"][0]["name"] == "probability"


def test_export_tflite_dynamic_range_untrained(spec, tmp_path):
    path = tmp_path / "dynamic.tflite"
    spec.export_tflite(
        spec.create_model(5), str(path), with_metadata=False, quantization_config=config.QuantizationConfig.for_dynamic()
    )
    assert os.path.getsize(path) < 2 * MB and not (tmp_path / "dynamic.json").exists()  # Model Maker: 1 MB +- 1 MB


def test_model_maker_compatibility_names_preprocess_model_and_tfjs_sc_model(spec):
    # Model Maker's own tests and notebooks reach into these two attributes.
    waves = np.random.default_rng(5).uniform(-0.5, 0.5, (2, 44032)).astype(np.float32)
    pre = spec._preprocess_model
    assert tuple(pre.input_shape) == (None, 44032) and tuple(pre.output_shape) == (None, 43, 232, 1)
    np.testing.assert_allclose(pre.predict(waves, verbose=0), spectrogram(waves), atol=1e-5)
    assert spec._preprocess_model is pre
    base = spec._tfjs_sc_model
    assert base is spec.base
    assert tuple(base.input_shape) == (None, 43, 232, 1) and tuple(base.output_shape) == (None, 20)


def test_a_teachable_machine_audio_export_is_accepted_as_a_base(tmp_path):
    # Teachable Machine's layout (tfjs-models speech-commands transfer learning): the 18w layers up
    # to dense_1 in a functional model, then a nested Sequential holding NewHeadDense.
    from mm_browserfft import tfjs
    from mm_browserfft.base import build_18w

    tf.keras.utils.set_random_seed(3)
    body = build_18w()
    inputs = tf.keras.Input(shape=(43, 232, 1), name="conv2d_1_input")
    h = inputs
    for layer in body.layers[: [layer.name for layer in body.layers].index("dense_1") + 1]:
        h = layer(h)
    head = tf.keras.Sequential(
        [tf.keras.Input(shape=(2000,)), tf.keras.layers.Dense(3, activation="softmax", name="NewHeadDense")],
        name="sequential_1",
    )
    folder = tfjs.save_tfjs(tf.keras.Model(inputs, head(h), name="model1"), tmp_path / "tm")
    assert tfjs.load_tfjs(folder).layers[-1].name == "sequential_1"  # nested, as Teachable Machine writes it

    spec = BrowserFftSpec(base_model=folder)
    assert [layer.name for layer in spec.base.layers][-2:] == ["dense_1", "NewHeadDense"]
    model = spec.create_model(2)
    x = spectrogram(np.random.default_rng(6).uniform(-0.5, 0.5, (2, 44032)).astype(np.float32))
    embed = spec.embedding_model(model)
    np.testing.assert_allclose(embed(x).numpy(), spec.embedding_model(spec.base)(x).numpy(), atol=1e-5)
    with pytest.raises(ModelFormatError, match="must end in dense_1"):
        BrowserFftSpec(base_model=tf.keras.Sequential([tf.keras.Input(shape=(43, 232, 1)), tf.keras.layers.Flatten()])).base
