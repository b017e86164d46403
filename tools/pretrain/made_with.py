"""The settings a work folder's clips were made with, so that a rerun never mixes two recipes."""

from __future__ import annotations

import json
import os
from typing import Any, Dict

MADE_WITH = "made_with.json"
"""The file, in a folder of generated clips, holding the settings they were made with."""


def check_made_with(folder: str, settings: Dict[str, Any]) -> None:
    """Record ``settings`` in ``folder/made_with.json``, or refuse settings other than those recorded there.

    Clips are named by word and index, not by seed: a rerun with another seed or count would
    keep the old clips beside new ones, and the recipe would train on a mixture.

    Raises:
      ValueError: the folder was made with other settings (both are named).
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, MADE_WITH)
    wanted = json.loads(json.dumps(settings, sort_keys=True))
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle)
        if recorded != wanted:
            raise ValueError(f"{folder} holds clips made with {recorded}, not {wanted}: use another --work folder, "
                             "or delete this one to make it again")  # fmt: skip
        return
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(wanted, handle, sort_keys=True)
    os.replace(path + ".tmp", path)
