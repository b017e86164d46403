"""Every ```python example in README.md and docs/*.md runs, as a reader would run it.

The examples of one page run in order, in one namespace, in a temporary working
folder that holds `speech_commands/` (a link to the real clips in shared/data),
so they can use the relative paths a reader would.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from conftest import REPO_ROOT, SPEECH_DIR

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def examples(page: pathlib.Path):
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_main_pages_have_examples():
    with_code = {page.name for page in PAGES if examples(page)}
    assert {"README.md", "quickstart.md", "migrating.md", "deploying.md"} <= with_code


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if examples(p)], ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    (tmp_path / "speech_commands").symlink_to(SPEECH_DIR, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(examples(page)):
        exec(compile(code, f"{page.name}[example {i}]", "exec"), namespace)  # noqa: S102
