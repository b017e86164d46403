"""AudioClassifier and create: Model Maker's audio task, with fast head-only training.

Head-only training (``train_whole_model=False``, the default) runs the frozen
base once per training window to get its 2000-d ``dense_1`` embedding (with the
1e-5 training noise drawn once per window, as Model Maker's cached pipeline
freezes it) and then trains only ``dropout_2`` + ``classification_head`` on the
embeddings, so every epoch after the first costs almost nothing. The head's
layers are shared with the full model, which is therefore trained in place.
With training augmentation on, fresh augmented embeddings are computed every
epoch (a forward pass of the frozen base, no back-propagation through it) from
windows streamed from the loader in bounded chunks (decoded again, or read from
its cache), shuffled by file and within a 4096-window buffer.
One deliberate difference from Model Maker: embeddings are computed in
inference mode, so the base's ``dropout_1`` is inactive while the head trains.

Whole-model training feeds spectrograms through the full model, as Model Maker does.

Fault tolerance: every epoch, the fitted model's weights, its optimizer state and
the epoch counter are backed up into ``<model_dir>/backup`` (Keras'
``BackupAndRestore``). If the process dies, training again with the same
``model_dir`` and the same labels restores that state and runs only the missing
epochs; a finished run deletes its backup. With a ``seed`` on the spec, training
also seeds Python's, NumPy's and TensorFlow's generators
(``keras.utils.set_random_seed``), so a run is repeatable on one machine.
"""

from .backup import BACKUP_FOLDER, backup_differences, run_fingerprint
from .task import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, AudioClassifier, create

__all__ = ["AudioClassifier", "create", "run_fingerprint", "backup_differences", "BACKUP_FOLDER", "DEFAULT_BATCH_SIZE",
           "DEFAULT_EPOCHS"]  # fmt: skip
