"""The training report: Markdown plus PNGs, written beside the exported model.

Sections: data summary (files, clips, dropped/padded per class, durations, sample
rates), training curves, confusion matrix, per-class metrics, the worst-classified
clips, example spectrograms, and model size and latency.
"""

from __future__ import annotations

import io
import json
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    "plot_history",
    "plot_confusion_matrix",
    "plot_spectrograms",
    "format_metrics",
    "write_report",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Dict[str, List[float]], path) -> None:
    """Loss and accuracy per epoch (train and validation) -> PNG at ``path`` (a path or a binary file)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key in zip(axes, ("loss", "acc")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key) or history.get(prefix + ("accuracy" if key == "acc" else key))
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path) -> None:
    """Counts with rows = truth, columns = prediction -> PNG at ``path``."""
    plt = _pyplot()
    m = np.asarray(matrix)
    size = 1.2 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(m):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > m.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_spectrograms(spectrograms: np.ndarray, titles: Sequence[str], path) -> None:
    """Spectrograms ``[n, 43, 232, 1]`` (z-scores) side by side -> PNG at ``path``."""
    plt = _pyplot()
    n = len(spectrograms)
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 3.0), squeeze=False)
    for ax, spec, title in zip(axes[0], spectrograms, titles):
        ax.imshow(np.asarray(spec)[..., 0].T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame (23 ms)")
        ax.set_ylabel("bin (21.5 Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def format_metrics(metrics: Dict) -> str:
    """Text table of :func:`mm_browserfft.metrics.classification_metrics` output."""
    lines = [f"accuracy {metrics['accuracy']:.4f} on {metrics['num_examples']} clips (macro F1 {metrics['macro_f1']:.4f})"]
    lines.append(f"{'label':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for row in metrics["per_class"]:
        lines.append(
            f"{row['label']:<20} {row['precision']:>9.3f} {row['recall']:>9.3f} {row['f1']:>9.3f} {row['support']:>8d}"
        )
    labels = metrics["labels"]
    lines.append("confusion matrix (rows = true, columns = predicted):")
    for label, row in zip(labels, metrics["confusion_matrix"]):
        lines.append(f"  {label:<20} " + " ".join(f"{c:>5d}" for c in row))
    if metrics.get("dropped_short"):
        lines.append(f"{len(metrics['dropped_short'])} files shorter than one window dropped (--pad-short-clips pads them)")
    if metrics.get("skipped"):
        lines.append(f"{len(metrics['skipped'])} entries that are not audio files skipped: "
                     + ", ".join(metrics["skipped"][:5]) + (", ..." if len(metrics["skipped"]) > 5 else ""))  # fmt: skip
    return "\n".join(lines)


def format_streaming(report: Dict) -> str:
    """Text of :func:`mm_browserfft.streaming_eval.streaming_report` output: the operating point, budget, AUC."""
    from .streaming_eval import ranked_confusions

    opts = report["options"]
    lines = [
        f"listened to {report['hours'] * 60:.1f} min in {report['recordings']} recordings "
        f"(threshold {opts['probability_threshold']}, overlap {opts['overlap_factor']}, "
        f"suppression {opts['suppression_ms']:g} ms, averaging {opts['average_ms']:g} ms"
        + (", each word its own detector)" if opts.get("decision") == "each_word" else ")"),
        f"{'keyword':<20} {'words':>6} {'missed':>7} {'FRR':>7} {'false acc.':>10} {'FA/hour':>8} {'AUC':>7}",
    ]
    for name in report["keywords"] + ["all"]:
        row, auc = report["at_threshold"][name], report["auc"].get(name)
        frr = "-" if row["false_reject_rate"] is None else f"{row['false_reject_rate']:.3f}"
        lines.append(
            f"{name:<20} {row['events']:>6d} {row['false_rejects']:>7d} {frr:>7} {row['false_accepts']:>10d} "
            f"{row['false_accepts_per_hour']:>8.1f} {'-' if auc is None else format(auc, '.4f'):>7}"
        )
    spoken = [r for r in report.get("per_recording", []) if r["events"]]
    if len(spoken) > 1:
        recall = [1 - r["false_reject_rate"] for r in spoken]
        fa = [r["false_accepts_per_hour"] for r in spoken]
        lines.append(f"each of the {len(spoken)} recordings with words on its own: recall {min(recall):.3f}-{max(recall):.3f}, "
                     f"false accepts per hour {min(fa):.1f}-{max(fa):.1f}")
    causes = report.get("false_accepts_by_cause")
    if causes and sum(causes.values()):
        lines.append("false accepts decided during: " + ", ".join(
            f"{n} {cause.replace('_', ' ')}" for cause, n in causes.items() if n))  # fmt: skip
        confusions = ranked_confusions(report.get("heard_as", {}))
        if confusions:
            lines.append("keywords heard as another: " + ", ".join(
                f"{said} as {fired} {n}" for said, fired, n in confusions[:8]))  # fmt: skip
    budget = report["budget"]
    if budget["threshold"] is None:
        lines.append(f"no threshold keeps false accepts under {budget['false_accepts_per_hour']:g} per hour")
    else:
        lines.append(
            f"threshold {budget['threshold']} keeps false accepts under {budget['false_accepts_per_hour']:g} per hour"
            + ("" if budget["false_reject_rate"] is None else f" at a false-reject rate of {budget['false_reject_rate']:.3f}")
        )
    unreached = " (the best class alone misses words its model names wrong: --decision each_word reaches further)" \
        if opts.get("decision") != "each_word" else ""  # fmt: skip
    for frr, fa in report["false_accepts_per_hour_at_false_reject_rate"].items():
        lines.append(f"at most {float(frr):.0%} false rejects: "
                     + (f"not reached{unreached}" if fa is None else f"{fa:.1f} false accepts per hour"))  # fmt: skip
    return "\n".join(lines)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _summary_line(summary: Dict) -> str:
    """One sentence of a split's totals: files, clips, durations, sample rates, what was skipped."""
    parts = [f"{summary.get('files', '?')} files, {summary.get('clips', '?')} clips"]
    duration = summary.get("duration_s")
    if duration:
        parts.append(f"durations {duration['min']:.2f}-{duration['max']:.2f} s (mean {duration['mean']:.2f} s)")
    if summary.get("sample_rates_hz"):
        parts.append("sample rates " + ", ".join(f"{rate} Hz" for rate in summary["sample_rates_hz"]))
    for key, words in (("unreadable", "unreadable files skipped"), ("not_audio_skipped", "non-audio entries skipped")):
        if summary.get(key):
            parts.append(f"{summary[key]} {words}")
    return "; ".join(parts) + "."


def write_report(
    out_dir,
    *,
    data_summary: Dict,
    history: Optional[Dict[str, List[float]]],
    metrics: Optional[Dict],
    worst: Sequence[Dict],
    examples: Optional[np.ndarray],
    example_titles: Sequence[str],
    model_info: Dict,
) -> pathlib.Path:
    """Write ``report.md``, ``report.json`` and the PNGs into ``out_dir``, all or none.

    Args:
      data_summary: split name -> summary: ``per_class`` (label -> ``files``, ``clips``,
        ``padded``, ``dropped_short``, ``unreadable``) and any totals worth showing.
      history: Keras ``History.history`` of the training run.
      metrics: :func:`mm_browserfft.metrics.classification_metrics` on the test data
        (None without test data: the test section then says so).
      worst: the worst-classified clips: dicts with ``file``, ``label``, ``predicted``, ``score``.
      examples: a few spectrograms ``[k, 43, 232, 1]`` to show.
      model_info: ``tflite_bytes``, ``latency_ms`` and anything else worth a line.

    Returns:
      the path of ``report.md``.
    """
    from .export import write_files_atomically

    out = pathlib.Path(out_dir)
    images = out / "report_images"
    images.mkdir(parents=True, exist_ok=True)
    files: Dict[pathlib.Path, bytes] = {}

    def png(plot, name: str, *args) -> None:
        buffer = io.BytesIO()
        plot(*args, buffer)
        files[images / name] = buffer.getvalue()

    md: List[str] = ["# Training report", ""]

    md += ["## Data", ""]
    for split, summary in data_summary.items():
        md.append(f"### {split}")
        md.append("")
        rows = [
            [label, c["files"], c["clips"], c.get("padded", 0), c.get("dropped_short", 0), c.get("unreadable", 0)]
            for label, c in summary.get("per_class", {}).items()
        ]
        md += _markdown_table(["label", "files", "clips", "padded", "dropped (short)", "unreadable (skipped)"], rows)
        md += ["", _summary_line(summary), ""]

    if history:
        png(plot_history, "training_curves.png", history)
        md += ["## Training curves", "", "![training curves](report_images/training_curves.png)", ""]

    md += ["## Test results", ""]
    if metrics is None:
        md += ["No test data (no test split or folder), so no test results.", ""]
    else:
        png(plot_confusion_matrix, "confusion_matrix.png", metrics["confusion_matrix"], metrics["labels"])
        md += [f"Accuracy **{metrics['accuracy']:.4f}** on {metrics['num_examples']} clips.", ""]
        md += ["![confusion matrix](report_images/confusion_matrix.png)", ""]
        md += _markdown_table(
            ["label", "precision", "recall", "F1", "support"],
            [[r["label"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
             for r in metrics["per_class"]],
        )
        md.append("")

    if worst:
        md += ["## Worst-classified clips", ""]
        md += _markdown_table(
            ["file", "true", "predicted", "score of the true label"],
            [[w["file"], w["label"], w["predicted"], f"{w['score']:.3f}"] for w in worst],
        )
        md.append("")

    if examples is not None and len(examples):
        png(plot_spectrograms, "spectrograms.png", examples, example_titles)
        md += ["## Example spectrograms", "", "![spectrograms](report_images/spectrograms.png)", ""]

    md += ["## Model", ""]
    md += _markdown_table(["item", "value"], [[k, v] for k, v in model_info.items()])
    md.append("")

    report = {"data": data_summary, "history": history, "metrics": metrics, "worst": list(worst), "model": model_info}
    files[out / "report.json"] = json.dumps(report, indent=2, default=str).encode("utf-8")
    files[out / "report.md"] = "\n".join(md).encode("utf-8")
    write_files_atomically(files)  # every file written before any replaces its previous version
    return out / "report.md"
