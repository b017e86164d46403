"""mm_browserfft.distributed: one model trained by two worker processes, as on a cluster.

The workers are real processes on 127.0.0.1 ports (``TF_CONFIG``), running the
documentation's own example, ``docs/examples/train_on_a_cluster.py``, on real clips.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT, real_clips

EXAMPLE = REPO_ROOT / "docs" / "examples" / "train_on_a_cluster.py"
WORDS, CLIPS_PER_WORD = ("yes", "no", "up"), 30


def clip_folder(root):
    """``root/<word>/<clip>``: links to the first real clips of three words."""
    for word in WORDS:
        (root / word).mkdir(parents=True)
        for clip in real_clips(word, CLIPS_PER_WORD):
            os.symlink(clip, root / word / clip.name)
    return root


def free_ports(count: int):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def worker_env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")  # fmt: skip
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def run_cluster(args_of_worker, *, workers: int = 2, timeout: float = 600):
    """Start ``workers`` processes of the example on 127.0.0.1 ports; returns each one's JSON line, by index."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    procs = [
        subprocess.Popen([sys.executable, str(EXAMPLE), *args_of_worker(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=worker_env({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}))
        for i in range(workers)
    ]  # fmt: skip
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for i, (p, (_, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"worker {i}:\n{err[-4000:]}"
    return [last_json_line(out) for out, _ in outputs]


@pytest.mark.slow
def test_two_workers_train_one_model_as_well_as_one_process(tmp_path):
    clips = clip_folder(tmp_path / "clips")
    one = subprocess.run([sys.executable, str(EXAMPLE), str(clips), str(tmp_path / "run1"), str(tmp_path / "one")],
                         capture_output=True, text=True, env=worker_env(), timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-4000:]
    single = last_json_line(one.stdout)
    cluster = run_cluster(lambda i: [str(clips), str(tmp_path / "run2"), str(tmp_path / f"export{i}")])
    print("one process:", single, "two workers:", cluster)
    assert single["replicas"] == 1
    assert [w["replicas"] for w in cluster] == [2, 2]
    assert [w["chief"] for w in cluster] == [True, False]
    # synchronous training: both workers hold the same model, hence the same figures
    assert cluster[0]["test_acc"] == cluster[1]["test_acc"] and cluster[0]["train_acc"] == cluster[1]["train_acc"]
    # three words, chance 0.33: the same accuracy band as one process
    assert single["test_acc"] > 0.75 and cluster[0]["test_acc"] > 0.75
    assert abs(cluster[0]["test_acc"] - single["test_acc"]) <= 0.1
    # the chief alone writes: its export runs in the real client, the other worker's folder does not exist
    assert not (tmp_path / "export1").exists()
    assert (tmp_path / "run2" / "checkpoint.weights.h5").is_file()
    assert not (tmp_path / "run2" / "backup").exists()  # a finished run leaves no backup
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tmp_path / "export0" / "model.tflite"))
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]
    assert tuple(out["shape"]) == (1, len(WORDS))


_INTERRUPTED = """
    import json, sys
    import tensorflow as tf
    from mm_browserfft.audio_classifier import AudioClassifier, BrowserFftSpec, DataLoader

    class Stop(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    spec = BrowserFftSpec(sys.argv[2], strategy=strategy, seed=0)
    data = DataLoader.from_folder(spec, sys.argv[1], seed=0)
    first = AudioClassifier(spec, data.index_to_label)
    try:
        first.train(data, epochs=6, batch_size=8, callbacks=[Stop()])
    except KeyboardInterrupt:
        pass
    again = AudioClassifier(spec, data.index_to_label)
    history = again.train(data, epochs=6, batch_size=8)
    print(json.dumps({"epochs_run": len(history.history["acc"]), "acc": history.history["acc"][-1]}))
"""


@pytest.mark.slow
def test_an_interrupted_cluster_run_resumes_from_its_backup(tmp_path):
    clips = clip_folder(tmp_path / "clips")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_INTERRUPTED), str(clips), str(tmp_path / "run")],
                          capture_output=True, text=True, env=worker_env(), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = last_json_line(done.stdout)
    assert result["epochs_run"] == 3  # epochs 4-6: the first three came back from the backup
    assert result["acc"] > 0.75
    assert not (tmp_path / "run" / "backup").exists()


def test_the_documented_cluster_example_is_the_one_the_tests_run():
    page = (REPO_ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    shown = re.search(r"```py\n(# docs/examples/train_on_a_cluster.py\n.*?)```", page, re.S)
    assert shown, "docs/guarantees.md shows docs/examples/train_on_a_cluster.py"
    assert shown.group(1).split("\n", 1)[1] == EXAMPLE.read_text(encoding="utf-8")


def test_processes_without_a_cluster_are_chiefs():
    import tensorflow as tf

    from mm_browserfft import distributed

    assert not distributed.is_multi_worker(tf.distribute.get_strategy())
    assert distributed.is_chief(tf.distribute.get_strategy()) and distributed.is_chief(None)


_STOPS = """
    import json
    import numpy as np, tensorflow as tf
    from mm_browserfft import distributed
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # one worker: the loop of a cluster, in one process
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def epochs_run(callback, *, keras_fit=False):
        with strategy.scope():
            model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, activation="softmax")])
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["acc"])
        if keras_fit:
            return len(model.fit(ds, epochs=5, callbacks=[callback], verbose=0).history["loss"])
        history = distributed.fit(model, ds, epochs=5, strategy=strategy, callbacks=[callback], verbose=0)
        return len(history.history["loss"])

    class StopAfterTwo(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    early = lambda: tf.keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=0)  # noqa: E731
    print(json.dumps({"asked": [epochs_run(StopAfterTwo()), epochs_run(StopAfterTwo(), keras_fit=True)],
                      "early": [epochs_run(early()), epochs_run(early(), keras_fit=True)]}))
"""


def test_the_cluster_loop_stops_when_a_callback_asks_as_keras_fit_does():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_STOPS)], capture_output=True, text=True,
                          env=worker_env(), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = last_json_line(done.stdout)  # epochs run: [the cluster loop, Keras' fit], of 5
    assert stopped["asked"] == [2, 2] and stopped["early"][0] == stopped["early"][1] < 5, stopped
