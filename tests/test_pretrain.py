"""The pretraining recipe's pure parts: vocabulary, training windows, parts, label mapping, masks."""

import numpy as np
import pytest

from mm_browserfft.base import BASE_LABELS_18W
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from tools.pretrain import batches, prepare, student, synth, targets, teacher, train


def test_vocabulary_covers_18w_and_speech_commands_words():
    vocab = set(synth.VOCABULARY)
    assert set(BASE_LABELS_18W[2:]) <= vocab
    assert set(synth.COMMAND_WORDS) <= vocab
    assert len(vocab) >= 200
    assert list(synth.VOCABULARY) == sorted(vocab)


def test_more_words_are_frequent_plain_words_the_vocabulary_does_not_have():
    ranked = ["the", "yes", "a", "don't", "ii", "Paris", "house", "weather", "café", "extraordinarily", "river", "the"]
    assert synth.pick_words(ranked, 3) == ("river", "the", "weather")  # sorted; "yes" and "house" are in VOCABULARY
    with pytest.raises(ValueError, match="only 3 words"):
        synth.pick_words(ranked, 4)


def test_the_vocab_part_numbers_its_words_after_every_other_word():
    without = prepare.class_labels(["yes", "no", "_silence_"])
    labels = prepare.class_labels(["yes", "no", "_silence_"], ["river", "apple", "yes"])
    assert without == ["_silence_", "no", "yes"]
    assert labels == without + ["apple", "river"]  # the other parts keep their numbers
    more = [("/w/vocab/river/espeak_000.flac", "river"), ("/w/vocab/apple/flite_001.flac", "apple")]
    index = {w: i for i, w in enumerate(labels)}
    jobs, job_labels, sources = prepare._part_jobs(
        "vocab", [], [], [], [], more, index, real_copies=6, voice_copies=2, synth_copies=3, kokoro_copies=3,
        vocab_copies=2, background_cuts=0, room_copies=4, room_voice_copies=1, pairs=0, seed=0,
    )  # fmt: skip
    assert [(kind, copies) for kind, _, copies, _, _ in jobs] == [("synthetic", 2)] * 2
    assert job_labels == [4, 3] and sources == [(4, 4), (3, 3)]


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


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


def test_map_to_18w_sends_silence_to_background_and_other_words_to_unknown():
    mapped = train.map_to_18w(["_silence_", "yes", "cat", "zero", "tomorrow"])
    names = [BASE_LABELS_18W[i] for i in mapped]
    assert names == ["_background_noise_", "yes", "_unknown_", "zero", "_unknown_"]


def test_spec_augment_zeroes_at_most_one_time_and_one_frequency_band():
    x = np.ones((64, 43, 232), np.float32)
    out = batches._spec_augment(x.copy(), np.random.default_rng(4), max_time=6, max_freq=24)
    for one in out:
        frames, bins = (one == 0).all(axis=1), (one == 0).all(axis=0)
        for band, widest in ((frames, 6), (bins, 24)):
            starts = np.flatnonzero(np.diff(np.concatenate([[0], band.astype(int)])) == 1)
            assert len(starts) <= 1 and band.sum() <= widest  # one contiguous band at most, no wider than asked
        np.testing.assert_array_equal(one == 0, frames[:, None] | bins[None, :])  # nothing zeroed outside them
    assert (out == 0).all(axis=2).any() and (out == 0).all(axis=1).any() and (out == 1).any()


def _clip(seconds: float, freq: float = 440.0) -> np.ndarray:
    """A tone burst in the middle of a one-second clip (a stand-in word)."""
    x = np.zeros(WAVEFORM_LENGTH, np.float32)
    tone = _tone(seconds, freq) * np.hanning(int(seconds * SAMPLE_RATE)).astype(np.float32)
    start = (WAVEFORM_LENGTH - tone.size) // 2
    x[start : start + tone.size] = tone
    return x


def test_a_word_in_a_room_is_one_finite_window_with_a_longer_decay():
    rng = np.random.default_rng(5)
    dry = prepare.augment(_clip(0.2), np.random.default_rng(5), _noises(), synthetic=False, noise_probability=0.0)
    wet = [prepare.augment_in_room(_clip(0.2), _clip(0.3, 880.0), rng, _noises()) for _ in range(8)]
    for w in wet:
        assert w.shape == (WAVEFORM_LENGTH,) and w.dtype == np.float32 and np.all(np.isfinite(w))
        assert np.max(np.abs(w)) <= 1.0

    def tail_energy(window):  # the 100 ms after the burst, relative to the whole window
        end = (WAVEFORM_LENGTH + int(0.2 * SAMPLE_RATE)) // 2 + int(0.15 * SAMPLE_RATE)
        return np.sum(window[end : end + 4410] ** 2) / np.sum(window**2)

    assert np.median([tail_energy(w) for w in wet]) > tail_energy(dry)


def test_word_pairs_cut_across_both_words():
    rng = np.random.default_rng(6)
    a, b = _clip(0.4, 300.0), _clip(0.4, 3000.0)
    windows = [prepare.word_pair_window(a, b, rng, _noises()) for _ in range(40)]
    assert all(w.shape == (WAVEFORM_LENGTH,) and np.all(np.isfinite(w)) for w in windows)
    spectra = [np.abs(np.fft.rfft(w)) for w in windows]
    bin_of = lambda hz: int(hz * WAVEFORM_LENGTH / SAMPLE_RATE)  # noqa: E731
    low = np.array([s[bin_of(250) : bin_of(350)].sum() for s in spectra])
    high = np.array([s[bin_of(2500) : bin_of(3500)].sum() for s in spectra])
    share = high / (low + high)
    assert (share < 0.2).any() and (share > 0.8).any() and ((share > 0.2) & (share < 0.8)).any()


def test_drop_words_removes_rows_made_of_a_held_out_word_even_without_a_label():
    labels = ["_silence_", "go", "left", "yes"]
    y = np.array([1, 2, 3, -1, -1, 0])
    sources = np.array([[1, 1], [2, 2], [3, 3], [3, 1], [3, 0], [0, 0]])
    kept, new_y, rows = train.drop_words(labels, ["go"], y, sources, np.arange(6))
    assert kept == ["_silence_", "left", "yes"]
    assert rows.tolist() == [1, 2, 4, 5] and new_y.tolist() == [1, 2, -1, 0]
    with pytest.raises(ValueError, match="not in the prepared set"):
        train.drop_words(labels, ["stop"], y, sources)


def test_load_prepared_concatenates_the_parts_there_and_reads_old_ones_without_sources(tmp_path):
    for name, rows, label in (("train", 3, 1), ("pairs", 2, -1)):
        np.save(tmp_path / f"{name}_x.npy", np.full((rows, 43, 232), label, np.float16))
        np.save(tmp_path / f"{name}_t.npy", np.zeros((rows, 192), np.float16))
        np.save(tmp_path / f"{name}_y.npy", np.full(rows, label, np.int32))
    np.save(tmp_path / "pairs_src.npy", np.array([[1, 2], [2, 2]], np.int32))
    x, y, t, sources, rows = train.load_prepared(str(tmp_path), ["train", "rooms", "pairs"])
    assert rows == {"train": 3, "pairs": 2} and x.shape == (5, 43, 232) and t.shape == (5, 192)
    assert y.tolist() == [1, 1, 1, -1, -1] and sources.tolist() == [[1, 1]] * 3 + [[1, 2], [2, 2]]
    with pytest.raises(FileNotFoundError, match="no prepared part"):
        train.load_prepared(str(tmp_path), ["rooms"])


def test_unlabelled_rows_weigh_nothing_in_the_word_loss():
    served = batches.SpectrogramBatches(
        np.zeros((4, 43, 232), np.float16), np.array([2, -1, 0, -1]), np.ones((4, 192), np.float32), 3,
        batch_size=4, seed=0,
    )  # fmt: skip
    x, (onehot, teacher), (word_weight, teacher_weight) = served[0]
    assert x.shape == (4, 43, 232, 1) and teacher.shape == (4, 192)
    assert onehot.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert word_weight.tolist() == [1, 0, 1, 0] and teacher_weight.tolist() == [1, 1, 1, 1]


def test_a_resumed_run_draws_each_epoch_as_an_uninterrupted_run_does():
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(12, 43, 232)).astype(np.float16), rng.normal(size=(12, 192)).astype(np.float32)
    y = rng.integers(0, 3, size=12)
    made = lambda: batches.SpectrogramBatches(x, y, t, 3, batch_size=4, seed=0, freq_warp=1.2)  # noqa: E731
    run = made()
    first = [run[i][0] for i in range(len(run))]
    run.on_epoch_end()  # as Keras ends epoch 1
    second = [run[i][0] for i in range(len(run))]
    resumed = made()
    resumed.set_epoch(1)  # as the training loop begins epoch 2 after a restart
    for a, b, c in zip(second, [resumed[i][0] for i in range(len(resumed))], first):
        np.testing.assert_array_equal(a, b)  # the same rows, warps and masks
        assert not np.array_equal(a, c)  # and not epoch 1's again


def test_the_history_of_a_resumed_run_holds_every_epoch_once(tmp_path):
    log = tmp_path / train.HISTORY_FILE
    # epoch 1 logged twice: stopped after its row and before its backup, then run again
    log.write_text("epoch,loss,val_loss\n0,2.0,2.5\n1,1.5,2.2\n1,1.4,2.1\n2,1.1,1.9\n")
    assert train.read_history(str(log)) == {"loss": [2.0, 1.4, 1.1], "val_loss": [2.5, 2.1, 1.9]}


def test_teacher_targets_pool_the_spans_or_keep_them_in_time_order():
    rng = np.random.default_rng(0)
    spans = rng.normal(size=(3, teacher.SPANS, teacher.EMBEDDING_DIM)).astype(np.float16)
    pooled = targets.teacher_targets(spans, "pooled")
    assert pooled.shape == (3, teacher.TEACHER_DIM) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled[:, :96], spans.astype(np.float32).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(pooled[:, 96:], spans.astype(np.float32).max(axis=1))
    flat = targets.teacher_targets(spans, "spans")
    assert flat.shape == (3, teacher.SPANS * 96)
    np.testing.assert_array_equal(flat[1, 96:192], spans[1, 1].astype(np.float32))  # the second span, second row


def test_teacher_targets_read_older_pooled_sets_and_refuse_spans_they_lack():
    old = np.ones((2, teacher.TEACHER_DIM), np.float16)
    assert targets.teacher_targets(old, "pooled").shape == (2, teacher.TEACHER_DIM)
    with pytest.raises(ValueError, match="pooled teacher embeddings only"):
        targets.teacher_targets(old, "spans")
    with pytest.raises(ValueError, match="targets must be one of"):
        targets.teacher_targets(old, "frames")


def test_frequency_warp_moves_a_formant_by_the_drawn_factor_and_is_off_at_one():
    x = np.zeros((64, 43, 232), np.float32)
    x[:, :, 100] = 1.0  # one "formant" at bin 100
    assert batches._warp_frequency(x, np.random.default_rng(0), max_factor=1.0) is x
    warped = batches._warp_frequency(x, np.random.default_rng(0), max_factor=1.2)
    peaks = warped[:, 0].argmax(axis=1)
    assert peaks.min() >= int(100 / 1.2) and peaks.max() <= int(np.ceil(100 * 1.2))
    assert len(set(peaks.tolist())) > 10  # each spectrogram its own factor
    np.testing.assert_allclose(warped[:, 5], warped[:, 30])  # the same stretch at every frame


def _tiny_prepared_set(work) -> None:
    """A prepared set of random rows in ``work/prep``: 256 training and 32 validation rows, 3 classes."""
    rng = np.random.default_rng(0)
    prep = work / "prep"
    prep.mkdir()
    (prep / "labels.json").write_text('["_silence_", "yes", "no"]')
    for part, rows in (("train", 256), ("val", 32)):
        np.save(prep / f"{part}_x.npy", rng.normal(size=(rows, 43, 232)).astype(np.float16))
        np.save(prep / f"{part}_y.npy", rng.integers(0, 3, size=rows).astype(np.int32))
        np.save(prep / f"{part}_t.npy", rng.normal(size=(rows, teacher.SPANS, 96)).astype(np.float16))


def test_train_runs_both_stages_on_a_tiny_prepared_set_and_writes_the_18w_weights(tmp_path):
    from mm_browserfft.base import build_18w

    _tiny_prepared_set(tmp_path)
    metrics = train.train(str(tmp_path), epochs=1, init="random", parts=["train"], targets="spans", freq_warp=1.1)
    assert metrics["train_examples"] == 256 and metrics["heldout_clips"] == 32 and metrics["epochs"] == 1
    assert metrics["targets"] == "spans" and np.isfinite(metrics["heldout_teacher_mse"])
    model = build_18w()
    model.load_weights(str(tmp_path / "base.weights.h5"))  # exactly the 18w topology
    assert model.count_params() == metrics["params"] == 1468684
    assert len(metrics["history"]["loss"]) == 1 and (tmp_path / train.HISTORY_FILE).is_file()


def test_load_prepared_pools_every_part_when_an_older_pooled_part_is_among_them(tmp_path):
    spans = np.random.default_rng(1).normal(size=(2, teacher.SPANS, 96)).astype(np.float16)
    for name, t in (("train", spans), ("pairs", np.zeros((3, teacher.TEACHER_DIM), np.float16))):
        np.save(tmp_path / f"{name}_x.npy", np.zeros((len(t), 43, 232), np.float16))
        np.save(tmp_path / f"{name}_t.npy", t)
        np.save(tmp_path / f"{name}_y.npy", np.zeros(len(t), np.int32))
    _, _, t, _, rows = train.load_prepared(str(tmp_path), ["train", "pairs"])
    assert rows == {"train": 2, "pairs": 3} and t.shape == (5, teacher.TEACHER_DIM)
    np.testing.assert_allclose(t[:2], teacher.pool(spans), rtol=1e-2, atol=1e-2)  # float16


def test_relation_loss_is_zero_for_the_teachers_geometry_and_ignores_scale_and_offset():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(16, 12)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    same = (t @ rotation * 7.0 + 3.0).astype(np.float32)  # rotated, scaled, shifted: the same similarities
    np.testing.assert_allclose(np.asarray(student.relation_loss(t, same)), 0.0, atol=1e-5)
    shuffled = t[rng.permutation(16)]  # every row paired with another row's teacher
    loss = np.asarray(student.relation_loss(t, shuffled))
    assert loss.shape == (16,) and loss.mean() > 0.05


def test_train_with_the_relation_loss_adds_an_output_on_dense_1_and_keeps_the_18w_topology(tmp_path):
    from mm_browserfft.base import EMBEDDING_LAYER, build_18w

    model = student.build_student(3, 192, relations=True)
    assert [o.shape[-1] for o in model.outputs] == [3, 192, 2000]
    _tiny_prepared_set(tmp_path)
    metrics = train.train(str(tmp_path), epochs=1, init="random", parts=["train"], relation_weight=100.0)
    assert metrics["relation_weight"] == 100.0
    assert any(k.endswith(EMBEDDING_LAYER + "_loss") for k in metrics["history"])
    model = build_18w()
    model.load_weights(str(tmp_path / "base.weights.h5"))
    assert model.count_params() == 1468684


def test_factorise_gives_the_best_rank_r_approximation_and_is_exact_at_full_rank():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(40, 60)).astype(np.float32)
    a, b = student.factorise(kernel, 40)
    assert a.shape == (40, 40) and b.shape == (40, 60)
    np.testing.assert_allclose(a @ b, kernel, atol=1e-4)
    a, b = student.factorise(kernel, 10)
    singular = np.linalg.svd(kernel, compute_uv=False)
    error = np.linalg.norm(kernel - a @ b)
    np.testing.assert_allclose(error, np.sqrt(np.sum(singular[10:] ** 2)), rtol=1e-4)  # Eckart-Young


def test_a_factorised_dense_1_folds_into_the_18w_kernel_with_the_same_embedding():
    import tensorflow as tf

    from mm_browserfft.base import EMBEDDING_LAYER, build_18w

    factorised_student = student.build_student(3, 192, bottleneck=16)
    assert factorised_student.get_layer(student.FACTOR_LAYER).get_weights()[0].shape == (704, 16)
    assert factorised_student.get_layer(student.PROJECTION_LAYER).get_weights()[0].shape == (16, 192)  # reads the bottleneck
    model = build_18w()
    for name, weights in student.body_weights(factorised_student).items():
        model.get_layer(name).set_weights(weights)
    x = np.random.default_rng(4).normal(size=(4, 43, 232, 1)).astype(np.float32)
    folded = tf.keras.Model(model.inputs, model.get_layer(EMBEDDING_LAYER).output)(x)
    embedding = factorised_student.get_layer(EMBEDDING_LAYER).output
    factorised = tf.keras.Model(factorised_student.inputs, embedding)(x)
    np.testing.assert_allclose(np.asarray(folded), np.asarray(factorised), rtol=1e-4, atol=1e-4)
    assert np.linalg.matrix_rank(model.get_layer(EMBEDDING_LAYER).get_weights()[0], tol=1e-4) == 16


def test_train_with_a_bottleneck_starts_from_the_bundled_base_and_ships_a_low_rank_18w_kernel(tmp_path):
    from mm_browserfft.base import EMBEDDING_LAYER, build_18w

    _tiny_prepared_set(tmp_path)
    metrics = train.train(str(tmp_path), epochs=1, init="bundled", parts=["train"], bottleneck=24)
    assert metrics["bottleneck"] == 24 and np.isfinite(metrics["heldout_teacher_mse"])
    model = build_18w()
    model.load_weights(str(tmp_path / "base.weights.h5"))
    assert model.count_params() == 1468684
    assert np.linalg.matrix_rank(model.get_layer(EMBEDDING_LAYER).get_weights()[0], tol=1e-3) == 24


def test_discriminant_targets_whiten_the_scatter_within_words_and_map_other_sets_alike():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 6, size=3000)
    y[:100] = -1  # rows without a word label (pairs) are mapped but do not shape the map
    mixing = rng.normal(size=(4, 4))
    t = (np.eye(4)[y % 4] * 3.0 + rng.normal(size=(3000, 4)) * [4.0, 1.0, 0.5, 2.0]) @ mixing
    t = t.astype(np.float32)
    mapped, again = targets.discriminant_targets(t, y, t[:50], shrinkage=0.0)
    np.testing.assert_allclose(again, mapped[:50], rtol=1e-5, atol=1e-5)
    assert np.isclose(np.mean(np.var(mapped, axis=0)), 1.0, rtol=1e-3)
    labelled = y >= 0
    residual = mapped[labelled] - np.stack([mapped[labelled][y[labelled] == c].mean(0) for c in range(6)])[y[labelled]]
    eigenvalues = np.linalg.eigvalsh(np.cov(residual.T))
    assert eigenvalues.max() / eigenvalues.min() < 1.01  # the same spread within words in every direction
    raw = np.linalg.eigvalsh(np.cov((t[labelled] - t[labelled].mean(0)).T))
    assert raw.max() / raw.min() > 10


def _clustered_targets(rng, rows: int, classes: int = 4, dim: int = 8):
    """Teacher targets ``[rows, dim]`` in one cluster per word, and the words ``[rows]``."""
    centres = rng.normal(size=(classes, dim)) * 3.0
    y = rng.integers(0, classes, size=rows)
    return (centres[y] + rng.normal(size=(rows, dim))).astype(np.float32), y


def test_soft_word_targets_are_distributions_that_name_the_teachers_word_and_spread_with_temperature():
    rng = np.random.default_rng(6)
    t, y = _clustered_targets(rng, 2000)
    val_t, val_y = _clustered_targets(np.random.default_rng(6), 200)  # the same centres
    y[:200] = -1  # unlabelled rows (word pairs) get a soft target too
    soft, accuracy = targets.soft_word_targets(t, y, val_t, val_y, 4, temperature=1.0)
    assert soft.shape == (2000, 4) and soft.dtype == np.float16 and accuracy > 0.9
    np.testing.assert_allclose(soft.astype(np.float64).sum(axis=1), 1.0, atol=5e-3)
    labelled = y >= 0
    assert np.mean(np.argmax(soft[labelled], axis=1) == y[labelled]) > 0.9
    warm, _ = targets.soft_word_targets(t, y, val_t, val_y, 4, temperature=4.0)

    def entropy(p):
        p = p.astype(np.float64) + 1e-9
        return float(np.mean(-np.sum(p * np.log(p), axis=1)))

    assert entropy(warm) > entropy(soft) + 0.2
    with pytest.raises(ValueError, match="temperature"):
        targets.soft_word_targets(t, y, val_t, val_y, 4, temperature=0.0)


def test_batches_mix_soft_word_targets_into_the_one_hot_and_give_unlabelled_rows_the_soft_share():
    x = np.zeros((4, 43, 232), np.float16)
    y = np.array([0, 1, -1, 2])
    t = np.zeros((4, 6), np.float32)
    soft = np.full((4, 3), 1 / 3, np.float16)
    served = batches.SpectrogramBatches(x, y, t, 3, batch_size=4, seed=0, soft=soft, soft_weight=0.3)
    _, (words, _), (word_weight, _) = served[0]
    np.testing.assert_allclose(words[0], [0.7 + 0.1, 0.1, 0.1], atol=1e-3)  # (1 - a) one-hot + a soft
    np.testing.assert_allclose(words[2], [1 / 3] * 3, atol=1e-3)  # the unlabelled row: the teacher's word alone
    np.testing.assert_allclose(word_weight, [1.0, 1.0, 0.3, 1.0])
    with pytest.raises(ValueError, match="soft_weight"):
        batches.SpectrogramBatches(x, y, t, 3, batch_size=4, seed=0, soft_weight=0.3)


def test_train_with_soft_word_targets_reports_how_well_the_teacher_names_held_out_words(tmp_path):
    _tiny_prepared_set(tmp_path)
    metrics = train.train(str(tmp_path), epochs=1, init="random", parts=["train"], soft_weight=0.5, temperature=2.0)
    assert metrics["soft_weight"] == 0.5 and metrics["temperature"] == 2.0
    assert 0.0 <= metrics["teacher_word_accuracy"] <= 1.0  # random targets: the figure exists, it means nothing here
    assert np.isfinite(metrics["history"]["loss"]).all()


def test_the_cosine_classifier_answers_the_cosine_to_each_class_direction_whatever_the_row_length():
    layer = student.CosineClassifier(3)
    layer.build((None, 4))
    directions = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 5], [0, 0, 0]], np.float32)  # class c along axis c
    layer.kernel.assign(directions)
    rows = np.array([[3, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 9]], np.float32)
    expected = np.array([[1, 0, 0], [0, 0.5**0.5, 0.5**0.5], [0, 0, 0]], np.float32)
    np.testing.assert_allclose(np.asarray(layer(rows)), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(rows * 40.0)), expected, atol=1e-5)  # the row's length is ignored
    assert student.CosineClassifier.from_config(layer.get_config()).units == 3


def test_the_cosine_word_loss_asks_the_true_word_to_win_by_the_margin():
    target = np.array([[1, 0, 0]], np.float32)
    tied = np.array([[0.5, 0.5, 0.5]], np.float32)
    plain = student.cosine_word_loss(scale=10.0, margin=0.0, label_smoothing=0.0)
    np.testing.assert_allclose(np.asarray(plain(target, tied)), [np.log(3.0)], rtol=1e-5)  # three equal logits
    margin = student.cosine_word_loss(scale=10.0, margin=0.2, label_smoothing=0.0)
    expected = -np.log(np.exp(3.0) / (np.exp(3.0) + 2 * np.exp(5.0)))  # the true logit lowered by scale * margin
    np.testing.assert_allclose(np.asarray(margin(target, tied)), [expected], rtol=1e-5)
    ahead = np.array([[0.9, 0.1, 0.1]], np.float32)
    assert float(np.asarray(margin(target, ahead))[0]) < 0.01  # a word that wins by far more than the margin


def test_each_word_head_has_its_loss_and_an_unknown_head_is_refused():
    target = np.array([[0, 1]], np.float32)
    cosines = np.array([[0.2, 0.6]], np.float32)
    cosine = student.word_loss("cosine", label_smoothing=0.0, scale=10.0, margin=0.1)
    expected = -np.log(np.exp(5.0) / (np.exp(2.0) + np.exp(5.0)))  # logits 10 * (0.2, 0.6 - 0.1)
    np.testing.assert_allclose(np.asarray(cosine(target, cosines)), [expected], rtol=1e-5)
    probabilities = np.array([[0.25, 0.75]], np.float32)
    softmax = student.word_loss("softmax", label_smoothing=0.0, scale=10.0, margin=0.1)  # scale, margin unused
    np.testing.assert_allclose(float(softmax(target, probabilities)), -np.log(0.75), rtol=1e-5)
    with pytest.raises(ValueError, match="word_head"):
        student.word_loss("arcface", label_smoothing=0.0, scale=10.0, margin=0.1)


def test_train_with_the_cosine_word_head_keeps_the_18w_topology_and_reports_the_head(tmp_path):
    from mm_browserfft.base import build_18w

    model = student.build_student(3, 192, word_head="cosine")
    assert isinstance(model.get_layer("dense_2"), student.CosineClassifier)
    with pytest.raises(ValueError, match="word_head"):
        student.build_student(3, 192, word_head="arcface")
    _tiny_prepared_set(tmp_path)
    metrics = train.train(str(tmp_path), epochs=1, init="random", parts=["train"], word_head="cosine", cosine_margin=0.2)
    assert metrics["word_head"] == "cosine" and metrics["cosine_margin"] == 0.2
    assert np.isfinite(metrics["heldout_teacher_mse"]) and 0.0 <= metrics["heldout_word_accuracy_pretrain_head"] <= 1.0
    shipped = build_18w()
    shipped.load_weights(str(tmp_path / "base.weights.h5"))  # stage 2 fitted the 18w dense_2 on the body
    assert shipped.count_params() == metrics["params"] == 1468684


def test_a_part_whose_arrays_disagree_is_refused_not_trained_on(tmp_path):
    np.save(tmp_path / "train_x.npy", np.zeros((4, 43, 232), np.float16))  # rebuilt at 4 rows, then killed
    np.save(tmp_path / "train_t.npy", np.zeros((3, 192), np.float16))
    np.save(tmp_path / "train_y.npy", np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"part 'train' disagree in rows \{'x': 4, 't': 3, 'y': 3\}"):
        train.load_prepared(str(tmp_path), ["train"])


def test_a_part_that_fails_while_written_leaves_the_previous_one_whole(tmp_path):
    from mm_browserfft.errors import AudioDecodeError

    before = {}
    for key, value in (("x", np.ones((2, 43, 232), np.float16)), ("t", np.ones((2, teacher.SPANS, 96), np.float16)),
                       ("y", np.array([1, 2], np.int32)), ("real", np.ones(2, bool)), ("src", np.ones((2, 2), np.int32))):
        np.save(tmp_path / f"val_{key}.npy", value)
        before[key] = value

    class FailsOnTheSecondClip:  # a worker pool whose second job meets a cut-off file
        def imap(self, function, jobs, chunksize):
            yield np.zeros((1, 43, 232), np.float16), np.zeros((1, teacher.SPANS, 96), np.float16)
            raise AudioDecodeError("truncated", path="clip.flac")

    jobs = [("val", ("a.flac",), 0, 0, 0), ("val", ("clip.flac",), 0, 0, 0), ("val", ("c.flac",), 0, 0, 0)]
    with pytest.raises(AudioDecodeError, match="clip.flac"):
        prepare._write(str(tmp_path), "val", jobs, [1, 1, 1], [(1, 1)] * 3, FailsOnTheSecondClip())
    for key, value in before.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"val_{key}.npy"), value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"val_{key}.npy" for key in before)  # no partial file
    x, y, *_ = train.load_prepared(str(tmp_path), ["val"])
    assert x.shape[0] == 2 and y.tolist() == [1, 2]


def test_prepare_names_missing_data_and_a_missing_teacher_before_any_work(tmp_path, monkeypatch):
    import sys

    from mm_browserfft.errors import DatasetError

    with pytest.raises(DatasetError, match="no clips in speech_commands"):
        prepare.check_inputs(str(tmp_path / "nowhere"))
    (tmp_path / "data" / "speech_commands" / "yes").mkdir(parents=True)
    (tmp_path / "data" / "speech_commands" / "yes" / "a.flac").write_bytes(b"")
    with pytest.raises(DatasetError, match="no background recordings in background_noise"):
        prepare.check_inputs(str(tmp_path / "data"))
    (tmp_path / "data" / "background_noise").mkdir()
    (tmp_path / "data" / "background_noise" / "pink.flac").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pyopen_wakeword", None)  # the recipe's requirements not installed
    with pytest.raises(RuntimeError, match="pip install -r tools/pretrain/requirements.txt"):
        prepare.check_inputs(str(tmp_path / "data"))


def test_recordings_of_the_same_name_in_two_data_sets_get_voices_of_their_own():
    from tools.pretrain import voices

    clips = ["d/speech_commands/left/f428ca69_nohash_1.flac", "d/speech_commands/left/f428ca69_nohash_2.flac",
             "d/speech_commands_v0.01_sample/left/f428ca69_nohash_1.flac",  # another recording, the same name
             "d/speech_commands_v0.01_sample/right/f428ca69_nohash_1.flac"]  # fmt: skip
    assert voices.voice_stems(clips) == ["f428ca69_nohash_1", "f428ca69_nohash_2",
                                         "speech_commands_v0.01_sample-f428ca69_nohash_1", "f428ca69_nohash_1"]


def test_a_work_folder_made_with_one_seed_refuses_another(tmp_path):
    from tools.pretrain.made_with import check_made_with

    folder = str(tmp_path / "synth")
    check_made_with(folder, {"seed": 0, "clips_per_word": 3})
    check_made_with(folder, {"clips_per_word": 3, "seed": 0})  # the same settings: a rerun resumes
    with pytest.raises(ValueError, match=r"holds clips made with \{'clips_per_word': 3, 'seed': 0\}, not .*'seed': 1"):
        check_made_with(folder, {"seed": 1, "clips_per_word": 3})
    with pytest.raises(ValueError, match="use another --work folder"):
        check_made_with(folder, {"seed": 0, "clips_per_word": 1})
