"""BrowserFftSpec: Model Maker's audio model spec, on the bundled (or any) 18w base.

The spec ties the pieces together the way Model Maker's ``BrowserFFTSpec`` does
(same public methods and defaults, see ``model_maker.audio_classifier``), and
fixes what was broken there:

* the base is loaded once and cached, but :meth:`BrowserFftSpec.create_model`
  builds every model from *copies* of its layers, so training the whole model
  never changes the cached base and ``create_model`` can be called again;
* waveforms shorter than 44032 samples can be zero-padded to one window
  (``pad_short_clips=True``) instead of dropped;
* the 1e-5 Gaussian noise Model Maker added to every window, in training and in
  evaluation, is fresh noise in training only; evaluation, prediction and every
  waveform export (.tflite, SavedModel) add one fixed draw of it (:func:`mm_browserfft.audio.noise_floor`,
  :class:`~mm_browserfft.layers.NoiseFloorLayer`), so that results are deterministic
  and a file's digital silence looks as it did in training (Model Maker's exported
  model added none);
* optional training augmentation (all off by default): background noise mixed
  in at a random SNR, random time shifts, SpecAugment-style time/frequency masks.

Shapes: waveforms ``[batch, 44032]`` float32 at 44.1 kHz, spectrograms
``[batch, 43, 232, 1]``, embeddings ``[batch, 2000]``, probabilities ``[batch, N]``.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import audio, augment, progress
from .audio import NOISE_FLOOR_STDDEV
from .base import EMBEDDING_LAYER, flatten_base, nonfinite_weights
from .errors import InvalidInputError, ModelFormatError
from .frontend import NUM_BINS, NUM_FRAMES, SAMPLE_RATE, SPECTROGRAM_SHAPE, WAVEFORM_LENGTH, float32_graph

__all__ = ["BrowserFftSpec", "TRAINING_NOISE_STDDEV", "HEAD_LAYER"]

TRAINING_NOISE_STDDEV = NOISE_FLOOR_STDDEV
"""Standard deviation of the Gaussian noise added to training waveforms (Model Maker's value, 1e-5)."""
HEAD_LAYER = "classification_head"
"""Name of the trainable softmax layer put on top of the base."""
_FEATURIZE_BATCH = 64  # windows per front-end call in preprocess_ds


def _keras():
    import tensorflow as tf

    return tf.keras


class BrowserFftSpec:
    """Model Maker's ``BrowserFftSpec``: browser-FFT spectrograms, the 18w base, a softmax head.

    Args:
      model_dir: where training writes checkpoints (and TensorBoard logs); a new
        temporary folder, made on first use, when omitted.
      strategy: a ``tf.distribute.Strategy``; models are built, compiled and trained
        in its scope. Defaults to the current strategy.
      base_model: where the pretrained base comes from: ``"bundled"`` (shipped with
        the package), a folder or ``http(s)`` URL of a TF.js layers model (see
        :func:`mm_browserfft.base.load_base`), or a Keras model with the 18w topology.
      base_sha256: expected SHA-256 of the base's ``model.json``, or a manifest of every file's
        (``{path: sha256}``, :func:`mm_browserfft.tfjs.file_hashes`) that pins the weights too
        (URL and folder sources).
      pad_short_clips: zero-pad (centred) waveforms shorter than 44032 samples to one
        window instead of dropping them as Model Maker does.
      background_noise: folder of noise recordings (any audio format) to mix into
        training windows; ``None`` disables the mixing.
      background_snr_db: ``(low, high)`` signal-to-noise range in dB, drawn uniformly
        per window.
      background_prob: fraction of training windows that get background noise.
      time_shift_s: largest random shift of a training window, in seconds, either
        way (the vacated part is zero); 0 disables it.
      time_masks, time_mask_frames: number of SpecAugment time masks per training
        spectrogram and the largest width of each, in frames (of 43).
      freq_masks, freq_mask_bins: number of frequency masks and their largest
        width, in bins (of 232).
      partial_word_negatives: share of the training clips of each word that also give a
        window holding only the word's start or end (:func:`mm_browserfft.augment.partial_word`,
        filled with the data's background class), taught as the data's negative class
        (``_unknown_``, else the background class), no more of them than the largest class
        has windows: a listener's windows sliding onto or off a word then stop firing as
        other words. Head-only training; 0 disables it.
      seed: seeds the training noise and augmentation; ``None`` draws fresh randomness.
    """

    EXPECTED_WAVEFORM_LENGTH = WAVEFORM_LENGTH
    """Samples per model window (44032)."""

    def __init__(
        self,
        model_dir: Optional[str] = None,
        strategy: Any = None,
        *,
        base_model: Any = "bundled",
        base_sha256: Optional[Union[str, Mapping[str, str]]] = None,
        pad_short_clips: bool = False,
        background_noise: Optional[Union[str, "os.PathLike[str]"]] = None,
        background_snr_db: Tuple[float, float] = (0.0, 20.0),
        background_prob: float = 0.8,
        time_shift_s: float = 0.0,
        time_masks: int = 0,
        time_mask_frames: int = 5,
        freq_masks: int = 0,
        freq_mask_bins: int = 16,
        partial_word_negatives: float = 0.0,
        seed: Optional[int] = None,
    ) -> None:
        import tensorflow as tf

        from . import model_maker

        model_maker.install()  # where the real Model Maker can run, make it accept this spec

        low, high = (float(v) for v in background_snr_db)
        if low > high:
            raise InvalidInputError(f"background_snr_db must be (low, high) with low <= high, got {background_snr_db}")
        if not 0.0 <= background_prob <= 1.0:
            raise InvalidInputError(f"background_prob must be in [0, 1], got {background_prob}")
        if not 0 <= time_shift_s < math.inf or min(time_masks, time_mask_frames, freq_masks, freq_mask_bins) < 0:
            raise InvalidInputError("time_shift_s (finite) and the mask counts and widths must be >= 0")
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InvalidInputError(f"background_snr_db must be finite, got {background_snr_db}")
        if not 0.0 <= partial_word_negatives <= 1.0:
            raise InvalidInputError(f"partial_word_negatives must be in [0, 1], got {partial_word_negatives}")
        if time_mask_frames > NUM_FRAMES or freq_mask_bins > NUM_BINS:
            raise InvalidInputError(
                f"mask widths must fit the spectrogram ({NUM_FRAMES} frames, {NUM_BINS} bins), "
                f"got {time_mask_frames} frames, {freq_mask_bins} bins"
            )
        self._model_dir = os.fspath(model_dir) if model_dir is not None else None
        self.strategy = strategy or tf.distribute.get_strategy()
        self.base_source = base_model
        self.base_sha256 = base_sha256
        self.pad_short_clips = bool(pad_short_clips)
        self.background_noise = os.fspath(background_noise) if background_noise is not None else None
        self.background_snr_db = (low, high)
        self.background_prob = float(background_prob)
        self.time_shift_s = float(time_shift_s)
        self.time_masks, self.time_mask_frames = int(time_masks), int(time_mask_frames)
        self.freq_masks, self.freq_mask_bins = int(freq_masks), int(freq_mask_bins)
        self.partial_word_negatives = float(partial_word_negatives)
        self.seed = seed
        self._base = None
        self._noise_bank = None if self.background_noise is None else augment.load_noise_bank(self.background_noise)
        self._noise_tensor = None
        self._rng = None
        self._frontend = None
        self._floor = None
        self._preprocess = None

    def training_options(self) -> Dict[str, Any]:
        """Every option that changes what training computes (JSON values): the run's fingerprint uses it."""
        return {
            "pad_short_clips": self.pad_short_clips,
            "background_noise": None if self.background_noise is None else os.path.abspath(self.background_noise),
            "background_snr_db": list(self.background_snr_db),
            "background_prob": self.background_prob,
            "time_shift_s": self.time_shift_s,
            "time_masks": [self.time_masks, self.time_mask_frames],
            "freq_masks": [self.freq_masks, self.freq_mask_bins],
            "partial_word_negatives": self.partial_word_negatives,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ properties

    @property
    def target_sample_rate(self) -> int:
        """Hz of the waveforms the spec consumes (44100)."""
        return SAMPLE_RATE

    @property
    def model_dir(self) -> str:
        """Folder for checkpoints and logs (a temporary folder made on first use if not given)."""
        if self._model_dir is None:
            self._model_dir = tempfile.mkdtemp(prefix="mm_browserfft_")
        return self._model_dir

    @model_dir.setter
    def model_dir(self, value: Optional[str]) -> None:
        self._model_dir = os.fspath(value) if value is not None else None

    @property
    def augments(self) -> bool:
        """Whether any training augmentation beyond the 1e-5 noise is on."""
        return bool(self.background_noise or self.time_shift_s or self.time_masks or self.freq_masks)

    @property
    def base(self):
        """The pretrained 18w base (Keras model, spectrogram -> 20 classes), loaded once."""
        if self._base is None:
            if isinstance(self.base_source, (str, os.PathLike)):
                from .base import load_base

                self._base = load_base(os.fspath(self.base_source), sha256=self.base_sha256)
            else:
                self._base = self.base_source
            self._base = flatten_base(self._base)
            bad = nonfinite_weights(self._base)
            if bad:
                where = self.base_source if isinstance(self.base_source, (str, os.PathLike)) else None
                raise ModelFormatError(f"the base's weights {bad} hold NaN or infinite values", path=where)
        return self._base

    @property
    def _tfjs_sc_model(self):
        """Compatibility name (Model Maker's attribute, reached by its tests and by notebooks): :attr:`base`,
        the 18w model ``[None, 43, 232, 1]`` -> ``[None, 20]``."""
        return self.base

    @property
    def _preprocess_model(self):
        """Compatibility name (Model Maker's attribute): the front end as a Keras model,
        waveform ``[None, 44032]`` -> spectrogram ``[None, 43, 232, 1]`` (Model Maker mode)."""
        if self._preprocess is None:
            from .layers import BrowserFftLayer

            keras = _keras()
            self._preprocess = keras.Sequential(
                [keras.Input(shape=(WAVEFORM_LENGTH,)), BrowserFftLayer()], name="sc_preproc_model"
            )
        return self._preprocess

    # ------------------------------------------------------------------ models

    def create_model(self, num_classes: int, train_whole_model: bool = False):
        """The transfer-learning model: the base without its softmax, plus a new softmax head.

        Every call builds fresh layers holding copies of the base's weights.

        Args:
          num_classes: classes of the new head (at least 2).
          train_whole_model: keep the base layers trainable; otherwise only the head is.

        Returns:
          a ``keras.Sequential`` ``[batch, 43, 232, 1]`` -> ``[batch, num_classes]``
          whose last layer is ``classification_head``.

        Raises:
          ValueError (InvalidInputError): ``num_classes`` <= 1.
        """
        if num_classes <= 1:
            raise InvalidInputError(f"AudioClassifier expects num_classes to be greater than 1, got {num_classes}")
        keras = _keras()
        with self.strategy.scope():
            copies = []
            for layer in self.base.layers[:-1]:
                copy = layer.__class__.from_config(layer.get_config())
                copy.trainable = train_whole_model
                copies.append(copy)
            head = keras.layers.Dense(num_classes, activation="softmax", name=HEAD_LAYER)
            model = keras.Sequential([keras.Input(shape=SPECTROGRAM_SHAPE), *copies, head])
            for copy, layer in zip(copies, self.base.layers[:-1]):
                copy.set_weights(layer.get_weights())
        return model

    def create_serving_model(self, training_model):
        """Noise floor + front end + training model: waveform ``[batch, 44032]`` -> probabilities ``[batch, N]``.

        Built in the strategy's scope, except under a multi-worker strategy: there a variable
        made in its scope is broadcast from the chief, which would need every worker to build
        the model too, and only the chief exports.
        """
        import contextlib

        from . import distributed
        from .layers import BrowserFftLayer, NoiseFloorLayer

        keras = _keras()
        alone = distributed.is_multi_worker(self.strategy)
        with contextlib.nullcontext() if alone else self.strategy.scope():
            return keras.Sequential(
                [keras.Input(shape=(WAVEFORM_LENGTH,)), NoiseFloorLayer(), BrowserFftLayer(), training_model],
                name="browser_fft_classifier",
            )

    @staticmethod
    def _embedding_index(model) -> int:
        names = [layer.name for layer in model.layers]
        if EMBEDDING_LAYER not in names:
            raise ModelFormatError(f"model has no {EMBEDDING_LAYER!r} layer; layers: {names}")
        return names.index(EMBEDDING_LAYER)

    def embedding_model(self, training_model):
        """The part of ``training_model`` up to ``dense_1``, sharing its layers.

        Returns:
          ``keras.Sequential`` spectrogram ``[batch, 43, 232, 1]`` -> embedding ``[batch, 2000]``.
        """
        keras = _keras()
        cut = self._embedding_index(training_model) + 1
        return keras.Sequential([keras.Input(shape=SPECTROGRAM_SHAPE), *training_model.layers[:cut]])

    def head_model(self, training_model):
        """The part of ``training_model`` after ``dense_1`` (dropout + head), sharing its layers.

        Training it trains ``training_model``'s head in place.

        Returns:
          ``keras.Sequential`` embedding ``[batch, 2000]`` -> probabilities ``[batch, N]``.
        """
        keras = _keras()
        cut = self._embedding_index(training_model) + 1
        shape = (None,) + SPECTROGRAM_SHAPE
        for layer in training_model.layers[:cut]:
            shape = tuple(layer.compute_output_shape(shape))
        with self.strategy.scope():  # fitted under the strategy: built outside it, MirroredStrategy fails
            return keras.Sequential([keras.Input(shape=shape[1:]), *training_model.layers[cut:]])

    def compile_model(self, model) -> None:
        """Model Maker's training setup: Adam (learning rate 1e-3), categorical cross-entropy, ``acc``."""
        with self.strategy.scope():
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["acc"])

    def run_classifier(self, model, epochs: int, train_ds, validation_ds, **kwargs):
        """Compile ``model`` (:meth:`compile_model`) and fit it; ``kwargs`` go to ``fit``.

        The data sets shuffle themselves, so ``fit``'s own ``shuffle`` defaults to False.
        Without a ``verbose``, Keras shows its bar on a terminal and one line per
        epoch elsewhere (:func:`mm_browserfft.progress.fit_progress`).

        Under a ``MultiWorkerMirroredStrategy``, where Keras 3's ``fit`` fails, the model
        trains with :func:`mm_browserfft.distributed.fit` (``callbacks`` and ``verbose``
        are the only options it takes).

        Returns:
          the Keras ``History``.
        """
        kwargs.setdefault("shuffle", False)
        self.compile_model(model)
        from . import distributed

        if distributed.is_multi_worker(self.strategy):
            other = sorted(set(kwargs) - {"callbacks", "verbose", "shuffle"})
            if other:
                raise InvalidInputError(f"training under MultiWorkerMirroredStrategy takes no {other} option")
            return distributed.fit(model, train_ds, epochs=epochs, strategy=self.strategy, validation_ds=validation_ds,
                                   callbacks=kwargs.get("callbacks") or (), verbose=kwargs.get("verbose"))  # fmt: skip
        with self.strategy.scope():
            return model.fit(train_ds, validation_data=validation_ds, epochs=epochs, **progress.fit_progress(kwargs))

    def get_default_quantization_config(self):
        """No quantization by default (float32 TFLite), as in Model Maker."""
        return None

    # ------------------------------------------------------------------ features

    def _generator(self):
        import tensorflow as tf

        if self._rng is None:
            self._rng = (
                tf.random.Generator.from_non_deterministic_state()
                if self.seed is None
                else tf.random.Generator.from_seed(self.seed)
            )
        return self._rng

    def _noise(self):
        """The background-noise recordings, concatenated: a float32 tensor ``[n]`` at 44.1 kHz.

        Made eagerly even when first asked for inside a traced function (tf.data's map): a
        constant of one trace's graph cannot be captured by the next trace.
        """
        import tensorflow as tf

        if self._noise_tensor is None:
            if self._noise_bank is None:  # background_noise was set after the spec was made
                self._noise_bank = augment.load_noise_bank(self.background_noise)
            with tf.init_scope():
                self._noise_tensor = tf.constant(self._noise_bank)
        return self._noise_tensor

    def featurize(self, waveforms, *, is_training: bool = False):
        """Waveform windows to model inputs.

        In training: random time shift and background noise (if enabled), then fresh
        N(0, 1e-5^2) noise, then the front end, then time/frequency masks (if enabled).
        Otherwise: the fixed noise floor (:func:`mm_browserfft.audio.noise_floor`, as in the
        serving model), then the front end.

        Args:
          waveforms: float32 ``[batch, 44032]`` (tensor or array).
          is_training: apply the training noise and augmentation.

        Returns:
          float32 tensor ``[batch, 43, 232, 1]``.
        """
        import tensorflow as tf

        if self._frontend is None:
            from .layers import BrowserFftLayer, NoiseFloorLayer

            self._frontend = BrowserFftLayer()
            self._floor = NoiseFloorLayer()
        x = tf.reshape(tf.cast(waveforms, tf.float32), [-1, WAVEFORM_LENGTH])
        if is_training:
            rng = self._generator()
            if self.time_shift_s:
                x = augment.batch_time_shift(x, rng, max_samples=int(round(self.time_shift_s * SAMPLE_RATE)))
            if self.background_noise:
                x = augment.batch_background_mix(x, self._noise(), rng, snr_db=self.background_snr_db,
                                                 probability=self.background_prob)  # fmt: skip
            x = x + TRAINING_NOISE_STDDEV * rng.normal(tf.shape(x))
        else:
            x = self._floor(x)
        # tf.data traces the front end's float32 graph (the one exported to TFLite): the
        # float64 graph measured +376 MB peak memory on 20,000 clips inside tf.data.
        with float32_graph():
            spectrograms = self._frontend(x)
        if is_training and self.time_masks:
            spectrograms = augment.batch_masks(spectrograms, self._generator(), count=self.time_masks,
                                               max_width=self.time_mask_frames, axis=1)  # fmt: skip
        if is_training and self.freq_masks:
            spectrograms = augment.batch_masks(spectrograms, self._generator(), count=self.freq_masks,
                                               max_width=self.freq_mask_bins, axis=2)  # fmt: skip
        return spectrograms

    def split_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """Model Maker's chunking of one clip (:func:`mm_browserfft.audio.split_windows`).

        Returns:
          float32 ``[k, 44032]``: ``floor(n / 44032)`` windows, or one padded window
          for a short clip when ``pad_short_clips``.
        """
        return audio.split_windows(waveform, pad_short=self.pad_short_clips)

    def preprocess_ds(self, ds, is_training: bool = False, cache_fn: Optional[Callable] = None):
        """Model Maker's preprocessing of a data set of whole clips.

        Args:
          ds: ``tf.data.Dataset`` of ``(waveform [n] float32 at 44.1 kHz, label)``.
          is_training: add the training noise and augmentation.
          cache_fn: applied to the data set once the deterministic work is done
            (after the front end; before the random augmentation when any is on,
            so that it stays random every epoch).

        Returns:
          ``tf.data.Dataset`` of ``(spectrogram [43, 232, 1] float32, label)``, one
          element per window (clips cut as :meth:`split_waveform`).
        """
        import tensorflow as tf

        def windows(wav, label):
            chunks = tf.numpy_function(self.split_waveform, [wav], tf.float32, stateful=False)
            chunks = tf.reshape(chunks, [-1, WAVEFORM_LENGTH])
            labels = tf.fill(tf.shape(chunks)[:1], label)
            return tf.data.Dataset.from_tensor_slices((chunks, labels))

        def featurize_batch(wavs, labels):
            return self.featurize(wavs, is_training=is_training), labels

        ds = ds.flat_map(windows)
        random_after_cache = is_training and self.augments
        if cache_fn is not None and random_after_cache:
            ds = cache_fn(ds)
        # The front end runs on batches of windows (one FFT call per batch, not per window),
        # and the result is unbatched again: one element per window, in order.
        ds = ds.batch(_FEATURIZE_BATCH).map(featurize_batch, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if cache_fn is not None and not random_after_cache:
            ds = cache_fn(ds)
        return ds

    # ------------------------------------------------------------------ export

    def export_tflite(
        self,
        model,
        tflite_filepath: str,
        with_metadata: bool = True,
        export_metadata_json_file: bool = True,
        index_to_label: Optional[Sequence[str]] = None,
        quantization_config: Any = None,
    ) -> None:
        """Convert ``create_serving_model(model)`` to a .tflite file (builtin ops only).

        Args:
          model: the training model (spectrogram in).
          tflite_filepath: where to write. The model and its JSON are both written in full
            before either replaces a previous one, so a failure leaves the old pair whole.
          with_metadata: embed Model Maker's audio-classifier metadata and the labels.
          export_metadata_json_file: also write the metadata as JSON beside the
            model (``<tflite_filepath without extension>.json``).
          index_to_label: class names, index = output position (required for metadata).
          quantization_config: a :class:`mm_browserfft.config.QuantizationConfig`, or None.
        """
        from . import export, metadata

        content = export.convert_to_tflite(self.create_serving_model(model), quantization_config=quantization_config)
        if with_metadata:
            if index_to_label is None:
                raise InvalidInputError("index_to_label is required to write metadata")
            content = metadata.write_classifier_metadata(content, list(index_to_label))
        files = {tflite_filepath: content}
        if with_metadata and export_metadata_json_file:
            json_path = os.path.splitext(os.fspath(tflite_filepath))[0] + ".json"
            files[json_path] = metadata.metadata_json(metadata.read_metadata(content)).encode("utf-8")
        export.write_files_atomically(files)  # both written before either replaces its old file

    def __repr__(self) -> str:
        source = self.base_source if isinstance(self.base_source, (str, os.PathLike)) else type(self.base_source).__name__
        return f"BrowserFftSpec(base_model={source!r}, pad_short_clips={self.pad_short_clips}, augments={self.augments})"
