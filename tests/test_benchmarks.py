"""The benchmark runner: module discovery, the row format, adapters, the Markdown page, speaker-disjoint folders.

The benchmarks themselves take minutes (``python -m benchmarks.run``); these
tests check the machinery around them on real clips and generated results.
"""

from __future__ import annotations

import sys

import pytest

from conftest import REPO_ROOT, SPEECH_DIR

sys.path.insert(0, str(REPO_ROOT))  # `benchmarks` is a folder of the repository, not part of the package

from benchmarks import common, run  # noqa: E402
from mm_browserfft.datasets import DATA_ENV  # noqa: E402
from mm_browserfft.speakers import is_heldout_speaker, speaker_id  # noqa: E402


def frontend_result(keras_tf_data_s: float) -> dict:
    """A result shaped like bench_frontend.run's: seconds per batch of 8 clips."""
    seconds = {
        "numpy_reference": 0.030,
        "keras_direct": 0.012,
        "keras_in_tf_data_map": keras_tf_data_s,
        "keras_float32_graph": 0.006,
        "bare_np_rfft": 0.020,
        "bare_tf_rfft_float64": 0.005,
        "bare_tf_rfft_float32": 0.004,
    }
    bare = {
        "numpy_reference": "bare_np_rfft",
        "keras_direct": "bare_tf_rfft_float64",
        "keras_in_tf_data_map": "bare_tf_rfft_float64",
        "keras_float32_graph": "bare_tf_rfft_float32",
    }
    return {
        "batch": 8,
        "threads": 1,
        "tensorflow": "x",
        "seconds": seconds,
        "spectrograms_per_s": {name: 8 / seconds[name] for name in bare},
        "ratio_to_bare_fft": {name: seconds[name] / seconds[ref] for name, ref in bare.items()},
        "bare_fft_of": bare,
    }


def test_discover_finds_every_benchmark_module():
    assert {"data", "frontend", "models", "training"} <= set(run.discover())


def test_the_runner_reads_each_timeout_without_importing_the_module_and_its_thread_settings():
    import os

    before = dict(os.environ)
    timeouts = {name: run.module_timeout_s(name) for name in run.discover()}
    # bench_frontend pins TensorFlow to one thread when imported: the children of later modules must not inherit it
    assert dict(os.environ) == before and "benchmarks.bench_frontend" not in sys.modules
    from benchmarks import bench_data, bench_listen, bench_scale  # these set nothing when imported

    assert timeouts["listen"] == bench_listen.TIMEOUT_S and timeouts["scale"] == bench_scale.TIMEOUT_S
    assert not hasattr(bench_data, "TIMEOUT_S") and timeouts["data"] == run.MODULE_TIMEOUT_S


def test_speaker_split_folders_keep_each_speaker_on_one_side(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(SPEECH_DIR.parent))  # the benchmarks' data set: here the suite's own clips
    train_dir, test_dir = common.speaker_split_folders(tmp_path, ["yes", "_unknown_"], train_per_label=20)
    for label in ("yes", "_unknown_"):
        train = list((tmp_path / "train" / label).iterdir())
        test = list((tmp_path / "test" / label).iterdir())
        assert len(train) == 20 and test
        assert not any(is_heldout_speaker(speaker_id(p)) for p in train)
        assert all(is_heldout_speaker(speaker_id(p)) for p in test)
        assert {speaker_id(p) for p in train}.isdisjoint({speaker_id(p) for p in test})
    assert train_dir == str(tmp_path / "train") and test_dir == str(tmp_path / "test")


def test_listening_is_tuned_on_some_held_out_speakers_and_judged_on_the_others(tmp_path, monkeypatch):
    from benchmarks import bench_listen
    from mm_browserfft.speakers import speaker_bucket

    monkeypatch.setenv(DATA_ENV, str(SPEECH_DIR.parent))
    _, test_dir = common.speaker_split_folders(tmp_path / "split", ["yes", "no", "_unknown_"])
    tuning, judging = bench_listen._halves(test_dir, str(tmp_path / "halves"))
    for label in ("yes", "no", "_unknown_"):
        held = sorted(p.name for p in (tmp_path / "split" / "test" / label).iterdir())
        tune = sorted(p.name for p in (tmp_path / "halves" / "tuning" / label).iterdir())
        judge = sorted(p.name for p in (tmp_path / "halves" / "judging" / label).iterdir())
        assert sorted(tune + judge) == held and tune and judge  # every held-out clip, once
        assert all(speaker_bucket(speaker_id(c)) < bench_listen.TUNING_BUCKET for c in tune)
        assert {speaker_id(c) for c in tune}.isdisjoint({speaker_id(c) for c in judge})
    assert tuning.endswith("tuning") and judging.endswith("judging")
    # the threshold passed most often over every background, compared with the default on the same recordings
    check = lambda t, *passes: {"threshold": t, "passed": sum(passes), "passes": list(passes)}  # noqa: E731
    one_better = {"a": [check(0.6, 0, 0, 0, 0), check(0.7, 1, 0, 0, 0), check(0.8, 1, 1, 0, 0)]}
    assert bench_listen._chosen_threshold(one_better, 0.7) == (0.7, {0.6: 0, 0.7: 1, 0.8: 2},
                                                               {0.6: (0, 1), 0.7: (0, 0), 0.8: (1, 0)})
    # 4 more than the default, none fewer: 4 > sqrt(4); the other background's recordings count beside the first's
    clearly = {"a": [check(0.7, 0, 0, 0), check(0.8, 1, 1, 1)], "b": [check(0.7, 1, 0), check(0.8, 1, 1)]}
    assert bench_listen._chosen_threshold(clearly, 0.7)[:2] == (0.8, {0.7: 1, 0.8: 5})
    # recordings traded, not only gained: 6 gained and 2 lost moves (4 > sqrt(8)); 4 and 2 does not (2 < sqrt(6))
    traded = lambda gained: {"a": [check(0.7, *[0] * 6, 1, 1), check(0.75, *[1] * gained, *[0] * (6 - gained), 0, 0)]}  # noqa: E731
    assert bench_listen._chosen_threshold(traded(6), 0.7)[0] == 0.75
    assert bench_listen._chosen_threshold(traded(4), 0.7)[0] == 0.7
    # two clearly better: the one passed most often, a tie to the lower
    two = {"a": [check(0.6, 1, 1, 1, 1), check(0.7, 0, 0, 0, 0), check(0.8, 1, 1, 1, 1)]}
    assert bench_listen._chosen_threshold(two, 0.7)[0] == 0.6
    # the check's flags are per recording, in the report's order, of the long enough word recordings only
    recording = lambda minutes, events, frr, fa: {"minutes": minutes, "events": events, "false_reject_rate": frr,  # noqa: E731
                                                   "false_accepts_per_hour": fa}
    report = {"per_recording": [recording(4.5, 60, 0.1, 40), recording(4.5, 60, 0.25, 40), recording(2, 20, 0, 0),
                                recording(60, 0, 0, 90), recording(4.5, 60, 0.1, 61)]}
    assert bench_listen._default_check(report)["passes"] == [True, False, False]
    assert bench_listen._default_check(report)["passed"] == 1


def test_frontend_adapter_judges_the_2x_target_and_explains_a_miss():
    fast = run.normalise("frontend", frontend_result(keras_tf_data_s=0.008))  # 1.6x the bare FFT
    slow = run.normalise("frontend", frontend_result(keras_tf_data_s=0.015))  # 3x the bare FFT
    first = lambda result: result["rows"][0]  # noqa: E731 -- the Keras-in-tf.data row
    assert first(fast)["met"] is True and first(fast)["note"] == ""
    assert first(slow)["met"] is False
    assert first(slow)["ratio"] == pytest.approx(3.0)
    assert "2.40x the bare FFT" in first(slow)["note"]  # keras_direct: 0.012 / 0.005
    assert "0.375 ms per clip on top" in first(slow)["note"]  # (0.015 - 0.012) / 8 clips
    assert all(set(run.ROW_KEYS) <= set(r) for r in slow["rows"])


def test_normalise_refuses_rows_without_the_row_keys():
    with pytest.raises(ValueError, match="lacks"):
        run.normalise("x", {"rows": [{"figure": "f", "value": 1.0}]})


def test_markdown_page_shows_rows_misses_with_their_reason_and_failures():
    ok = {"name": "frontend", "module": "benchmarks/bench_frontend.py", "status": "ok", "seconds": 1.0,
          **run.normalise("frontend", frontend_result(keras_tf_data_s=0.015))}  # fmt: skip
    failed = {"name": "broken", "module": "benchmarks/bench_broken.py", "status": "error", "seconds": 0.5,
              "error": "RuntimeError: exited with status 1", "rows": [], "tables": [], "details": {}}  # fmt: skip
    results = {"quick": False, "machine": run.machine_info(), "total_seconds": 90.0, "entries": [ok, failed]}
    page = run.render_markdown(results)
    assert "| figure | measured | reference (same run) | ratio | target | met? | measured at |" in page
    assert "unknown commit, unknown date, machine not recorded" in page  # a missing stamp says so, never borrows the run's
    assert "**no** (why: below)" in page
    why = page.split("## Why targets were missed", 1)[1]
    assert "Keras layer in tf.data" in why and "0.375 ms per clip on top" in why
    assert "benchmarks/bench_broken.py" in page.split("## Benchmarks that failed", 1)[1]
    assert "**Front end, batch of 8 clips, 1 thread**" in page


def test_a_module_that_fails_keeps_the_figures_of_its_last_run_and_the_page_says_so():
    old = {"name": "frontend", "module": "benchmarks/bench_frontend.py", "status": "ok", "seconds": 1.0,
           "commit": "aaaaaaa", "date_utc": "2026-12-01 10:00 UTC",
           **run.normalise("frontend", frontend_result(keras_tf_data_s=0.015))}  # fmt: skip
    timed_out = {"name": "frontend", "module": "benchmarks/bench_frontend.py", "status": "error", "seconds": 900.0,
                 "commit": "bbbbbbb", "date_utc": "2026-12-06 10:00 UTC", "error": "TimeoutExpired: 900 s",
                 "rows": [], "tables": [], "details": {}}  # fmt: skip
    never_ran = dict(timed_out, name="listen", module="benchmarks/bench_listen.py")
    entries = run.merge_entries(["frontend", "listen", "models"], {"frontend": timed_out, "listen": never_ran}, {"frontend": old})
    assert [e["name"] for e in entries] == ["frontend", "listen"]  # nothing invented for a module never run
    kept, failed = entries
    assert kept["rows"] == old["rows"] and kept["commit"] == "aaaaaaa"
    assert kept["failed_rerun"] == {"commit": "bbbbbbb", "date_utc": "2026-12-06 10:00 UTC", "seconds": 900.0,
                                    "error": "TimeoutExpired: 900 s"}  # fmt: skip
    assert failed is never_ran  # no earlier figures: the failure itself is written
    page = run.render_markdown({"quick": False, "machine": run.machine_info(), "total_seconds": 1.0, "entries": entries})
    failures = page.split("## Benchmarks that failed", 1)[1].split("## Details", 1)[0]
    assert "failed at bbbbbbb, 2026-12-06 10:00 UTC" in failures and "aaaaaaa, 2026-12-01 10:00 UTC" in failures
    assert "TimeoutExpired: 900 s" in failures and "benchmarks/bench_listen.py" in failures
    assert "aaaaaaa, 2026-12-01 10:00 UTC, machine not recorded |" in page.split("## Headline figures", 1)[1]  # the old rows, with their stamp


def test_transfer_adapter_judges_the_probe_against_the_teacher_of_the_same_run():
    def stats(mean):
        return {"mean": mean, "std": 0.01}

    raw = {
        "classes": ["a", "b", "c"], "train_clips": 30, "test_clips": 12, "k_values": [5], "draws": 3, "epochs": 100,
        "accuracy": {"bundled": {"5": stats(0.8), "full": stats(0.9)}, "random": {"5": stats(0.3), "full": stats(0.4)}},
        "probe": {"bundled": {"full": stats(0.90), "5": stats(0.70)}, "random": {"full": stats(0.4), "5": stats(0.3)},
                  "teacher": {"full": stats(0.903), "5": stats(0.80)}},
    }  # fmt: skip
    result = run.normalise("transfer", raw)
    probe_rows = [r for r in result["rows"] if r["figure"].startswith("linear probe")]
    assert [r["met"] for r in probe_rows] == [True, False]  # within 0.5 points of the teacher; 10 points short
    assert "10.0 points short of the teacher's probe" in probe_rows[1]["note"]
    assert probe_rows[0]["reference"] == pytest.approx(90.3)
    assert len(result["tables"]) == 2


def test_a_terminated_runner_takes_its_benchmark_process_with_it(tmp_path):
    """``kill <runner>`` (SIGTERM) must not leave the benchmark's child process running."""
    import os
    import signal
    import subprocess
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import subprocess, sys\n"
            "from benchmarks import run\n"
            "run.exit_on_sigterm()\n"
            "subprocess.run([sys.executable, '-c', 'import os, time; print(os.getpid(), flush=True); time.sleep(120)'])\n"
        )],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the benchmark process {child} outlived its terminated runner")


def test_figures_are_stamped_with_the_commit_and_any_change_to_its_tree(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "start")
    (tmp_path / "module.py").write_text("x = 1\n")
    git("add", "module.py")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "module")
    monkeypatch.setattr(run, "REPO_ROOT", tmp_path)
    clean = run._git_commit()
    assert clean and "+" not in clean
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "latest.json").write_text("{}")  # what the run itself writes
    assert run._git_commit() == clean
    (tmp_path / "bench_new.py").write_text("")  # untracked: measured, yet not in the commit
    assert run._git_commit() == clean + "+changes"
    (tmp_path / "bench_new.py").unlink()
    (tmp_path / "module.py").write_text("x = 2\n")
    assert run._git_commit() == clean + "+changes"


def test_each_entry_records_the_machine_it_was_measured_on(tmp_path):
    import json

    line = run.machine_line(run.machine_info())
    entry = run.new_entry("data", quick=True, machine=line)
    assert entry["machine"] == line and "cores" in line
    assert entry["machine"] in run._stamp(entry)
    # an earlier file's entries: those measured in the run that wrote it take its machine, older ones stay unknown
    machine = {**run.machine_info(), "cpu_model": "Some CPU", "cores_usable": 3, "date_utc": "2026-12-07 10:00 UTC"}
    older = {"name": "frontend", "date_utc": "2026-12-01 10:00 UTC"}
    same_run = {"name": "listen", "date_utc": "2026-12-07 10:45 UTC"}
    recorded = {"name": "models", "date_utc": "2026-12-07 11:00 UTC", "machine": "Other CPU, 8 cores"}
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"machine": machine, "entries": [older, same_run, recorded]}))
    previous = run._load_previous(path)
    assert "machine" not in previous["frontend"]
    assert previous["listen"]["machine"] == "Some CPU, 3 cores"
    assert previous["models"]["machine"] == "Other CPU, 8 cores"
    path.write_text(json.dumps({"entries": [older, same_run]}))  # a file without its machine keeps its entries
    assert run._load_previous(path) == {"frontend": older, "listen": same_run}
