"""Class names the recogniser treats as noise or unknown, and the TF.js recogniser's label order."""

from __future__ import annotations

from typing import List, Sequence, Tuple

__all__ = ["BACKGROUND_NOISE_LABEL", "NOISE_LABELS", "NON_WORD_LABELS", "is_word", "recognizer_labels"]


BACKGROUND_NOISE_LABEL = "_background_noise_"
"""The TF.js recogniser's (and Teachable Machine's exported) name of the noise class."""

NOISE_LABELS = (BACKGROUND_NOISE_LABEL, "_silence_", "background_noise", "background", "Background Noise")
"""Names a noise class goes by: the recogniser's, Speech Commands' folder, Model Maker's speech tutorial's
(and Google's Android audio-classification sample's) ``background``, and Teachable Machine's class."""

NON_WORD_LABELS = NOISE_LABELS + ("_unknown_",)
"""Labels that never fire unless asked: the noise class under any of its names, and ``_unknown_``."""


def is_word(label: str) -> bool:
    """Whether ``label`` is a word that may fire (not one of :data:`NON_WORD_LABELS`)."""
    return label not in NON_WORD_LABELS


def recognizer_labels(labels: Sequence[str]) -> Tuple[List[int], List[str]]:
    """The output order and names the TF.js speech-commands recogniser expects.

    Its ``listen()`` keeps quiet only on ``_background_noise_`` and ``_unknown_``, and its
    ``evaluate()`` needs ``_background_noise_`` first. So the noise class (the first label
    found of :data:`NOISE_LABELS`) is renamed ``_background_noise_`` and moved first.

    Args:
      labels: the model's class names, in output order.

    Returns:
      ``(order, names)``: new output ``i`` is old output ``order[i]``, named ``names[i]``
      (``order`` is ``range(len(labels))`` when there is no noise class). A model that has
      ``_background_noise_`` already keeps any other noise-named class under its own name.
    """
    labels = list(labels)
    noise = next((i for name in NOISE_LABELS for i, l in enumerate(labels) if l == name), None)
    if noise is None:
        return list(range(len(labels))), labels
    order = [noise] + [i for i in range(len(labels)) if i != noise]
    names = [BACKGROUND_NOISE_LABEL] + [labels[i] for i in order[1:]]
    return order, names
