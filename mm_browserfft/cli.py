"""The ``mm-browserfft`` command line: train, evaluate, predict, inspect, demo.

Exit codes: 0 success; 2 bad input (missing folder, one class, corrupt file,
bad option: the message names the file or value); 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import List, Optional, Sequence

import numpy as np

from . import __version__
from .errors import BrowserFftError, InvalidInputError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mm-browserfft",
        description="Train, evaluate and run browser-FFT speech-command classifiers (Model Maker compatible).",
    )
    parser.add_argument("--version", action="version", version=f"mm_browserfft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier on a folder of clips (one sub-folder per label)")
    train.add_argument("data_dir", type=pathlib.Path)
    train.add_argument("--export", dest="export_dir", type=pathlib.Path, required=True, help="output folder")
    _add_training_options(train)

    demo = sub.add_parser("demo", help="train, evaluate and export on the bundled sample clips")
    demo.add_argument("--export", dest="export_dir", type=pathlib.Path, default=pathlib.Path("mm_browserfft_demo"))
    demo.add_argument("--epochs", type=_positive_int, default=30)
    demo.add_argument("--seed", type=int, default=0)

    evaluate = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a model")
    evaluate.add_argument("model", type=pathlib.Path, help=".tflite file or SavedModel folder")
    evaluate.add_argument("data_dir", type=pathlib.Path)
    evaluate.add_argument("--pad-short-clips", action="store_true", help="pad clips under 44032 samples")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    predict = sub.add_parser("predict", help="top-k classes per clip, sliding over long recordings")
    predict.add_argument("model", type=pathlib.Path)
    predict.add_argument("files", type=pathlib.Path, nargs="+")
    predict.add_argument("--top-k", type=_positive_int, default=3)
    predict.add_argument("--hop", type=float, default=0.5, help="seconds between windows of long recordings")
    predict.add_argument("--threshold", type=float, default=0.0, help="only report windows whose best score >= this")
    predict.add_argument("--json", action="store_true")

    inspect = sub.add_parser("inspect", help="metadata, labels, tensors, ops and quantization of a .tflite")
    inspect.add_argument("model", type=pathlib.Path)
    inspect.add_argument("--json", action="store_true")
    return parser


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, default=5)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--validation-split", type=_fraction, default=0.1)
    p.add_argument("--validation-dir", type=pathlib.Path)
    p.add_argument("--test-split", type=_fraction, default=0.1)
    p.add_argument("--test-dir", type=pathlib.Path)
    p.add_argument("--by-speaker", action="store_true", help="keep each speaker's clips on one side of splits")
    p.add_argument("--categories", help="comma-separated labels to keep")
    p.add_argument("--train-whole-model", action="store_true")
    p.add_argument("--quantization", choices=("none", "dynamic", "float16", "int8"), default="none")
    p.add_argument("--background-noise", type=pathlib.Path, help="folder of noise recordings mixed into training")
    p.add_argument("--time-shift", type=float, default=0.0, help="max random shift in seconds (training)")
    p.add_argument("--spec-augment", action="store_true", help="SpecAugment time/frequency masks (training)")
    p.add_argument("--base-model", default="bundled", help="'bundled', a TF.js model folder, or a model.json URL")
    p.add_argument("--pad-short-clips", action="store_true", help="pad clips under 44032 samples instead of dropping")
    p.add_argument("--skip-bad-files", action="store_true", help="warn and count unreadable files instead of failing")
    p.add_argument("--seed", type=int, default=0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``mm-browserfft`` and ``python -m mm_browserfft``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        handler = {
            "train": _cmd_train,
            "demo": _cmd_demo,
            "evaluate": _cmd_evaluate,
            "predict": _cmd_predict,
            "inspect": _cmd_inspect,
        }[args.command]
        return handler(args)
    except InvalidInputError as exc:
        print(f"mm-browserfft: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BrowserFftError, OSError) as exc:
        print(f"mm-browserfft: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _emit(payload, *, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


def _cmd_evaluate(args) -> int:
    from .predict import load_predictor
    from .report import evaluate_folder, format_metrics

    predictor = load_predictor(args.model)
    result = evaluate_folder(predictor, args.data_dir, pad_short=args.pad_short_clips)
    _emit(result, as_json=args.json, text=format_metrics(result))
    return EXIT_OK


def _cmd_predict(args) -> int:
    from .predict import load_predictor, stream_predictions

    predictor = load_predictor(args.model)
    results = []
    for path in args.files:
        if not path.is_file():
            raise InvalidInputError("no such audio file", path=path)
        windows = [
            {"start_s": round(d.start_s, 3), "end_s": round(d.end_s, 3),
             "top_k": [{"label": label, "score": score} for label, score in d.top_k]}
            for d in stream_predictions(predictor, path, hop_s=args.hop, top_k=args.top_k)
            if d.top_k[0][1] >= args.threshold
        ]
        results.append({"file": os.fspath(path), "windows": windows})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for item in results:
            print(item["file"])
            for w in item["windows"]:
                ranked = ", ".join(f"{t['label']} {t['score']:.3f}" for t in w["top_k"])
                print(f"  {w['start_s']:8.3f}-{w['end_s']:8.3f} s  {ranked}")
    return EXIT_OK


def _cmd_inspect(args) -> int:
    from .inspection import describe_tflite, format_description

    info = describe_tflite(args.model)
    _emit(info, as_json=args.json, text=format_description(info))
    return EXIT_OK


def _cmd_train(args) -> int:
    from .training import TrainingOptions, train_and_export

    result = train_and_export(args.data_dir, args.export_dir, TrainingOptions.from_args(args))
    print(f"test accuracy {result['test']['accuracy']:.4f}" if result.get("test") else "trained")
    print(f"wrote {args.export_dir}")
    return EXIT_OK


def _cmd_demo(args) -> int:
    from .training import run_demo

    result = run_demo(args.export_dir, epochs=args.epochs, seed=args.seed)
    print(f"demo: test accuracy {result['test']['accuracy']:.4f} on speakers not used for training")
    print(f"wrote {args.export_dir} (model.tflite, labels.txt, model.json, report.md)")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
