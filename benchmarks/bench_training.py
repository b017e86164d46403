"""Training cost: seconds per epoch (head-only and whole model), time to the demo's model, peak memory.

Every measurement runs in a fresh Python process (``--child KIND``), so each
peak RSS (``VmHWM``) belongs to one job, and training uses the machine's cores
as a user's run would:

* ``head``: head-only training (the default) on every clip of the ten shared
  classes (about 2,300, >= 2,000), ``cache=True``, 5 epochs of batch 32; the
  embeddings are computed once before the first epoch, so every epoch runs on a
  warm embedding cache; the median of the epochs after the first (the checkpoint
  save included) is reported, scaled to 2,000 clips; the time before the first epoch
  (decoding the files and embedding the clips) is reported too;
* ``whole``: whole-model training on a subset (32 clips per class), 2 epochs;
  the second epoch (the first traces the graph) is extrapolated to 2,000 clips;
* ``demo``: :func:`mm_browserfft.training.run_demo` (train on the bundled clips,
  export, report), timed from process start as a user waits for ``mm-browserfft demo``;
* ``infer``: the demo's ``.tflite`` through LiteRT (no TensorFlow) on 200 clips;
* ``baseline-tf`` / ``baseline-litert``: a process that only imports TensorFlow
  and loads the base / imports LiteRT: the references for the memory and start-up figures.

usage: python -m benchmarks.bench_training [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Sequence

from benchmarks.common import CLASSES, clips, peak_rss_mib, print_child_result, row, run_child, table

PER_CLIPS = 2000
"""Epoch times are given per this many clips."""
TARGET_HEAD_EPOCH_S = 0.5
HEAD_EPOCHS = 5
WHOLE_PER_CLASS = 32
CHILD_TIMEOUT_S = 900


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _linked(root: str, per_label) -> str:
    """``root/<label>/<clip>`` links to the first ``per_label`` clips (all when None) of the ten classes."""
    for label in CLASSES:
        os.makedirs(os.path.join(root, label))
        for clip in clips(label)[:per_label]:
            os.symlink(clip, os.path.join(root, label, clip.name))
    return root


def _train_child(*, whole: bool, quick: bool) -> Dict:
    from benchmarks.common import tensorflow_with_threads

    tf = tensorflow_with_threads(_threads())
    from mm_browserfft.audio_classifier import AudioClassifier, BrowserFftSpec, DataLoader

    class EpochTimer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: List[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    per_label = (8 if quick else WHOLE_PER_CLASS) if whole else (30 if quick else None)
    epochs = 2 if whole else (3 if quick else HEAD_EPOCHS)
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        tf.keras.utils.set_random_seed(0)
        spec = BrowserFftSpec(model_dir=os.path.join(tmp, "checkpoints"), seed=0)
        data = DataLoader.from_folder(spec, _linked(os.path.join(tmp, "data"), per_label), cache=True, seed=0)
        spec.base  # noqa: B018 -- loaded before the clock starts, as in the baseline
        timer = EpochTimer()
        classifier = AudioClassifier(spec, data.index_to_label, train_whole_model=whole)
        start = time.perf_counter()
        classifier.train(data, epochs=epochs, batch_size=32, callbacks=[timer])
        train_s = time.perf_counter() - start
    return {
        "clips": int(data.report.num_clips),
        "epochs": epochs,
        "epoch_s": timer.seconds,
        "train_s": train_s,
        "before_first_epoch_s": train_s - sum(timer.seconds),
        "threads": _threads(),
        "peak_rss_mib": peak_rss_mib(),
    }


def _demo_child(folder: str, *, quick: bool) -> Dict:
    from mm_browserfft.training import run_demo

    start = time.perf_counter()
    result = run_demo(folder, epochs=5 if quick else 30)
    test = result.get("test") or {}
    return {
        "in_process_s": time.perf_counter() - start,
        "accuracy": test.get("accuracy"),
        "threads": _threads(),
        "peak_rss_mib": peak_rss_mib(),
    }


def _infer_child(folder: str) -> Dict:
    from mm_browserfft.audio import load_audio, split_windows
    from mm_browserfft.predict import TFLitePredictor

    predictor = TFLitePredictor(os.path.join(folder, "model.tflite"), num_threads=1)
    files = [clip for label in CLASSES for clip in clips(label)[:20]]
    start = time.perf_counter()
    windows = 0
    for path in files:
        x = split_windows(load_audio(path), pad_short=True)
        predictor.predict(x)
        windows += len(x)
    return {"files": len(files), "windows": windows, "seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib()}


def _baseline_child(kind: str) -> Dict:
    if kind == "baseline-tf":
        from benchmarks.common import tensorflow_with_threads

        tensorflow_with_threads(_threads())
        from mm_browserfft.spec import BrowserFftSpec

        BrowserFftSpec().base  # noqa: B018 -- loads it
    else:
        import numpy  # noqa: F401
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

        from mm_browserfft import predict  # noqa: F401
    return {"peak_rss_mib": peak_rss_mib()}


def child(kind: str, *, quick: bool, folder: str) -> Dict:
    """Run one measurement in this process (see the module docstring for the kinds)."""
    if kind in ("head", "whole"):
        return _train_child(whole=kind == "whole", quick=quick)
    if kind == "demo":
        return _demo_child(folder, quick=quick)
    if kind == "infer":
        return _infer_child(folder)
    return _baseline_child(kind)


def _rows(m: Dict[str, Dict]) -> List[Dict]:
    head, whole = m["head"], m["whole"]
    head_epoch = statistics.median(head["epoch_s"][1:] or head["epoch_s"]) * PER_CLIPS / head["clips"]
    whole_epoch = whole["epoch_s"][-1] * PER_CLIPS / whole["clips"]
    head_met = head_epoch < TARGET_HEAD_EPOCH_S
    head_note = "" if head_met else (
        f"a head epoch is {head['clips'] // 32 + 1} Keras steps of batch 32 on {head['clips']} cached embeddings plus "
        f"the per-epoch checkpoint; the slowest of its {len(head['epoch_s'])} epochs took {max(head['epoch_s']):.2f} s, "
        f"the fastest {min(head['epoch_s']):.2f} s"
    )
    return [
        row(
            f"head-only training: s per epoch per {PER_CLIPS:,} clips (embedding cache warm; {head['clips']} clips, "
            f"{head['threads']} threads)",
            head_epoch, "s", reference=whole_epoch, reference_label="whole-model epoch, same run",
            ratio=head_epoch / whole_epoch, ratio_of="head time / whole-model time",
            target=f"< {TARGET_HEAD_EPOCH_S:g} s", met=head_met, note=head_note,
        ),
        row(
            f"whole-model training: s per epoch per {PER_CLIPS:,} clips (one epoch over {whole['clips']} clips, "
            f"extrapolated; {whole['threads']} threads)",
            whole_epoch, "s", reference=head_epoch, reference_label="head-only epoch, same run",
            ratio=whole_epoch / head_epoch, ratio_of="whole time / head time",
        ),
        row(
            "head-only training: one-off decoding and embedding of the clips before epoch 1, s per 2,000 clips",
            head["before_first_epoch_s"] * PER_CLIPS / head["clips"], "s", reference=whole_epoch,
            reference_label="whole-model epoch, same run",
            ratio=head["before_first_epoch_s"] * PER_CLIPS / head["clips"] / whole_epoch,
            ratio_of="decoding and embedding time / whole-model epoch (clips decoded already)",
        ),
        row(
            "time to a trained, exported model: `run_demo` in a fresh process (bundled clips)",
            m["demo"]["wall_s"], "s", reference=m["baseline-tf"]["wall_s"],
            reference_label="fresh process that only imports TF and loads the base, same run",
            ratio=m["demo"]["wall_s"] / m["baseline-tf"]["wall_s"], ratio_of="demo time / start-up time",
        ),
        row(
            f"peak RSS, head-only training on {head['clips']} clips (cache=True)", head["peak_rss_mib"], "MiB",
            reference=m["baseline-tf"]["peak_rss_mib"], reference_label="process with TF imported and the base loaded, same run",
            ratio=head["peak_rss_mib"] / m["baseline-tf"]["peak_rss_mib"], ratio_of="peak / baseline",
        ),
        row(
            f"peak RSS, whole-model training on {whole['clips']} clips", whole["peak_rss_mib"], "MiB",
            reference=m["baseline-tf"]["peak_rss_mib"], reference_label="process with TF imported and the base loaded, same run",
            ratio=whole["peak_rss_mib"] / m["baseline-tf"]["peak_rss_mib"], ratio_of="peak / baseline",
        ),
        row(
            f"peak RSS, inference: .tflite via LiteRT on {m['infer']['files']} files (no TF)", m["infer"]["peak_rss_mib"],
            "MiB", reference=m["baseline-litert"]["peak_rss_mib"],
            reference_label="process that only imports LiteRT and mm_browserfft.predict, same run",
            ratio=m["infer"]["peak_rss_mib"] / m["baseline-litert"]["peak_rss_mib"], ratio_of="peak / baseline",
        ),
    ]  # fmt: skip


def run(quick: bool = False) -> Dict:
    """Run every measurement in its own process.

    Args:
      quick: 30 clips per class for head-only training (scaled to 2,000), 8 per
        class for whole-model training, 3 head epochs, a 5-epoch demo.

    Returns:
      ``{"rows", "tables", "details"}`` (see :mod:`benchmarks.common`).
    """
    flags = ["--quick"] if quick else []
    measured: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        for kind in ("baseline-tf", "baseline-litert", "head", "whole", "demo", "infer"):
            measured[kind] = run_child("bench_training", ["--child", kind, "--dir", tmp, *flags], timeout_s=CHILD_TIMEOUT_S)
    detail = table(
        "Training and inference jobs, each in a fresh process",
        ["job", "wall (s, process)", "clips", "epoch times (s)", "peak RSS (MiB)"],
        [[kind, round(m["wall_s"], 1), m.get("clips", m.get("files", "")),
          ", ".join(f"{s:.2f}" for s in m.get("epoch_s", [])), round(m["peak_rss_mib"], 1)]
         for kind, m in measured.items()],
        note=f"head-only: {measured['head']['epochs']} epochs; whole model: {measured['whole']['epochs']} epochs; "
        f"demo test accuracy {measured['demo']['accuracy']}.",
    )  # fmt: skip
    return {"rows": _rows(measured), "tables": [detail], "details": {"quick": quick, "jobs": measured}}


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=("head", "whole", "demo", "infer", "baseline-tf", "baseline-litert"))
    parser.add_argument("--dir", default="", help="the folder the demo exports to and inference reads (children)")
    args = parser.parse_args(argv)
    if args.child:
        print_child_result(child(args.child, quick=args.quick, folder=os.path.join(args.dir, "demo")))
    else:
        print(json.dumps(run(args.quick), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
