"""The studio: a local web page to record or upload words, train, try the model live and download it.

``mm-browserfft studio [--workspace DIR] [--port N]`` serves it on 127.0.0.1 with a
token in the printed URL (:mod:`mm_browserfft.studio.server`). Projects are ordinary
folders of audio files (:mod:`mm_browserfft.studio.workspace`), so the command line and
the Python API train on them too; training runs ``mm-browserfft train`` in a child
process (:mod:`mm_browserfft.studio.jobs`); trying the model live feeds the page's
microphone to :class:`mm_browserfft.listen.Recognizer` on the exported ``.tflite``.
Needs the ``studio`` extra (``pip install "mm-browserfft[studio]"``).
"""

from .server import create_app, serve
from .workspace import Limits, StudioError, Workspace

__all__ = ["create_app", "serve", "Workspace", "Limits", "StudioError"]
