"""The ``mm-browserfft`` command line: train, evaluate, predict, listen, inspect, cache, demo, studio.

Exit codes: 0 success; 2 bad input (missing folder, one class, corrupt file,
bad option: the message names the file or value); 1 any other failure (an
export that cannot be written, training that diverged, a crash).

Results go to standard output (``--json`` for machines); progress bars, data
summaries and warnings go to standard error, and bars only show on a terminal.
TensorFlow is imported only by the commands that need it, with its native
start-up log lines held back.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import pathlib
import sys
import tempfile
import warnings
from typing import Any, Callable, Optional, Sequence

from . import __version__
from .errors import BrowserFftError, InvalidInputError
from .listen import DECISIONS
from .streaming_eval.calibration import CALIBRATION_BUDGET

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _checked(kind: Callable[[str], Any], accept: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, refused with "must be <what>" unless ``accept`` takes it (NaN never is)."""

    def parse(text: str):
        value = kind(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value: 'x'"
    return parse


_positive_int = _checked(int, lambda v: v > 0, "a positive integer")
_seed = _checked(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
_port = _checked(int, lambda v: 0 <= v <= 65535, "a port number in [0, 65535]")
_positive = _checked(float, lambda v: 0 < v < math.inf, "a finite number > 0")
_fraction = _checked(float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
_probability = _checked(float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
_non_negative = _checked(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mm-browserfft",
        description="Train, evaluate and run browser-FFT speech-command classifiers (Model Maker compatible).",
    )
    parser.add_argument("--version", action="version", version=f"mm_browserfft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier on a folder of clips (one sub-folder per label)")
    train.add_argument("data_dir", type=pathlib.Path, help="folder with one sub-folder of clips per label")
    train.add_argument("--export", dest="export_dir", type=pathlib.Path, required=True, help="output folder")
    _add_training_options(train)
    train.add_argument("--saved-model", action="store_true", help="also export a SavedModel (saved_model/)")
    train.add_argument("--tfjs", action="store_true", help="also export the TF.js model for the browser recogniser (tfjs/)")

    demo = sub.add_parser("demo", help="train, evaluate and export on the bundled sample clips")
    demo.add_argument("--export", dest="export_dir", type=pathlib.Path, default=pathlib.Path("mm_browserfft_demo"),
                      help="output folder (default %(default)s)")
    demo.add_argument("--epochs", type=_positive_int, default=30, help="training epochs (default %(default)s)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the split and of training (default %(default)s)")

    evaluate = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a model")
    evaluate.add_argument("model", type=pathlib.Path, help=".tflite file or SavedModel folder")
    evaluate.add_argument("data_dir", type=pathlib.Path, help="folder with one sub-folder of clips per label")
    evaluate.add_argument("--pad-short-clips", action="store_true", help="pad clips under 44032 samples")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument(
        "--streaming", action="store_true",
        help="listen to long recordings made of the folder's clips: false rejects, false accepts per hour, DET, AUC",
    )  # fmt: skip
    evaluate.add_argument("--background", type=pathlib.Path,
                          help="folder of background recordings for --streaming (default: the folder's noise class: "
                               "_background_noise_, _silence_, background, ...)")  # fmt: skip
    evaluate.add_argument("--minutes", type=_non_negative,
                          help="--streaming: add background-only audio until the recordings last this long (default none)")
    evaluate.add_argument("--budget", type=_non_negative,
                          help=f"--streaming: false accepts per hour allowed (default {CALIBRATION_BUDGET}, as train's "
                               "--listen-budget)")  # fmt: skip
    evaluate.add_argument("--det-plot", type=pathlib.Path, help="--streaming: write the DET curve here (PNG)")
    evaluate.add_argument("--seed", type=_seed, help="--streaming: seed of the recordings (default 0)")
    _add_listening_options(evaluate)

    listen = sub.add_parser("listen", help="detect words in recordings as the browser recogniser does")
    listen.add_argument("model", type=pathlib.Path, help=".tflite file or SavedModel folder")
    listen.add_argument("files", type=pathlib.Path, nargs="+", help="recordings (any format and sample rate)")
    _add_listening_options(listen)
    listen.add_argument("--json", action="store_true", help='print {"detections": [...]}')

    predict = sub.add_parser("predict", help="top-k classes per clip, sliding over long recordings")
    predict.add_argument("model", type=pathlib.Path, help=".tflite file or SavedModel folder")
    predict.add_argument("files", type=pathlib.Path, nargs="+", help="clips or recordings (any format and sample rate)")
    predict.add_argument("--top-k", type=_positive_int, default=3, help="classes shown per window (default %(default)s)")
    predict.add_argument("--hop", type=_positive, default=0.5,
                         help="seconds between windows of long recordings (default %(default)s)")
    predict.add_argument("--threshold", type=_probability, default=0.0,
                         help="only report windows whose best score >= this, in [0, 1] (default %(default)s)")
    predict.add_argument("--json", action="store_true", help="print JSON")

    cache = sub.add_parser("cache", help="where the cache of embeddings and decoded audio is, its size; --clear empties it")
    cache.add_argument("--cache-dir", type=pathlib.Path,
                       help="default $MM_BROWSERFFT_CACHE, else $XDG_CACHE_HOME/mm_browserfft or ~/.cache/mm_browserfft")
    cache.add_argument("--clear", action="store_true", help="delete everything in it")
    cache.add_argument("--json", action="store_true", help="print JSON")

    studio = sub.add_parser("studio", help="a local web page: record or upload words, train, try live, download")
    studio.add_argument("--workspace", type=pathlib.Path, default=pathlib.Path("mm_browserfft_studio"),
                        help="folder of the projects, one folder of audio files each (default %(default)s)")
    studio.add_argument("--port", type=_port, default=8765, help="port to serve on, 0 for any free one (default %(default)s)")
    studio.add_argument("--host", default="127.0.0.1",
                        help="address to bind; anything but 127.0.0.1 lets other machines reach it (default %(default)s)")

    inspect = sub.add_parser("inspect", help="metadata, labels, tensors, ops and quantization of a .tflite")
    inspect.add_argument("model", type=pathlib.Path, help=".tflite file")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_listening_options(p: argparse.ArgumentParser) -> None:
    """The recogniser's settings (defaults: :class:`mm_browserfft.listen.ListeningOptions`, or the model's sidecar)."""
    g = p.add_argument_group("listening (unset: the model's model.json \"listening\", else overlap 0.9, "
                             "threshold 0.7, suppression 1000 ms, scores averaged over 350 ms)")  # fmt: skip
    g.add_argument("--overlap", type=_fraction, metavar="F", help="overlap factor of consecutive windows, [0, 1)")
    g.add_argument("--threshold", type=_probability, metavar="P", help="probability a word needs to fire")
    g.add_argument("--suppression-ms", type=_non_negative, metavar="MS", help="after a detection, none for this long")
    g.add_argument("--average-ms", type=_non_negative, metavar="MS", help="average scores over this much time (0: off)")
    g.add_argument("--min-count", type=_positive_int, metavar="N", help="with --average-ms: windows needed before deciding")
    g.add_argument("--decision", choices=DECISIONS, help="best_class: the browser recogniser's rule (the best class fires); "
                   "each_word: every word is its own detector, as wake-word engines (default best_class)")


def _listening_options(args, model_path: pathlib.Path):
    """Options from the model's sidecar (``<model>.json`` ``"listening"``), then the command line on top."""
    from .listen import ListeningOptions, read_listening_options

    options = read_listening_options(model_path) or ListeningOptions()
    given = {"overlap_factor": args.overlap, "probability_threshold": args.threshold,
             "suppression_ms": args.suppression_ms, "average_ms": args.average_ms, "min_count": args.min_count,
             "decision": args.decision}  # fmt: skip
    return dataclasses.replace(options, **{k: v for k, v in given.items() if v is not None})


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, default=5, help="passes over the training data (default %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="windows per step (default %(default)s)")
    p.add_argument("--validation-split", type=_fraction, default=0.1,
                   help="fraction of each label's files held out for validation (of the speakers, with --by-speaker), "
                   "unless --validation-dir (default %(default)s)")
    p.add_argument("--validation-dir", type=pathlib.Path, help="folder of validation clips (one sub-folder per label)")
    p.add_argument("--test-split", type=_fraction, default=0.1,
                   help="fraction of each label's files held out for the test report (of the speakers, with --by-speaker), "
                   "unless --test-dir (default %(default)s)")
    p.add_argument("--test-dir", type=pathlib.Path, help="folder of test clips (one sub-folder per label)")
    p.add_argument("--by-speaker", action="store_true", help="keep each speaker's clips on one side of splits")
    p.add_argument("--categories", help="comma-separated labels to keep")
    p.add_argument("--train-whole-model", action="store_true", help="train the base too, not only the head (slower)")
    p.add_argument("--quantization", choices=("none", "dynamic", "float16", "int8"), default="none",
                   help="post-training quantization of the .tflite; int8 calibrates on training clips (default %(default)s)")
    p.add_argument("--background-noise", type=pathlib.Path, help="folder of noise recordings mixed into training")
    p.add_argument("--time-shift", type=_non_negative, default=0.0, help="max random shift in seconds (training)")
    p.add_argument("--spec-augment", action="store_true", help="SpecAugment time/frequency masks (training)")
    p.add_argument("--partial-word-negatives", type=_probability, default=0.0, metavar="SHARE",
                   help="share of each word's clips that also give a window holding only its start or end, taught "
                        "as _unknown_ (else the background class): fewer false accepts when listening, a little "
                        "lower clip accuracy; 0.5 is measured in docs/listening.md (default %(default)s: off)")  # fmt: skip
    p.add_argument("--base-model", default="bundled", help="'bundled', a TF.js model folder, or a model.json URL (default %(default)s: the base in the package)")
    p.add_argument("--pad-short-clips", action="store_true", help="pad clips under 44032 samples instead of dropping")
    p.add_argument("--skip-bad-files", action="store_true", help="warn and count unreadable files instead of failing")
    p.add_argument("--cache-dir", type=pathlib.Path,
                   help="cache of embeddings (and of decoded audio when it is read every epoch); "
                        "default $MM_BROWSERFFT_CACHE, else $XDG_CACHE_HOME/mm_browserfft or ~/.cache/mm_browserfft")  # fmt: skip
    p.add_argument("--no-cache", action="store_true", help="cache nothing on disk")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run backed up in <export>/checkpoints (the same data, base and options)")
    p.add_argument("--listen-budget", type=_non_negative, default=CALIBRATION_BUDGET,
                   help="false accepts per hour allowed (at 80%% confidence) when the listening threshold is calibrated "
                        "on the test clips (default %(default)s)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the splits and of training (default %(default)s)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``mm-browserfft`` and ``python -m mm_browserfft``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a bad option (2, after argparse's message)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    handler = {
        "train": _cmd_train,
        "demo": _cmd_demo,
        "evaluate": _cmd_evaluate,
        "predict": _cmd_predict,
        "listen": _cmd_listen,
        "cache": _cmd_cache,
        "studio": _cmd_studio,
        "inspect": _cmd_inspect,
    }[args.command]
    log = logging.getLogger("mm_browserfft")
    shown = logging.StreamHandler(sys.stderr)
    shown.setFormatter(logging.Formatter("mm-browserfft: %(message)s"))
    level, propagate, show_warning = log.level, log.propagate, warnings.showwarning
    log.addHandler(shown)
    log.setLevel(logging.INFO)
    log.propagate = False  # a root handler that TensorFlow or absl set up would print every line again
    warnings.showwarning = functools.partial(_show_warning, others=show_warning)
    try:
        if _needs_tensorflow(args):
            _import_tensorflow_quietly()
        return handler(args)
    except InvalidInputError as exc:
        print(f"mm-browserfft: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # whoever read standard output (`| head`) has gone: say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (BrowserFftError, OSError) as exc:
        print(f"mm-browserfft: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        log.removeHandler(shown)
        log.setLevel(level)
        log.propagate, warnings.showwarning = propagate, show_warning


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _show_warning(message, category, filename, lineno, file=None, line=None, *, others) -> None:
    """The package's own warnings (a skipped file, ...) as one ``mm-browserfft: warning:`` line; others by ``others``."""
    if os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
        print(f"mm-browserfft: warning: {message}", file=file or sys.stderr)
    else:
        others(message, category, filename, lineno, file, line)


def _needs_tensorflow(args) -> bool:
    """Training needs TensorFlow, and so does running a SavedModel; .tflite models need only LiteRT."""
    return args.command in ("train", "demo") or (
        args.command in ("evaluate", "predict", "listen") and args.model.is_dir()
    )


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow without its native start-up log lines.

    TensorFlow 2.20+ logs through absl before its log level applies, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide those lines (oneDNN notices, "All log
    messages before absl::InitializeLog()..."). File descriptor 2 is pointed at a
    temporary file while TensorFlow loads; what was captured is shown only if the
    import fails. Later TensorFlow and absl Python warnings are limited to errors.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except BaseException:
                os.dup2(saved, 2)
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", "replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def _check_output_dir(path: pathlib.Path) -> None:
    """An export folder must be a folder (or not exist yet): checked before any training."""
    if path.exists() and not path.is_dir():
        raise InvalidInputError("--export must name a folder, and this is a file", path=path)


def _emit(payload, *, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2, default=_json_value) if as_json else text)


def _json_value(value):
    """JSON for what ``json`` cannot write itself: bytes (a metadata ``[ubyte]`` field) as a list of ints."""
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _cmd_evaluate(args) -> int:
    from .predict import load_predictor
    from .report import format_metrics
    from .evaluation import evaluate_folder

    if not args.streaming:
        streaming_only = ("background", "minutes", "budget", "det_plot", "seed", "overlap", "threshold", "suppression_ms",
                          "average_ms", "min_count", "decision")  # fmt: skip
        given = ["--" + name.replace("_", "-") for name in streaming_only if getattr(args, name) is not None]
        if given:
            raise InvalidInputError(f"{', '.join(given)}: only with --streaming")
    predictor = load_predictor(args.model)
    if args.streaming:
        return _evaluate_streaming(args, predictor)
    result = evaluate_folder(predictor, args.data_dir, pad_short=args.pad_short_clips)
    _emit(result, as_json=args.json, text=format_metrics(result))
    return EXIT_OK


def _evaluate_streaming(args, predictor) -> int:
    from .listen import is_word
    from .report import format_streaming
    from .streaming_eval import plot_det, streaming_report, build_test_recordings_from_folder

    options = _listening_options(args, args.model)
    if args.det_plot and not args.det_plot.parent.is_dir():  # before minutes of listening, not after
        raise InvalidInputError("the folder of --det-plot does not exist", path=args.det_plot.parent)
    keywords = [label for label in predictor.labels if is_word(label)]
    recordings = build_test_recordings_from_folder(
        args.data_dir, keywords, background_dir=args.background, minutes=args.minutes or 0.0, seed=args.seed or 0
    )
    budget = CALIBRATION_BUDGET if args.budget is None else args.budget
    result = streaming_report(predictor, recordings, options=options, false_accepts_per_hour_budget=budget)
    if args.det_plot:
        plot_det(result, args.det_plot)
        result["det_plot"] = os.fspath(args.det_plot)
    _emit(result, as_json=args.json, text=format_streaming(result))
    return EXIT_OK


def _cmd_listen(args) -> int:
    from .listen import Recognizer, listen_file
    from .predict import load_predictor

    for path in args.files:
        if not path.is_file():
            raise InvalidInputError("no such audio file", path=path)
    recognizer = Recognizer(load_predictor(args.model), options=_listening_options(args, args.model))
    detections = []
    try:
        for path in args.files:
            for d in listen_file(recognizer, path):
                detections.append({"file": os.fspath(path), **d.as_dict()})
                if not args.json:
                    print(f"{os.fspath(path)}\t{d.start_s:8.3f}-{d.end_s:8.3f} s\t{d.label}\t{d.score:.3f}", flush=True)
    finally:  # a file that fails (its error names it) still leaves the detections of the files before it
        if args.json:
            print(json.dumps({"detections": detections}, indent=2))
    return EXIT_OK


def _cmd_predict(args) -> int:
    from .predict import load_predictor, stream_predictions

    for path in args.files:
        if not path.is_file():
            raise InvalidInputError("no such audio file", path=path)
    predictor = load_predictor(args.model)
    results = []
    try:
        for path in args.files:
            windows = [
                {"start_s": round(d.start_s, 3), "end_s": round(d.end_s, 3),
                 "top_k": [{"label": label, "score": score} for label, score in d.top_k]}
                for d in stream_predictions(predictor, path, hop_s=args.hop, top_k=args.top_k)
                if d.top_k[0][1] >= args.threshold
            ]  # fmt: skip
            results.append({"file": os.fspath(path), "windows": windows})
            if not args.json:
                print(path)
                for w in windows:
                    ranked = ", ".join(f"{t['label']} {t['score']:.3f}" for t in w["top_k"])
                    print(f"  {w['start_s']:8.3f}-{w['end_s']:8.3f} s  {ranked}", flush=True)
    finally:  # a file that fails (its error names it) still leaves the results of the files before it
        if args.json and results:
            print(json.dumps(results, indent=2))
    return EXIT_OK


def _cmd_studio(args) -> int:
    from .studio import serve

    try:
        serve(args.workspace, host=args.host, port=args.port)
    except ImportError as exc:  # starlette or uvicorn missing
        raise InvalidInputError(f'the studio needs its extra: pip install "mm-browserfft[studio]" ({exc})') from exc
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise InvalidInputError(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    return EXIT_OK


def _cmd_cache(args) -> int:
    from .cache import cache_usage, clear_cache, default_cache_dir

    folder = args.cache_dir or default_cache_dir()
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InvalidInputError("the cache must be a folder, and this is a file", path=folder)
    usage = clear_cache(folder) if args.clear else cache_usage(folder)
    payload = {"cache_dir": os.fspath(folder), "files": usage["files"], "bytes": usage["bytes"], "cleared": args.clear}
    verb = "cleared" if args.clear else "holds"
    _emit(payload, as_json=args.json, text=f"{os.fspath(folder)} {verb} {usage['files']} files, {usage['bytes'] / 1e6:.1f} MB")
    return EXIT_OK


def _cmd_inspect(args) -> int:
    from .inspection import describe_tflite, format_description

    info = describe_tflite(args.model)
    _emit(info, as_json=args.json, text=format_description(info))
    return EXIT_OK


def _cmd_train(args) -> int:
    from .training import TrainingOptions, train_and_export

    _check_output_dir(args.export_dir)
    result = train_and_export(args.data_dir, args.export_dir, TrainingOptions.from_args(args))
    if args.test_dir:
        held_out = "clips of the test folder"
    else:
        held_out = "clips of speakers not used for training" if args.by_speaker else "held-out clips"
    _print_trained(result, held_out=held_out)
    return EXIT_OK


def _cmd_demo(args) -> int:
    from .training import run_demo

    _check_output_dir(args.export_dir)
    result = run_demo(args.export_dir, epochs=args.epochs, seed=args.seed)
    _print_trained(result, held_out="clips of speakers not used for training (nor by the bundled base)")
    return EXIT_OK


def _print_trained(result, *, held_out: str) -> None:
    """The test accuracy (what it was measured on, in words) and the files written."""
    test = result.get("test")
    if test:
        print(f"test accuracy {test['accuracy']:.4f} on {test['num_examples']} {held_out}")
    else:
        print("no test data: nothing held out to measure accuracy on")
    print("wrote " + ", ".join(result["written"]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
