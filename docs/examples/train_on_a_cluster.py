"""Train one model on several machines: every worker runs this same script.

TF_CONFIG tells each process the cluster and which worker it is (index 1 on host2):

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \
        python train_on_a_cluster.py /shared/clips /shared/run1 /shared/export

The clips and the model folder are on storage every worker reads; the chief
(worker 0) writes the checkpoints and the export. Prints one JSON line per worker.
"""

import json
import sys

import tensorflow as tf

from mm_browserfft import audio_classifier, distributed

clips, model_dir, export_dir = sys.argv[1:4]

strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG; create it before anything else uses TF
spec = audio_classifier.BrowserFftSpec(model_dir=model_dir, strategy=strategy, seed=0)
data = audio_classifier.DataLoader.from_folder(spec, clips, seed=0)
train_data, test_data = data.split(0.7, by_speaker=True)

model = audio_classifier.create(train_data, spec, epochs=10, batch_size=8)
loss, accuracy = model.evaluate(test_data)  # the same figures on every worker

if distributed.is_chief(strategy):
    model.export(export_dir)  # model.tflite (with metadata) and its model.json
print(json.dumps({"chief": distributed.is_chief(strategy), "replicas": strategy.num_replicas_in_sync,
                  "train_acc": model.history.history["acc"][-1], "test_acc": accuracy}))
