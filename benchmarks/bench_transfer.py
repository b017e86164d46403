"""Transfer on real voices: head-only training from the bundled base vs a randomly initialised base.

Ten classes of ``<data>/speech_commands`` (yes, no, up, down, left, right, stop, go,
``_unknown_``, ``_silence_``). Clips of speakers that
:func:`mm_browserfft.speakers.is_heldout_speaker` holds out are the test set, all of
them; the head is trained on K clips per class drawn from the other speakers
(K = 5, 10, 20, 50, three draws each, accuracies averaged) and on all of them
("full"). Both bases are frozen: their ``dense_1`` embeddings are computed once,
and the head is Model Maker's (dropout 0.5, Dense(10, softmax), Adam 1e-3,
batch 32), trained for 100 epochs. The random base is the same 18w topology with
fresh Glorot weights (seeded).

usage: python benchmarks/bench_transfer.py [--quick] [--data DIR] [--base DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")

import numpy as np

from mm_browserfft.audio import load_audio, split_windows
from mm_browserfft.base import EMBEDDING_LAYER, build_18w, bundled_base_dir
from mm_browserfft.frontend import spectrogram
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

CLASSES = ("yes", "no", "up", "down", "left", "right", "stop", "go", "_unknown_", "_silence_")
"""The ten classes, in label order."""
K_VALUES = (5, 10, 20, 50)
"""Training clips per class."""
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def load_split(data_dir: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spectrograms and labels of the ten classes, split by speaker.

    Returns:
      ``(train_x [n, 43, 232, 1], train_y [n], test_x [m, 43, 232, 1], test_y [m])``;
      one window per clip (clips shorter than 1 s are padded).
    """
    parts: Dict[bool, Tuple[List[np.ndarray], List[int]]] = {False: ([], []), True: ([], [])}
    for label, name in enumerate(CLASSES):
        for path in sorted(glob.glob(os.path.join(data_dir, "speech_commands", name, "*.flac"))):
            xs, ys = parts[is_heldout_speaker(speaker_id(path))]
            xs.append(split_windows(load_audio(path), pad_short=True)[0])
            ys.append(label)
    out = []
    for heldout in (False, True):
        xs, ys = parts[heldout]
        out += [spectrogram(np.stack(xs)), np.asarray(ys, np.int64)]
    return tuple(out)  # type: ignore[return-value]


def tfjs_base(folder: str):
    """A TF.js 18w folder as a :func:`build_18w` model (weights copied layer by layer)."""
    from mm_browserfft.tfjs import load_tfjs

    loaded = load_tfjs(folder)
    model = build_18w()
    for layer in model.layers:
        layer.set_weights(loaded.get_layer(layer.name).get_weights())
    return model


def embed(base, x: np.ndarray) -> np.ndarray:
    """``dense_1`` output ``[n, 2000]`` of ``base`` for spectrograms ``x [n, 43, 232, 1]``."""
    import tensorflow as tf

    embedder = tf.keras.Model(base.inputs, base.get_layer(EMBEDDING_LAYER).output)
    return np.asarray(embedder.predict(x, batch_size=256, verbose=0), np.float32)


def train_head(emb: np.ndarray, y: np.ndarray, *, epochs: int, seed: int):
    """Model Maker's head (dropout 0.5 + softmax Dense) fitted on embeddings ``[n, d]``."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    head = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(emb.shape[1],)),
            tf.keras.layers.Dropout(0.5),
            tf.keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    head.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    head.fit(emb, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return head


def _draw(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` random examples of every class (all of a class that has fewer)."""
    return np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c in range(len(CLASSES))])


def _accuracy(head, emb: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(head.predict(emb, batch_size=1024, verbose=0), axis=1) == y))


def transfer_curve(
    bases: Dict[str, object], split, *, k_values: Sequence[int], draws: int, epochs: int
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Test accuracy per base and K: ``{base: {"5": {"mean", "std"}, ..., "full": {...}}}``."""
    train_x, train_y, test_x, test_y = split
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, base in bases.items():
        train_e, test_e = embed(base, train_x), embed(base, test_x)
        rows: Dict[str, Dict[str, float]] = {}
        for k in k_values:
            accs = []
            for draw in range(draws):
                idx = _draw(train_y, k, np.random.default_rng([k, draw]))
                accs.append(_accuracy(train_head(train_e[idx], train_y[idx], epochs=epochs, seed=draw), test_e, test_y))
            rows[str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
        full = train_head(train_e, train_y, epochs=max(10, epochs // 4), seed=0)
        rows["full"] = {"mean": _accuracy(full, test_e, test_y), "std": 0.0}
        results[name] = rows
    return results


def run(quick: bool = False, *, data_dir: str = DEFAULT_DATA, base_dir: str = "") -> dict:
    """The transfer curve of the bundled base against a random base.

    Args:
      quick: K = 5 and 20 only, one draw, 40 epochs (a smoke run; numbers are noisier).
      data_dir: the folder holding ``speech_commands/``.
      base_dir: a TF.js 18w folder to judge instead of the bundled base.

    Returns:
      dict with ``classes``, ``train_clips``, ``test_clips``, ``k_values``, ``draws``,
      ``epochs`` and ``accuracy`` (``{"bundled"|"random": {K or "full": {"mean", "std"}}}``).
    """
    import tensorflow as tf

    start = time.time()
    split = load_split(data_dir)
    k_values, draws, epochs = ((5, 20), 1, 40) if quick else (K_VALUES, 3, 100)
    tf.keras.utils.set_random_seed(1234)
    bases = {"bundled": tfjs_base(base_dir or bundled_base_dir()), "random": build_18w()}
    accuracy = transfer_curve(bases, split, k_values=k_values, draws=draws, epochs=epochs)
    return {
        "classes": list(CLASSES),
        "train_clips": int(len(split[1])),
        "test_clips": int(len(split[3])),
        "k_values": list(k_values),
        "draws": draws,
        "epochs": epochs,
        "accuracy": accuracy,
        "seconds": round(time.time() - start, 1),
    }


def format_table(result: dict) -> str:
    """The curve as a plain-text table: one row per K, a column per base."""
    acc = result["accuracy"]
    lines = [
        f"10-class test accuracy on {result['test_clips']} clips of held-out speakers "
        f"(head on K clips/class of other speakers; mean +- std over {result['draws']} draws)",
        f"{'K':>6} | {'bundled base':>16} | {'random base':>16}",
    ]
    for key in [str(k) for k in result["k_values"]] + ["full"]:
        cells = [f"{acc[b][key]['mean']:.3f} +- {acc[b][key]['std']:.3f}" for b in ("bundled", "random")]
        label = key if key != "full" else f"full({result['train_clips']})"
        lines.append(f"{label:>6} | {cells[0]:>16} | {cells[1]:>16}")
    return "\n".join(lines)


def main(argv: "Sequence[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--base", default="", help="TF.js base folder (default: the bundled base)")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args.quick, data_dir=args.data, base_dir=args.base)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
