"""No tracked text file keeps a merge's conflict markers (one once reached the design page)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKERS = ("<<<<<<< ", ">>>>>>> ")  # "=======" alone is also a heading underline


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (an sdist): nothing to check
        return []
    return [ROOT / f for f in out.stdout.splitlines()
            if f.endswith((".py", ".md", ".toml", ".cfg", ".txt", ".yml", ".yaml"))]


def test_no_conflict_markers():
    found = []
    for path in _tracked():
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        for i, line in enumerate(lines, 1):
            if line.startswith(MARKERS):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:40]}")
    assert found == []
