"""The no-code path: folder of clips -> trained, evaluated, exported model + report.

Used by ``mm-browserfft train`` and ``mm-browserfft demo``; everything here is
built from the public API (:mod:`mm_browserfft.audio_classifier`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
from importlib import resources
from typing import Dict, List, Optional, Tuple

from .errors import DatasetError, InvalidInputError
from .evaluation import count_per_label, data_summary, model_summary, score_test_split
from .frontend import WAVEFORM_LENGTH
from .streaming_eval.calibration import CALIBRATION_BUDGET

log = logging.getLogger("mm_browserfft")

__all__ = ["TrainingOptions", "train_and_export", "run_demo", "bundled_samples_dir", "cache_root"]


def bundled_samples_dir() -> str:
    """Folder of the real sample clips shipped with the package (one sub-folder per label)."""
    return os.fspath(resources.files("mm_browserfft") / "assets" / "samples")


@dataclasses.dataclass
class TrainingOptions:
    """Everything ``mm-browserfft train`` can set; defaults are Model Maker's."""

    epochs: int = 5
    batch_size: int = 32
    validation_split: float = 0.1
    validation_dir: Optional[pathlib.Path] = None
    test_split: float = 0.1
    test_dir: Optional[pathlib.Path] = None
    by_speaker: bool = False
    categories: Optional[List[str]] = None
    train_whole_model: bool = False
    quantization: str = "none"
    background_noise: Optional[pathlib.Path] = None
    time_shift: float = 0.0
    spec_augment: bool = False
    partial_word_negatives: float = 0.0
    base_model: str = "bundled"
    pad_short_clips: bool = False
    skip_bad_files: bool = False
    saved_model: bool = False
    tfjs: bool = False
    listen_budget: float = CALIBRATION_BUDGET
    resume: bool = False
    cache_dir: Optional[pathlib.Path] = None
    no_cache: bool = False
    seed: int = 0

    @classmethod
    def from_args(cls, args) -> "TrainingOptions":
        """From the parsed ``train`` arguments of :mod:`mm_browserfft.cli`."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        if isinstance(values.get("categories"), str):
            values["categories"] = [c.strip() for c in values["categories"].split(",") if c.strip()]
            if not values["categories"]:
                raise InvalidInputError(f"--categories: names no label ({args.categories!r})")
        return cls(**values)


def _make_spec(opts: TrainingOptions, model_dir: Optional[str]):
    from .spec import BrowserFftSpec

    return BrowserFftSpec(
        model_dir=model_dir,
        base_model=opts.base_model,
        pad_short_clips=opts.pad_short_clips,
        background_noise=opts.background_noise,
        time_shift_s=opts.time_shift,
        time_masks=2 if opts.spec_augment else 0,
        freq_masks=2 if opts.spec_augment else 0,
        partial_word_negatives=opts.partial_word_negatives,
        seed=opts.seed,
    )


def cache_root(opts: TrainingOptions) -> Optional[pathlib.Path]:
    """The cache folder of a run: ``opts.cache_dir``, else :func:`mm_browserfft.cache.default_cache_dir`; None with ``no_cache``."""
    from .cache import default_cache_dir

    if opts.no_cache:
        return None
    return pathlib.Path(opts.cache_dir) if opts.cache_dir is not None else default_cache_dir()


def _waveform_cache(opts: TrainingOptions, spec):
    """What the loaders keep of the decoded audio, so that memory stays bounded whatever the folder's size.

    Head-only training without augmentation decodes each file once, for its embedding (then
    cached on disk): nothing is kept. Training that decodes every epoch (augmentation, the
    whole model) keeps the 44.1 kHz waveforms as ``.npy`` under ``<cache>/waveforms``;
    with ``no_cache``, nothing is kept and files are decoded again.
    """
    root = cache_root(opts)
    decodes_every_epoch = opts.train_whole_model or spec.augments
    if root is None or not decodes_every_epoch:
        return False
    from .cache import WAVEFORMS

    return os.fspath(root / WAVEFORMS)


def _load_splits(data_dir, opts: TrainingOptions, spec):
    """``(all data, train, validation or None, test or None)`` loaders per the options.

    Raises:
      DatasetError: a folder is missing, holds fewer than 2 labels, or (validation and
        test folders) holds other labels than the training folder.
    """
    from .data import DataLoader

    waveform_cache = _waveform_cache(opts, spec)

    def load(path):
        return DataLoader.from_folder(
            spec, path, categories=opts.categories, shuffle=True, cache=waveform_cache, seed=opts.seed,
            skip_bad_files=opts.skip_bad_files,
        )

    data = load(data_dir)
    if data.num_classes < 2:
        raise DatasetError(f"training needs at least 2 label folders, found {data.index_to_label}", path=data_dir)
    _require_clips_of_every_label(data, data_dir)
    test = load(opts.test_dir) if opts.test_dir else None
    validation = load(opts.validation_dir) if opts.validation_dir else None
    for folder, other in ((opts.test_dir, test), (opts.validation_dir, validation)):
        if other is not None and other.index_to_label != data.index_to_label:
            raise DatasetError(
                f"label folders {other.index_to_label} differ from the training folder's {data.index_to_label}",
                path=folder,
            )
    for folder, other, what in ((opts.test_dir, test, "test"), (opts.validation_dir, validation, "validation")):
        if other is not None and other.report.num_clips == 0:
            raise DatasetError(f"the {what} folder holds no clip of {WAVEFORM_LENGTH} samples ({len(other)} files, "
                               "each shorter; --pad-short-clips pads them)", path=folder)  # fmt: skip
    test_fraction = 0.0 if test is not None else opts.test_split
    validation_fraction = 0.0 if validation is not None else opts.validation_split
    rest_fraction = test_fraction + validation_fraction
    if rest_fraction >= 1.0:
        raise InvalidInputError(f"validation and test splits leave no training data ({rest_fraction:.2f})")
    train = data
    if rest_fraction > 0:
        # By file, each label is split in proportion; by speaker, speakers are (their files span labels).
        stratify = not opts.by_speaker
        train, rest = data.split(1.0 - rest_fraction, by_speaker=opts.by_speaker, stratify=stratify)
        if test_fraction and validation_fraction:
            validation, test = rest.split(validation_fraction / rest_fraction, by_speaker=opts.by_speaker,
                                          stratify=stratify)  # fmt: skip
        elif test_fraction:
            test = rest
        else:
            validation = rest
        validation, test = (_clips_or_none(split, what) for split, what in ((validation, "validation"), (test, "test")))
        _require_clips_of_every_label(train, data_dir, split=True)
    for split, what in ((validation, "validation"), (test, "test")):
        missing = [] if split is None else [l for l in split.index_to_label if not split.report.clips_per_class[l]]
        if missing:
            log.warning("the %s split holds no clip of %s: its figures say nothing of %s",
                        what, ", ".join(map(repr, missing)), "it" if len(missing) == 1 else "them")  # fmt: skip
    return data, train, validation, test


def _require_clips_of_every_label(loader, data_dir, *, split: bool = False) -> None:
    """Refuse to train a label that has no clip: the model would name a class it never heard.

    Raises:
      DatasetError: naming the first such label's folder, and why it has none (its files all
        short or unreadable; with ``split``, all held out for validation or testing).
    """
    report = loader.report
    for label in loader.index_to_label:
        if report.clips_per_class[label]:
            continue
        folder = os.path.join(os.fspath(data_dir), label)
        if split:
            raise DatasetError("the training split holds no clip of this label: its clips all went to the validation "
                               "or test split (give it more files, or lower the splits)", path=folder)  # fmt: skip
        short = count_per_label(report.dropped_short, [label])[label]
        unreadable = count_per_label(report.unreadable, [label])[label]
        raise DatasetError(f"no clip of this label to train on: of its {short + unreadable} files, {short} are shorter "
                           f"than {WAVEFORM_LENGTH} samples (--pad-short-clips pads them) and {unreadable} are "
                           "unreadable", path=folder)  # fmt: skip


def _clips_or_none(split, what: str):
    """A split that holds clips, else None with a warning (a split of few files may hold none)."""
    if split is None or split.report.num_clips:
        return split
    if len(split):
        log.warning("the %s split holds no clip (%d files, each shorter than a window): no %s data",
                    what, len(split), what)  # fmt: skip
    else:
        log.warning("the %s split holds no file (too few files per label): no %s data", what, what)
    return None


def _quantization_config(kind: str, representative):
    from .config import QuantizationConfig

    if kind == "none":
        return None
    if kind == "dynamic":
        return QuantizationConfig.for_dynamic()
    if kind == "float16":
        return QuantizationConfig.for_float16()
    return QuantizationConfig.for_int8(representative)


def train_and_export(data_dir, export_dir, opts: TrainingOptions) -> Dict:
    """Train on ``data_dir``, export to ``export_dir`` and write the report there.

    Writes ``model.tflite`` (with metadata and labels), ``model.json``, ``labels.txt``,
    ``saved_model/`` (with ``opts.saved_model``), ``tfjs/`` (with ``opts.tfjs``), ``report.md``, ``report.json`` and
    ``report_images/``; checkpoints go to ``checkpoints/``. The export and its report are written
    aside and moved in together at the end (:func:`~mm_browserfft.export.staged_folder`): a run that
    fails (a bad test file, a full disk) leaves an earlier run's export as it was.

    Returns:
      dict with ``test`` (metrics of the exported .tflite on the test data, or None),
      ``history``, ``export_dir`` and ``report`` (the path of report.md).
    """
    from . import audio_classifier
    from .config import ExportFormat
    from .export import check_saved_model_replaceable, staged_folder
    from .report import write_report
    from .tfjs import check_replaceable

    export_dir = pathlib.Path(export_dir)
    if opts.tfjs:
        check_replaceable(export_dir / "tfjs")  # before training, not after
    if opts.saved_model:
        check_saved_model_replaceable(export_dir / "saved_model")
    spec = _make_spec(opts, model_dir=os.fspath(export_dir / "checkpoints"))
    data, train, validation, test = _load_splits(data_dir, opts, spec)
    if len(train) < opts.batch_size:
        raise DatasetError(f"the training split holds {len(train)} files, fewer than --batch-size {opts.batch_size}: "
                           "give a smaller --batch-size, or more files", path=data_dir)  # fmt: skip
    _prepare_backup(spec, train, validation, opts)
    root = cache_root(opts)
    model = audio_classifier.create(
        train, spec, validation_data=validation, batch_size=opts.batch_size, epochs=opts.epochs,
        train_whole_model=opts.train_whole_model, embedding_cache=None if root is None else os.fspath(root),
    )
    formats = [ExportFormat.TFLITE, ExportFormat.LABEL] + ([ExportFormat.SAVED_MODEL] if opts.saved_model else []) + (
        [ExportFormat.TFJS] if opts.tfjs else [])
    representative = train if opts.quantization == "int8" else None
    with staged_folder(export_dir) as stage:
        model.export(os.fspath(stage), export_format=formats,
                     quantization_config=_quantization_config(opts.quantization, representative))
        tflite_path = stage / "model.tflite"

        metrics, worst, examples, titles = None, [], None, []
        if test is not None and len(test):
            metrics, worst, examples, titles = score_test_split(test, tflite_path, model.index_to_label)
        summaries = {"all": data_summary(data), "train": data_summary(train)}
        for name, loader in (("validation", validation), ("test", test)):
            if loader is not None:
                summaries[name] = data_summary(loader)
        listening, not_calibrated = (_calibrate_listening(test, data_dir, tflite_path, opts) if test is not None and len(test)
                                     else (None, "no test data"))  # fmt: skip
        history = getattr(model.history, "history", model.history)
        settings = {"quantization": opts.quantization, "base_model": opts.base_model,
                    "train_whole_model": opts.train_whole_model, "epochs": opts.epochs,
                    "split": "by speaker" if opts.by_speaker else "by file"}  # fmt: skip
        model_info = model_summary(tflite_path, settings=settings, listening=listening, not_calibrated=not_calibrated)
        report = write_report(stage, data_summary=summaries, history=history, metrics=metrics, worst=worst,
                              examples=examples, example_titles=titles, model_info=model_info)
    _remove_stale_exports(export_dir, saved_model=opts.saved_model, tfjs=opts.tfjs)
    report = export_dir / pathlib.Path(report).name
    written = [export_dir / name for name in ("model.tflite", "labels.txt", "model.json")]
    written += ([export_dir / "saved_model"] if opts.saved_model else []) + ([export_dir / "tfjs"] if opts.tfjs else [])
    return {"test": metrics, "history": history, "export_dir": os.fspath(export_dir), "report": os.fspath(report),
            "listening": listening, "written": [os.fspath(p) for p in written + [pathlib.Path(report)]]}  # fmt: skip


def _remove_stale_exports(export_dir: pathlib.Path, *, saved_model: bool, tfjs: bool) -> None:
    """Remove a ``saved_model/`` or ``tfjs/`` an earlier run left in ``export_dir`` that this run did not write.

    They would describe another model (other labels) beside this one's ``model.json``, whose
    listening settings ``listen`` would apply to them. A folder that is not such an export is
    left alone, with a warning.
    """
    for name, written, marker in (("saved_model", saved_model, "saved_model.pb"), ("tfjs", tfjs, "model.json")):
        folder = export_dir / name
        if written or not folder.exists():
            continue
        if (folder / marker).is_file():
            log.warning("removing %s: an earlier run's export, not of this model (pass --%s to write it anew)",
                        folder, name.replace("_", "-"))  # fmt: skip
            shutil.rmtree(folder)
        else:
            log.warning("%s is not this model's: it was not written by this run", folder)


def _prepare_backup(spec, train, validation, opts: TrainingOptions) -> None:
    """Resume only when asked, and only the same run; otherwise start afresh.

    Without ``opts.resume`` a backup in ``<export>/checkpoints/backup`` is removed. With it,
    a backup of this very run (:func:`mm_browserfft.classifier.run_fingerprint`) is resumed;
    a backup of another run is an error that says what differs.

    Raises:
      InvalidInputError: ``opts.resume`` and the backup belongs to another run.
    """
    from .classifier import BACKUP_FOLDER, AudioClassifier, backup_differences, run_fingerprint

    folder = spec.model_dir
    backup = os.path.join(folder, BACKUP_FOLDER)
    if not opts.resume:
        if os.path.isdir(backup):
            log.info("removing the backup of an earlier run in %s (pass --resume to continue it)", backup)
            shutil.rmtree(backup)
        return
    probe = AudioClassifier(spec, train.index_to_label, shuffle=True, train_whole_model=opts.train_whole_model)
    run = run_fingerprint(probe, train, validation, epochs=opts.epochs, batch_size=opts.batch_size)
    differs = backup_differences(folder, run)
    if differs is None:
        log.info("--resume: no backup in %s, training from the first epoch", backup)
    elif differs:
        raise InvalidInputError(
            f"--resume: the backup is of another run ({', '.join(differs)} differ); run without --resume to start afresh",
            path=backup,
        )
    else:
        log.info("--resume: continuing the run backed up in %s", backup)


def _calibrate_listening(test, data_dir, tflite_path, opts: TrainingOptions) -> Tuple[Optional[Dict], Optional[str]]:
    """Calibrate the listening threshold on the test clips and write it into ``model.json``.

    The background is ``opts.background_noise``, else the recordings of the training folder's noise
    class under any of its names (:func:`mm_browserfft.streaming_eval.background_paths_of`).

    Returns:
      ``(the sidecar's listening section, None)``, or ``(None, why not)`` when the test data or the
      background cannot make test recordings (no keyword clip, no usable background): the model is
      exported already and keeps the default settings, and the report says why.
    """
    from .listen import write_listening_section
    from .predict import TFLitePredictor
    from .streaming_eval import background_paths_of, calibrate_listening

    try:
        backgrounds = background_paths_of(data_dir, opts.background_noise)
        section = calibrate_listening(TFLitePredictor(tflite_path), test.files, backgrounds,
                                      false_accepts_per_hour_budget=opts.listen_budget, seed=opts.seed)  # fmt: skip
    except InvalidInputError as exc:
        log.warning("listening not calibrated (the default settings stay): %s", exc)
        return None, str(exc)
    write_listening_section(tflite_path, section)
    _say_calibration(section["options"], section["calibration"])
    return section, None


def _say_calibration(options: Dict, c: Dict) -> None:
    """One log line of what the calibration chose and measured; a warning when its audio cannot show the budget met."""
    rate = "no keyword" if c["false_reject_rate"] is None else f"{c['false_reject_rate']:.0%} of them missed"
    log.info("listening calibrated on %.1f minutes of test audio (%d words, %s): threshold %g (%s from %g), "
             "%.0f false accepts per hour counted", c["minutes"], c["words"], rate, options["probability_threshold"],
             c["moved"], c["start_threshold"], c["false_accepts_per_hour"])  # fmt: skip
    if c["false_accepts_per_hour_bound"] > c["false_accepts_per_hour_budget"]:
        log.warning("%.1f minutes of test audio cannot show the budget of %g false accepts per hour met (with %.0f %% "
                    "confidence, the rate could be up to %.0f): give train more test clips (--test-dir), or judge "
                    "thresholds on your own audio with evaluate --streaming", c["minutes"],
                    c["false_accepts_per_hour_budget"], 100 * c["confidence"], c["false_accepts_per_hour_bound"])  # fmt: skip


def run_demo(export_dir, *, epochs: int = 30, seed: int = 0) -> Dict:
    """The README's main job: train on the bundled clips, test on speakers nobody heard, export.

    The test set is every bundled clip of a speaker that the bundled base was not
    pretrained on (:func:`mm_browserfft.speakers.is_heldout_speaker`, 34 of 80 clips);
    the head trains on the other 46. Both sets are folders of links in
    ``<export_dir>/demo_data/{train,test}``, so the report's clips can be played.
    """
    from .speakers import link_speaker_split

    samples = bundled_samples_dir()
    labels = sorted(p.name for p in pathlib.Path(samples).iterdir() if p.is_dir())
    data_dir = pathlib.Path(export_dir) / "demo_data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    train_dir, test_dir = link_speaker_split(samples, data_dir, labels)
    opts = TrainingOptions(epochs=epochs, batch_size=16, validation_split=0.0, test_dir=pathlib.Path(test_dir),
                           pad_short_clips=True, seed=seed)  # fmt: skip
    return train_and_export(train_dir, export_dir, opts)
