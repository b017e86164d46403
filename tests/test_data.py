"""DataLoader: Model Maker's file discovery, labels, chunking and splits, plus formats, caches and the report."""

from __future__ import annotations

import collections
import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import real_clips
from mm_browserfft import audio
from mm_browserfft.data import waveforms as waveforms_module
from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader
from mm_browserfft.data import list_audio_files
from mm_browserfft.errors import AudioDecodeError, DatasetError
from mm_browserfft.frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from mm_browserfft.speakers import speaker_id


def write_noise(path, seconds: float, *, rate: int = SAMPLE_RATE, channels: int = 1, subtype: str = "PCM_16", seed=0):
    """Random noise in [-0.5, 0.5) as an audio file; returns the path."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * rate))
    data = rng.uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def spec():
    return BrowserFftSpec()


@pytest.fixture
def speech_folder(tmp_path):
    """Real clips: 6 'yes' and 6 'no' files (16 kHz FLAC), copied."""
    for word in ("yes", "no"):
        os.makedirs(tmp_path / word)
        for clip in real_clips(word, 6):
            shutil.copy(clip, tmp_path / word)
    return tmp_path


# ---------------------------------------------------------------- discovery and labels


def test_from_folder_with_categories_drops_short_and_resamples(tmp_path, spec):
    # Model Maker's test: 6 files -> 5 clips (0.1 s dropped, 1.5 s -> 1 clip, 4410 Hz 1.8 s kept).
    write_noise(str(tmp_path / "a" / "1s.wav"), 1.0)
    write_noise(str(tmp_path / "a" / "short.wav"), 0.1)
    write_noise(str(tmp_path / "b" / "1.5s.wav"), 1.5)
    write_noise(str(tmp_path / "b" / "4410hz.wav"), 1.8, rate=4410)
    write_noise(str(tmp_path / "c" / "1s.wav"), 1.0)
    write_noise(str(tmp_path / "c" / "2.1s.wav"), 2.1)
    loader = DataLoader.from_folder(spec, tmp_path, categories=["a", "b"], shuffle=False)
    assert len(loader) == 4 and loader.index_to_label == ["a", "b"] and loader.num_classes == 2
    assert loader.report.num_clips == 3
    assert [os.path.basename(p) for p in loader.report.dropped_short] == ["short.wav"]
    windows, labels, owners = loader.waveforms()
    assert windows.shape == (3, WAVEFORM_LENGTH) and labels.tolist() == [0, 1, 1]
    everything = DataLoader.from_folder(spec, tmp_path, shuffle=False)
    assert len(everything) == 6 and everything.report.num_clips == 6
    assert everything.report.clips_per_class == {"a": 1, "b": 2, "c": 3}


def test_labels_use_python_string_order_and_folders_are_labels(tmp_path, spec):
    for folder in ("b", "_unknown_", "B", "a"):
        write_noise(str(tmp_path / folder / "x.wav"), 1.0)
    loader = DataLoader.from_folder(spec, tmp_path, shuffle=False)
    assert loader.index_to_label == ["B", "_unknown_", "a", "b"]
    assert [label for _, label in loader.files] == ["B", "_unknown_", "a", "b"]


def test_every_audio_extension_any_case_and_skips_the_rest(tmp_path, spec):
    write_noise(str(tmp_path / "a" / "one.WAV"), 1.0)
    write_noise(str(tmp_path / "a" / "two.flac"), 1.0, subtype="PCM_24")
    write_noise(str(tmp_path / "a" / "three.ogg"), 1.0, subtype="VORBIS")
    write_noise(str(tmp_path / "b" / "four.wav"), 1.0)
    write_noise(str(tmp_path / "b" / ".hidden.wav"), 1.0)
    (tmp_path / "b" / "notes.txt").write_text("not audio")
    write_noise(str(tmp_path / "root.wav"), 1.0)
    write_noise(str(tmp_path / "b" / "nested" / "deep.wav"), 1.0)
    write_noise(str(tmp_path / ".git" / "x.wav"), 1.0)
    loader = DataLoader.from_folder(spec, tmp_path, shuffle=False)
    assert sorted(os.path.basename(p) for p, _ in loader.files) == ["four.wav", "one.WAV", "three.ogg", "two.flac"]
    skipped = sorted(os.path.basename(p) for p in loader.report.skipped)
    assert skipped == [".git", ".hidden.wav", "nested", "notes.txt", "root.wav"]
    assert list_audio_files(tmp_path / "b") == [str(tmp_path / "b" / "four.wav")]


def test_any_sample_width_rate_and_channels_decode_to_mono_44k(tmp_path, spec):
    write_noise(str(tmp_path / "a" / "float.wav"), 1.2, subtype="FLOAT")
    write_noise(str(tmp_path / "a" / "pcm24_48k.wav"), 1.2, rate=48000, subtype="PCM_24")
    write_noise(str(tmp_path / "b" / "u8_stereo.wav"), 1.2, channels=2, subtype="PCM_U8")
    write_noise(str(tmp_path / "b" / "pcm32_22k.wav"), 1.2, rate=22050, subtype="PCM_32")
    loader = DataLoader.from_folder(spec, tmp_path, shuffle=False)
    windows, labels, _ = loader.waveforms()
    assert windows.shape == (4, WAVEFORM_LENGTH) and windows.dtype == np.float32
    assert np.all(np.isfinite(windows)) and np.abs(windows).max() <= 1.0
    # stereo of two independent noises, averaged: about half the power of one channel
    stereo = windows[list(map(os.path.basename, (p for p, _ in loader.files))).index("u8_stereo.wav")]
    assert 0.03 < np.mean(stereo**2) < 0.05  # 1/12 / 2 for uniform(-0.5, 0.5)


def test_long_recordings_are_chunked_and_short_clips_can_be_padded(tmp_path):
    write_noise(str(tmp_path / "noise" / "long.wav"), 3.5)
    write_noise(str(tmp_path / "word" / "short.wav"), 0.6)
    plain = DataLoader.from_folder(BrowserFftSpec(), tmp_path, shuffle=False)
    assert plain.report.clips_per_class == {"noise": 3, "word": 0}
    assert len(plain.report.dropped_short) == 1 and plain.report.padded == []
    padded = DataLoader.from_folder(BrowserFftSpec(pad_short_clips=True), tmp_path, shuffle=False)
    assert padded.report.clips_per_class == {"noise": 3, "word": 1}
    assert padded.report.dropped_short == [] and len(padded.report.padded) == 1
    windows, labels, owners = padded.waveforms()
    assert windows.shape == (4, WAVEFORM_LENGTH) and labels.tolist() == [0, 0, 0, 1] and owners.tolist() == [0, 0, 0, 1]
    short = windows[3]
    quiet = WAVEFORM_LENGTH - int(round(0.6 * SAMPLE_RATE))
    assert np.all(short[: quiet // 2 - 1] == 0) and np.all(short[-(quiet // 2 - 1) :] == 0)  # centred
    assert "3 clips" in str(padded.report) and "zero-padded" in str(padded.report)


# ---------------------------------------------------------------- errors


def test_missing_and_empty_folders_raise_dataset_errors(tmp_path, spec):
    with pytest.raises(DatasetError, match="not found"):
        DataLoader.from_folder(spec, tmp_path / "nope")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"No audio files found\.$"):
        DataLoader.from_folder(spec, tmp_path)
    write_noise(str(tmp_path / "a" / "1.wav"), 1.0)  # a label folder given instead of the folder above it
    write_noise(str(tmp_path / "a" / "2.wav"), 1.0)
    with pytest.raises(DatasetError, match=r"a: No audio files found; its 2 audio files lie in it, not in label folders"):
        DataLoader.from_folder(spec, tmp_path / "a")


def test_unreadable_files_raise_naming_the_file_or_are_counted(tmp_path, spec):
    write_noise(str(tmp_path / "a" / "good.wav"), 1.0)
    (tmp_path / "a" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(AudioDecodeError, match="broken.wav"):
        DataLoader.from_folder(spec, tmp_path)
    with pytest.warns(UserWarning, match="broken.wav"):
        loader = DataLoader.from_folder(spec, tmp_path, skip_bad_files=True)
    assert len(loader) == 1 and [os.path.basename(p) for p in loader.report.unreadable] == ["broken.wav"]


# ---------------------------------------------------------------- order, shuffle, split


def test_shuffle_is_seeded_and_len_counts_files(speech_folder, spec):
    a = DataLoader.from_folder(spec, speech_folder, seed=3)
    b = DataLoader.from_folder(spec, speech_folder, seed=3)
    plain = DataLoader.from_folder(spec, speech_folder, shuffle=False)
    assert a.files == b.files and a.files != plain.files and sorted(a.files) == sorted(plain.files)
    assert len(a) == 12 and a.size == 12


def test_split_takes_the_first_files_like_model_maker(speech_folder, spec):
    loader = DataLoader.from_folder(spec, speech_folder, seed=0)
    first, second = loader.split(0.75)
    assert len(first) == 9 and len(second) == 3
    assert first.files + second.files == loader.files
    assert first.index_to_label == second.index_to_label == ["no", "yes"]
    with pytest.raises(DatasetError):
        loader.split(1.0)


def test_split_by_speaker_keeps_each_speaker_on_one_side(speech_folder, spec):
    loader = DataLoader.from_folder(spec, speech_folder, seed=0)
    first, second = loader.split(0.5, by_speaker=True)
    left = {speaker_id(p) for p, _ in first.files}
    right = {speaker_id(p) for p, _ in second.files}
    assert left and right and not left & right
    assert len(first) + len(second) == len(loader) and len(first) >= 6


def test_stratified_split_splits_each_label_in_proportion(tmp_path, spec):
    for label, count in (("a", 10), ("b", 5), ("c", 2), ("d", 1)):
        for i in range(count):
            write_noise(str(tmp_path / label / f"{i}.wav"), 1.0, rate=16000, seed=i)
    loader = DataLoader.from_folder(spec, tmp_path, seed=1)
    first, second = loader.split(0.8, stratify=True)
    in_first = collections.Counter(label for _, label in first.files)
    # int(18 * 0.8) = 14 files: 8 + 4 + 1.6 + 0.8 rounded down is 13, and `d` has the largest remainder
    assert in_first == {"a": 8, "b": 4, "c": 1, "d": 1}
    assert sorted(first.files + second.files) == sorted(loader.files)
    assert first.files == [f for f in loader.files if f in first.files]  # the loader's order, kept
    unstratified = collections.Counter(label for _, label in loader.split(0.8)[0].files)
    assert unstratified == {"a": 6, "b": 5, "c": 2, "d": 1}  # the first 80 % of this seed's shuffle
    with pytest.raises(DatasetError, match="by speaker or stratified"):
        loader.split(0.8, by_speaker=True, stratify=True)
    # seven labels of one file each, halved (a test split of a validation split's leftovers):
    # int(3.5) = 3 files in the first part, 4 in the second, not all 7 on one side
    for i in range(7):
        write_noise(str(tmp_path / "single" / f"w{i}" / "0.wav"), 1.0, rate=16000)
    first, second = DataLoader.from_folder(spec, tmp_path / "single", seed=1).split(0.5, stratify=True)
    assert (len(first), len(second)) == (3, 4)


# ---------------------------------------------------------------- caches


def test_memory_cache_decodes_once(speech_folder, spec):
    loader = DataLoader.from_folder(spec, speech_folder, shuffle=False, cache=True)
    first = loader.waveforms()[0]
    path = loader.files[0][0]
    os.remove(path)  # a cached waveform no longer needs its file
    again = loader.waveforms()[0]
    np.testing.assert_array_equal(first, again)


def test_disk_cache_is_keyed_by_path_mtime_and_size(tmp_path, spec):
    data, cache = tmp_path / "data", tmp_path / "cache"
    clip = write_noise(str(data / "a" / "x.wav"), 1.0, rate=16000)
    write_noise(str(data / "b" / "y.wav"), 1.0, rate=16000)
    loader = DataLoader.from_folder(spec, data, shuffle=False, cache=cache)
    first = loader.waveforms()[0]
    assert len(list(cache.glob("*.npy"))) == 2
    np.testing.assert_array_equal(DataLoader.from_folder(spec, data, shuffle=False, cache=cache).waveforms()[0], first)
    write_noise(clip, 1.0, rate=16000, seed=7)  # new content: new key
    os.utime(clip, ns=(1, 1))
    changed = DataLoader.from_folder(spec, data, shuffle=False, cache=cache).waveforms()[0]
    assert len(list(cache.glob("*.npy"))) == 3 and not np.array_equal(changed[0], first[0])


# ---------------------------------------------------------------- tf.data


def test_gen_dataset_yields_spectrograms_and_one_hot_labels_in_order(speech_folder, spec):
    loader = DataLoader.from_folder(spec, speech_folder, shuffle=False)
    batches = list(loader.gen_dataset(batch_size=5))
    assert [tuple(x.shape) for x, _ in batches] == [(5, 43, 232, 1), (5, 43, 232, 1), (2, 43, 232, 1)]
    labels = np.concatenate([np.argmax(y, axis=-1) for _, y in batches])
    assert batches[0][1].shape == (5, 2) and labels.tolist() == loader.labels().tolist()
    dropped = list(loader.gen_dataset(batch_size=5, drop_remainder=True))
    assert len(dropped) == 2
    x0 = batches[0][0].numpy()
    np.testing.assert_allclose(x0.mean(axis=(1, 2, 3)), 0, atol=1e-4)  # z-scored planes


def test_gen_dataset_training_adds_tiny_noise_and_preprocess_hook(speech_folder, spec):
    loader = DataLoader.from_folder(spec, speech_folder, shuffle=False)
    clean = next(iter(loader.gen_dataset(batch_size=12)))[0].numpy()
    noisy = next(iter(loader.gen_dataset(batch_size=12, is_training=True)))[0].numpy()
    difference = np.abs(clean - noisy)
    assert difference.max() > 0 and np.median(difference) < 1e-2  # only near-silent bins move visibly
    doubled = next(iter(loader.gen_dataset(batch_size=12, preprocess=lambda x, y, training: (2 * x, y))))[0]
    np.testing.assert_allclose(doubled.numpy(), 2 * clean, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- ESC-50


def write_esc50(root):
    rows = [("1-1-A-0.wav", 1, 0, "dog"), ("1-2-A-1.wav", 1, 1, "rooster"), ("2-1-A-0.wav", 2, 0, "dog"),
            ("3-1-A-5.wav", 3, 5, "cat")]  # fmt: skip
    os.makedirs(root / "meta")
    with open(root / "meta" / "esc50.csv", "w") as handle:
        handle.write("filename,fold,target,category,esc10,src_file,take\n")
        for i, (name, fold, target, category) in enumerate(rows):
            handle.write(f"{name},{fold},{target},{category},False,{i},A\n")
            write_noise(str(root / "audio" / name), 5.0, seed=i)


def test_from_esc50_filters_folds_and_categories(tmp_path, spec):
    write_esc50(tmp_path)
    everything = DataLoader.from_esc50(spec, tmp_path, shuffle=False)
    assert len(everything) == 4 and everything.index_to_label == ["cat", "dog", "rooster"]
    assert everything.report.clips_per_class == {"cat": 5, "dog": 10, "rooster": 5}
    folds = DataLoader.from_esc50(spec, tmp_path, folds=[1, 3])
    assert len(folds) == 3 and folds.index_to_label == ["cat", "dog", "rooster"]
    dogs = DataLoader.from_esc50(spec, tmp_path, categories=["dog", "cat"], folds=[1, 2])
    assert len(dogs) == 2 and dogs.index_to_label == ["dog"]
    with pytest.raises(DatasetError, match=r"esc50.csv: no category \['cow'\] here; there are \['cat', 'dog', 'rooster'\]"):
        DataLoader.from_esc50(spec, tmp_path, categories=["cow", "dog"])  # a typo is named, not trained without
    with pytest.raises(DatasetError, match="No audio files found."):
        DataLoader.from_esc50(spec, tmp_path, categories=["rooster"], folds=[2])


@pytest.mark.parametrize("line, problem", [
    ("1-1-A-0.wav,x,0,dog,False,0,A", "line 2: needs a file name, a whole fold number and a category"),
    ("1-1-A-0.wav,1", "line 2: needs a file name, a whole fold number and a category"),
    ("1-1-A-0.wav,1,0,\xff\xfe,False,0,A", "not UTF-8 text"),
])  # fmt: skip
def test_a_malformed_esc50_csv_is_refused_naming_the_file_and_line(tmp_path, spec, line, problem):
    (tmp_path / "meta").mkdir()
    content = "filename,fold,target,category,esc10,src_file,take\n" + line + "\n"
    (tmp_path / "meta" / "esc50.csv").write_bytes(content.encode("latin-1"))  # \xff\xfe: bytes no UTF-8 text holds
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "meta" / "esc50.csv")) + ": " + problem):
        DataLoader.from_esc50(spec, tmp_path)


def test_categories_that_name_no_folder_are_refused(tmp_path, spec):
    write_noise(str(tmp_path / "yes" / "a.wav"), 1.0)
    write_noise(str(tmp_path / "no" / "b.wav"), 1.0)
    with pytest.raises(DatasetError, match=r"no category \['mabye'\] here; there are \['no', 'yes'\]"):
        DataLoader.from_folder(spec, tmp_path, categories=["yes", "no", "mabye"])


def test_a_label_folder_without_audio_is_no_class_and_is_counted_or_refused_when_named(tmp_path, spec):
    write_noise(str(tmp_path / "yes" / "a.wav"), 1.0)
    write_noise(str(tmp_path / "no" / "b.wav"), 1.0)
    (tmp_path / "maybe").mkdir()
    (tmp_path / "maybe" / "todo.txt").write_text("record these")
    loader = DataLoader.from_folder(spec, tmp_path)
    assert loader.index_to_label == ["no", "yes"] and loader.report.skipped == [str(tmp_path / "maybe")]
    assert "not audio, skipped: 1" in str(loader.report)
    with pytest.raises(DatasetError, match="maybe: the category holds no audio file"):
        DataLoader.from_folder(spec, tmp_path, categories=["yes", "maybe"])


def test_a_label_folder_not_named_in_utf8_is_refused(tmp_path, spec):
    write_noise(str(tmp_path / "yes" / "a.wav"), 1.0)
    write_noise(str(tmp_path / "no" / "b.wav"), 1.0)
    os.rename(tmp_path / "no", os.fsencode(tmp_path) + b"/n\xffo")
    with pytest.raises(DatasetError, match=r"the label folders 'n\\udcffo' are not named in UTF-8"):
        DataLoader.from_folder(spec, tmp_path)


# ---------------------------------------------------------------- long files and files that fail when decoded


def write_real_speech(path, words, count):
    """``count`` real 1 s clips of each word, one after the other, as one 16 kHz FLAC; returns the path."""
    clips = [clip for word in words for clip in real_clips(word, count)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips]), 16000)
    return path


def test_long_files_stream_the_windows_of_the_whole_file(tmp_path, spec, monkeypatch):
    """A 70 s recording over a 60 s threshold: streamed in 30 s blocks, same windows, never held by the memory cache."""
    monkeypatch.setattr(waveforms_module, "LONG_FILE_SECONDS", 60)
    long = write_real_speech(str(tmp_path / "data" / "talk" / "long.flac"), ("yes", "no"), 35)
    write_noise(str(tmp_path / "data" / "noise" / "short.wav"), 1.0)
    whole = audio.split_windows(audio.load_audio(long))
    assert len(whole) == 70
    for cache in (True, tmp_path / "cache"):
        loader = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=cache)
        assert loader.report.clips_per_class == {"noise": 1, "talk": 70}
        chunks = [windows for index, _, windows in loader.iter_waveforms() if index == 1]
        assert len(chunks) >= 3 and max(len(c) for c in chunks) <= 32  # bounded pieces, not the whole file
        np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-6)  # measured: identical
        again = loader.waveforms()[0]  # a second pass: from the disk cache, or streamed again
        np.testing.assert_allclose(again[1:], whole, rtol=0, atol=1e-6)
        assert len(list(loader.gen_dataset(batch_size=16).unbatch())) == 71
    stored = [np.load(f, mmap_mode="r").shape for f in (tmp_path / "cache").glob("*.npy")]
    assert sorted(stored) == [(70, WAVEFORM_LENGTH), (SAMPLE_RATE,)]  # windows of the long file, the short waveform
    in_memory = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=True)
    in_memory.waveforms()
    os.remove(long)  # the short file is served from memory; the long one was never kept there
    with pytest.raises(AudioDecodeError, match="long.flac"):
        in_memory.waveforms()


def _full_disk_after(limit: int):
    """An ``open`` whose files, opened for writing, fail as a full disk does (ENOSPC) past ``limit`` bytes."""
    import builtins
    import errno

    class FullDisk:
        def __init__(self, handle):
            self._handle, self._written = handle, 0

        def write(self, data):
            self._written += len(data)
            if self._written > limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._handle.write(data)

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

    def fake_open(path, mode="r", *args, **kwargs):
        handle = builtins.open(path, mode, *args, **kwargs)
        return FullDisk(handle) if "w" in mode else handle

    return fake_open


def test_a_disk_cache_that_cannot_be_written_costs_speed_not_results(tmp_path, spec, monkeypatch, caplog):
    """A full disk while a long file's windows are written, then a cache folder gone: the same windows as
    without a cache, one warning naming the folder, and no partial file left behind."""
    monkeypatch.setattr(waveforms_module, "LONG_FILE_SECONDS", 60)
    write_real_speech(str(tmp_path / "data" / "talk" / "long.flac"), ("yes", "no"), 35)
    write_noise(str(tmp_path / "data" / "noise" / "short.wav"), 1.0)
    expected = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=False).waveforms()[0]

    cache = tmp_path / "cache"
    monkeypatch.setattr(waveforms_module, "open", _full_disk_after(5_000_000), raising=False)  # 28 of 70 windows
    with caplog.at_level("WARNING", logger="mm_browserfft"):
        loader = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=cache)
        np.testing.assert_array_equal(loader.waveforms()[0], expected)
        np.testing.assert_array_equal(loader.waveforms()[0], expected)  # the long file streamed again, and again refused
    warned = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warned) == 1 and str(cache) in warned[0] and "No space left" in warned[0]
    assert [f.name.endswith(".npy") and ".tmp" not in f.name for f in cache.iterdir()] == [True]  # the short one
    monkeypatch.undo()

    caplog.clear()
    monkeypatch.setattr(waveforms_module, "LONG_FILE_SECONDS", 60)
    loader = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone").write_text("a file where the cache folder was")  # no write below it can succeed
    with caplog.at_level("WARNING", logger="mm_browserfft"):
        np.testing.assert_array_equal(loader.waveforms()[0], expected)
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1


def test_a_streamed_file_short_of_its_windows_by_the_tolerance_is_zero_filled_and_beyond_it_refused(tmp_path):
    """A long file is streamed window by window against the count its header gave: up to
    HEADER_LENGTH_TOLERANCE_S short, its last window is zero-filled; more, it is truncated."""
    tolerance = int(waveforms_module.HEADER_LENGTH_TOLERANCE_S * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    for short_by, whole in ((tolerance, True), (tolerance + 1, False)):
        path = tmp_path / f"short_by_{short_by}.wav"
        samples = (0.1 * rng.standard_normal(3 * WAVEFORM_LENGTH - short_by)).astype(np.float32)
        sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
        if whole:
            windows = np.concatenate(list(waveforms_module.stream_windows(str(path), 3)))
            assert windows.shape == (3, WAVEFORM_LENGTH)
            np.testing.assert_array_equal(windows.ravel()[: samples.size], samples)
            assert not windows.ravel()[samples.size :].any()
        else:
            with pytest.raises(AudioDecodeError, match=f"{path.name}: truncated: decoding gave {samples.size} samples"):
                list(waveforms_module.stream_windows(str(path), 3))


def test_an_mp3_cut_after_its_header_gives_the_windows_it_promised_or_an_error(tmp_path, spec):
    """An MP3 whose header (a LAME/Xing frame count) promises 3 s, cut to a third: the header reads, the
    clip count comes from it, and decoding gives 1 s. It must not give fewer windows than were counted."""
    for word in ("yes", "no"):
        os.makedirs(tmp_path / word)
        for clip in real_clips(word, 3):
            x, rate = sf.read(clip, dtype="float32")
            sf.write(tmp_path / word / f"{clip.stem}.mp3", np.tile(x, 3), rate, format="MP3", subtype="MPEG_LAYER_III")
    cut = sorted((tmp_path / "yes").iterdir())[0]
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 3])
    assert sf.info(cut).frames == 48000  # the header still promises 3 s
    with pytest.raises(AudioDecodeError, match=f"{cut.name}: truncated: decoding gave [1-4][0-9]{{4}} samples at 44100 Hz, "
                                               "the header promises 132300"):  # fmt: skip
        DataLoader.from_folder(spec, tmp_path, shuffle=False).waveforms()
    loader = DataLoader.from_folder(spec, tmp_path, shuffle=False, skip_bad_files=True)
    with pytest.warns(UserWarning, match="skipping .*truncated"):
        windows, labels, _ = loader.waveforms()
    assert loader.report.unreadable == [str(cut)] and len(windows) == loader.report.num_clips == 5 * 3
    assert loader.labels().tolist() == labels.tolist()


def test_a_waveform_cache_entry_that_does_not_read_back_is_decoded_again(tmp_path, spec):
    for word in ("yes", "no"):
        os.makedirs(tmp_path / "data" / word)
        for clip in real_clips(word, 2):
            shutil.copy(clip, tmp_path / "data" / word)
    cache = tmp_path / "cache"
    expected = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=cache).waveforms()[0]
    entries = sorted(cache.iterdir())
    assert len(entries) == 4
    entries[0].write_bytes(entries[0].read_bytes()[:1000])  # cut off
    np.save(entries[1], np.zeros(10, np.float32))  # another array under its name
    again = DataLoader.from_folder(spec, tmp_path / "data", shuffle=False, cache=cache).waveforms()[0]
    np.testing.assert_array_equal(again, expected)
    assert [np.load(e).size > 40_000 for e in entries] == [True] * 4  # the two bad entries written anew, whole


def test_a_flac_cut_short_found_when_decoded_is_skipped_and_counted(tmp_path, spec, monkeypatch):
    """A real clip (and a streamed long recording) cut in half: the header reads fine, decoding fails."""
    monkeypatch.setattr(waveforms_module, "LONG_FILE_SECONDS", 60)
    for word in ("yes", "no"):
        os.makedirs(tmp_path / word)
        for clip in real_clips(word, 3):
            shutil.copy(clip, tmp_path / word)
    whole = real_clips("up", 1)[0].read_bytes()
    (tmp_path / "yes" / "cut.flac").write_bytes(whole[: len(whole) // 2])
    long = write_real_speech(str(tmp_path / "no" / "long_cut.flac"), ("up", "down"), 35)
    with open(long, "r+b") as handle:
        handle.truncate(os.path.getsize(long) // 2)
    with pytest.raises(AudioDecodeError, match="cut.flac"):
        DataLoader.from_folder(spec, tmp_path, shuffle=False).waveforms()  # listed fine, fails when decoded
    loader = DataLoader.from_folder(spec, tmp_path, shuffle=False, skip_bad_files=True)
    assert loader.report.num_files == 8 and loader.report.unreadable == []
    with pytest.warns(UserWarning, match="skipping .*cut.flac") as caught:
        windows, labels, owners = loader.waveforms()
    assert sorted(os.path.basename(p) for p in loader.report.unreadable) == ["cut.flac", "long_cut.flac"]
    assert len([w for w in caught if "skipping" in str(w.message)]) == 2
    assert loader.report.files_per_class == {"no": 3, "yes": 3} and "unreadable, skipped: 2" in str(loader.report)
    long_index = [path for path, _ in loader.files].index(long)
    streamed = owners == long_index  # the long file's blocks decoded before the cut (30 s) were used in this pass
    assert 0 < streamed.sum() < 70 and (~streamed).sum() == loader.report.num_clips == 6
    assert loader.labels().tolist() == labels[~streamed].tolist()
    batches = list(loader.gen_dataset(batch_size=4))  # later passes skip them without decoding again
    assert np.concatenate([np.argmax(y, -1) for _, y in batches]).tolist() == loader.labels().tolist()
