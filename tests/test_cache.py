"""The on-disk embedding cache: keyed so that nothing stale is served, reused by reruns, shown and cleared by the CLI."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import real_clips, run_cli
from mm_browserfft import audio_classifier
from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader
from mm_browserfft.cache import CACHE_ENV, EmbeddingCache, cache_usage, clear_cache, default_cache_dir, save_npy_atomically


def test_an_entry_is_served_only_for_the_same_file_and_context(tmp_path):
    clip = tmp_path / "a.flac"
    shutil.copy(real_clips("yes", 1)[0], clip)
    cache = EmbeddingCache(tmp_path / "cache", context={"embedder": "x"})
    value = np.arange(6, dtype=np.float16).reshape(1, 6)
    assert cache.get(str(clip), 1) is None
    cache.put(str(clip), value)
    np.testing.assert_array_equal(cache.get(str(clip), 1), value)
    assert cache.get(str(clip), 2) is None  # another window count: not this entry
    assert EmbeddingCache(tmp_path / "cache", context={"embedder": "y"}).get(str(clip), 1) is None
    os.utime(clip, ns=(1, 1))  # the file changed (its modification time)
    assert cache.get(str(clip), 1) is None
    assert cache.hits == 1 and cache.misses == 3


def test_an_entry_that_cannot_be_written_leaves_no_partial_file_and_training_goes_on(tmp_path, caplog):
    target = tmp_path / "entry.npy"
    target.mkdir()  # the array is saved beside it, then cannot be renamed over a folder
    with pytest.raises(OSError):
        save_npy_atomically(target, np.ones((3, 4), np.float16))
    assert [p.name for p in tmp_path.iterdir()] == ["entry.npy"] and not any(target.iterdir())

    clip = tmp_path / "a.flac"
    shutil.copy(real_clips("yes", 1)[0], clip)
    cache = EmbeddingCache(tmp_path / "cache", context={"embedder": "x"})
    shutil.rmtree(cache.folder)
    cache.folder.write_text("a file where the cache folder was")  # nothing below it can be written
    with caplog.at_level("WARNING", logger="mm_browserfft"):
        cache.put(str(clip), np.ones((1, 6), np.float16))
        cache.put(str(clip), np.ones((1, 6), np.float16))
    assert cache.get(str(clip), 1) is None
    assert [str(cache.folder) in r.getMessage() for r in caplog.records] == [True]  # warned once


def test_default_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mm_browserfft"


@pytest.fixture()
def words(tmp_path):
    for label in ("yes", "no"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for clip in real_clips(label, 6):
            shutil.copy(clip, tmp_path / "data" / label / clip.name)
    return tmp_path / "data"


def _train(words, random_base_dir, cache, model_dir):
    spec = BrowserFftSpec(base_model=str(random_base_dir), seed=0)
    data = DataLoader.from_folder(spec, words, seed=0)
    model = audio_classifier.create(data, spec, batch_size=4, epochs=3, model_dir=str(model_dir), embedding_cache=cache)
    return model, data


def test_a_rerun_reads_every_embedding_from_the_cache_and_trains_the_same_head(words, random_base_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    plain, _ = _train(words, random_base_dir, None, tmp_path / "m0")
    first, _ = _train(words, random_base_dir, cache, tmp_path / "m1")
    assert cache_usage(cache)["files"] == 12  # one entry per file
    with caplog.at_level("INFO", logger="mm_browserfft"):
        again, _ = _train(words, random_base_dir, cache, tmp_path / "m2")
    assert "embeddings of 12 files from the cache" in caplog.text and "0 computed" in caplog.text
    head = lambda m: m.model.get_layer("classification_head").get_weights()  # noqa: E731
    for a, b, c in zip(head(plain), head(first), head(again)):
        np.testing.assert_array_equal(b, c)  # the cache gives back what was computed
        np.testing.assert_allclose(a, b, atol=1e-3)  # float16 storage: the same training, to rounding


def test_a_changed_file_or_base_is_embedded_again(words, random_base_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    _train(words, random_base_dir, cache, tmp_path / "m1")
    victim = sorted((words / "yes").iterdir())[0]
    shutil.copy(real_clips("yes", 7)[-1], victim)  # same name, other audio
    with caplog.at_level("INFO", logger="mm_browserfft"):
        _train(words, random_base_dir, cache, tmp_path / "m2")
        assert "embeddings of 11 files from the cache" in caplog.text and "1 computed" in caplog.text
        caplog.clear()
        spec = BrowserFftSpec(seed=0)  # the bundled base: other weights, other keys
        data = DataLoader.from_folder(spec, words, seed=0)
        audio_classifier.create(data, spec, batch_size=4, epochs=1, model_dir=str(tmp_path / "m3"), embedding_cache=cache)
    assert "embeddings of 0 files from the cache" in caplog.text


def test_cli_shows_and_clears_the_cache(tmp_path):
    folder = tmp_path / "c"
    (folder / "embeddings" / "ab").mkdir(parents=True)
    (folder / "embeddings" / "ab" / "x.npy").write_bytes(b"0" * 1000)
    code, out, _ = run_cli("cache", "--cache-dir", folder, "--json")
    assert code == 0 and json.loads(out) == {"cache_dir": str(folder), "files": 1, "bytes": 1000, "cleared": False}
    code, out, _ = run_cli("cache", "--cache-dir", folder, "--clear")
    assert code == 0 and "cleared 1 files" in out
    assert cache_usage(folder) == {"files": 0, "bytes": 0} and folder.is_dir()
    assert clear_cache(tmp_path / "never_made") == {"files": 0, "bytes": 0}


def test_clear_refuses_a_folder_that_is_not_a_cache_and_deletes_nothing(tmp_path):
    cache = tmp_path / "cache"
    for entry in ("embeddings/ab", "waveforms", "0123456789abcdef0123456789abcdef", ".download-x1"):  # what we write
        (cache / entry).mkdir(parents=True)
        (cache / entry / "x.npy").write_bytes(b"0" * 10)
    assert clear_cache(cache) == {"files": 4, "bytes": 40} and not any(cache.iterdir())
    mine = tmp_path / "thesis"  # a mistyped --cache-dir
    (mine / "embeddings").mkdir(parents=True)
    (mine / "chapter1.tex").write_text("years of work")
    code, _, stderr = run_cli("cache", "--cache-dir", mine, "--clear")
    assert code == 2 and f"{mine}: not an mm_browserfft cache: it holds ['chapter1.tex']" in stderr
    assert (mine / "chapter1.tex").read_text() == "years of work" and (mine / "embeddings").is_dir()
