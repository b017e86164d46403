"""LoadReport: what a loader holds, and what it skipped or dropped."""

from __future__ import annotations

import dataclasses
from typing import Dict, List

from ..frontend import WAVEFORM_LENGTH

__all__ = ["LoadReport"]


@dataclasses.dataclass
class LoadReport:
    """What a loader holds, and what it skipped or dropped, and why.

    Attributes:
      files_per_class: label -> number of files kept.
      clips_per_class: label -> number of 44032-sample windows those files give.
      dropped_short: files shorter than one window that give no window (Model Maker drops them).
      padded: files shorter than one window that were zero-padded to one (``pad_short_clips``).
      unreadable: files that could not be decoded and were skipped (``skip_bad_files``):
        found when listing the folder, or later when decoding (a cut-off FLAC/OGG);
        those are left out of ``files_per_class`` and ``clips_per_class``.
      skipped: entries of the data folder that are not audio files of a label
        folder (other extensions, hidden files, files at the top level, sub-folders, label
        folders without an audio file).
    """

    files_per_class: Dict[str, int]
    clips_per_class: Dict[str, int]
    dropped_short: List[str] = dataclasses.field(default_factory=list)
    padded: List[str] = dataclasses.field(default_factory=list)
    unreadable: List[str] = dataclasses.field(default_factory=list)
    skipped: List[str] = dataclasses.field(default_factory=list)

    @property
    def num_files(self) -> int:
        return sum(self.files_per_class.values())

    @property
    def num_clips(self) -> int:
        return sum(self.clips_per_class.values())

    def __str__(self) -> str:
        lines = [f"{self.num_files} files, {self.num_clips} clips of {WAVEFORM_LENGTH} samples"]
        lines += [f"  {label}: {n} files, {self.clips_per_class[label]} clips" for label, n in self.files_per_class.items()]
        for name, items in (
            ("dropped (shorter than one clip)", self.dropped_short),
            ("zero-padded to one clip", self.padded),
            ("unreadable, skipped", self.unreadable),
            ("not audio, skipped", self.skipped),
        ):
            if items:
                lines.append(f"  {name}: {len(items)}")
        return "\n".join(lines)
