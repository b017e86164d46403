"""The studio's workspace: projects as ordinary folders of audio files.

A workspace folder holds one folder per project::

    <workspace>/<project>/data/<label>/<clip>.wav   the examples (train on them with the CLI too)
    <workspace>/<project>/model/                    the last training's export and report

Every name that comes from a request (project, label, file) is checked by
:func:`safe_name`: no path separators, no ``..``, no leading dot, printable, short
(64 characters, 200 bytes of UTF-8) and valid on Windows too; a bad name is refused
(:class:`StudioError`), never rewritten, so nothing is written outside the workspace.
A new label that differs from another only in case is refused (a case-insensitive
disk would merge them). Uploaded audio is decoded before it is kept, a zip is read
member by member under the same rules, and limits bound the size and count of what
one request may add, zips counted unpacked.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import re
import shutil
import tempfile
import unicodedata
import zipfile
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

from ..audio import AUDIO_EXTENSIONS, load_audio
from ..data.files import is_audio_name
from ..errors import InvalidInputError

__all__ = [
    "StudioError", "StudioBusy", "StudioNotFound", "StudioTooLarge", "Limits", "safe_name", "Workspace", "Project",
    "NOISE_LABEL", "UNKNOWN_LABEL",
]

NOISE_LABEL = "_background_noise_"
"""The background class of a new project (the name the browser recogniser and Teachable Machine use)."""
UNKNOWN_LABEL = "_unknown_"
"""The class of other speech."""

_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]{1,64}$")
_MAX_NAME_BYTES = 200  # UTF-8 bytes; file systems allow 255, and a duplicate gets " (2)" and a temporary prefix
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")  # control, format (bidi, zero-width), unassigned, line breaks


class StudioError(InvalidInputError):
    """A request the studio refuses: a bad name, a file that is not audio, a limit passed."""


class StudioBusy(StudioError):
    """A request the studio refuses for now: the project is training."""


class StudioNotFound(StudioError):
    """A request for a project, label, clip or download that does not exist."""


class StudioTooLarge(StudioError):
    """A request larger than the studio takes (its body, or what its zips unpack to)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one upload request may add.

    Attributes:
      file_bytes: largest file (an audio file, or a zip as a whole).
      files: most audio files (zip members included).
      total_bytes: most bytes in all.
    """

    file_bytes: int = 50 * 1024 * 1024
    files: int = 2000
    total_bytes: int = 500 * 1024 * 1024


def safe_name(name: str, *, what: str) -> str:
    """``name`` if it can name one folder or file inside the workspace; else :class:`StudioError`.

    Args:
      name: a project, label or file name from a request.
      what: what it names, for the message ("label", "file", ...).
    """
    if not isinstance(name, str):
        raise StudioError(f"refused {what} name {name!r}: a name is a string")
    if (not _NAME.match(name) or name.strip() != name or name.startswith(".") or name.endswith(".")
            or any(unicodedata.category(c) in _INVISIBLE for c in name)):  # fmt: skip
        raise StudioError(f"refused {what} name {name!r}: use 1-64 printable characters, no '/', '\\', ':', "
                          "leading dot or trailing dot")  # fmt: skip
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise StudioError(f"refused {what} name {name!r}: over {_MAX_NAME_BYTES} bytes in UTF-8")
    if _WINDOWS_RESERVED.match(name):
        raise StudioError(f"refused {what} name {name!r}: a device name on Windows")
    if what == "label" and "," in name:
        raise StudioError(f"refused label name {name!r}: no ',' (labels are listed comma-separated to train)")
    return name


def _folded(name: str) -> str:
    """``name`` as a case-insensitive, normalising file system may store it."""
    return unicodedata.normalize("NFC", name).casefold()


def _audio_name(name: str) -> str:
    safe_name(name, what="file")
    if not is_audio_name(name):
        raise StudioError(f"refused file {name!r}: not an audio file ({', '.join(sorted(AUDIO_EXTENSIONS))})")
    return name


def _is_plain_name(name: str) -> bool:
    """Whether ``name`` names a file in no folder (no separator, not ``.`` or ``..``): one to skip, not refuse."""
    return "/" not in name and "\\" not in name and name not in (".", "..")


class Project:
    """One project: ``<root>/data/<label>/`` folders of clips and ``<root>/model/``.

    Args:
      root: the project's folder.
    """

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.name = root.name
        self.data_dir = root / "data"
        self.model_dir = root / "model"

    def labels(self) -> List[str]:
        """The labels (sub-folders of ``data/`` not hidden, as the loaders read them), sorted."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def add_label(self, label: str) -> None:
        """Make the folder of a new label (an existing one is kept).

        Raises:
          StudioError: a bad name, or one that differs from an existing label only in case.
        """
        self._check_new_labels([label])
        (self.data_dir / label).mkdir(parents=True, exist_ok=True)

    def _check_new_labels(self, labels: Sequence[str]) -> None:
        """Refuse bad names, and new labels that a case-insensitive disk would merge with another."""
        existing = self.labels()
        seen = {_folded(label): label for label in existing}
        for label in labels:
            safe_name(label, what="label")
            other = seen.setdefault(_folded(label), label)
            if other != label:
                raise StudioError(f"refused label name {label!r}: it differs from label {other!r} only in case "
                                  "(or in Unicode normalisation)")  # fmt: skip

    def _label_dir(self, label: str) -> pathlib.Path:
        folder = self.data_dir / safe_name(label, what="label")
        if not folder.is_dir():
            raise StudioNotFound(f"project {self.name!r} has no label {label!r}")
        return folder

    def clips(self, label: str) -> List[str]:
        """The audio files of one label, sorted: those the loaders read (:func:`~mm_browserfft.data.files.is_audio_name`)."""
        folder = self._label_dir(label)
        return sorted(p.name for p in folder.iterdir() if p.is_file() and is_audio_name(p.name))

    def clip_path(self, label: str, name: str) -> pathlib.Path:
        """The path of an existing clip; :class:`StudioError` if there is none."""
        path = self._label_dir(label) / _audio_name(name)
        if not path.is_file():
            raise StudioNotFound(f"label {label!r} has no clip {name!r}")
        return path

    def delete_clip(self, label: str, name: str) -> None:
        self.clip_path(label, name).unlink()

    def add_clips(self, label: Optional[str], uploads: Sequence[Tuple[str, bytes]], *, limits: Limits,
                  from_folder: bool = False) -> Dict:  # fmt: skip
        """Keep uploaded audio files and zips of them; all or nothing.

        Hidden files and files without an audio extension (a folder's ``.DS_Store`` or
        ``notes.txt``, a zip's ``__MACOSX``) are skipped and named in the result; a file with
        an audio extension that does not decode is an error.

        Args:
          label: an existing label, where plain files go; a zip's members go by their folder
            (``<label>/<file>``, any depth: the last folder names the label, made if new) or,
            without one, here too.
          uploads: ``(file name, bytes)`` pairs.
          limits: the request's :class:`Limits`.
          from_folder: the names are paths inside one chosen folder (``<folder>/.../<label>/<file>``,
            as a browser's folder upload names them): under the chosen folder, a file goes by its
            last folder as a zip's members do. Otherwise a name with a folder in it is refused.

        Returns:
          ``{"added": {label: count}, "skipped": [file names]}``.

        Raises:
          StudioError: a bad name, an unknown label, a file that does not decode (named), a
            limit passed, or nothing to add.
        """
        files: List[Tuple[str, str, bytes]] = []  # (label, name, bytes)
        skipped: List[str] = []
        total = 0  # bytes kept so far: files as sent, zip members unpacked
        if label is not None:
            self._label_dir(label)
        for name, content in uploads:
            if len(content) > limits.file_bytes:
                raise StudioTooLarge(f"refused {name!r}: {len(content)} bytes, over the {limits.file_bytes} allowed")
            if from_folder:
                if name.startswith("/") or "/" not in name:
                    raise StudioError(f"refused file {name!r}: a folder's files are named by their path in it")
                kept = _member(name.split("/", 1)[1], label, where=f"file {name!r}")  # under the chosen folder
                if kept is None:
                    skipped.append(name)
                else:
                    files.append((*kept, content))
                    total += len(content)
            elif name.lower().endswith(".zip"):
                members = self._zip_members(name, content, label, limits=limits, budget=limits.total_bytes - total,
                                            skipped=skipped)  # fmt: skip
                files += members
                total += sum(len(member) for _, _, member in members)
            elif not is_audio_name(name) and _is_plain_name(name):
                skipped.append(name)
            else:
                if label is None:
                    raise StudioError(f"{name!r}: no label to put it in")
                files.append((label, _audio_name(name), content))
                total += len(content)
            if len(files) > limits.files or total > limits.total_bytes:
                raise StudioTooLarge(f"refused: over {limits.files} files or {limits.total_bytes} bytes in one request")
        if not files:
            raise StudioError("no audio file to add" + (f"; skipped {', '.join(skipped)}" if skipped else ""))
        self._check_new_labels(sorted({lab for lab, _, _ in files}))
        for _, name, content in files:
            _check_audio(name, content)
        return {"added": self._write_all(files), "skipped": skipped}

    def _write_all(self, files: Sequence[Tuple[str, str, bytes]]) -> Dict[str, int]:
        """Write ``(label, name, bytes)`` files into their label folders: all of them, or none.

        Raises:
          StudioNotFound: the project was deleted meanwhile.
          StudioError: a file cannot be written (what was written of the request is removed).
        """
        if not self.data_dir.is_dir():
            raise StudioNotFound(f"project {self.name!r} was deleted")
        added: Dict[str, int] = {}
        written: List[pathlib.Path] = []
        try:
            for lab, name, content in files:
                folder = self.data_dir / lab
                folder.mkdir(exist_ok=True)  # not parents: a project deleted meanwhile is not made again
                written.append(_write_new(folder, name, content))
                added[lab] = added.get(lab, 0) + 1
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise StudioError(f"cannot keep {name!r}: {exc.strerror or exc}; nothing of this upload was kept") from None
        return added

    @staticmethod
    def _zip_members(name: str, content: bytes, label: Optional[str], *, limits: Limits, budget: int,
                     skipped: List[str]) -> List[Tuple[str, str, bytes]]:  # fmt: skip
        """The audio members of a zip as ``(label, file name, bytes)``; the others' names go to ``skipped``.

        Members are read only while they unpack to at most ``budget`` bytes in all (what the
        request may still add), each at most ``limits.file_bytes``.
        """
        try:
            archive = zipfile.ZipFile(io.BytesIO(content))
        except zipfile.BadZipFile as exc:
            raise StudioError(f"{name!r} is not a zip file: {exc}") from exc
        out, total = [], 0
        for info in archive.infolist():
            if info.is_dir():
                continue
            kept = _member(info.filename, label, where=f"zip member {info.filename!r} of {name!r}")
            if kept is None:
                skipped.append(f"{name}/{info.filename}")
                continue
            total += info.file_size
            if info.file_size > limits.file_bytes or total > budget:
                raise StudioTooLarge(f"refused {name!r}: with the rest of the upload it unpacks to more than "
                                     f"{limits.total_bytes} bytes, or a member to more than {limits.file_bytes}")
            try:
                content = archive.read(info)  # zipfile refuses a member that unpacks to more than its header says
            except (RuntimeError, NotImplementedError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
                raise StudioError(f"zip member {info.filename!r} of {name!r} cannot be read: {exc}") from exc
            out.append((*kept, content))
        return out


def _member(path: str, label: Optional[str], *, where: str) -> Optional[Tuple[str, str]]:
    """``(label, file name)`` of a file at ``path`` inside a zip or a chosen folder; None to skip it.

    The last folder of ``path`` names the label (any depth), else ``label``. Hidden files and files
    in hidden folders (``.git/``), files without an audio extension and macOS resource forks
    (``__MACOSX``) are skipped.

    Raises:
      StudioError: naming ``where``: a path that leaves its folder, or a file in no label folder.
    """
    parts = pathlib.PurePosixPath(path).parts
    if not path or path.startswith("/") or any(p in ("..", "") for p in parts):
        raise StudioError(f"refused {where}: it leaves its folder")
    if not is_audio_name(parts[-1]) or "__MACOSX" in parts or any(p.startswith(".") for p in parts[:-1]):
        return None
    folder = parts[-2] if len(parts) >= 2 else label
    if folder is None:
        raise StudioError(f"{where} is in no label folder")
    return safe_name(folder, what="label"), _audio_name(parts[-1])


def _check_audio(name: str, content: bytes) -> None:
    """Decode ``content`` (named ``name``) or raise a :class:`StudioError` naming it."""
    suffix = pathlib.PurePath(name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(content)
        handle.flush()
        try:
            waveform = load_audio(handle.name)
        except InvalidInputError as exc:
            # the temporary copy's path means nothing to the page: it is named as it was sent
            problem = str(exc).replace(f"{handle.name}: ", "", 1).replace(handle.name, name)
            raise StudioError(f"{name!r} is not audio the package reads: {problem}") from exc
    if waveform.size == 0:
        raise StudioError(f"{name!r} holds no samples")


def _write_new(folder: pathlib.Path, name: str, content: bytes) -> pathlib.Path:
    """Write ``content`` as ``folder/name`` (``name (2).ext``... if taken), atomically."""
    stem, suffix = os.path.splitext(name)
    path, n = folder / name, 1
    while path.exists():
        n += 1
        path = folder / f"{stem} ({n}){suffix}"
    tmp = folder / f".{path.name}.part"
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return path


class Workspace:
    """The folder of every project.

    Args:
      root: the workspace folder (made if missing).
    """

    def __init__(self, root: "os.PathLike[str] | str") -> None:
        self.root = pathlib.Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StudioError("the workspace must be a folder; this is a file", path=self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def projects(self) -> List[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def project(self, name: str) -> Project:
        """An existing project; :class:`StudioError` if there is none."""
        root = self.root / safe_name(name, what="project")
        if not root.is_dir():
            raise StudioNotFound(f"no project {name!r}")
        return Project(root)

    def create_project(self, name: str, words: Sequence[str] = ()) -> Project:
        """A new project with a folder per word, plus background noise and unknown speech."""
        root = self.root / safe_name(name, what="project")
        clash = next((p for p in self.projects() if _folded(p) == _folded(name)), None)
        if root.exists() or clash is not None:
            raise StudioError(f"project {name!r} exists" + (f" (as {clash!r})" if clash not in (None, name) else ""))
        labels = [*words, NOISE_LABEL, UNKNOWN_LABEL]
        project = Project(root)
        project._check_new_labels(labels)  # all of them before any folder is made
        for label in labels:
            (project.data_dir / label).mkdir(parents=True, exist_ok=True)
        return project

    def delete_project(self, name: str) -> None:
        shutil.rmtree(self.project(name).root)
