"""Labels of a held-out image folder, for a real top-1 accuracy.

A labels file has one line per image: ``NAME LABEL`` (``NAME`` the file's path relative to the
folder, or its bare file name when that is unique; ``LABEL`` the model's 0-based class index),
or just ``LABEL`` on every line, one per image in sorted path order (the order
:func:`layers.calibration.image_files` lists them, calibration files included). Blank lines and
lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from solvers.problem import ProblemError


def read_labels(path: str | os.PathLike[str], files: Sequence[Path], *,
                root: str | os.PathLike[str]) -> list[int]:
    """The labels of ``files`` (the held-out images under ``root``), read from ``path``."""
    from layers.calibration import image_files

    try:
        lines = [ln.split() for ln in Path(path).read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemError(f"cannot read labels file {str(path)!r}: {exc}") from None
    root = Path(root)

    def number(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProblemError(f"labels file {str(path)!r}: labels must be integers, got "
                               f"{text!r}") from None

    if all(len(p) == 1 for p in lines):
        every = image_files(root)
        if len(lines) != len(every):
            raise ProblemError(f"labels file {str(path)!r} has {len(lines)} labels for "
                               f"{len(every)} images in {str(root)!r}")
        table = {f: number(p[0]) for f, p in zip(every, lines, strict=True)}
        return [table[f] for f in files]
    if not all(len(p) == 2 for p in lines):
        raise ProblemError(f"labels file {str(path)!r}: every line must be 'NAME LABEL' or "
                           "'LABEL'")
    by_name = {p[0]: number(p[1]) for p in lines}
    out = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        label = by_name.get(rel, by_name.get(f.name))
        if label is None:
            raise ProblemError(f"labels file {str(path)!r} has no label for {rel}")
        out.append(label)
    return out
