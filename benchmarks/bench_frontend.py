"""Front-end throughput: spectrograms per second, against the bare real FFTs of the same frames.

Runs single-threaded (TF intra/inter-op threads 1, tf.data private threadpool 1) so
numbers are comparable on a shared machine. Ratios are front-end time / bare-FFT time
for the same 43 frames x 2048 samples per clip, in the precision the front end computes
in: the Keras layer's TensorFlow graph is float64, its TFLite graph (traced inside
``frontend.float32_graph()``) float32. The target is within 2x.

usage: python benchmarks/bench_frontend.py [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np

from mm_browserfft import frontend as fe

BATCH = 256


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls after one warm-up, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(quick: bool = False) -> dict:
    """Time the front ends on a batch of clips.

    Args:
      quick: 32 clips and 2 repeats instead of 256 clips and 5.

    Returns:
      dict with ``batch``, ``threads``, ``seconds`` (per implementation, for the whole
      batch), ``spectrograms_per_s``, ``ratio_to_bare_fft`` and ``bare_fft_of`` (which
      bare FFT each front end is compared with).
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    batch, repeats = (32, 2) if quick else (BATCH, 5)
    waves = np.random.default_rng(0).uniform(-0.5, 0.5, (batch, fe.WAVEFORM_LENGTH)).astype(np.float32)
    frames = fe.frame_waveform(waves).reshape(-1, fe.FFT_SIZE)  # [batch * 43, 2048] float32
    tf_frames, tf_waves = tf.constant(frames), tf.constant(waves)
    tf_frames64 = tf.cast(tf_frames, tf.float64)
    from mm_browserfft.layers import BrowserFftLayer

    layer = BrowserFftLayer()
    traced_float32 = tf.function(layer)
    with fe.float32_graph():
        traced_float32.get_concrete_function(tf.TensorSpec([None, fe.WAVEFORM_LENGTH], tf.float32))

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    dataset = (
        tf.data.Dataset.from_tensor_slices(waves).batch(32).map(layer, num_parallel_calls=1).with_options(options)
    )

    def consume_dataset():
        for _ in dataset:
            pass

    seconds = {
        "numpy_reference": _best_of(lambda: fe.spectrogram(waves), repeats),
        "keras_direct": _best_of(lambda: layer(tf_waves).numpy(), repeats),
        "keras_in_tf_data_map": _best_of(consume_dataset, repeats),
        "keras_float32_graph": _best_of(lambda: traced_float32(tf_waves).numpy(), repeats),
        "bare_np_rfft": _best_of(lambda: np.fft.rfft(frames, axis=-1), repeats),
        "bare_tf_rfft_float64": _best_of(lambda: tf.signal.rfft(tf_frames64).numpy(), repeats),
        "bare_tf_rfft_float32": _best_of(lambda: tf.signal.rfft(tf_frames).numpy(), repeats),
    }
    bare = {
        "numpy_reference": "bare_np_rfft",
        "keras_direct": "bare_tf_rfft_float64",
        "keras_in_tf_data_map": "bare_tf_rfft_float64",
        "keras_float32_graph": "bare_tf_rfft_float32",
    }
    return {
        "batch": batch,
        "threads": 1,
        "tensorflow": tf.__version__,
        "seconds": seconds,
        "spectrograms_per_s": {name: batch / s for name, s in seconds.items() if name in bare},
        "ratio_to_bare_fft": {name: seconds[name] / seconds[ref] for name, ref in bare.items()},
        "bare_fft_of": bare,
    }


def _table(result: dict) -> str:
    lines = [f"front end, batch of {result['batch']} clips, 1 thread (shared machine), TF {result['tensorflow']}"]
    for name, s in result["seconds"].items():
        rate = result["spectrograms_per_s"].get(name)
        ratio = result["ratio_to_bare_fft"].get(name)
        extra = f"{rate:9.0f} spectrograms/s  {ratio:5.2f}x bare FFT" if rate else "(bare FFT of the same frames)"
        lines.append(f"  {name:22s} {1e3 * s:8.1f} ms  {extra}")
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = run(quick="--quick" in sys.argv)
    print(_table(outcome))
    print(json.dumps(outcome, indent=2))
