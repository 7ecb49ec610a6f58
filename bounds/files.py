"""Files the CLI writes: the user's umask, and nothing left behind by a command that fails.

* :func:`file_mode`: the mode a plain ``open(path, "w")`` would give (``0o666 & ~umask``);
  atomic writes through :func:`tempfile.mkstemp` (mode 0600) chmod their file to it before the
  rename, so an exported ``.npz`` is as readable as any other file the user writes.
* :class:`cleanup_on_failure`: around a command that creates an output folder or a results
  store. If the command raises (a bad layer name, a missing database, ``Ctrl-C``), it removes
  what the command created: a folder that did not exist before (with what was written into it),
  the new entries of a folder that did, a results store that did not exist before and holds no
  result row (a store with rows is kept: the run resumes from it), and the parent folders it
  created on the way, when they are left empty. On success nothing is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def umask() -> int:
    """This process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-and-restore
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions of a new regular file under the current umask."""
    return 0o666 & ~umask()


def _missing_dirs(path: Path) -> list[Path]:
    """The folders from ``path`` up that do not exist yet, deepest first."""
    out = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


class cleanup_on_failure:  # noqa: N801 - used like a function: ``with cleanup_on_failure(...)``
    """Undo the files a failing command created (see the module doc).

    Parameters
    ----------
    folders : paths
        Output folders the command may create and fill (``--out``, ``--report``).
    stores : paths
        Results databases the command may create (``--db``).
    """

    def __init__(self, folders: Iterable[str | os.PathLike[str] | None] = (),
                 stores: Iterable[str | os.PathLike[str] | None] = ()) -> None:
        self.folders = [Path(f) for f in folders if f is not None]
        self.stores = [Path(s) for s in stores if s is not None]

    def __enter__(self) -> cleanup_on_failure:
        self._created = {f: _missing_dirs(f) for f in self.folders}
        self._before = {f: set(os.listdir(f)) for f in self.folders
                        if not self._created[f] and f.is_dir()}
        self._new_stores = {s: _missing_dirs(s.parent) for s in self.stores if not s.exists()}
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if typ is None:
            return False
        for store, parents in self._new_stores.items():
            if _holds_no_results(store):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{store}{suffix}").unlink(missing_ok=True)
                _remove_empty(parents)
        for folder, created in self._created.items():
            if created:
                shutil.rmtree(folder, ignore_errors=True)
                _remove_empty(created[1:])
            elif folder in self._before and folder.is_dir():
                for name in set(os.listdir(folder)) - self._before[folder]:
                    entry = folder / name
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        return False


def _holds_no_results(store: Path) -> bool:
    """True when ``store`` is absent, empty, or a pqbound store with no result row."""
    if not store.exists() or store.stat().st_size == 0:
        return True
    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0)
        try:
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if "results" not in tables:
                return not tables
            return con.execute("SELECT count(*) FROM results").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.Error as exc:  # unreadable: not ours to judge, keep it
        log.debug("keeping %s: %s", store, exc)
        return False


def _remove_empty(dirs: list[Path]) -> None:
    """``rmdir`` each of ``dirs`` (deepest first) while they are empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return
