"""Model spec registry: ``model_spec.get(name)``, as in Model Maker, open to other packages.

Our own names (``audio_browser_fft``, ``audio_teachable_machine``) always work,
installed or not. Other packages add specs by declaring an entry point in the
group ``model_maker.audio_specs``, e.g. in ``pyproject.toml``::

    [project.entry-points."model_maker.audio_specs"]
    my_spec = "my_package.specs:MySpec"

An entry point may name a spec class or a factory; :func:`get` calls it with
the keyword arguments it was given.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Callable, Dict, List

from .errors import InvalidInputError

__all__ = ["ENTRY_POINT_GROUP", "AUDIO_CLASSIFICATION_MODELS", "available", "get"]

ENTRY_POINT_GROUP = "model_maker.audio_specs"
"""The entry-point group third-party specs register under."""

AUDIO_CLASSIFICATION_MODELS = ["audio_browser_fft", "audio_teachable_machine"]
"""Our spec names (Model Maker's list, less ``audio_yamnet``, which is out of scope)."""


def _own(**kwargs: Any):
    from .spec import BrowserFftSpec

    return BrowserFftSpec(**kwargs)


def _entry_points() -> List[importlib.metadata.EntryPoint]:
    found = importlib.metadata.entry_points()
    if hasattr(found, "select"):  # Python >= 3.10
        return list(found.select(group=ENTRY_POINT_GROUP))
    return list(found.get(ENTRY_POINT_GROUP, []))  # pragma: no cover - Python 3.9


def _loaders() -> Dict[str, Callable[[], Callable[..., Any]]]:
    """Name -> a loader returning the spec factory (entry points import only when asked).

    Ours win over entry points of the same name, which may be ours, pip-installed.
    """
    table: Dict[str, Callable[[], Callable[..., Any]]] = {}
    for point in _entry_points():
        table.setdefault(point.name, point.load)
    for name in AUDIO_CLASSIFICATION_MODELS:
        table[name] = lambda: _own
    return table


def available() -> List[str]:
    """Every name :func:`get` accepts, sorted."""
    return sorted(_loaders())


def get(name: str, **kwargs: Any):
    """A new spec instance for ``name``.

    Args:
      name: ``"audio_browser_fft"``, ``"audio_teachable_machine"`` (both
        :class:`~mm_browserfft.spec.BrowserFftSpec`, as in Model Maker), or a name
        registered under :data:`ENTRY_POINT_GROUP`.
      **kwargs: passed to the spec's constructor (``model_dir``, ``strategy``, ...).

    Raises:
      InvalidInputError (a ValueError): unknown name.
    """
    loaders = _loaders()
    if not isinstance(name, str) or name not in loaders:
        raise InvalidInputError(f"unknown audio model spec {name!r}; available: {sorted(loaders)}")
    return loaders[name]()(**kwargs)
