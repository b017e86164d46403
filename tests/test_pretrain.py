"""The pretraining recipe's pure parts: vocabulary, augmentation, label mapping, masks."""

import numpy as np
import pytest

from mm_browserfft.base import BASE_LABELS_18W
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from tools.pretrain import prepare, synth, train


def test_vocabulary_covers_18w_and_speech_commands_words():
    vocab = set(synth.VOCABULARY)
    assert set(BASE_LABELS_18W[2:]) <= vocab
    assert set(synth.COMMAND_WORDS) <= vocab
    assert len(vocab) >= 200
    assert list(synth.VOCABULARY) == sorted(vocab)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _noises():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(3 * WAVEFORM_LENGTH).astype(np.float32) * 0.1]


@pytest.mark.parametrize("synthetic", [True, False])
def test_augment_returns_one_finite_window(synthetic):
    rng = np.random.default_rng(1)
    for _ in range(5):
        window = prepare.augment(_tone(0.4 if synthetic else 1.0), rng, _noises(), synthetic=synthetic)
        assert window.shape == (WAVEFORM_LENGTH,) and window.dtype == np.float32
        assert np.all(np.isfinite(window)) and np.max(np.abs(window)) <= 1.0
        assert np.sqrt(np.mean(window**2)) > 1e-3


def test_place_keeps_a_short_word_whole_and_crops_a_long_one():
    rng = np.random.default_rng(2)
    short = np.ones(10_000, np.float32)
    assert prepare._place(short, rng, centred_shift=0.05).sum() == pytest.approx(10_000)
    long = np.ones(60_000, np.float32)
    assert prepare._place(long, rng, centred_shift=0.05).shape == (WAVEFORM_LENGTH,)


def test_shift_moves_content_and_zero_fills():
    window = np.zeros(WAVEFORM_LENGTH, np.float32)
    window[20_000] = 1.0
    shifted = prepare._shift(window, np.random.default_rng(3), max_seconds=0.1)
    (where,) = np.flatnonzero(shifted)
    assert abs(where - 20_000) <= 0.1 * SAMPLE_RATE and shifted.sum() == 1.0


def test_trim_drops_silence_around_a_word():
    x = np.concatenate([np.zeros(20_000), _tone(0.3), np.zeros(20_000)]).astype(np.float32)
    trimmed = prepare._trim(x)
    assert abs(trimmed.size - _tone(0.3).size) <= 2 * 441


def test_map_to_18w_sends_silence_to_background_and_other_words_to_unknown():
    mapped = train.map_to_18w(["_silence_", "yes", "cat", "zero", "tomorrow"])
    names = [BASE_LABELS_18W[i] for i in mapped]
    assert names == ["_background_noise_", "yes", "_unknown_", "zero", "_unknown_"]


def test_spec_augment_zeroes_at_most_one_time_and_one_frequency_band():
    x = np.ones((64, 43, 232), np.float32)
    out = train._spec_augment(x.copy(), np.random.default_rng(4), max_time=6, max_freq=24)
    zero_frames = (out == 0).all(axis=2).sum(axis=1)
    zero_bins = (out == 0).all(axis=1).sum(axis=1)
    assert zero_frames.max() <= 6 and zero_bins.max() <= 24
    assert (out == 0).any() and (out == 1).any()
