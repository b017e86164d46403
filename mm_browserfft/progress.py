"""Progress output: bars on a terminal, quiet in logs.

Long steps (decoding files, embedding clips, TFLite conversion, evaluation) show a
tqdm bar on standard error only when it is a terminal. Keras training shows its
own progress bar on a terminal and exactly one line per epoch everywhere else
(CI logs, pipes, notebooks), printed to standard output.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, Iterable, Optional

__all__ = ["on_terminal", "bar", "epoch_logger", "fit_progress"]


def on_terminal(stream: Any) -> bool:
    """Whether ``stream`` (``sys.stdout``, ``sys.stderr``, ...) is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def bar(iterable: Optional[Iterable] = None, *, desc: str, total: Optional[int] = None, unit: str = "it"):
    """A tqdm progress bar on standard error, disabled unless that is a terminal.

    Use it like ``tqdm``: wrap an iterable, or call ``update(n)`` on it as a context manager.
    """
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, disable=not on_terminal(sys.stderr))


def epoch_logger():
    """A Keras callback that prints one line per epoch: number, seconds and every metric."""
    import tensorflow as tf

    class EpochLine(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._start
            metrics = " - ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
            print(f"epoch {epoch + 1}/{self.params.get('epochs', '?')} - {seconds:.1f}s - {metrics}", flush=True)

    return EpochLine()


def fit_progress(fit_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``fit_kwargs`` with Keras's progress set for where standard output goes.

    A terminal keeps Keras's bar (``verbose=1``); anything else gets ``verbose=0``
    and :func:`epoch_logger`. An explicit ``verbose`` is left alone.
    """
    if "verbose" in fit_kwargs:
        return dict(fit_kwargs)
    if on_terminal(sys.stdout):
        return {**fit_kwargs, "verbose": 1}
    return {**fit_kwargs, "verbose": 0, "callbacks": [*(fit_kwargs.get("callbacks") or []), epoch_logger()]}
