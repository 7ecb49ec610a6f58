"""Every Python example in README.md and docs/*.md runs, as a user would paste it into a script.

Each page's ```python blocks are joined in order into one script (a later block may use what an
earlier one defined, as the prose reads) and run in a fresh interpreter, in an empty temporary
folder, with the repository on ``PYTHONPATH``. A block that cannot run here says why in an HTML
comment on the line just above its fence, and is left out:

    <!-- not run: needs the paper's result files -->

Pages whose examples take minutes (they run real comparisons) are marked ``slow``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:(.*?)-->\s*$")
#: pages whose examples run for longer than the default suite should wait (seconds measured here)
SLOW_PAGES = {"compare.md", "network.md"}


def examples(page: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(run, skipped)``: (line, code) of each block run, (line, reason) of each block left out."""
    text = page.read_text(encoding="utf-8")
    run, skipped = [], []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        why = NOT_RUN.search(before)
        if why:
            skipped.append((line, why.group(1).strip()))
        else:
            run.append((line, m.group(1)))
    return run, skipped


def script(page: Path, blocks: list[tuple[int, str]]) -> str:
    parts = [f"# --- {page.name}, line {line}\n{code}" for line, code in blocks]
    return "\n".join(parts)


def _params():
    out = []
    for page in PAGES:
        run, _ = examples(page)
        if not run:
            continue
        marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
        out.append(pytest.param(page, id=page.name, marks=marks))
    return out


@pytest.mark.parametrize("page", _params())
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    run, _ = examples(page)
    path = tmp_path / f"example_{page.stem.replace('-', '_')}.py"
    path.write_text(script(page, run), encoding="utf-8")
    pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=pythonpath, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, (
        f"{page.name}: the examples failed (exit {proc.returncode})\n"
        f"--- stderr (tail)\n{proc.stderr[-4000:]}")


def test_every_skipped_example_says_why() -> None:
    for page in PAGES:
        _, skipped = examples(page)
        for line, reason in skipped:
            assert reason, f"{page.name}:{line}: a block left out must say why"


def test_the_readme_has_a_runnable_example() -> None:
    run, _ = examples(ROOT / "README.md")
    assert run, "README.md should show a Python example that runs"
