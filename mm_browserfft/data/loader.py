"""DataLoader: Model Maker's audio data loader (see :mod:`mm_browserfft.data`)."""

from __future__ import annotations

import collections
import csv
import logging
import math
import os
import random
import warnings
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import audio, progress
from ..errors import AudioDecodeError, DatasetError
from ..frontend import SAMPLE_RATE, WAVEFORM_LENGTH
from ..metadata import is_single_line
from ..speakers import speaker_id
from .files import check_categories, is_audio_name, label_folder_files, warn_case_clashes
from .report import LoadReport
from .waveforms import Cache, Item, PathLike, WaveformCache

__all__ = ["DataLoader"]

_log = logging.getLogger("mm_browserfft")


class DataLoader:
    """Audio files with labels, for :func:`mm_browserfft.audio_classifier.create`.

    Build one with :meth:`from_folder` or :meth:`from_esc50`. ``len(loader)`` is
    the number of files (Model Maker's meaning); a file gives 0..n windows.

    Attributes:
      index_to_label: class names, index = class id (sorted).
      num_classes: ``len(index_to_label)``.
      report: a :class:`LoadReport`.
      spec: the model spec whose preprocessing :meth:`gen_dataset` applies.
    """

    def __init__(
        self,
        items: Sequence[Item],
        index_to_label: Sequence[str],
        spec,
        *,
        cache: Union[Cache, WaveformCache] = False,
        skipped: Sequence[str] = (),
        unreadable: Sequence[str] = (),
        seed: Optional[int] = None,
        skip_bad_files: bool = False,
    ) -> None:
        self._items = list(items)
        self._seed = seed
        # Model Maker shuffled with the global ``random``; a seed gives the loader its own generator.
        self._shuffler = random if seed is None else random.Random(seed)
        self.index_to_label = list(index_to_label)
        self.spec = spec
        self._cache = cache if isinstance(cache, WaveformCache) else WaveformCache(cache)
        self._skipped = list(skipped)
        self._unreadable = list(unreadable)
        self._skip_bad_files = skip_bad_files

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_folder(
        cls,
        spec,
        data_path: PathLike,
        categories: Optional[Sequence[str]] = None,
        shuffle: bool = True,
        cache: Cache = False,
        *,
        seed: Optional[int] = None,
        skip_bad_files: bool = False,
    ) -> "DataLoader":
        """Load ``data_path/<label>/<audio file>``.

        Args:
          spec: the model spec (its ``pad_short_clips`` decides short clips).
          data_path: folder with one sub-folder per label.
          categories: keep only these label folders.
          shuffle: shuffle the files, with Python's global ``random`` as Model Maker
            did (so ``random.seed`` makes it repeatable), or with ``seed``.
          cache: ``True`` keeps decoded waveforms in memory, a path keeps them on disk.
          seed: seed of the shuffle.
          skip_bad_files: warn about and count unreadable files instead of raising,
            both when listing the folder and when a file fails to decode later.

        Raises:
          DatasetError: ``data_path`` is missing, a category has no folder in it or no audio file
            in its folder, no audio file is found, or a label folder's name is not UTF-8. (A label
            folder without an audio file is no class, and is counted as skipped.)
          AudioDecodeError: a file is unreadable (unless ``skip_bad_files``), when
            listing, or for a cut-off FLAC/OGG when it is decoded.
        """
        root = os.fspath(data_path)
        if not os.path.isdir(root):
            raise DatasetError("data folder not found", path=root)
        wanted = set(categories) if categories is not None else None
        pairs, skipped = label_folder_files(root, categories=wanted)
        return cls._from_pairs(spec, pairs, shuffle, cache, seed, skip_bad_files, skipped, where=root)

    @classmethod
    def from_esc50(
        cls,
        spec,
        data_path: PathLike,
        folds: Optional[Sequence[int]] = None,
        categories: Optional[Sequence[str]] = None,
        shuffle: bool = True,
        cache: Cache = False,
        *,
        seed: Optional[int] = None,
        skip_bad_files: bool = False,
    ) -> "DataLoader":
        """Load ESC-50: ``data_path/meta/esc50.csv`` and ``data_path/audio/<filename>``.

        Labels are the CSV's ``category`` names, sorted (its ``target`` column is
        ignored, as in Model Maker); ``folds`` and ``categories`` filter rows.

        Raises:
          DatasetError: the CSV is missing or malformed (naming its line), a category is not in
            it, or no row is left.
        """
        root = os.fspath(data_path)
        meta = os.path.join(root, "meta", "esc50.csv")
        if not os.path.isfile(meta):
            raise DatasetError("ESC-50 metadata not found (expected meta/esc50.csv)", path=root)
        rows = _esc50_rows(meta)
        fold_set = {int(f) for f in folds} if folds is not None else None
        wanted = set(categories) if categories is not None else None
        if wanted is not None:
            check_categories(wanted, {category for _, _, category in rows}, meta)
        pairs = [
            (os.path.join(root, "audio", filename), category)
            for filename, fold, category in rows
            if (fold_set is None or fold in fold_set) and (wanted is None or category in wanted)
        ]
        return cls._from_pairs(spec, sorted(pairs), shuffle, cache, seed, skip_bad_files, [], where=root)

    @classmethod
    def _from_pairs(cls, spec, pairs, shuffle, cache, seed, skip_bad_files, skipped, *, where) -> "DataLoader":
        if not pairs:
            loose = [p for p in skipped if os.path.dirname(p) == os.fspath(where) and is_audio_name(os.path.basename(p))]
            hint = (f"; its {len(loose)} audio files lie in it, not in label folders (<folder>/<label>/<file>): "
                    "pass the folder that holds the label folders") if loose else ""  # fmt: skip
            raise DatasetError(("No audio files found" + hint) if hint else "No audio files found.", path=where)
        index_to_label = sorted({label for _, label in pairs})
        broken = [label for label in index_to_label if not is_single_line(label)]
        if broken:
            raise DatasetError(f"the labels {broken} hold a line break; labels become the lines of labels.txt",
                               path=where)  # fmt: skip
        undecodable = [label for label in index_to_label if not _is_unicode(label)]
        if undecodable:
            raise DatasetError(f"the label folders {', '.join(map(ascii, undecodable))} are not named in UTF-8; "
                               "labels are written into the model as UTF-8", path=where)  # fmt: skip
        warn_case_clashes(index_to_label, where)
        label_index = {label: i for i, label in enumerate(index_to_label)}
        pad = bool(getattr(spec, "pad_short_clips", False))
        items, unreadable = [], []
        for path, label in pairs:
            try:
                info = audio.audio_info(path)
            except AudioDecodeError as exc:
                if not skip_bad_files:
                    raise
                warnings.warn(f"skipping {exc}", stacklevel=3)
                unreadable.append(path)
                continue
            samples = int(round(info.frames * SAMPLE_RATE / info.sample_rate))
            clips = audio.num_windows(samples, pad_short=pad)
            items.append(Item(path, label_index[label], clips, pad and 0 < samples < WAVEFORM_LENGTH, samples))
        if not items:
            raise DatasetError("No audio files found.", path=where)
        if shuffle:
            (random if seed is None else random.Random(seed)).shuffle(items)
        loader = cls(
            items, index_to_label, spec, cache=cache, skipped=skipped, unreadable=unreadable, seed=seed,
            skip_bad_files=skip_bad_files,
        )  # fmt: skip
        _log.info("loaded %s:\n%s", where, loader.report)
        short = len(loader.report.dropped_short)
        if short:
            _log.warning(
                "%d of %d files in %s are shorter than %d samples at 44.1 kHz and give no clip "
                "(pad_short_clips=True, or --pad-short-clips, pads them instead)",
                short, len(items), where, WAVEFORM_LENGTH,
            )  # fmt: skip
        return loader

    def _subset(self, items: Sequence[Item]) -> "DataLoader":
        return DataLoader(
            items, self.index_to_label, self.spec, cache=self._cache, seed=self._seed, skip_bad_files=self._skip_bad_files
        )

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return len(self._items)

    @property
    def num_classes(self) -> int:
        return len(self.index_to_label)

    @property
    def size(self) -> int:
        """Number of files (Model Maker's ``DataLoader.size``)."""
        return len(self._items)

    @property
    def skip_bad_files(self) -> bool:
        """Whether a file that fails to decode is skipped (and counted) rather than raised: then the
        windows a pass gives may be fewer than :meth:`labels` promised from the headers."""
        return self._skip_bad_files

    @property
    def files(self) -> List[Tuple[str, str]]:
        """``(path, label)`` of every file, in the loader's order."""
        return [(item.path, self.index_to_label[item.label]) for item in self._items]

    @property
    def report(self) -> LoadReport:
        """Counts of files and clips per class, and of what was dropped, padded or skipped."""
        files = {label: 0 for label in self.index_to_label}
        clips = dict(files)
        kept = self._readable_items()
        for item in kept:
            files[self.index_to_label[item.label]] += 1
            clips[self.index_to_label[item.label]] += item.clips
        return LoadReport(
            files,
            clips,
            dropped_short=[item.path for item in kept if item.clips == 0],
            padded=[item.path for item in kept if item.padded],
            unreadable=self._unreadable + [item.path for item in self._items if item.path in self._cache.bad],
            skipped=list(self._skipped),
        )

    # ------------------------------------------------------------------ splitting

    def split(
        self, fraction: float, *, by_speaker: bool = False, stratify: bool = False
    ) -> Tuple["DataLoader", "DataLoader"]:
        """Two loaders: the first ``int(len * fraction)`` files and the rest (no re-shuffle).

        Args:
          fraction: share of the files in the first part, in (0, 1).
          by_speaker: keep every speaker (:func:`mm_browserfft.speakers.speaker_id`)
            on one side: speakers, in a random order (repeatable with the loader's
            ``seed``), fill the first part until it holds at least ``int(len * fraction)``
            files. (In order of first appearance, speakers with many clips would
            fill the first part and one-clip "speakers" such as ``_silence_`` cuts
            the second.)
          stratify: split each label's files in the fraction instead: a label of ``n``
            files puts its first ``floor(n * fraction)`` or ``ceil(n * fraction)`` in the
            first part, the labels with the largest remainders (then the first to appear)
            rounding up until the first part holds ``int(len * fraction)`` files (largest
            remainders). Every label is in both parts in proportion, and the one file of
            each of several small labels is dealt to both parts, not all to one. Both
            parts keep the loader's order.

        Raises:
          DatasetError: ``fraction`` is not in (0, 1), or both ``by_speaker`` and
            ``stratify`` are asked for (a speaker's files span labels).
        """
        if not 0.0 < fraction < 1.0:
            raise DatasetError(f"fraction must be in (0, 1), got {fraction}")
        if by_speaker and stratify:
            raise DatasetError("a split is either by speaker or stratified by label, not both")
        if stratify:
            return self._stratified_split(fraction)
        target = int(len(self._items) * fraction)
        if not by_speaker:
            return self._subset(self._items[:target]), self._subset(self._items[target:])
        by_owner: Dict[str, List[Item]] = {}
        for item in self._items:
            by_owner.setdefault(speaker_id(item.path), []).append(item)
        speakers = list(by_owner)
        (random if self._seed is None else random.Random(self._seed)).shuffle(speakers)
        first, second = [], []
        for speaker in speakers:
            (first if len(first) < target else second).extend(by_owner[speaker])
        return self._subset(first), self._subset(second)

    def _stratified_split(self, fraction: float) -> Tuple["DataLoader", "DataLoader"]:
        """:meth:`split` with ``stratify``: each label's share of the first part, by largest remainders."""
        counts = collections.Counter(item.label for item in self._items)  # labels in order of first appearance
        quotas = {label: n * fraction for label, n in counts.items()}
        wanted = {label: min(counts[label], math.floor(q + 1e-9)) for label, q in quotas.items()}
        extra = int(len(self._items) * fraction + 1e-9) - sum(wanted.values())
        order = sorted((label for label in counts if wanted[label] < counts[label]),
                       key=lambda label: -round(quotas[label] - wanted[label], 9))  # stable: ties by first appearance
        for label in order[: max(0, extra)]:
            wanted[label] += 1
        first, second = [], []
        for item in self._items:
            if wanted[item.label]:
                wanted[item.label] -= 1
                first.append(item)
            else:
                second.append(item)
        return self._subset(first), self._subset(second)

    # ------------------------------------------------------------------ waveforms

    def _readable_items(self) -> List[Item]:
        """The items not found unreadable when decoded (so far)."""
        return [item for item in self._items if item.path not in self._cache.bad]

    def _pieces(self, item: Item) -> Iterator[np.ndarray]:
        """A file's audio, through the cache: float32 ``[n]`` at 44.1 kHz pieces of bounded size.

        A file up to :data:`~mm_browserfft.data.LONG_FILE_SECONDS` is one piece, the whole waveform; a
        longer one is streamed as consecutive runs of whole windows (``k * 44032``
        samples, its remainder dropped), so that ``spec.split_waveform`` of each piece
        gives the file's windows. A file failing to decode is skipped with a warning
        and remembered as unreadable when ``skip_bad_files``; otherwise the
        :class:`AudioDecodeError` propagates.
        """
        if item.path in self._cache.bad:
            return
        try:
            if item.long:
                for windows in self._cache.iter_windows(item.path, item.clips):
                    yield windows.reshape(-1)
            else:
                yield self._cache.load(item.path, samples=item.samples)
        except AudioDecodeError as exc:
            if not self._skip_bad_files:
                raise
            warnings.warn(f"skipping {exc}", stacklevel=2)
            self._cache.bad.add(item.path)

    def _ordered(self, shuffle: bool) -> List[Tuple[int, Item]]:
        """``(file_index, item)`` in the loader's order, or in a new random order (the loader's generator)."""
        pairs = list(enumerate(self._items))
        if shuffle:
            self._shuffler.shuffle(pairs)  # a new order per call, repeatable with the loader's seed
        return pairs

    def clips_per_file(self) -> List[int]:
        """Windows each file gives, from its header (no decoding), in the loader's order."""
        return [item.clips for item in self._items]

    def iter_waveforms(
        self, *, shuffle: bool = False, exclude: Collection[int] = ()
    ) -> Iterator[Tuple[int, int, np.ndarray]]:
        """Decode every file (through the cache) and cut it into windows, in bounded memory.

        Args:
          shuffle: visit the files in a new random order (repeatable with the loader's ``seed``).
          exclude: indices (in the loader's order) of files to leave out, undecoded.

        Yields:
          ``(file_index, label, windows [k, 44032] float32)``: one tuple per file, or
          for a file longer than :data:`~mm_browserfft.data.LONG_FILE_SECONDS` several consecutive
          ones (about 30 windows each) with the same ``file_index``; ``k`` may be 0
          (a dropped short clip). Files found unreadable (``skip_bad_files``) yield nothing.
        """
        excluded = set(exclude)
        todo = [(i, item) for i, item in self._ordered(shuffle) if i not in excluded]
        for index, item in progress.bar(todo, desc="decoding audio", unit="file"):
            for piece in self._pieces(item):
                yield index, item.label, self.spec.split_waveform(piece)

    def gen_waveforms(self) -> Iterator[np.ndarray]:
        """Every window, one at a time: float32 ``[44032]`` (calibration data for int8 export)."""
        for _, _, windows in self.iter_waveforms():
            yield from windows

    def waveforms(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All windows at once.

        Returns:
          ``(windows [m, 44032] float32, labels [m] int32, file_index [m] int32)``.
        """
        windows, labels, owners = [np.zeros((0, WAVEFORM_LENGTH), np.float32)], [], []
        for index, label, chunk in self.iter_waveforms():
            windows.append(chunk)
            labels.append(np.full(len(chunk), label, np.int32))
            owners.append(np.full(len(chunk), index, np.int32))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int32)  # noqa: E731
        return np.concatenate(windows), cat(labels), cat(owners)

    def labels(self) -> np.ndarray:
        """The label of every window, in order: int32 ``[m]`` (from headers, no decoding; files found unreadable left out)."""
        per_file = [np.full(item.clips, item.label, np.int32) for item in self._readable_items()]
        return np.concatenate(per_file or [np.zeros(0, np.int32)])

    # ------------------------------------------------------------------ tf.data

    def gen_dataset(
        self,
        batch_size: int = 1,
        is_training: bool = False,
        shuffle: bool = False,
        input_pipeline_context=None,
        preprocess=None,
        drop_remainder: bool = False,
    ):
        """A batched ``tf.data.Dataset`` of ``(spectrogram [b, 43, 232, 1], one-hot [b, N])``.

        Model Maker's pipeline: whole clips -> ``spec.preprocess_ds`` (windows,
        training noise, front end) -> finite filter -> one-hot -> shuffle (when
        training and ``shuffle``) -> batch -> prefetch. A file longer than
        :data:`~mm_browserfft.data.LONG_FILE_SECONDS` enters as consecutive pieces of whole windows
        (bounded memory), which ``preprocess_ds`` cuts into the same windows.

        Args:
          batch_size: windows per batch.
          is_training: apply the spec's training noise and augmentation.
          shuffle: shuffle files and windows (only when ``is_training``).
          input_pipeline_context: a ``tf.distribute.InputContext``; shards the files.
          preprocess: optional ``fn(spectrogram, label, is_training) -> (spectrogram, label)``
            applied after the spec's preprocessing.
          drop_remainder: drop the last, smaller batch.
        """
        import tensorflow as tf

        ordered = self._ordered(is_training and shuffle)

        def clips():
            for _, item in ordered:
                for piece in self._pieces(item):
                    yield piece, item.label

        ds = tf.data.Dataset.from_generator(
            clips,
            output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)),
        )
        if input_pipeline_context is not None and input_pipeline_context.num_input_pipelines > 1:
            ds = ds.shard(input_pipeline_context.num_input_pipelines, input_pipeline_context.input_pipeline_id)
        ds = self.spec.preprocess_ds(ds, is_training=is_training)
        if preprocess is not None:
            ds = ds.map(lambda x, y: preprocess(x, y, is_training), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.filter(lambda x, _: tf.size(x) > 0 and tf.reduce_all(tf.math.is_finite(x)))
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, self.num_classes)))
        if is_training and shuffle:
            ds = ds.shuffle(max(1, min(self.report.num_clips, 3 * batch_size)))
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    def __repr__(self) -> str:
        return f"DataLoader({len(self)} files, {self.num_classes} classes: {self.index_to_label})"


def _is_unicode(name: str) -> bool:
    """Whether ``name`` is text (a file name that is not UTF-8 holds surrogate escapes, which no encoding writes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _esc50_rows(meta: str) -> List[Tuple[str, int, str]]:
    """``(filename, fold, category)`` of every row of ESC-50's ``esc50.csv``.

    Raises:
      DatasetError: not UTF-8 text, a column missing, or a row without a file name, a whole
        fold number or a category (its line named).
    """
    try:
        with open(meta, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is not None and not {"filename", "fold", "category"} <= set(reader.fieldnames):
                raise DatasetError("needs the columns filename, fold and category", path=meta)
            rows = []
            for row in reader:
                filename, fold, category = row.get("filename"), row.get("fold"), row.get("category")
                if not filename or not category or fold is None or not fold.strip().isdigit():
                    raise DatasetError(f"line {reader.line_num}: needs a file name, a whole fold number and a "
                                       f"category, got {filename!r}, {fold!r}, {category!r}", path=meta)  # fmt: skip
                rows.append((filename, int(fold), category))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not UTF-8 text ({exc})", path=meta) from None
    except csv.Error as exc:
        raise DatasetError(f"not CSV ({exc})", path=meta) from None
    return rows
