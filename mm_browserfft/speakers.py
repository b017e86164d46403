"""Speaker ids in Speech Commands-style file names, and stable speaker-disjoint splits.

Speech Commands names clips ``<speaker>_nohash_<n>.wav`` (or ``<word>_<speaker>_nohash_<n>``
in merged folders). Judging a model on people it has never heard needs every
clip of one speaker on the same side of a split; a hash of the speaker id gives
a split that is stable across machines, runs and data-set growth.
"""

from __future__ import annotations

import hashlib
import os
import re

__all__ = ["speaker_id", "speaker_bucket", "is_heldout_speaker"]

_NOHASH = re.compile(r"(?:^|_)([0-9a-f]{8})_nohash_\d+$")


def speaker_id(path: "os.PathLike[str] | str") -> str:
    """The speaker of a clip: the 8-hex-digit id before ``_nohash_``, else the file's stem.

    >>> speaker_id("yes/0a7c2a8d_nohash_0.flac"), speaker_id("_unknown_/bed_0c540988_nohash_0.flac")
    ('0a7c2a8d', '0c540988')
    """
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _NOHASH.search(stem)
    return match.group(1) if match else stem


def speaker_bucket(speaker: str) -> float:
    """A number in [0, 1) fixed by the speaker id alone (first 8 bytes of its SHA-256)."""
    digest = hashlib.sha256(speaker.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout_speaker(speaker: str, *, fraction: float = 0.3) -> bool:
    """Whether ``speaker`` falls in the held-out ``fraction`` of all speakers.

    The bundled base was pretrained only on speakers for which this is False
    (``fraction=0.3``); benchmarks judge transfer on the others.
    """
    return speaker_bucket(speaker) < fraction
