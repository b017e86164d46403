"""Write docs/api.md from the public modules' docstrings: `python tools/gen_api_docs.py [--check]`.

--check exits 1 (and writes nothing) when docs/api.md is out of date.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "audio_classifier", "model_spec", "spec", "data", "classifier", "config", "frontend", "layers", "audio", "base",
    "tfjs", "export", "metadata", "predict", "listen", "streaming_eval", "augment", "cache", "distributed", "inspection", "metrics", "speakers", "datasets", "training", "evaluation", "report",
    "errors",
    "model_maker", "cli", "studio",
]  # fmt: skip


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _value(obj) -> str:
    """A stable rendering of a module constant (no memory addresses)."""
    if isinstance(obj, dict):
        return f"a dict of {len(obj)} entries: `{', '.join(map(str, obj))}`"
    text = repr(obj)
    return f"`{text}`" if len(text) <= 200 and " at 0x" not in text else f"a `{type(obj).__name__}`"


def _members(cls) -> list:
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property):
            out.append(f"- `{name}` (property): {_doc(member).splitlines()[0]}")
        elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
            fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            if name == "__init__":
                continue
            out.append(f"- `{name}{_signature(fn)}`: {_doc(fn).splitlines()[0]}")
    return out


def render() -> str:
    lines = ["# API reference", "", "Generated from the docstrings by `python tools/gen_api_docs.py`; do not edit.", ""]
    for short in MODULES:
        module = importlib.import_module(f"mm_browserfft.{short}")
        lines += [f"## `mm_browserfft.{short}`", "", _doc(module), ""]
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                lines += [f"### class `{name}{_signature(obj)}`", "", _doc(obj), ""]
                lines += _members(obj) + [""]
            elif callable(obj):
                lines += [f"### `{name}{_signature(obj)}`", "", _doc(obj), ""]
            else:
                lines += [f"### `{name}` = {_value(obj)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv) -> int:
    sys.path.insert(0, str(ROOT))
    text = render()
    target = ROOT / "docs" / "api.md"
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print("docs/api.md is out of date: run python tools/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
