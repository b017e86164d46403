"""Curate ``tests/data/``: the real Speech Commands clips the test suite runs on.

``python tools/make_test_data.py [SOURCE]`` (SOURCE: a data folder laid out as
:mod:`mm_browserfft.datasets` describes; default ``$MM_BROWSERFFT_DATA``) copies,
for each of the ten labels, the first full-second clip (by name) of the first
``--train`` speakers that :func:`mm_browserfft.speakers.is_heldout_speaker` keeps
for training and of the first ``--test`` held-out speakers (speakers in sorted
order), as 16-bit FLAC, to ``tests/data/speech_commands/<label>/``. One clip per
speaker, so every clip is a different voice and the two subsets share no speaker.
Full-second clips only, so that tools that cannot pad (Model Maker) read every one;
the suite makes short and silent inputs in code.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
from typing import Sequence

from mm_browserfft.audio import audio_info
from mm_browserfft.datasets import data_dir
from mm_browserfft.speakers import is_heldout_speaker, speaker_id

LABELS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "_unknown_", "_silence_")
_REPO = pathlib.Path(__file__).resolve().parents[1]


def curate(source: pathlib.Path, dest: pathlib.Path, *, train: int, test: int) -> int:
    """Copy the chosen clips; returns how many."""
    if dest.exists():
        shutil.rmtree(dest)
    copied = 0
    for label in LABELS:
        first_clip = {}
        for clip in sorted((source / label).glob("*.flac")):
            if audio_info(clip).frames == audio_info(clip).sample_rate:
                first_clip.setdefault(speaker_id(clip), clip)
        speakers = sorted(first_clip)
        chosen = [s for s in speakers if not is_heldout_speaker(s)][:train]
        chosen += [s for s in speakers if is_heldout_speaker(s)][:test]
        (dest / label).mkdir(parents=True)
        for speaker in chosen:
            shutil.copyfile(first_clip[speaker], dest / label / first_clip[speaker].name)
            copied += 1
    return copied


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=None, help="data folder (default: $MM_BROWSERFFT_DATA)")
    parser.add_argument("--train", type=int, default=24, help="training speakers per label")
    parser.add_argument("--test", type=int, default=12, help="held-out speakers per label")
    args = parser.parse_args(argv)
    source = pathlib.Path(args.source) if args.source else data_dir()
    dest = _REPO / "tests" / "data" / "speech_commands"
    count = curate(source / "speech_commands", dest, train=args.train, test=args.test)
    print(f"{count} clips in {os.path.relpath(dest)}")


if __name__ == "__main__":
    main()
