"""Speaker ids in Speech Commands-style file names, and stable speaker-disjoint splits.

Speech Commands names clips ``<speaker>_nohash_<n>.wav`` (or ``<word>_<speaker>_nohash_<n>``
in merged folders). Judging a model on people it has never heard needs every
clip of one speaker on the same side of a split; a hash of the speaker id gives
a split that is stable across machines, runs and data-set growth.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from typing import Optional, Sequence, Tuple

__all__ = ["speaker_id", "speaker_bucket", "is_heldout_speaker", "link_speaker_split"]

_NOHASH = re.compile(r"(?:^|_)([0-9a-f]{8})_nohash_\d+$", re.IGNORECASE)


def speaker_id(path: "os.PathLike[str] | str") -> str:
    """The speaker of a clip: the 8-hex-digit id before ``_nohash_`` (in lower case: a file
    system or tool that upper-cases names keeps the speaker), else the file's stem.

    >>> speaker_id("yes/0a7c2a8d_nohash_0.flac"), speaker_id("_unknown_/bed_0C540988_NOHASH_0.flac")
    ('0a7c2a8d', '0c540988')
    """
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _NOHASH.search(stem)
    return match.group(1).lower() if match else stem


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


def link_speaker_split(
    source: "os.PathLike[str] | str",
    dest: "os.PathLike[str] | str",
    labels: Sequence[str],
    *,
    train_per_label: Optional[int] = None,
    fraction: float = 0.3,
) -> Tuple[str, str]:
    """Speaker-disjoint ``dest/train/`` and ``dest/test/`` folders of symbolic links to ``source`` clips.

    ``test/<label>`` links every clip of ``source/<label>`` whose speaker
    :func:`is_heldout_speaker` holds out (with ``fraction``); ``train/<label>`` links
    the first ``train_per_label`` clips by name (all when None) of the other speakers.

    Returns:
      ``(train_dir, test_dir)``, each ready for ``DataLoader.from_folder``.
    """
    from .audio import AUDIO_EXTENSIONS

    root = pathlib.Path(dest)
    for label in labels:
        folder = pathlib.Path(source) / label
        every = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))
        held = [is_heldout_speaker(speaker_id(p), fraction=fraction) for p in every]
        train = [p for p, h in zip(every, held) if not h][:train_per_label]
        test = [p for p, h in zip(every, held) if h]
        for part, chosen in (("train", train), ("test", test)):
            target = root / part / label
            target.mkdir(parents=True, exist_ok=True)
            for clip in chosen:
                (target / clip.name).symlink_to(clip.resolve())
    return os.fspath(root / "train"), os.fspath(root / "test")
