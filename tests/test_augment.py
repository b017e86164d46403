"""Augmentation: what each transform does to a signal, measured on the signal (one clip in NumPy, batches in TensorFlow)."""

import numpy as np
import pytest

from mm_browserfft import augment
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_trim_silence_drops_silence_around_a_word():
    x = np.concatenate([np.zeros(20_000), _tone(0.3), np.zeros(20_000)]).astype(np.float32)
    assert abs(augment.trim_silence(x).size - _tone(0.3).size) <= 2 * 441


def test_place_in_window_keeps_a_short_word_whole_and_crops_a_long_one():
    rng = np.random.default_rng(2)
    assert augment.place_in_window(np.ones(10_000, np.float32), rng, centred_shift=0.05).sum() == pytest.approx(10_000)
    assert augment.place_in_window(np.ones(60_000, np.float32), rng, centred_shift=0.05).shape == (WAVEFORM_LENGTH,)


def test_time_shift_moves_content_and_zero_fills():
    window = np.zeros(WAVEFORM_LENGTH, np.float32)
    window[20_000] = 1.0
    shifted = augment.time_shift(window, np.random.default_rng(3), max_seconds=0.1)
    (where,) = np.flatnonzero(shifted)
    assert abs(where - 20_000) <= 0.1 * SAMPLE_RATE and shifted.sum() == 1.0


def test_random_equalizer_changes_level_per_band_within_its_range():
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32)
    out = augment.random_equalizer(noise, rng, max_db=8.0)
    ratio_db = 10 * np.log10(np.abs(np.fft.rfft(out)) ** 2 / np.abs(np.fft.rfft(noise)) ** 2)
    bands = np.array([np.median(b) for b in np.array_split(ratio_db[100:-100], 20)])
    assert np.all(np.abs(bands) <= 8.5) and bands.max() - bands.min() > 2.0


def test_perturb_speed_scales_length_within_the_factor():
    rng = np.random.default_rng(5)
    lengths = [augment.perturb_speed(_tone(1.0), rng, max_factor=1.2).size for _ in range(20)]
    assert min(lengths) >= SAMPLE_RATE / 1.2 - 2 and max(lengths) <= SAMPLE_RATE * 1.2 + 2
    assert max(lengths) - min(lengths) > 0.05 * SAMPLE_RATE


def test_mix_at_snr_sets_the_ratio_of_levels():
    rng = np.random.default_rng(6)
    x, n = _tone(1.0), rng.standard_normal(SAMPLE_RATE).astype(np.float32) * 3.0
    mixed = augment.mix_at_snr(x, n, 12.0)
    added = mixed - x
    assert 10 * np.log10(np.mean(x**2) / np.mean(added**2)) == pytest.approx(12.0, abs=0.01)


def test_noise_cut_is_a_unit_level_slice_of_one_recording():
    recording = np.arange(3 * WAVEFORM_LENGTH, dtype=np.float32) + 1.0
    cut = augment.noise_cut([recording], np.random.default_rng(7))
    assert cut.shape == (WAVEFORM_LENGTH,) and np.sqrt(np.mean(cut**2)) == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.diff(cut) > 0)  # contiguous samples of the recording, in order


def _schroeder_rt60(ir: np.ndarray) -> float:
    """RT60 from the -5..-25 dB span of the backward-integrated energy decay (ISO 3382's T20)."""
    edc = np.cumsum((ir[1:].astype(np.float64) ** 2)[::-1])[::-1]  # the diffuse field only
    db = 10 * np.log10(edc / edc[0])
    t5, t25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3.0 * (t25 - t5) / SAMPLE_RATE


@pytest.mark.parametrize("rt60", [0.2, 0.5, 0.9])
def test_room_impulse_response_decays_over_the_drawn_reverberation_time(rt60):
    rng = np.random.default_rng(8)
    measured = [_schroeder_rt60(augment.room_impulse_response(rng, rt60_s=(rt60, rt60))) for _ in range(5)]
    assert np.median(measured) == pytest.approx(rt60, rel=0.2)


def test_room_impulse_response_has_the_drawn_direct_to_reverberant_ratio():
    ir = augment.room_impulse_response(np.random.default_rng(9), drr_db=(6.0, 6.0))
    assert ir[0] == 1.0 and ir.dtype == np.float32
    assert 10 * np.log10(1.0 / np.sum(ir[1:].astype(np.float64) ** 2)) == pytest.approx(6.0, abs=0.05)


def test_reverberate_keeps_length_and_level_and_an_impulse_is_the_identity():
    x = np.concatenate([_tone(0.3), np.zeros(int(0.2 * SAMPLE_RATE), np.float32)])
    assert np.allclose(augment.reverberate(x, np.array([1.0], np.float32)), x, atol=1e-6)
    ir = augment.room_impulse_response(np.random.default_rng(10), rt60_s=(0.8, 0.8), drr_db=(0.0, 0.0))
    wet = augment.reverberate(x, ir)
    assert wet.shape == x.shape and np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-4)
    after = slice(x.size - 4410, x.size)  # 0.1 s after the dry burst ended, 0.2 s into silence: the room still rings
    assert np.sum(x[after] ** 2) == 0 and np.sum(wet[after] ** 2) > 1e-3 * np.sum(wet**2)


def test_partial_word_keeps_only_the_start_or_the_end_of_the_word_at_a_window_edge():
    quiet = np.full(15_000, 0.001, np.float32)
    word = _tone(0.5)
    clip = np.concatenate([quiet, word, quiet[:14_032]])
    fill = np.random.default_rng(0).standard_normal(WAVEFORM_LENGTH).astype(np.float32)
    seen = set()
    for seed in range(20):
        window = augment.partial_word(clip, fill, np.random.default_rng(seed), keep=(0.2, 0.4))
        assert window.shape == (WAVEFORM_LENGTH,) and window.dtype == np.float32
        loud = np.flatnonzero(np.abs(window) > 0.1)
        kept = loud[-1] - loud[0] + 1
        assert 0.2 * word.size - 2 * 441 <= kept <= 0.4 * word.size + 2 * 441  # a fragment, never the whole word
        at_end = loud[-1] >= WAVEFORM_LENGTH - 50  # (a sine is under 0.1 near its zero crossings)
        assert at_end or loud[0] <= 50
        seen.add(at_end)
        rest = window[: loud[0]] if at_end else window[loud[-1] + 1 :]
        assert np.sqrt(np.mean(rest[:-441] ** 2 if at_end else rest[441:] ** 2)) == pytest.approx(0.001, rel=0.1)  # the fill, at the clip's level
    assert seen == {True, False}  # windows sliding onto the word and off it


# ---------------------------------------------------------------- batches, in TensorFlow


def test_batch_time_shift_moves_each_window_by_whole_samples_within_the_limit_and_zero_fills():
    import tensorflow as tf

    windows = np.zeros((16, WAVEFORM_LENGTH), np.float32)
    windows[:, 20_000] = 1.0
    shifted = augment.batch_time_shift(tf.constant(windows), tf.random.Generator.from_seed(0), max_samples=441).numpy()
    where = [np.flatnonzero(row) for row in shifted]
    assert all(len(w) == 1 for w in where) and shifted.sum() == 16  # each click moved whole, nothing else
    moves = np.array([w[0] for w in where]) - 20_000
    assert np.abs(moves).max() <= 441 and len(set(moves)) > 8  # per window, within the limit
    edge = np.zeros((1, WAVEFORM_LENGTH), np.float32)
    edge[0, -10:] = 1.0  # samples shifted out are gone, the vacated part is zero
    out = augment.batch_time_shift(tf.constant(np.repeat(edge, 32, 0)), tf.random.Generator.from_seed(1), max_samples=20).numpy()
    assert set(out.sum(axis=1)) <= set(range(11)) and (out.sum(axis=1) < 10).any()


def test_batch_background_mix_puts_noise_at_the_drawn_snr_into_the_chosen_share_of_windows():
    import tensorflow as tf

    tone = np.tile(_tone(WAVEFORM_LENGTH / SAMPLE_RATE), (400, 1))[:, :WAVEFORM_LENGTH]
    bank = tf.constant(np.random.default_rng(0).normal(0, 0.1, 3 * WAVEFORM_LENGTH).astype(np.float32))
    rng = tf.random.Generator.from_seed(0)
    added = augment.batch_background_mix(tf.constant(tone), bank, rng, snr_db=(5.0, 15.0), probability=0.25).numpy() - tone
    power = np.mean(added**2, axis=1)
    mixed = power > 0
    snr = 10 * np.log10(np.mean(tone**2, axis=1)[mixed] / power[mixed])
    assert 0.18 < mixed.mean() < 0.32  # a quarter of the windows, drawn per window
    assert 5.0 - 0.01 < snr.min() and snr.max() < 15.0 + 0.01 and snr.std() > 2.0  # uniform in 5-15 dB
    fixed = augment.batch_background_mix(tf.constant(tone[:8]), bank, rng, snr_db=(10.0, 10.0), probability=1.0)
    added = fixed.numpy() - tone[:8]
    np.testing.assert_allclose(10 * np.log10(np.mean(tone[:8] ** 2, axis=1) / np.mean(added**2, axis=1)), 10.0, atol=0.01)


def test_batch_masks_zero_stripes_no_wider_than_asked_along_their_axis():
    import tensorflow as tf

    spectrograms = tf.ones([64, 43, 232, 1])
    rng = tf.random.Generator.from_seed(0)
    time = augment.batch_masks(spectrograms, rng, count=1, max_width=10, axis=1).numpy()
    zero_frames = (time == 0).all(axis=(2, 3)).sum(axis=1)
    assert zero_frames.max() == 10  # up to the widest asked (seeded: 64 draws of 0-10 reach it), never wider
    assert ((time == 0).any(axis=(2, 3)) == (time == 0).all(axis=(2, 3))).all()  # whole frames, never parts
    assert len(set(zero_frames)) > 5  # widths drawn per spectrogram
    freq = augment.batch_masks(spectrograms, rng, count=2, max_width=30, axis=2).numpy()
    zero_bins = (freq == 0).all(axis=(1, 3)).sum(axis=1)
    assert zero_bins.max() <= 60 and zero_bins.max() > 30  # two stripes, overlapping or not
    assert ((freq == 0).any(axis=(1, 3)) == (freq == 0).all(axis=(1, 3))).all()


def test_an_empty_clip_is_filtered_to_nothing_and_refused_as_a_word():
    from mm_browserfft.errors import InvalidInputError

    rng = np.random.default_rng(0)
    assert augment.random_equalizer(np.zeros(0, np.float32), rng).shape == (0,)
    with pytest.raises(InvalidInputError, match="0 samples"):
        augment.partial_word(np.zeros(0, np.float32), _tone(1.1), rng)


def test_a_noise_bank_is_its_folders_recordings_end_to_end_and_at_least_one_window(tmp_path):
    import soundfile as sf

    from mm_browserfft.errors import InvalidInputError

    rng = np.random.default_rng(0)
    a, b = ((0.1 * rng.standard_normal(n)).astype(np.float32) for n in (30000, 20000))
    sf.write(tmp_path / "a.wav", a, SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", b, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(augment.load_noise_bank(str(tmp_path)), np.concatenate([a, b]))
    (tmp_path / "b.wav").unlink()  # 30,000 samples: under one window
    with pytest.raises(InvalidInputError, match=f"{tmp_path}: background noise must hold at least {WAVEFORM_LENGTH}"):
        augment.load_noise_bank(str(tmp_path))
