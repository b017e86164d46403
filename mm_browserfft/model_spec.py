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

import functools
import importlib.metadata
import inspect
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


def get(spec_or_str: Any, **kwargs: Any):
    """The spec ``spec_or_str`` names or is, as Model Maker's ``model_spec.get``.

    Args:
      spec_or_str: ``"audio_browser_fft"``, ``"audio_teachable_machine"`` (both
        :class:`~mm_browserfft.spec.BrowserFftSpec`, as in Model Maker), or a name
        registered under :data:`ENTRY_POINT_GROUP`: a new instance; a spec class or factory:
        a new instance of it; a spec instance: that instance.
      **kwargs: passed to the spec's constructor (``model_dir``, ``strategy``, ...); not with
        an instance, which is already made.

    Raises:
      InvalidInputError (a ValueError): an unknown name, or options given with an instance.
    """
    if isinstance(spec_or_str, str):
        loaders = _loaders()
        if spec_or_str not in loaders:
            raise InvalidInputError(f"unknown audio model spec {spec_or_str!r}; available: {sorted(loaders)}")
        return loaders[spec_or_str]()(**kwargs)
    if inspect.isclass(spec_or_str) or inspect.isfunction(spec_or_str) or isinstance(spec_or_str, functools.partial):
        return spec_or_str(**kwargs)
    if kwargs:
        raise InvalidInputError(f"{sorted(kwargs)} given with a spec instance, which is already made")
    return spec_or_str
