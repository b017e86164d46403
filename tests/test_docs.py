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


def _param(page: pathlib.Path):
    """Pages whose examples drive the real Model Maker run in the mm043 tox env only."""
    if "import_model_maker" not in page.read_text(encoding="utf-8"):
        return pytest.param(page, id=page.name)
    from mm_browserfft import model_maker

    needs = pytest.mark.skipif(not model_maker.is_available(), reason="needs the real Model Maker (tox -e mm043)")
    return pytest.param(page, id=page.name, marks=[pytest.mark.env_dependent(env="mm043"), needs])


@pytest.mark.slow
@pytest.mark.parametrize("page", [_param(p) for p in PAGES if examples(p)])
def test_page_examples_run(page, tmp_path, monkeypatch):
    import tempfile

    (tmp_path / "speech_commands").symlink_to(SPEECH_DIR, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # checkpoints of a spec made without model_dir go here
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(examples(page)):
        exec(compile(code, f"{page.name}[example {i}]", "exec"), namespace)  # noqa: S102


def test_api_reference_is_generated_from_the_current_docstrings():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "gen_api_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
