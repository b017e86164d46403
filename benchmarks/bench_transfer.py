"""Transfer on real voices: the bundled base against a random base and Google's speech embedding.

Ten classes of ``<data>/speech_commands`` (yes, no, up, down, left, right, stop, go,
``_unknown_``, ``_silence_``). Clips of speakers that
:func:`mm_browserfft.speakers.is_heldout_speaker` holds out are the test set, all of
them; the head is trained on K clips per class drawn from the other speakers
(K = 5, 10, 20, 50, three draws each, accuracies averaged) and on all of them
("full"). Both bases are frozen: their ``dense_1`` embeddings are computed once,
computed as inference computes them (:func:`features`: the fixed noise floor, then the
front end), and the head is Model Maker's (dropout 0.5, Dense(10, softmax), Adam 1e-3,
batch 32), trained for 100 epochs on K clips per class and for :data:`FULL_EPOCHS` (one draw) on
all of them. The random base is the same 18w topology with
fresh Glorot weights (seeded).

The linear probe (the table of the base's model card): each embedding standardised
and fed to a multinomial logistic regression (scikit-learn, L2, C = 1), trained on
all training clips ("full") or on K = 5 / 20 / 50 per class (three draws), for the
bundled base (``dense_1``), the random base and the teacher of the pretraining
recipe (Google's speech_embedding, mean- and max-pooled over the window: 192
values; ``tools/pretrain/teacher.py``), on the same windows in the same run. The
teacher row is the anchor; it needs ``pip install -r benchmarks/requirements.txt``.

The data folder is ``--data`` or ``$MM_BROWSERFFT_DATA`` (:mod:`mm_browserfft.datasets`).

usage: python benchmarks/bench_transfer.py [--quick] [--data DIR] [--base DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import sys
import time
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")

import numpy as np

from mm_browserfft.audio import load_audio, noise_floor, split_windows
from mm_browserfft.base import EMBEDDING_LAYER, build_18w, bundled_base_dir
from mm_browserfft.frontend import spectrogram
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

CLASSES = ("yes", "no", "up", "down", "left", "right", "stop", "go", "_unknown_", "_silence_")
UNSEEN_WORD_CLASSES = ("go", "left", "_unknown_", "_silence_")
"""The unseen-word task: two command words that a base pretrained with ``--holdout-words go,left``
never heard (in any voice, real or synthetic), beside other words and silence."""
"""The ten classes, in label order."""
K_VALUES = (5, 10, 20, 50)
"""Training clips per class."""
FULL_EPOCHS = 25
"""Epochs of the head on every training clip: Model Maker's tutorial's count (a few clips per class take 100)."""


def load_windows(data_dir: str, classes: Sequence[str] = CLASSES) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Waveform windows and labels of ``classes`` (label ``i`` is ``classes[i]``), split by speaker.

    Returns:
      ``(train_w [n, 44032], train_y [n], test_w [m, 44032], test_y [m])`` at 44.1 kHz;
      one window per clip (clips shorter than 1 s are padded).
    """
    parts: Dict[bool, Tuple[List[np.ndarray], List[int]]] = {False: ([], []), True: ([], [])}
    for label, name in enumerate(classes):
        for path in sorted(glob.glob(os.path.join(data_dir, "speech_commands", name, "*.flac"))):
            xs, ys = parts[is_heldout_speaker(speaker_id(path))]
            xs.append(split_windows(load_audio(path), pad_short=True)[0])
            ys.append(label)
    out = []
    for heldout in (False, True):
        xs, ys = parts[heldout]
        out += [np.stack(xs), np.asarray(ys, np.int64)]
    return tuple(out)  # type: ignore[return-value]


def features(windows: np.ndarray) -> np.ndarray:
    """Spectrograms ``[n, 43, 232, 1]`` of windows ``[n, 44032]`` as inference computes them.

    The fixed noise floor (:func:`mm_browserfft.audio.noise_floor`) under every window, then the
    front end: what ``BrowserFftSpec.featurize`` and every exported model do.
    """
    return spectrogram(windows + noise_floor())


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
            tf.keras.layers.Dense(int(y.max()) + 1, activation="softmax"),
        ]
    )
    head.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    head.fit(emb, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return head


def _draw(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` random examples of every class (all of a class that has fewer)."""
    return np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c in range(int(y.max()) + 1)])


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
        full = train_head(train_e, train_y, epochs=min(FULL_EPOCHS, epochs), seed=0)
        rows["full"] = {"mean": _accuracy(full, test_e, test_y), "std": 0.0}
        results[name] = rows
    return results


def teacher_embed(windows: np.ndarray) -> np.ndarray:
    """The teacher's embedding of each window ``[n, 44032]`` (``tools/pretrain/teacher.py``): ``[n, 192]``."""
    sys.path.insert(0, os.fspath(pathlib.Path(__file__).resolve().parents[1]))
    from tools.pretrain.teacher import Teacher

    teacher = Teacher()
    return np.stack([teacher.embed(w) for w in windows])


def linear_probe(train_e: np.ndarray, train_y: np.ndarray, test_e: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a standardised multinomial logistic regression (L2, C = 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    probe.fit(train_e, train_y)
    return float(np.mean(probe.predict(test_e) == test_y))


def probe_table(
    embeddings: Dict[str, Tuple[np.ndarray, np.ndarray]], train_y, test_y, *, k_values: Sequence[int], draws: int
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Linear-probe accuracy per embedding and K: ``{name: {"full"|"5"|...: {"mean", "std"}}}``."""
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, (train_e, test_e) in embeddings.items():
        rows = {"full": {"mean": linear_probe(train_e, train_y, test_e, test_y), "std": 0.0}}
        for k in k_values:
            accs = []
            for draw in range(draws):
                idx = _draw(train_y, k, np.random.default_rng([k, draw]))
                accs.append(linear_probe(train_e[idx], train_y[idx], test_e, test_y))
            rows[str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs))}
        results[name] = rows
    return results


PROBE_K = (5, 20, 50)
"""Clips per class of the linear-probe rows."""


def run(quick: bool = False, *, data_dir: str = "", base_dir: str = "", classes: Sequence[str] = CLASSES) -> dict:
    """The transfer curve and the linear-probe table of the bundled base against a random base and the teacher.

    Args:
      quick: K = 5 and 20 only, one draw, 40 epochs (a smoke run; numbers are noisier).
      data_dir: the folder holding ``speech_commands/`` (default ``$MM_BROWSERFFT_DATA``).
      base_dir: a TF.js 18w folder to judge instead of the bundled base.
      classes: the task (default: the ten classes; :data:`UNSEEN_WORD_CLASSES` for unseen words).

    Returns:
      dict with ``classes``, ``train_clips``, ``test_clips``, ``k_values``, ``draws``,
      ``epochs``, ``accuracy`` (``{"bundled"|"random": {K or "full": {"mean", "std"}}}``)
      and ``probe`` (``{"bundled"|"random"|"teacher": {K or "full": {"mean", "std"}}}``).
    """
    import tensorflow as tf

    from mm_browserfft.datasets import data_dir as default_data_dir

    start = time.time()
    train_w, train_y, test_w, test_y = load_windows(data_dir or os.fspath(default_data_dir()), classes)
    split = (features(train_w), train_y, features(test_w), test_y)
    k_values, draws, epochs = ((5, 20), 1, 40) if quick else (K_VALUES, 3, 100)
    tf.keras.utils.set_random_seed(1234)
    bases = {"bundled": tfjs_base(base_dir or bundled_base_dir()), "random": build_18w()}
    accuracy = transfer_curve(bases, split, k_values=k_values, draws=draws, epochs=epochs)
    embeddings = {name: (embed(base, split[0]), embed(base, split[2])) for name, base in bases.items()}
    embeddings["teacher"] = (teacher_embed(train_w), teacher_embed(test_w))
    probe = probe_table(embeddings, train_y, test_y, k_values=(5, 20) if quick else PROBE_K, draws=draws)
    return {
        "classes": list(classes),
        "train_clips": int(len(train_y)),
        "test_clips": int(len(test_y)),
        "k_values": list(k_values),
        "draws": draws,
        "epochs": epochs,
        "full_epochs": min(FULL_EPOCHS, epochs),
        "accuracy": accuracy,
        "probe": probe,
        "seconds": round(time.time() - start, 1),
    }


def format_table(result: dict) -> str:
    """The curve as a plain-text table: one row per K, a column per base."""
    acc = result["accuracy"]
    lines = [
        f"{len(result['classes'])}-class test accuracy on {result['test_clips']} clips of held-out speakers "
        f"(head on K clips/class of other speakers; mean +- std over {result['draws']} draws)",
        f"{'K':>6} | {'bundled base':>16} | {'random base':>16}",
    ]
    for key in [str(k) for k in result["k_values"]] + ["full"]:
        cells = [f"{acc[b][key]['mean']:.3f} +- {acc[b][key]['std']:.3f}" for b in ("bundled", "random")]
        label = key if key != "full" else f"full({result['train_clips']})"
        lines.append(f"{label:>6} | {cells[0]:>16} | {cells[1]:>16}")
    probe = result["probe"]
    names = ("bundled", "random", "teacher")
    lines += ["", "linear probe (standardised embedding + logistic regression), same split",
              f"{'K':>6} | " + " | ".join(f"{n:>16}" for n in names)]  # fmt: skip
    for key in ["full"] + [k for k in probe["bundled"] if k != "full"]:
        cells = [f"{probe[n][key]['mean']:.3f} +- {probe[n][key]['std']:.3f}" for n in names]
        lines.append(f"{key:>6} | " + " | ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv: "Sequence[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default="", help="data folder (default: $MM_BROWSERFFT_DATA)")
    parser.add_argument("--base", default="", help="TF.js base folder (default: the bundled base)")
    parser.add_argument("--unseen-words", action="store_true", help=f"the task {UNSEEN_WORD_CLASSES} instead of ten classes")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    classes = UNSEEN_WORD_CLASSES if args.unseen_words else CLASSES
    result = run(args.quick, data_dir=args.data, base_dir=args.base, classes=classes)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
