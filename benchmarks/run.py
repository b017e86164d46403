"""Run every benchmark, write ``benchmarks/results/latest.json`` and ``docs/benchmarks.md``.

usage (from the repository root)::

    python -m benchmarks.run            # everything (about an hour on 2 cores)
    python -m benchmarks.run --quick    # a smoke run (under 3 minutes); writes *-quick files, not docs/
    python -m benchmarks.run --only models --only data   # some; their entries replace those of the last run

Every ``benchmarks/bench_<name>.py`` is run in its own Python process (so thread
settings, TensorFlow state and memory never leak from one to the next), its
``run(quick)`` result is turned into rows (see :mod:`benchmarks.common`), and a
module that fails is recorded with its error while the others go on.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.common import REPO_ROOT, row, table

BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
DOCS_PAGE = REPO_ROOT / "docs" / "benchmarks.md"
MODULE_TIMEOUT_S = 900
"""Seconds a benchmark module may run, unless it sets its own ``TIMEOUT_S``."""
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "ai-edge-litert", "soundfile", "soxr")
ROW_KEYS = ("figure", "value", "unit", "reference", "reference_label", "ratio", "ratio_of", "target", "met", "note")


def discover() -> List[str]:
    """Names of the benchmark modules: ``bench_<name>.py`` -> ``<name>``, sorted."""
    return sorted(p.stem[len("bench_") :] for p in BENCH_DIR.glob("bench_*.py"))


# ---------------------------------------------------------------- adapters for results without rows


_BARE_FFT_LABELS = {
    "bare_np_rfft": "np.fft.rfft (float64)",
    "bare_tf_rfft_float64": "tf.signal.rfft (float64)",
    "bare_tf_rfft_float32": "tf.signal.rfft (float32)",
}


def _adapt_frontend(raw: Dict) -> Dict:
    """bench_frontend's seconds per batch -> rows against the bare FFT of the same frames."""
    seconds, batch = raw["seconds"], raw["batch"]
    ratios, rates, bare_of = raw["ratio_to_bare_fft"], raw["spectrograms_per_s"], raw["bare_fft_of"]
    per_clip_ms = {name: 1e3 * s / batch for name, s in seconds.items()}
    rows = []
    for name, label, target in (
        ("keras_in_tf_data_map", "Keras layer in tf.data", True),
        ("keras_direct", "Keras layer called directly", False),
        ("keras_float32_graph", "Keras layer, float32 graph (TFLite export, training pipeline)", True),
        ("numpy_reference", "NumPy reference", True),
    ):
        bare = bare_of[name]
        ratio = ratios[name]
        met = ratio <= 2.0 if target else None
        note = ""
        if met is False:
            # tf.data's own cost is what the map adds over the layer called directly
            direct = "keras_direct" if name == "keras_in_tf_data_map" else name
            who = "the layer called directly" if direct != name else "it"
            note = (
                f"{who} takes {ratios[direct]:.2f}x the bare FFT ({_BARE_FFT_LABELS[bare]}: "
                f"{per_clip_ms[direct]:.3f} vs {per_clip_ms[bare]:.3f} ms per clip): the framing copies, the window, "
                "|X|, the log and the z-score around the FFT"
            )
            if direct != name:
                extra = per_clip_ms[name] - per_clip_ms[direct]
                note += (f"; tf.data adds {extra:.3f} ms per clip on top (batches of 32, 1 thread)" if extra > 0 else
                         f"; tf.data adds nothing measurable ({extra:+.3f} ms per clip)")  # fmt: skip
        rows.append(row(
            f"front end, {label}: spectrograms/s (1 thread, {batch} clips)", rates[name], "spectrograms/s",
            reference=batch / seconds[bare],
            reference_label=f"bare {_BARE_FFT_LABELS[bare]} of the same 43 frames, same run",
            ratio=ratio, ratio_of="time / bare-FFT time", target="<= 2x the bare FFT time" if target else None,
            met=met, note=note,
        ))  # fmt: skip
    detail = table(
        f"Front end, batch of {batch} clips, 1 thread",
        ["implementation", "ms per batch", "ms per clip", "spectrograms/s", "x bare FFT"],
        [[name, round(1e3 * s, 2), round(per_clip_ms[name], 4), round(rates.get(name, batch / s)),
          round(ratios[name], 2) if name in ratios else "(reference)"] for name, s in seconds.items()],
    )  # fmt: skip
    return {"rows": rows, "tables": [detail], "details": raw}


def _training_clips(raw: Dict, key: str) -> str:
    """What a transfer row trained on: every training clip, or K per class."""
    return f"all {raw['train_clips']} clips" if key == "full" else f"{key} clips per class"


def _percent(stats: Dict[str, float]) -> str:
    """``{"mean", "std"}`` of an accuracy as ``"85.1 +- 0.4"`` (percent)."""
    return f"{100 * stats['mean']:.1f} +- {100 * stats['std']:.1f}"


def _adapt_transfer(raw: Dict) -> Dict:
    """bench_transfer's curve -> one row per K (bundled base against random init) and the curve's table,
    and its linear probe -> one row per K (bundled base against the teacher) and the probe's table."""
    acc = raw["accuracy"]
    keys = [str(k) for k in raw["k_values"]] + ["full"]
    rows, cells = [], []
    for key in keys:
        bundled, random = acc["bundled"][key]["mean"], acc["random"][key]["mean"]
        clips = _training_clips(raw, key)
        if key == "full" and "full_epochs" in raw:  # the head's epochs; the probe's rows have none
            clips += f" ({raw['full_epochs']} epochs, one draw)"
        rows.append(row(
            f"transfer: 10-class accuracy, head on {clips}, {raw['test_clips']} clips of held-out speakers",
            100 * bundled, "%", reference=100 * random, reference_label="randomly initialised base, same run",
            ratio=100 * (bundled - random), ratio_of="points over random init",
        ))  # fmt: skip
        cells.append([key, _percent(acc["bundled"][key]), _percent(acc["random"][key]), round(100 * (bundled - random), 1)])
    detail = table(
        f"Transfer curve: accuracy (%) vs clips per class, mean +- std over {raw['draws']} draws, "
        f"{raw['epochs']} head epochs" + (f" (every clip: one draw, {raw['full_epochs']} epochs)" if "full_epochs" in raw else ""),
        ["clips per class", "bundled base", "random init", "difference (points)"],
        cells,
    )
    tables = [detail]
    probe = raw.get("probe")
    if probe:
        probe_cells = []
        for key in probe["bundled"]:
            bundled, teacher = probe["bundled"][key]["mean"], probe["teacher"][key]["mean"]
            rows.append(row(
                f"linear probe: {len(raw['classes'])}-class accuracy, {_training_clips(raw, key)}, "
                f"{raw['test_clips']} clips of held-out speakers",
                100 * bundled, "%", reference=100 * teacher, reference_label="Google speech_embedding (teacher), same run",
                ratio=100 * (bundled - teacher), ratio_of="points over the teacher",
                target=">= teacher - 0.5 points", met=bundled >= teacher - 0.005,
                note="" if bundled >= teacher - 0.005 else f"{100 * (teacher - bundled):.1f} points short of the teacher's probe",
            ))  # fmt: skip
            probe_cells.append([key] + [_percent(probe[n][key]) for n in ("bundled", "random", "teacher")])
        tables.append(table(
            "Linear probe (standardised embedding + logistic regression): accuracy (%), same split, same run",
            ["clips per class", "bundled base", "random init", "teacher (speech_embedding)"], probe_cells,
        ))  # fmt: skip
    return {"rows": rows, "tables": tables, "details": raw}


ADAPTERS: Dict[str, Callable[[Dict], Dict]] = {"frontend": _adapt_frontend, "transfer": _adapt_transfer}


def normalise(name: str, raw: Dict) -> Dict:
    """A module's result as ``{"rows", "tables", "details"}``.

    Raises:
      ValueError: a row lacks one of :data:`ROW_KEYS`.
    """
    if "rows" in raw:
        result = {"rows": raw["rows"], "tables": raw.get("tables", []), "details": raw.get("details", {})}
    elif name in ADAPTERS:
        result = ADAPTERS[name](raw)
    else:
        result = {"rows": [], "tables": [], "details": raw}
    for r in result["rows"]:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise ValueError(f"bench_{name}: row {r.get('figure')!r} lacks {missing}")
    return result


# ---------------------------------------------------------------- running


def _json_default(value):
    return value.item() if hasattr(value, "item") else str(value)


def exit_on_sigterm() -> None:
    """Make SIGTERM end this process by raising ``SystemExit`` (status 143), as Ctrl-C ends it.

    A benchmark runs in a child process (:func:`run_module`); ``subprocess.run`` kills that child
    when the wait for it is interrupted by an exception, but a plain SIGTERM would end the parent
    alone and leave the child running (a ``kill`` of the runner, a CI job cancelled). Processes
    the child started itself (``bench_scale``'s ``mm-browserfft train``) are not reached: kill the
    process group for those.
    """

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run_child(name: str, quick: bool, out: str) -> None:
    """In the child process: import ``bench_<name>``, call ``run(quick)`` and write its raw result to ``out``."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    result = module.run(quick)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, default=_json_default)


def module_timeout_s(name: str) -> float:
    """The ``TIMEOUT_S`` that ``bench_<name>.py`` assigns at its top level, else :data:`MODULE_TIMEOUT_S`.

    Read from the source, not by importing it: a benchmark module sets its thread
    settings in ``os.environ`` when imported, and every later child would inherit them.
    """
    tree = ast.parse((BENCH_DIR / f"bench_{name}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TIMEOUT_S" for t in node.targets):
            return float(ast.literal_eval(node.value))
    return float(MODULE_TIMEOUT_S)


def new_entry(name: str, *, quick: bool, machine: str) -> Dict:
    """A module's entry before it runs: its name and file, and where, when and on what (``machine``,
    a :func:`machine_line`) it is measured."""
    return {"name": name, "module": f"benchmarks/bench_{name}.py", "quick": quick, "commit": _git_commit(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine}  # fmt: skip


def run_module(name: str, *, quick: bool, log_dir: pathlib.Path, machine: str) -> Dict:
    """Run one module in a fresh process; its entry (measured on ``machine``, a :func:`machine_line`), errors included."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    timeout_s = module_timeout_s(name)
    start = time.perf_counter()
    entry = new_entry(name, quick=quick, machine=machine)
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, "-m", "benchmarks.run", "--child", name, "--result", out] + (["--quick"] if quick else [])
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
        try:
            with open(log, "w", encoding="utf-8") as handle:
                proc = subprocess.run(command, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                      timeout=timeout_s, env=env)  # fmt: skip
            if proc.returncode != 0 or not os.path.exists(out):
                tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
                raise RuntimeError(f"exited with status {proc.returncode}; end of {log.name}:\n{tail}")
            with open(out, encoding="utf-8") as handle:
                entry.update(normalise(name, json.load(handle)), status="ok")
        except (RuntimeError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired, OSError) as exc:
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}", rows=[], tables=[], details={})
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> Optional[str]:
    """The short commit of the working tree, with ``+changes`` when it is not that commit's tree.

    A changed tracked file counts, and so does a file git does not track and does not ignore (a
    new module or benchmark would otherwise be measured under a commit that lacks it); the
    results this run writes do not.
    """
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", ".",
                                 ":!benchmarks/results", ":!docs/benchmarks.md"],
                                cwd=REPO_ROOT, capture_output=True, text=True)  # fmt: skip
    except OSError:
        return None
    commit = out.stdout.strip()
    return (commit + ("+changes" if status.stdout.strip() else "")) if commit else None


def machine_line(machine: Dict) -> str:
    """``"<CPU model>, <usable cores> cores"`` of a :func:`machine_info`."""
    return f"{machine['cpu_model']}, {machine['cores_usable']} cores"


def machine_info() -> Dict:
    """CPU, cores, load, Python and package versions, date."""
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: v for p in PACKAGES if (v := _version(p))},
        "git_commit": _git_commit(),
    }


# ---------------------------------------------------------------- the Markdown page


def _num(value: Optional[float]) -> str:
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _stamp(entry: Dict) -> str:
    """Where, when and on what an entry was measured: ``commit, date, machine`` (entries of older runs kept their own)."""
    return (f"{entry.get('commit') or 'unknown commit'}, {entry.get('date_utc') or 'unknown date'}, "
            f"{entry.get('machine') or 'machine not recorded'}")


def _row_cells(r: Dict, entry: Dict) -> List[str]:
    reference = "—"
    if r["reference"] is not None:
        reference = f"{_num(r['reference'])} {r['unit']} ({r['reference_label']})"
    ratio = "—" if r["ratio"] is None else f"{_num(r['ratio'])} ({r['ratio_of']})"
    met = {True: "yes", False: "**no** (why: below)", None: "—"}[r["met"]]
    return [r["figure"], f"{_num(r['value'])} {r['unit']}", reference, ratio, r["target"] or "—", met, _stamp(entry)]


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def _module_summary(name: str) -> str:
    """The first line of a module's docstring (read from the file, so nothing is imported)."""
    import ast

    path = BENCH_DIR / f"bench_{name}.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def render_markdown(results: Dict) -> str:
    """The page: the headline table, why targets were missed, errors, each module's details, the machine."""
    m = results["machine"]
    entries = results["entries"]
    all_rows = [r for e in entries for r in e["rows"]]
    lines = [
        "# Benchmarks",
        "",
        f"Last written by `python -m benchmarks.run{' --quick' if results['quick'] else ''}"
        f"{''.join(f' --only {n}' for n in results.get('modules_run') or ())}` on {m['date_utc']} "
        f"(commit {m['git_commit']}; a run of some modules keeps the others' earlier figures, each row says "
        f"where, when and on what machine it was measured), {machine_line(m)}, load average at start "
        f"{m['load_average_1_5_15']}; TensorFlow {m['versions'].get('tensorflow') or m['versions'].get('tensorflow-cpu')}, "
        f"NumPy {m['versions'].get('numpy')}, ai-edge-litert {m['versions'].get('ai-edge-litert')}. "
        f"Total wall time {results['total_seconds'] / 60:.1f} min"
        f"{' (those modules)' if results.get('modules_run') else ''}.",
        "",
        "The machines are shared and noisy, so every figure stands beside a reference **measured in the same run** "
        "(and usually in the same process), and the ratio between them is the number to read. The only exceptions "
        "are marked *published, not measured here*. Regenerate this page with `python -m benchmarks.run` "
        "(see `benchmarks/README.md`); raw numbers are in `benchmarks/results/latest.json`.",
        "",
        "## Headline figures",
        "",
        *_markdown_table(["figure", "measured", "reference (same run)", "ratio", "target", "met?", "measured at"],
                         [_row_cells(r, e) for e in entries for r in e["rows"]]),
        "",
    ]  # fmt: skip
    missed = [r for r in all_rows if r["met"] is False]
    lines += ["## Why targets were missed", ""]
    lines += [f"- **{r['figure']}**: {_num(r['value'])} {r['unit']} against "
              f"{r['target']}; {r['note'] or 'no explanation given by the module'}." for r in missed] or ["Every target was met."]
    remarks = [r for r in all_rows if r["met"] is not False and r["note"]]
    if remarks:
        lines += ["", "Remarks:", ""] + [f"- {r['figure']}: {r['note']}." for r in remarks]
    failed = [e for e in entries if e["status"] != "ok" or e.get("failed_rerun")]
    if failed:
        lines += ["", "## Benchmarks that failed", ""]
        for e in failed:
            rerun = e.get("failed_rerun")
            if rerun:
                lines += [f"- `{e['module']}` failed at {rerun['commit']}, {rerun['date_utc']} ({rerun['seconds']} s); "
                          f"its figures above are those of {_stamp(e)}:"]  # fmt: skip
            else:
                lines += [f"- `{e['module']}` ({e['seconds']} s):"]
            error = (rerun or e)["error"]
            lines += ["", "  ```", *("  " + l for l in error.splitlines()), "  ```"]
    lines += ["", "## Details", ""]
    for e in entries:
        lines += [f"### {e['name']} (`{e['module']}`, {e['seconds']} s{', quick' if e.get('quick') else ''}; "
                  f"measured at {_stamp(e)})", ""]
        summary = _module_summary(e["name"])
        if summary:
            lines += [summary, ""]
        if e["status"] != "ok":
            lines += ["Failed: see above.", ""]
        for t in e["tables"]:
            lines += [f"**{t['title']}**", "", *_markdown_table(t["columns"], t["rows"]), ""]
            if t.get("note"):
                lines += [t["note"], ""]
    lines += ["## Machine", "", "```", json.dumps(m, indent=1), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def _load_previous(path: pathlib.Path) -> Dict[str, Dict]:
    """The entries of an earlier results file, by name.

    An entry written before entries recorded their machine, but measured in the run that wrote the
    file (dated at or after its start), takes that run's machine.
    """
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        entries = {e["name"]: e for e in results["entries"]}
    except (ValueError, KeyError, TypeError):
        return {}
    try:
        started, machine = results["machine"]["date_utc"], machine_line(results["machine"])
    except (KeyError, TypeError):  # no machine to give: the entries as they are
        return entries
    return {name: e if e.get("machine") or (e.get("date_utc") or "") < started else {**e, "machine": machine}
            for name, e in entries.items()}


def merge_entries(names: Sequence[str], fresh: Dict[str, Dict], previous: Dict[str, Dict]) -> List[Dict]:
    """The entries to write, in ``names`` order: this run's, else the last run's.

    A module that failed in this run keeps the figures of its last successful run, with the
    failure attached as ``failed_rerun`` (commit, date, seconds, error), so that a crash or a
    time-out does not wipe earlier figures off the page; with no earlier figures the failed
    entry itself is written.
    """
    entries = []
    for name in names:
        new, old = fresh.get(name), previous.get(name)
        if new is not None and new["status"] != "ok" and old is not None and old["status"] == "ok":
            failure = {k: new[k] for k in ("commit", "date_utc", "seconds", "error")}
            entries.append({**old, "failed_rerun": failure})
        elif new is not None or old is not None:
            entries.append(new if new is not None else old)
    return entries


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (writes *-quick files, leaves docs/ alone)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only bench_NAME (repeatable); one of {', '.join(discover())}")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.quick, args.result)
        return 0
    exit_on_sigterm()
    names = discover()
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {names}")
    selected = [n for n in names if not args.only or n in args.only]
    suffix = "-quick" if args.quick else ""
    json_path = RESULTS_DIR / f"latest{suffix}.json"
    markdown_path = RESULTS_DIR / "latest-quick.md" if args.quick else DOCS_PAGE

    machine = machine_info()
    start = time.perf_counter()
    fresh = {}
    for name in selected:
        print(f"[benchmarks] {name} ...", flush=True)
        fresh[name] = run_module(name, quick=args.quick, log_dir=RESULTS_DIR / "logs", machine=machine_line(machine))
        e = fresh[name]
        print(f"[benchmarks] {name}: {e['status']} in {e['seconds']} s" + (f"\n{e['error']}" if e["status"] != "ok" else ""), flush=True)
    total = time.perf_counter() - start
    previous = _load_previous(json_path) if args.only else {}
    entries = merge_entries(names, fresh, previous)
    results = {"quick": args.quick, "machine": machine, "total_seconds": total, "entries": entries,
               "modules_run": selected if args.only else None}  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, default=_json_default) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(results), encoding="utf-8")
    print(f"[benchmarks] {total / 60:.1f} min; wrote {json_path.relative_to(REPO_ROOT)} and "
          f"{markdown_path.relative_to(REPO_ROOT)}", flush=True)  # fmt: skip
    return 0 if all(e["status"] == "ok" for e in fresh.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
