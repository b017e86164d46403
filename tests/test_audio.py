"""Audio in and framing: decoding, down-mix, resampling, windows, and the frame geometry
of the front end, with property tests (hypothesis) where the rule is arithmetic."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mm_browserfft import audio
from mm_browserfft import frontend as fe
from mm_browserfft.errors import AudioDecodeError, InvalidInputError

N, HOP = fe.WAVEFORM_LENGTH, fe.HOP_LENGTH
FAST = settings(max_examples=40, deadline=None)


def _speechlike(seed: int, n: int = N) -> np.ndarray:
    """Noise bursts under a slow envelope, float32 ``[n]`` in [-1, 1]."""
    rng = np.random.default_rng(seed)
    envelope = np.abs(np.sin(np.linspace(0, 3 * np.pi, n))) ** 3
    return (0.5 * envelope * rng.standard_normal(n)).clip(-1, 1).astype(np.float32)


# ----------------------------------------------------------------------------- windows


@FAST
@given(st.integers(0, 20 * N), st.booleans())
def test_num_windows_and_offsets(n, pad_short):
    count = audio.num_windows(n, pad_short=pad_short)
    expected = n // N
    if pad_short and 0 < n < N:
        expected = 1
    assert count == expected
    np.testing.assert_array_equal(audio.window_offsets(n, pad_short=pad_short), np.arange(count) * N)


@FAST
@given(st.integers(1, 4 * N))
def test_split_windows_are_the_clip_at_the_offsets(n):
    x = np.arange(1, n + 1, dtype=np.float32)
    windows = audio.split_windows(x, pad_short=True)
    assert windows.shape == (audio.num_windows(n, pad_short=True), N)
    if n >= N:
        for w, start in zip(windows, audio.window_offsets(n)):
            np.testing.assert_array_equal(w, x[start : start + N])
    else:  # centred zero padding keeps every sample once
        np.testing.assert_array_equal(windows[0][windows[0] != 0], x)


def test_negative_lengths_and_hops_are_rejected():
    with pytest.raises(InvalidInputError):
        audio.num_windows(-1)


# ----------------------------------------------------------------------------- frame geometry


def test_frame_t_covers_samples_1024_t_minus_1_to_1024_t_plus_1():
    index = np.arange(1, N + 1, dtype=np.float32)  # sample i holds i + 1 (exact in float32)
    frames = fe.frame_waveform(index)
    assert frames.shape == (fe.NUM_FRAMES, fe.FFT_SIZE)
    for t in range(fe.NUM_FRAMES):
        samples = np.arange(HOP * (t - 1), HOP * (t + 1))
        np.testing.assert_array_equal(frames[t], np.where(samples >= 0, samples + 1, 0))


@FAST
@given(st.integers(0, N - 1))
def test_an_impulse_lands_in_two_frames(k):
    impulse = np.zeros(N, np.float32)
    impulse[k] = 1.0
    hits = np.argwhere(fe.frame_waveform(impulse) == 1.0)
    assert [tuple(h) for h in hits] == [(k // HOP, HOP + k % HOP), (k // HOP + 1, k % HOP)][: 2 - (k // HOP == 42)]


@FAST
@given(st.integers(0, 1000))
def test_delay_by_one_hop_shifts_browser_frames_by_one(seed):
    x = _speechlike(seed)
    delayed = np.concatenate([np.zeros(HOP, np.float32), x[:-HOP]])
    a, b = fe.spectrogram(x, mode="browser"), fe.spectrogram(delayed, mode="browser")
    np.testing.assert_array_equal(b[1:], a[:-1])


@FAST
@given(st.integers(0, 1000), st.floats(1e-3, 1e3))
def test_model_maker_mode_is_invariant_to_gain(seed, gain):
    # float32 rounding of x * gain moves deep spectral dips a little: measured max 1.1e-3
    # on white noise and 1.0e-4 on real speech over gains 1e-3..1e3
    x = _speechlike(seed) if seed % 2 else np.random.default_rng(seed).uniform(-1, 1, N).astype(np.float32)
    np.testing.assert_allclose(fe.spectrogram(x * np.float32(gain)), fe.spectrogram(x), rtol=0, atol=2.5e-3)


@FAST
@given(st.integers(0, 1000), st.integers(-10, 10))
def test_power_of_two_gains_change_nothing(seed, exponent):
    x = _speechlike(seed)
    np.testing.assert_allclose(fe.spectrogram(x * np.float32(2.0**exponent)), fe.spectrogram(x), rtol=0, atol=1e-6)


_ANY_FINITE = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-45, -1e-40, 1e-38, 3.4e38, -3.4e38, 1.0, -1.0]),
)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, N, elements=_ANY_FINITE, fill=_ANY_FINITE))
def test_reference_is_finite_for_any_finite_input(x):
    for mode in ("model_maker", "browser"):
        assert np.all(np.isfinite(fe.spectrogram(x, mode=mode))), mode


# ----------------------------------------------------------------------------- resampling


@settings(max_examples=30, deadline=None)
@given(st.integers(8000, 96000), st.integers(0, 50000))
def test_resample_keeps_length_within_one_sample(rate, n):
    x = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    y = audio.resample(x, rate)
    assert y.dtype == np.float32
    assert abs(y.size - n * fe.SAMPLE_RATE / rate) <= 1


def test_resample_keeps_a_tone():
    t = np.arange(16000) / 16000
    y = audio.resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    ideal = np.sin(2 * np.pi * 440 * np.arange(y.size) / fe.SAMPLE_RATE)
    assert np.max(np.abs(y - ideal)[500:-500]) < 1e-3  # away from the edges


# ----------------------------------------------------------------------------- decoding


def _tone(rate: int, channels: int, seconds: float = 0.5) -> np.ndarray:
    """``[frames, channels]`` float64, channel c at amplitude 0.2 (c + 1) / channels."""
    t = np.arange(int(rate * seconds)) / rate
    base = np.sin(2 * np.pi * 330 * t)
    return np.stack([0.2 * (c + 1) / channels * base for c in range(channels)], axis=1)


@pytest.mark.parametrize(
    "suffix, subtype, channels, atol",
    [
        (".wav", "PCM_U8", 1, 1.5e-2),  # 8-bit step 1/128
        (".wav", "PCM_16", 1, 1e-4),
        (".wav", "PCM_24", 1, 1e-6),
        (".wav", "PCM_32", 1, 1e-6),
        (".wav", "FLOAT", 1, 1e-6),
        (".wav", "PCM_16", 2, 1e-4),
        (".wav", "FLOAT", 6, 1e-6),
        (".flac", "PCM_16", 2, 1e-4),
        (".ogg", "VORBIS", 1, 3e-2),
    ],
)
def test_load_audio_decodes_downmixes_and_resamples(tmp_path, suffix, subtype, channels, atol):
    rate = 22050
    data = _tone(rate, channels)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, data, rate, subtype=subtype)
    got = audio.load_audio(path)
    expected = audio.resample(data.mean(axis=1).astype(np.float32), rate)  # WebAudio's down-mix
    assert got.dtype == np.float32 and abs(got.size - data.shape[0] * 2) <= 1
    err = np.abs(got - expected)
    assert err.max() < atol, err.max()


def _wav_bytes(tmp_path) -> bytes:
    path = tmp_path / "whole.wav"
    sf.write(path, _tone(16000, 1), 16000, subtype="PCM_16")
    return path.read_bytes()


@pytest.mark.parametrize("case", ["missing", "empty_file", "text", "truncated", "header_only", "no_frames", "nan",
                                  "rate_1_hz"])
def test_load_audio_errors_name_the_file(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "empty_file":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not audio\n")
    elif case == "truncated":
        whole = _wav_bytes(tmp_path)
        path.write_bytes(whole[: len(whole) // 2])
    elif case == "header_only":
        path.write_bytes(_wav_bytes(tmp_path)[:30])
    elif case == "no_frames":
        sf.write(path, np.zeros((0, 1)), 16000)
    elif case == "nan":
        data = _tone(16000, 1)
        data[100] = np.nan
        sf.write(path, data, 16000, subtype="FLOAT")
    elif case == "rate_1_hz":  # 200 samples that would be 200 s of audio, 8.8 million samples at 44.1 kHz
        wav = bytearray(_wav_bytes(tmp_path)[: 44 + 400])  # a 44-byte header, then 200 16-bit samples
        wav[4:8] = struct.pack("<I", 36 + 400)  # RIFF size
        wav[24:32] = struct.pack("<II", 1, 2)  # the fmt chunk's sample rate and byte rate
        wav[40:44] = struct.pack("<I", 400)  # the data chunk's size
        path.write_bytes(bytes(wav))
    with pytest.raises(AudioDecodeError) as info:
        audio.load_audio(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    if case == "rate_1_hz":
        assert "a sample rate of 1 Hz is not audio this package reads (at least 1000 Hz)" in str(info.value)
        with pytest.raises(AudioDecodeError, match="sample rate of 1 Hz"):
            audio.audio_info(path)


def test_truncated_flac_is_an_error(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, _tone(16000, 1, seconds=2.0), 16000)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioDecodeError, match="cut.flac"):
        audio.load_audio(path)


def test_streamed_blocks_equal_one_shot_decoding(tmp_path):
    rate, seconds = 16000, 300
    rng = np.random.default_rng(3)
    data = (0.3 * rng.standard_normal(rate * seconds)).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, data, rate)
    whole = audio.load_audio(path)
    blocks = list(audio.iter_audio_blocks(path, block_seconds=30))
    assert len(blocks) >= 10
    streamed = np.concatenate(blocks)
    assert abs(streamed.size - whole.size) <= 4
    n = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4


def test_the_noise_floor_is_one_fixed_draw_at_model_makers_level():
    floor = audio.noise_floor()
    assert floor.shape == (fe.WAVEFORM_LENGTH,) and floor.dtype == np.float32
    np.testing.assert_array_equal(floor, audio.noise_floor())  # the same every time: predictions are deterministic
    assert abs(float(np.std(floor)) / audio.NOISE_FLOOR_STDDEV - 1) < 0.02 and abs(float(np.mean(floor))) < 0.05 * audio.NOISE_FLOOR_STDDEV
    assert not np.array_equal(floor, audio.noise_floor(seed=1))
    period = audio.NOISE_FLOOR_PERIOD  # one draw repeated; no 2048-sample frame holds a repeat
    assert period > 2 * fe.HOP_LENGTH
    np.testing.assert_array_equal(floor[period:], floor[: fe.WAVEFORM_LENGTH - period])


def test_the_tail_window_ends_at_the_last_sample_when_the_hop_grid_leaves_samples_unheard():
    from mm_browserfft.audio import tail_window_start

    assert tail_window_start(100_000, 0) is None  # nothing scored: the stream is heard padded instead
    assert tail_window_start(88_064, 88_064) is None  # the last window ended at the last sample
    assert tail_window_start(44_100, 44_032) is None  # a 1 s clip: 68 samples, less than a frame, unheard
    assert tail_window_start(44_032 + HOP, 44_032) == HOP  # a frame unheard: one more window
    assert tail_window_start(100_000, 88_064) == 100_000 - N
