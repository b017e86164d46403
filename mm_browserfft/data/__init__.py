"""DataLoader: Model Maker's audio data loader, for any audio format, with an account of every drop.

Files are found the way Model Maker finds them (``data_path/<label>/<file>``,
labels sorted in Python string order, a ``categories`` filter), but every
extension of :data:`mm_browserfft.audio.AUDIO_EXTENSIONS` is read (any case),
hidden files are skipped, and what is skipped or dropped is counted in
:attr:`DataLoader.report`. Files are decoded once with
:func:`mm_browserfft.audio.load_audio` (soundfile + soxr: any PCM width or float,
FLAC, OGG, any rate, stereo averaged); ``cache=True`` keeps the 44.1 kHz
waveforms in memory, ``cache="<folder>"`` keeps them as ``.npy`` files on disk,
keyed by each file's path, size and modification time.

Long recordings (over :data:`LONG_FILE_SECONDS`) are never held whole: they are
decoded block by block (:func:`mm_browserfft.audio.iter_audio_blocks`) and cut
into windows on the way, so memory stays bounded whatever their length; the
memory cache skips them and the disk cache stores their windows (``[k, 44032]``
``.npy``, read back in chunks). With ``skip_bad_files=True``, a file that only
fails when decoded (a cut-off FLAC or OGG) is skipped with a warning, left out
of every later pass, and listed in :attr:`DataLoader.report`.

Windows: a clip of ``n`` samples at 44.1 kHz gives ``floor(n / 44032)`` windows
(Model Maker), or one zero-padded window when it is shorter and the spec has
``pad_short_clips=True``.

Differences from Model Maker, on purpose: WAV files of any sample width and
other formats are read (Model Maker's ``tf.audio.decode_wav`` read 16-bit PCM
only and took the left channel; channels are averaged here); ``cache`` caches
the decoded waveforms, not the spectrograms, so the training noise and
augmentation stay random every epoch (Model Maker's cache froze them after the
first); short clips are counted and reported instead of silently dropped;
``shuffle`` and ``split(by_speaker=True)`` are repeatable with ``seed``. The
finite filter is kept, though with the front end's floor and
:func:`~mm_browserfft.audio.load_audio` refusing NaN samples it never fires.
"""

from .files import list_audio_files
from .loader import DataLoader
from .report import LoadReport
from .waveforms import LONG_FILE_SECONDS

__all__ = ["DataLoader", "LoadReport", "list_audio_files", "LONG_FILE_SECONDS"]
