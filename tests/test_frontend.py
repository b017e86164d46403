"""The browser-FFT front end: window, shapes, NumPy reference vs Keras layer vs TFLite, finiteness.

Agreement is measured on real speech (the Speech Commands clips of tests/data
resampled to 44.1 kHz by :func:`mm_browserfft.audio.load_audio`). The bounds asserted
are the measured ones with a margin (numbers from TF 2.21 / LiteRT 2.3 on x86-64, 40 clips):

=========================================  =========  ============
model_maker mode (z)                       max        99.9th pct
=========================================  =========  ============
Keras, run by TensorFlow (float64 graph)   0          0
TFLite (float32 graph, RFFT2D in double)   3.2e-3     3.0e-5
=========================================  =========  ============

The TFLite differences are the float32 rounding of the windowed samples, largest on
the quietest bins, 100-200 dB under the clip's loudest bin, that Model Maker mode keeps
as the browser reports them (docs/frontend.md). (A float32 TensorFlow FFT in the Keras
graph measured 3e-4 to 7e-4 on bins 80-90 dB under: hence the float64 graph outside
:func:`~mm_browserfft.frontend.float32_graph`.)
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from mm_browserfft import frontend as fe
from mm_browserfft.audio import NOISE_FLOOR_PERIOD, load_audio, noise_floor
from mm_browserfft.errors import InvalidInputError
from mm_browserfft.layers import BrowserFftLayer, NoiseFloorLayer

DATA = pathlib.Path(__file__).resolve().parent / "data" / "speech_commands"
MODES = ("model_maker", "browser")
# Browser-mode (dB) comparisons are made on bins within this range of the clip's
# loudest bin: below it a float32 FFT returns rounding noise, not the signal.
BROWSER_COMPARE_RANGE_DB = 90.0


def _fit(waveform: np.ndarray) -> np.ndarray:
    """Zero-pad or cut a clip to one model window."""
    out = np.zeros(fe.WAVEFORM_LENGTH, np.float32)
    n = min(fe.WAVEFORM_LENGTH, waveform.size)
    out[:n] = waveform[:n]
    return out


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~40 real clips spread over all labels, ``[40, 44032]`` float32 at 44.1 kHz."""
    files = sorted(DATA.glob("*/*.flac"))
    if not files:
        pytest.skip(f"no Speech Commands clips under {DATA}")
    picked = files[:: max(1, len(files) // 40)][:40]
    return np.stack([_fit(load_audio(f)) for f in picked])


def _square_wave() -> np.ndarray:
    t = np.arange(fe.WAVEFORM_LENGTH)
    return np.where(np.sin(2 * np.pi * 440 * t / fe.SAMPLE_RATE) >= 0, 1.0, -1.0).astype(np.float32)


@pytest.fixture(scope="module")
def hard_inputs(speech) -> dict:
    """Signals that break a naive log spectrogram (NaN / -inf in Model Maker)."""
    n = fe.WAVEFORM_LENGTH
    rng = np.random.default_rng(0)
    leading_zeros = speech[0].copy()
    leading_zeros[: fe.HOP_LENGTH] = 0.0
    trailing_silence = speech[1].copy()
    trailing_silence[n // 2 :] = 0.0
    return {
        "silence": np.zeros(n, np.float32),
        "leading_zeros": leading_zeros,
        "trailing_silence": trailing_silence,
        "constant": np.full(n, 0.5, np.float32),
        "minus_full_scale": np.full(n, -1.0, np.float32),
        "dc_plus_sine": (0.3 + 1e-3 * np.sin(0.1 * np.arange(n))).astype(np.float32),
        "denormal_constant": np.full(n, 1e-40, np.float32),
        "denormal_noise": (1e-40 * rng.standard_normal(n)).astype(np.float32),
        "smallest_impulse": np.where(np.arange(n) == 5000, np.float32(1e-45), np.float32(0)),
        "clipped_square": _square_wave(),
    }


# ----------------------------------------------------------------------------- window


def test_float32_window_is_evaluated_in_float32():
    w = fe.blackman_window()
    assert w.dtype == np.float32 and w.shape == (fe.FFT_SIZE,)
    # the value stored in sc_preproc_model's graph, bit for bit
    assert w[0] == np.float32(1.4901161e-8)
    assert w[0].tobytes() == np.float32(1.4901161e-8).tobytes()
    w64 = fe.blackman_window(float32_taps=False)
    assert np.max(np.abs(w - w64)) < 3e-7
    # float32 evaluation is not float64 evaluation cast to float32
    assert np.any(w != w64.astype(np.float32))


def test_float64_window_is_the_periodic_blackman():
    w = fe.blackman_window(float32_taps=False)
    assert w.dtype == np.float64
    # periodic of length N == symmetric of length N + 1 without its last tap
    np.testing.assert_allclose(w, np.blackman(fe.FFT_SIZE + 1)[:-1], rtol=0, atol=1e-15)
    assert abs(w[0]) < 1e-16
    assert w[fe.FFT_SIZE // 2] == pytest.approx(1.0, abs=1e-15)
    # periodic: symmetric about N/2, not about (N-1)/2
    np.testing.assert_allclose(w[1:], w[1:][::-1], rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("mode", MODES)
def test_reference_shapes_and_batching(speech, mode):
    one = fe.spectrogram(speech[0], mode=mode)
    assert one.shape == fe.SPECTROGRAM_SHAPE == (43, 232, 1) and one.dtype == np.float32
    batch = fe.spectrogram(speech[:3], mode=mode)
    assert batch.shape == (3,) + fe.SPECTROGRAM_SHAPE
    np.testing.assert_array_equal(batch[0], one)


def test_model_maker_mode_is_a_z_score(speech):
    z = fe.spectrogram(speech[:5]).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1.0, atol=1e-5)


def test_browser_mode_reads_0_dbfs_sine_at_minus_13_6_db():
    # a full-scale sine centred on bin 100: |X| / N = coherent gain 0.42 / 2
    t = np.arange(fe.WAVEFORM_LENGTH)
    sine = np.sin(2 * np.pi * 100 * t / fe.FFT_SIZE).astype(np.float32)
    db = fe.spectrogram(sine, mode="browser")[..., 0]
    assert db[5:, 100] == pytest.approx(20 * np.log10(0.42 / 2), abs=1e-3)


def test_bad_input_is_rejected():
    with pytest.raises(InvalidInputError, match="44032"):
        fe.spectrogram(np.zeros(16000, np.float32))
    with pytest.raises(InvalidInputError, match="mode"):
        fe.spectrogram(np.zeros(fe.WAVEFORM_LENGTH, np.float32), mode="db")


# ----------------------------------------------------------------------------- Keras / TFLite


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


def _keras(tf, waves: np.ndarray, mode: str) -> np.ndarray:
    layer = BrowserFftLayer(mode=mode)
    return np.asarray(layer(tf.constant(waves)))


def _convert(tf, mode: str) -> bytes:
    """The layer as a TFLite flatbuffer, input float32 [1, 44032], builtin ops only."""
    layer = BrowserFftLayer(mode=mode)
    fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([1, fe.WAVEFORM_LENGTH], tf.float32)])
    with fe.float32_graph():
        concrete = fn.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], layer)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on Flex / custom ops
    return converter.convert()


@pytest.fixture(scope="module")
def tflite_models(tf) -> dict:
    pytest.importorskip("ai_edge_litert")
    return {mode: _convert(tf, mode) for mode in MODES}


def _interpreter(model: bytes, *, delegates: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def _tflite(model: bytes, waves: np.ndarray) -> np.ndarray:
    interpreter = _interpreter(model)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for w in np.atleast_2d(waves):
        interpreter.set_tensor(inp["index"], w[np.newaxis].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(results)


def _assert_close_z(got: np.ndarray, ref: np.ndarray, *, max_abs: float, p999: float, median_clip_max: float):
    diff = np.abs(got.astype(np.float64) - ref)
    per_clip = diff.reshape(len(diff), -1).max(axis=1)
    numbers = f"max {diff.max():.2e}, 99.9% {np.percentile(diff, 99.9):.2e}, median clip max {np.median(per_clip):.2e}"
    assert diff.max() <= max_abs, numbers
    assert np.percentile(diff, 99.9) <= p999, numbers
    assert np.median(per_clip) <= median_clip_max, numbers


def _loud_bins(waves: np.ndarray) -> np.ndarray:
    """Mask ``[n, 43, 232, 1]`` of bins within BROWSER_COMPARE_RANGE_DB of each clip's loudest bin."""
    db = fe.spectrogram(waves, mode="browser")
    return db >= db.max(axis=(1, 2, 3), keepdims=True) - BROWSER_COMPARE_RANGE_DB


def test_keras_layer_shapes_and_config(tf):
    for mode in MODES:
        layer = BrowserFftLayer(mode=mode)
        out = layer(tf.zeros([2, fe.WAVEFORM_LENGTH]))
        assert tuple(out.shape) == (2,) + fe.SPECTROGRAM_SHAPE
        assert tuple(layer.compute_output_shape((None, fe.WAVEFORM_LENGTH))) == (None,) + fe.SPECTROGRAM_SHAPE
        clone = type(layer).from_config(layer.get_config())
        assert clone.mode == mode and not clone.trainable
    with pytest.raises(InvalidInputError, match="mode"):
        BrowserFftLayer(mode="log")


def test_noise_floor_layer_adds_the_fixed_floor_and_round_trips(tf):
    waves = np.random.default_rng(4).uniform(-0.5, 0.5, (2, fe.WAVEFORM_LENGTH)).astype(np.float32)
    layer = NoiseFloorLayer()
    np.testing.assert_array_equal(layer(tf.constant(waves)).numpy(), waves + noise_floor())
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(NoiseFloorLayer(seed=3)))
    assert isinstance(clone, NoiseFloorLayer) and clone.seed == 3 and not clone.trainable
    np.testing.assert_array_equal(clone(tf.zeros([1, fe.WAVEFORM_LENGTH])).numpy()[0], noise_floor(seed=3))


def test_noise_floor_layer_costs_an_export_one_period_not_a_window(tf):
    from mm_browserfft.export import convert_to_tflite

    def size(*layers):
        head = tf.keras.layers.Dense(2, kernel_initializer="zeros")
        return len(convert_to_tflite(tf.keras.Sequential([tf.keras.Input(shape=(fe.WAVEFORM_LENGTH,)), *layers, head])))

    added = size(NoiseFloorLayer()) - size()
    assert 4 * NOISE_FLOOR_PERIOD <= added < 16_000, added  # one period of float32 (a whole window would be 176 KB)


def test_keras_layer_matches_reference_on_speech(tf, speech):
    ref = fe.spectrogram(speech)
    _assert_close_z(_keras(tf, speech, "model_maker"), ref, max_abs=1e-5, p999=1e-6, median_clip_max=1e-6)


def test_keras_layer_browser_mode_matches_reference_on_speech(tf, speech):
    # every bin, however quiet: the float64 graph has no float32 FFT rounding
    diff = np.abs(_keras(tf, speech, "browser") - fe.spectrogram(speech, mode="browser"))
    assert diff.max() <= 1e-3, diff.max()


def test_float32_graph_switches_the_traced_precision(tf):
    layer = BrowserFftLayer()
    signature = tf.TensorSpec([1, fe.WAVEFORM_LENGTH], tf.float32)

    def fft_input_dtypes(concrete) -> set:
        return {op.inputs[0].dtype for op in concrete.graph.get_operations() if op.type == "RFFT"}

    with fe.float32_graph():
        inside = tf.function(layer).get_concrete_function(signature)
    outside = tf.function(layer).get_concrete_function(signature)
    assert fft_input_dtypes(inside) == {tf.float32}
    assert fft_input_dtypes(outside) == {tf.float64}
    assert inside.structured_outputs.dtype == outside.structured_outputs.dtype == tf.float32


def test_tflite_has_builtin_ops_only(tflite_models):
    allowed = {
        "ABS", "PAD", "RESHAPE", "STRIDED_SLICE", "CONCATENATION", "MUL", "RFFT2D", "REAL", "IMAG", "MAXIMUM",
        "REDUCE_MAX", "LOG", "FLOOR", "POW", "SUB", "MEAN", "SQUARED_DIFFERENCE", "SQRT", "ADD", "DIV",
        "LESS", "REDUCE_MIN", "SELECT_V2",
    }  # fmt: skip
    for mode, model in tflite_models.items():
        interpreter = _interpreter(model, delegates=False)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert "RFFT2D" in ops and ops <= allowed, (mode, sorted(ops - allowed))
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert list(inp["shape"]) == [1, fe.WAVEFORM_LENGTH] and inp["dtype"] == np.float32
        assert list(out["shape"]) == [1, *fe.SPECTROGRAM_SHAPE]


def test_tflite_matches_reference_on_speech(tflite_models, speech):
    ref = fe.spectrogram(speech)
    _assert_close_z(_tflite(tflite_models["model_maker"], speech), ref, max_abs=5e-3, p999=6e-5, median_clip_max=5e-5)
    db_ref = fe.spectrogram(speech, mode="browser")
    diff = np.abs(_tflite(tflite_models["browser"], speech) - db_ref)[_loud_bins(speech)]
    assert diff.max() <= 0.05 and np.percentile(diff, 99.9) <= 5e-3, (diff.max(), np.percentile(diff, 99.9))


def test_hard_inputs_are_finite_in_numpy(hard_inputs):
    for name, wave in hard_inputs.items():
        z, db = fe.spectrogram(wave), fe.spectrogram(wave, mode="browser")
        assert np.all(np.isfinite(z)) and np.all(np.isfinite(db)), name
        assert np.all(db >= 10 * np.log10(fe.POWER_FLOOR) - 20 * np.log10(fe.FFT_SIZE) - 1e-3), name
    # digital silence: the documented floor
    assert np.all(fe.spectrogram(hard_inputs["silence"]) == 0.0)
    floor_db = 10 * np.log10(fe.POWER_FLOOR) - 20 * np.log10(fe.FFT_SIZE)
    np.testing.assert_allclose(fe.spectrogram(hard_inputs["silence"], mode="browser"), floor_db, atol=1e-3)
    assert floor_db == pytest.approx(-445.6, abs=0.1)
    # the first frame of a clip with 1024 leading zeros is all floor in browser mode
    db = fe.spectrogram(hard_inputs["leading_zeros"], mode="browser")
    np.testing.assert_allclose(db[0], floor_db, atol=1e-3)
    assert np.all(db[1:] > floor_db + 100)


@pytest.mark.parametrize("runtime", ["keras", "tflite"])
def test_hard_inputs_are_finite_in_tf(tf, tflite_models, hard_inputs, runtime):
    names = list(hard_inputs)
    waves = np.stack([hard_inputs[n] for n in names])
    if runtime == "keras":
        z, db = _keras(tf, waves, "model_maker"), _keras(tf, waves, "browser")
    else:
        z, db = _tflite(tflite_models["model_maker"], waves), _tflite(tflite_models["browser"], waves)
    ref_z = fe.spectrogram(waves)
    # Constant and DC clips: beyond bin 2 every bin is the FFT's own rounding noise (float32
    # here and in the browser, 140 dB under the frame; float64 in the reference, 300 dB
    # under), so their planes are finite but not comparable.
    rounding_noise = {"constant", "minus_full_scale", "dc_plus_sine"}
    bound = np.sqrt(fe.NUM_FRAMES * fe.NUM_BINS)  # no z-score of a plane can exceed it
    for i, name in enumerate(names):
        assert np.all(np.isfinite(z[i])) and np.all(np.isfinite(db[i])), (runtime, name)
        assert np.all(np.abs(z[i]) <= bound), (runtime, name)
        if name not in rounding_noise:
            np.testing.assert_allclose(z[i], ref_z[i], atol=2e-3, err_msg=f"{runtime} {name}")
    silent = [names.index(n) for n in ("silence", "denormal_constant", "denormal_noise", "smallest_impulse")]
    assert np.all(z[silent] == 0.0), runtime


def test_keras_layer_is_finite_up_to_the_largest_float32(tf):
    # the layer divides each clip by its peak sample, so nothing overflows even at 3.4e38
    rng = np.random.default_rng(1)
    wave = (3.4e38 * rng.uniform(-1, 1, fe.WAVEFORM_LENGTH)).astype(np.float32)
    assert np.all(np.isfinite(_keras(tf, wave[np.newaxis], "model_maker")))
    np.testing.assert_allclose(_keras(tf, wave[np.newaxis], "model_maker")[0], fe.spectrogram(wave), atol=1e-3)


def test_keras_layer_stays_float32_under_a_mixed_float16_policy(tf, speech):
    keras = tf.keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input(shape=(fe.WAVEFORM_LENGTH,)), BrowserFftLayer()])
        out = model(tf.constant(speech[:2]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(out), fe.spectrogram(speech[:2]), atol=1e-5)


def test_keras_layer_is_a_registered_serializable_class(tf, tmp_path):
    model = tf.keras.Sequential([tf.keras.Input(shape=(fe.WAVEFORM_LENGTH,)), BrowserFftLayer(mode="browser")])
    path = tmp_path / "frontend.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)  # no custom_objects: the class is registered
    (layer,) = [layer for layer in loaded.layers if isinstance(layer, BrowserFftLayer)]
    assert layer.mode == "browser"
    wave = np.random.default_rng(4).uniform(-0.5, 0.5, (1, fe.WAVEFORM_LENGTH)).astype(np.float32)
    np.testing.assert_allclose(loaded(wave), model(wave), atol=1e-5)
