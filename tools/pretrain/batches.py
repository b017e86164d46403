"""Training batches of the pretraining set: spectrogram augmentation and the Keras ``Sequence`` that serves them.

Each batch holds ``[b, 43, 232, 1]`` spectrograms (a random frequency stretch, then one time and
one frequency mask, SpecAugment-style), the word targets (one-hot, or mixed with the teacher's
word probabilities) and the scaled teacher targets, and per-row weights for the two losses (a
row without a word label weighs 0 in the word loss, or the soft share when there are soft targets).
"""

from __future__ import annotations

import numpy as np

__all__ = ["spectrogram_batches"]


def _tf():
    import tensorflow as tf

    return tf


def _spec_augment(x: np.ndarray, rng: np.random.Generator, *, max_time: int = 6, max_freq: int = 24) -> np.ndarray:
    """Zero (the z-scored mean) one random time band and one frequency band of each ``[b, 43, 232]``."""
    b, frames, bins = x.shape
    t0 = rng.integers(0, frames, size=b)
    tw = rng.integers(0, max_time + 1, size=b)
    f0 = rng.integers(0, bins, size=b)
    fw = rng.integers(0, max_freq + 1, size=b)
    t = np.arange(frames)[None, :]
    f = np.arange(bins)[None, :]
    x[((t >= t0[:, None]) & (t < (t0 + tw)[:, None]))[:, :, None].repeat(bins, 2)] = 0.0
    x[((f >= f0[:, None]) & (f < (f0 + fw)[:, None]))[:, None, :].repeat(frames, 1)] = 0.0
    return x


def _warp_frequency(x: np.ndarray, rng: np.random.Generator, *, max_factor: float) -> np.ndarray:
    """Stretch each ``[b, 43, 232]`` spectrogram along frequency by its own factor in ``[1/max_factor, max_factor]``.

    Log-uniform factors; ``x'(f) = x(f / alpha)`` by linear interpolation between bins (the top bins
    repeat where ``alpha < 1`` reads past the last): a vocal tract shorter (``alpha > 1``) or longer.
    """
    if max_factor <= 1.0:
        return x
    b, _, bins = x.shape
    alpha = np.exp(rng.uniform(-np.log(max_factor), np.log(max_factor), size=b))
    source = np.clip(np.arange(bins)[None, :] / alpha[:, None], 0, bins - 1)  # [b, bins]
    lo = np.floor(source).astype(np.int64)
    hi = np.minimum(lo + 1, bins - 1)
    frac = (source - lo).astype(x.dtype)[:, None, :]
    low = np.take_along_axis(x, np.broadcast_to(lo[:, None, :], x.shape), axis=2)
    high = np.take_along_axis(x, np.broadcast_to(hi[:, None, :], x.shape), axis=2)
    return low * (1 - frac) + high * frac


def spectrogram_batches():
    """The :class:`SpectrogramBatches` class (built on first use: Keras is imported only then)."""
    tf = _tf()

    class SpectrogramBatches(tf.keras.utils.Sequence):
        """Shuffled batches ``([b, 43, 232, 1], (one-hot [b, classes], teacher [b, d]), (w_word, w_teacher))``.

        With ``relations`` the teacher and its weight come twice (the second for the ``dense_1`` output).

        A random frequency stretch (``freq_warp``: the largest factor; 1 = none) and SpecAugment masks
        on the spectrograms; ``teacher`` is the standardised teacher
        embedding of the same (unmasked) audio. A row without a word label (``y == -1``)
        has an all-zero one-hot and word weight 0: only the teacher teaches it.

        With ``soft`` (the teacher's word probabilities ``[n, classes]``) and ``soft_weight`` ``a`` in
        ``(0, 1]``, a labelled row's word target is ``(1 - a) * one-hot + a * soft`` and an unlabelled
        row's is ``soft`` with word weight ``a`` (the training word accuracy then counts those rows
        too, at that weight; the held-out accuracy is on one-hot words only).

        Each epoch's order and augmentation are drawn from ``(seed, epoch)`` alone (:meth:`set_epoch`), so
        a run resumed at epoch *k* draws what an uninterrupted run draws there.
        """

        def __init__(
            self, x, y, t, num_classes: int, *, batch_size: int, seed: int, freq_warp: float = 1.0,
            relations: bool = False, soft=None, soft_weight: float = 0.0,
        ):  # fmt: skip
            super().__init__()
            if soft_weight and (soft is None or not 0 < soft_weight <= 1):
                raise ValueError(f"soft_weight {soft_weight} needs soft targets and a share in (0, 1]")
            self.x, self.y, self.t, self.num_classes, self.batch_size = x, y, t, num_classes, batch_size
            self.freq_warp, self.relations = freq_warp, relations
            self.soft, self.soft_weight = (soft, float(soft_weight)) if soft_weight else (None, 0.0)
            self.seed = seed
            self.set_epoch(0)

        def set_epoch(self, epoch: int) -> None:
            """Draw epoch ``epoch``'s order of the rows and the generator of its augmentation (0-based)."""
            self.epoch = epoch
            self.rng = np.random.default_rng([self.seed, epoch])
            self.order = self.rng.permutation(len(self.x))

        def __len__(self) -> int:
            return len(self.x) // self.batch_size

        def __getitem__(self, i: int):
            idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
            xb = _warp_frequency(self.x[idx].astype(np.float32), self.rng, max_factor=self.freq_warp)
            xb = _spec_augment(xb, self.rng)
            labelled = self.y[idx] >= 0
            yb = np.zeros((len(idx), self.num_classes), np.float32)
            yb[np.flatnonzero(labelled), self.y[idx][labelled]] = 1.0
            word_weight = labelled.astype(np.float32)
            if self.soft is not None:  # an unlabelled row's one-hot is all zeros: its target is the soft one
                a = self.soft_weight
                yb = (1 - a) * yb + np.where(labelled, a, 1.0)[:, None] * self.soft[idx].astype(np.float32)
                word_weight = np.where(labelled, 1.0, a).astype(np.float32)
            every = np.ones(len(idx), np.float32)
            if self.relations:  # the teacher once more, for the similarity loss on dense_1
                return xb[..., None], (yb, self.t[idx], self.t[idx]), (word_weight, every, every)
            return xb[..., None], (yb, self.t[idx]), (word_weight, every)

        def on_epoch_end(self) -> None:
            self.set_epoch(self.epoch + 1)

    return SpectrogramBatches


def __getattr__(name: str):
    if name == "SpectrogramBatches":
        return spectrogram_batches()
    raise AttributeError(name)
