"""Embeddings of a loader's windows for head-only training: computed in bounded memory, cached, batched.

Head-only training runs the frozen base once per training window (front end + base up
to ``dense_1``) and trains the head on the 2000-d embeddings. Every function here takes
the spec and the embedder (:meth:`~mm_browserfft.spec.BrowserFftSpec.embedding_model`)
explicitly; :class:`~mm_browserfft.classifier.AudioClassifier` composes them.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .. import progress
from ..errors import BrowserFftError
from .backup import weights_digest

__all__ = ["embed", "embedding_context", "embedded_rows", "batches", "negative_class", "partial_word_rows"]

log = logging.getLogger("mm_browserfft")

EMBED_BATCH = 256  # windows per forward pass of the base


def file_groups(per_file, size: int = EMBED_BATCH) -> Iterator[Tuple[List[Tuple[int, int, int]], np.ndarray]]:
    """Regroup ``(file_index, label, windows [k, 44032])`` into ``([(file_index, label, k), ...], windows [~size, 44032])``.

    A long file's consecutive pieces (same index) become one entry.
    """
    owners: List[Tuple[int, int, int]] = []
    windows: List[np.ndarray] = []
    count = 0
    for index, label, chunk in per_file:
        if owners and owners[-1][0] == index:
            owners[-1] = (index, label, owners[-1][2] + len(chunk))
        else:
            owners.append((index, label, len(chunk)))
        windows.append(chunk)
        count += len(chunk)
        if count >= size:
            yield owners, np.concatenate(windows)
            owners, windows, count = [], [], 0
    if owners:
        yield owners, np.concatenate(windows)


def groups(per_file, size: int = EMBED_BATCH) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Regroup ``(file_index, label, windows [k, 44032])`` per file into ``(windows [~size, 44032], labels int32)``."""
    for owners, windows in file_groups(per_file, size):
        yield windows, np.repeat(np.array([label for _, label, _ in owners], np.int32), [k for _, _, k in owners])


def embed(spec, embedder, windows: np.ndarray, *, is_training: bool) -> np.ndarray:
    """Embeddings ``[m, 2000]`` float32 of windows ``[m, 44032]`` (front end + frozen base)."""
    import tensorflow as tf

    out = [np.zeros((0, embedder.output_shape[-1]), np.float32)]
    for start in range(0, len(windows), EMBED_BATCH):
        batch = tf.constant(windows[start : start + EMBED_BATCH])
        out.append(embedder(spec.featurize(batch, is_training=is_training), training=False).numpy())
    return np.concatenate(out)


def embedding_context(spec, embedder) -> Dict[str, Any]:
    """What fixes the meaning of an embedding of ``embedder`` under ``spec``: the cache's keys.

    Computed once per training: the embedder's weight digest and a digest of the front end's
    output on a fixed probe (any change of the front end's numbers gives new keys).
    """
    from .. import __version__

    probe = np.random.default_rng(0).normal(0.0, 0.1, (1, spec.EXPECTED_WAVEFORM_LENGTH)).astype(np.float32)
    frontend = hashlib.sha256(np.asarray(spec.featurize(probe), np.float32).tobytes()).hexdigest()
    return {
        "package": __version__, "spec": type(spec).__name__, "embedder": weights_digest(embedder),
        "frontend": frontend, "pad_short_clips": bool(getattr(spec, "pad_short_clips", False)),
        "seed": getattr(spec, "seed", None),
    }  # fmt: skip


def embedded_rows(
    spec, embedder, data, *, is_training: bool, cache_dir: Optional[str] = None, context: Optional[Dict[str, Any]] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """``(embeddings [m, d] float16, labels [m] int32)`` of every window of ``data``, in the loader's order.

    One preallocated float16 array holds them (for the full Speech Commands, about 0.4 GB);
    the waveforms are decoded file by file. With a ``cache_dir`` and a ``context``
    (:func:`embedding_context`), a file whose embeddings are in the cache is not even decoded,
    and new ones are stored.
    """
    width = int(embedder.output_shape[-1])
    if not hasattr(data, "clips_per_file"):  # another loader: no header counts, no cache
        parts = [(embed(spec, embedder, w, is_training=is_training), y) for w, y in groups(data.iter_waveforms())]
        x = np.concatenate([p[0] for p in parts] or [np.zeros((0, width), np.float32)]).astype(np.float16)
        return x, np.concatenate([p[1] for p in parts] or [np.zeros(0, np.int32)])
    cache = None
    if context is not None and cache_dir is not None:
        from ..cache import EmbeddingCache

        cache = EmbeddingCache(cache_dir, context={**context, "training_noise": bool(is_training)})
    counts = data.clips_per_file()
    paths = [path for path, _ in data.files]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    x = np.zeros((int(offsets[-1]), width), np.float16)
    labels = np.full(len(x), -1, np.int32)  # -1: a row no file filled (unreadable, skipped)
    file_labels = [data.index_to_label.index(label) for _, label in data.files]
    hits = set()
    if cache is not None:
        for i, (path, count) in enumerate(zip(paths, counts)):
            cached = cache.get(path, count) if count else None
            if cached is not None and cached.shape[1] == width:
                x[offsets[i] : offsets[i + 1]] = cached
                labels[offsets[i] : offsets[i + 1]] = file_labels[i]
                hits.add(i)
    with progress.bar(desc="embedding", total=int(offsets[-1]), unit="clip") as shown:
        shown.update(int(sum(counts[i] for i in hits)))
        for owners, windows in file_groups(data.iter_waveforms(exclude=hits)):
            embedded = embed(spec, embedder, windows, is_training=is_training).astype(np.float16)
            start = 0
            for index, _, count in owners:
                rows = embedded[start : start + count]
                start += count
                fill = offsets[index] + np.arange(count)
                if count > counts[index]:
                    raise BrowserFftError(f"{paths[index]}: decoding gave more windows than its header promised")
                x[fill], labels[fill] = rows, file_labels[index]
                if cache is not None and count == counts[index]:
                    cache.put(paths[index], rows)
            shown.update(len(windows))
    if cache is not None:
        log.info("embeddings of %d files from the cache %s, %d computed", len(hits), cache.folder, len(paths) - len(hits))
    kept = labels >= 0
    return (x, labels) if kept.all() else (x[kept], labels[kept])


def batches(parts: Sequence[Tuple[np.ndarray, np.ndarray]], batch_size: int, *, shuffle: bool, seed: Optional[int]):
    """A dataset of ``(float32 [b, d], int32 [b])`` batches of the rows of ``parts``, reshuffled every epoch.

    ``parts`` are ``(float16 [m_i, d], int32 [m_i])`` pairs, taken as one set. Rows are
    gathered per batch, so the training set is never copied whole.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    ends = np.cumsum([len(y) for _, y in parts])
    total = int(ends[-1]) if len(ends) else 0

    def rows():
        order = rng.permutation(total) if shuffle else np.arange(total)
        for start in range(0, total, batch_size):
            idx = np.sort(order[start : start + batch_size])
            which = np.searchsorted(ends, idx, side="right")
            rows = [(x[i - (ends[p] - len(y))], y[i - (ends[p] - len(y))]) for p, (x, y) in enumerate(parts)
                    for i in [idx[which == p]] if i.size]  # fmt: skip
            yield np.concatenate([r[0] for r in rows]).astype(np.float32), np.concatenate([r[1] for r in rows])

    width = parts[0][0].shape[1]
    dataset = tf.data.Dataset.from_generator(
        rows, output_signature=(tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.int32))
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-total // batch_size)))


def negative_class(labels: Sequence[str]) -> Optional[int]:
    """Index of the class a window without a whole word belongs to: ``_unknown_``, else the background class."""
    from ..listen import NOISE_LABELS

    for names in (("_unknown_",), NOISE_LABELS):
        found = [i for i, label in enumerate(labels) if label in names]
        if found:
            return found[0]
    return None


def partial_word_rows(
    spec, embedder, data, labels: Sequence[str], *, cache_dir: Optional[str] = None, context: Optional[Dict[str, Any]] = None
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(float16 [k, d], int32 [k])``: embeddings of partial-word windows taught as the negative class, or None.

    A share ``spec.partial_word_negatives`` of the files of each word (chosen by a
    seeded draw per label folder and file name), but no more windows than the largest class holds (so the
    negative class does not swamp the words of a large data set), gives one window
    (:func:`mm_browserfft.augment.partial_word` of its first window), filled with a window
    of the background class's files (up to 64 of them, or silence without any). Cached
    like the loader's embeddings.
    """
    import zlib

    from .. import augment
    from ..listen import NOISE_LABELS

    share = float(getattr(spec, "partial_word_negatives", 0.0) or 0.0)
    negative = negative_class(labels)
    if share <= 0 or negative is None or not hasattr(data, "clips_per_file"):
        if share > 0:
            log.info("partial-word negatives: no _unknown_ or background class among %s, none made", list(labels))
        return None
    seed = getattr(spec, "seed", None) or 0
    noise = {i for i, label in enumerate(labels) if label in NOISE_LABELS}
    counts = data.clips_per_file()
    files = [(i, path, data.index_to_label.index(label)) for i, ((path, label), count) in
             enumerate(zip(data.files, counts)) if count]  # fmt: skip
    def key(path: str) -> int:  # the label folder and file name: the same draw wherever the data set lies
        return zlib.crc32("/".join(pathlib.PurePath(path).parts[-2:]).encode("utf-8", "surrogatepass"))

    draws = {i: np.random.default_rng([seed, key(path)]).random()
             for i, path, label in files if label != negative and label not in noise}  # fmt: skip
    per_class = np.bincount([label for _, _, label in files], weights=[counts[i] for i, _, _ in files])
    cap = int(per_class.max()) if len(per_class) else 0  # no more than the largest class holds
    picked = sorted((i for i, r in draws.items() if r < share), key=lambda i: (draws[i], i))[:cap]
    chosen = [(i, data.files[i][0]) for i in sorted(picked)]
    if not chosen:
        return None
    fill_files = {i for i, _, label in files if label in noise}
    fill_files = set(sorted(fill_files)[:64])
    width = int(embedder.output_shape[-1])
    cache = None
    if context is not None and cache_dir is not None:
        from ..cache import EmbeddingCache

        fill_digest = hashlib.sha256("\0".join(data.files[i][0] for i in sorted(fill_files)).encode()).hexdigest()
        cache = EmbeddingCache(cache_dir, context={**context, "partial_word": fill_digest})
    x = np.zeros((len(chosen), width), np.float16)
    done = set()
    if cache is not None:
        for row, (_, path) in enumerate(chosen):
            hit = cache.get(path, 1)
            if hit is not None and hit.shape == (1, width):
                x[row] = hit[0]
                done.add(row)
    row_of = {i: row for row, (i, _) in enumerate(chosen)}
    todo = {i for row, (i, _) in enumerate(chosen) if row not in done}
    pending: List[Tuple[int, np.ndarray]] = []
    fills = [] if not todo else [  # decoded only when some window is not in the cache
        w for _, _, windows in data.iter_waveforms(exclude=set(range(len(counts))) - fill_files) for w in windows]

    def flush():
        if pending:
            embedded = embed(spec, embedder, np.stack([w for _, w in pending]), is_training=True).astype(np.float16)
            for (row, _), e in zip(pending, embedded):
                x[row] = e
                if cache is not None:
                    cache.put(chosen[row][1], e[None])
            pending.clear()

    for index, _, windows in data.iter_waveforms(exclude=set(range(len(counts))) - todo):
        if not len(windows) or index not in row_of:
            continue
        path = chosen[row_of[index]][1]
        rng = np.random.default_rng([seed, key(path), 1])
        fill = fills[int(rng.integers(len(fills)))] if fills else np.zeros(spec.EXPECTED_WAVEFORM_LENGTH, np.float32)
        pending.append((row_of[index], augment.partial_word(windows[0], fill, rng)))
        if len(pending) >= EMBED_BATCH:
            flush()
    flush()
    log.info("partial-word negatives: %d windows taught as %r", len(chosen), labels[negative])
    return x, np.full(len(chosen), negative, np.int32)
