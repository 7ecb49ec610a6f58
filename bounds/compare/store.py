"""The results store: one SQLite database, one row per solved problem, written as it finishes.

Schema (``SCHEMA_VERSION`` 1)::

    meta(key, value)                     app = "pqbound-compare", schema_version = "1"
    runs(run_id, created, updated, settings_json, versions_json, summary_json)
    run_tasks(run_id, task_key)          which rows a run needs (its report reads exactly these)
    claims(task_key, owner, pid, host, heartbeat, run_id)
                                         tasks being solved right now, by which process
    results(task_key PRIMARY KEY, model, layer, chunk, channel, scope, kind, method,
            compression, bits, k, nm, density, n, input_start, input_stop, scale, box,
            status, objective, lower_bound, norm, seconds, nodes, method_version,
            problem_hash, calibration, settings_hash, message, weights, codes, mask,
            info_json, created)

``task_key`` is the SHA-256 of everything that determines the answer: the problem's bytes
(``H`` and ``w0``, hence the calibration data and the model), the kind, method, compression
(bits, scale, k, N:M, box), time limit, options and the method version. A run on another
calibration set or model therefore never reuses a stale row; a repeated run finds its rows and
skips them (resume).

Sharing: two runs on one store at once share the work. A run *claims* each batch of tasks in one
transaction just before solving it (:meth:`ResultStore.claim_many`), skips tasks stored or claimed
by another live run, and at the end waits for those to arrive. Its :class:`ClaimKeeper`
refreshes the claims' ``heartbeat`` every :data:`HEARTBEAT` seconds and deletes them when the
run ends, however it ends; storing a row deletes its claim. A claim is *stale*, and taken over,
when its heartbeat is older than :data:`STALE_AFTER` seconds or its process (on this host) is
gone — e.g. a run killed with ``SIGKILL``. No task is ever solved twice by runs that are alive.

Durability: WAL journal, one transaction per batch of complete rows (``INSERT OR REPLACE``;
:meth:`ResultStore.write_many`), so a ``SIGKILL`` at any moment leaves each batch's rows whole
or absent (a resumed run solves the missing batches again). A file that is not SQLite,
is damaged, or belongs to another application raises :class:`StoreError` with a clear message.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

log = logging.getLogger(__name__)

APP_ID = "pqbound-compare"
SCHEMA_VERSION = 1

#: Result columns in table order (``task_key`` first).
COLUMNS: tuple[str, ...] = (
    "task_key", "run_id", "model", "layer", "chunk", "channel", "scope", "kind", "method",
    "compression", "bits", "k", "nm", "density", "n", "input_start", "input_stop", "scale", "box",
    "status", "objective", "lower_bound", "norm", "seconds", "nodes", "method_version",
    "problem_hash", "calibration", "settings_hash", "message", "weights", "codes", "mask",
    "info_json", "created",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL,
    settings_json TEXT NOT NULL, versions_json TEXT NOT NULL, summary_json TEXT
);
CREATE TABLE IF NOT EXISTS run_tasks (
    run_id TEXT NOT NULL, task_key TEXT NOT NULL, PRIMARY KEY (run_id, task_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    task_key TEXT PRIMARY KEY, run_id TEXT, model TEXT NOT NULL, layer TEXT NOT NULL,
    chunk INTEGER, channel INTEGER NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL,
    method TEXT NOT NULL, compression TEXT NOT NULL, bits INTEGER, k INTEGER, nm TEXT,
    density REAL, n INTEGER, input_start INTEGER, input_stop INTEGER, scale REAL, box REAL,
    status TEXT NOT NULL, objective REAL, lower_bound REAL, norm REAL, seconds REAL,
    nodes INTEGER, method_version TEXT, problem_hash TEXT, calibration TEXT,
    settings_hash TEXT, message TEXT, weights TEXT, codes TEXT, mask TEXT, info_json TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    task_key TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    heartbeat REAL NOT NULL, run_id TEXT
);
CREATE INDEX IF NOT EXISTS results_layer ON results (model, layer, scope, kind, compression);
"""


#: Seconds between two refreshes of a run's claims.
HEARTBEAT = 10.0
#: A claim whose heartbeat is older than this (seconds) is stale and may be taken over.
STALE_AFTER = 60.0

_CLAIMS = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS claims"):
                  _SCHEMA.index("CREATE INDEX IF NOT EXISTS results_layer")]


class StoreError(ProblemError):
    """The database cannot be used (not SQLite, damaged, foreign, newer schema)."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ResultStore:
    """A pqbound results database (created on first use).

    Parameters
    ----------
    path : str or Path
        The SQLite file. Created with pqbound's schema when absent or empty; otherwise checked
        (SQLite header, ``PRAGMA quick_check``, pqbound's ``meta`` table and schema version).
    readonly : bool
        Open an existing database for reading only (reports); a missing file is an error.

    Examples
    --------
    >>> import tempfile, os
    >>> st = ResultStore(os.path.join(tempfile.mkdtemp(), "r.sqlite"))
    >>> st.done_keys(["abc"])
    set()
    >>> st.close()
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if readonly and not exists:
            raise StoreError(f"results database {str(self.path)!r} does not exist (or is empty)")
        if exists:
            _check_header(self.path)
        elif not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {self.path.parent}: {exc}") from None
        try:
            uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
            self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results database {self.path}: {exc}") from None
        try:
            if exists:
                self._check_existing()
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                if not exists:
                    self._create()
                else:  # stores written before claims existed: add the table
                    self._conn.execute(_CLAIMS.strip().rstrip(";"))
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(
                f"{self.path} is not a usable pqbound results database ({exc}); "
                "move it aside or pass another --db"
            ) from None
        except StoreError:
            self._conn.close()
            raise

    # ---------------------------------------------------------------- set-up and checks

    def _create(self) -> None:
        with self._tx():
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('app', ?), ('schema_version', ?)",
                (APP_ID, str(SCHEMA_VERSION)),
            )

    def _check_existing(self) -> None:
        row = self._conn.execute("PRAGMA quick_check").fetchone()
        if not row or row[0] != "ok":
            raise StoreError(
                f"{self.path} is damaged (SQLite quick_check: {row[0] if row else 'no answer'}); "
                "move it aside or pass another --db"
            )
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            # An empty SQLite file (e.g. created by `sqlite3 x.db ''`): adopt it.
            self._create()
            return
        if "meta" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a pqbound results store "
                f"(tables: {', '.join(sorted(tables))}); pass another --db"
            )
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP_ID:
            raise StoreError(
                f"{self.path} belongs to another application (meta app = {meta.get('app')!r}); "
                "pass another --db"
            )
        version = int(meta.get("schema_version", "0"))
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, this pqbound reads {SCHEMA_VERSION}"
            )
        missing = {"runs", "run_tasks", "results"} - tables
        if missing:
            raise StoreError(f"{self.path} is missing tables {sorted(missing)}: damaged store")

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- runs

    def begin_run(self, run_id: str, settings: dict[str, Any], versions: dict[str, Any],
                  task_keys: Iterable[str]) -> None:
        """Record (or refresh) a run and the task keys it needs, in one transaction."""
        now = _now()
        with self._tx():
            cur = self._conn.execute("SELECT created FROM runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
            created = row[0] if row else now
            self._conn.execute(
                "INSERT OR REPLACE INTO runs (run_id, created, updated, settings_json, "
                "versions_json, summary_json) VALUES (?, ?, ?, ?, ?, "
                "(SELECT summary_json FROM runs WHERE run_id = ?))",
                (run_id, created, now, _dumps(settings), _dumps(versions), run_id),
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO run_tasks VALUES (?, ?)",
                ((run_id, k) for k in task_keys),
            )

    def add_run_tasks(self, run_id: str, task_keys: Iterable[str]) -> None:
        with self._tx():
            self._conn.executemany(
                "INSERT OR IGNORE INTO run_tasks VALUES (?, ?)",
                ((run_id, k) for k in task_keys),
            )

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        with self._tx():
            self._conn.execute(
                "UPDATE runs SET summary_json = ?, updated = ? WHERE run_id = ?",
                (_dumps(summary), _now(), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        """All runs, newest (last updated) first."""
        cur = self._conn.execute(
            "SELECT run_id, created, updated, settings_json, versions_json, summary_json "
            "FROM runs ORDER BY updated DESC, created DESC")
        out = []
        for run_id, created, updated, s, v, summ in cur.fetchall():
            out.append({
                "run_id": run_id, "created": created, "updated": updated,
                "settings": json.loads(s), "versions": json.loads(v),
                "summary": json.loads(summ) if summ else None,
            })
        return out

    def run(self, run_id: str | None = None) -> dict[str, Any]:
        """One run by id (a unique prefix is enough), or the latest."""
        runs = self.runs()
        if not runs:
            raise StoreError(f"{self.path} holds no runs yet")
        if run_id is None:
            return runs[0]
        hits = [r for r in runs if r["run_id"].startswith(run_id)]
        if len(hits) != 1:
            ids = ", ".join(r["run_id"][:12] for r in runs)
            raise StoreError(f"run {run_id!r} {'is ambiguous' if hits else 'not found'}; "
                             f"runs: {ids}")
        return hits[0]

    # ---------------------------------------------------------------- results

    def done_keys(self, keys: Sequence[str], *, include_errors: bool = False) -> set[str]:
        """Those of ``keys`` already stored (error rows only with ``include_errors``)."""
        done: set[str] = set()
        keys = list(keys)
        cond = "" if include_errors else " AND status != 'error'"
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = (f"SELECT task_key FROM results WHERE task_key IN "
                 f"({','.join('?' * len(part))}){cond}")
            done.update(r[0] for r in self._conn.execute(q, part))
        return done

    def write(self, row: dict[str, Any]) -> None:
        """Store one complete row atomically (replacing a row with the same key)."""
        self.write_many([row])

    def write_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store complete rows in one transaction (all or none; each replaces a row with its
        key and releases its claim): a batch of solves costs one commit, not one per row."""
        if not rows:
            return
        created = COLUMNS.index("created")
        now = _now()
        values = []
        for row in rows:
            v = [_column_value(c, row.get(c)) for c in COLUMNS]
            if v[created] is None:
                v[created] = now
            values.append(v)
        with self._tx():
            self._conn.executemany(
                f"INSERT OR REPLACE INTO results ({','.join(COLUMNS)}) "
                f"VALUES ({','.join('?' * len(COLUMNS))})",
                values,
            )
            self._conn.executemany("DELETE FROM claims WHERE task_key = ?",
                                   [(row["task_key"],) for row in rows])

    def rows(self, run_id: str | None = None, *, solutions: bool = False,
             columns: Sequence[str] | None = None, **where: Any) -> list[dict[str, Any]]:
        """Rows (of one run when ``run_id`` is given), as dicts; ``where`` filters on columns.

        ``columns``: read only these (each dict then has exactly these keys); a caller that
        needs a few figures of every row of a large run reads them several times faster, as
        the JSON columns (``info_json``, the solutions) are the costly part. Default: every
        column, the solutions only with ``solutions``.
        """
        if columns is None:
            cols = [c for c in COLUMNS if solutions or c not in ("weights", "codes", "mask")]
        else:
            cols = list(dict.fromkeys(columns))
            unknown = [c for c in cols if c not in COLUMNS]
            if unknown:
                raise StoreError(f"unknown column(s) {', '.join(map(repr, unknown))}")
        sql = f"SELECT {','.join('r.' + c for c in cols)} FROM results r"
        args: list[Any] = []
        conds = []
        if run_id is not None:
            sql += " JOIN run_tasks t ON t.task_key = r.task_key"
            conds.append("t.run_id = ?")
            args.append(run_id)
        for c, v in where.items():
            if c not in COLUMNS:
                raise StoreError(f"unknown column {c!r}")
            conds.append(f"r.{c} = ?")
            args.append(v)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY r.layer, r.scope, r.kind, r.compression, r.method, r.chunk, r.channel"
        decode = [c for c in ("weights", "codes", "mask", "info_json") if c in cols]
        out = []
        for vals in self._conn.execute(sql, args):
            d = dict(zip(cols, vals, strict=True))
            for c in decode:
                if d[c] is not None:
                    d[c] = json.loads(d[c])
            out.append(d)
        return out

    def iter_rows(self, run_id: str | None = None, *, solutions: bool = True
                  ) -> Iterator[dict[str, Any]]:
        yield from self.rows(run_id, solutions=solutions)


    # ---------------------------------------------------------------- claims (shared runs)

    def claim(self, task_key: str, owner: str, run_id: str | None = None, *,
              stale_after: float = STALE_AFTER) -> str:
        """Claim ``task_key`` for ``owner`` (one transaction); return what happened.

        ``"mine"``: claimed (or already ours) — solve it. ``"done"``: a row is stored (an error
        row counts as not done: it is solved again, as on resume). ``"taken"``: another owner's
        claim that is not stale (see the module doc) — leave it to them.
        """
        return self.claim_many([task_key], owner, run_id, stale_after=stale_after)[task_key]

    def claim_many(self, task_keys: Sequence[str], owner: str, run_id: str | None = None, *,
                   stale_after: float = STALE_AFTER) -> dict[str, str]:
        """:meth:`claim` for each of ``task_keys`` in one transaction: ``{key: state}``."""
        now = time.time()
        out: dict[str, str] = {}
        keys = list(dict.fromkeys(task_keys))
        with self._tx():
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                marks = ",".join("?" * len(part))
                for (k,) in self._conn.execute(
                        f"SELECT task_key FROM results WHERE task_key IN ({marks}) "
                        "AND status != 'error'", part):
                    out[k] = "done"
                for k, who, pid, host, beat in self._conn.execute(
                        f"SELECT task_key, owner, pid, host, heartbeat FROM claims "
                        f"WHERE task_key IN ({marks})", part):
                    if k not in out and who != owner and not _stale(pid, host, beat, now,
                                                                    stale_after):
                        out[k] = "taken"
            mine = [k for k in keys if k not in out]
            self._conn.executemany(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                [(k, owner, os.getpid(), _HOST, now, run_id) for k in mine])
        out.update(dict.fromkeys(mine, "mine"))
        return out

    def claims(self) -> list[dict[str, Any]]:
        """Every claim in the store (who solves what right now)."""
        cur = self._conn.execute(
            "SELECT task_key, owner, pid, host, heartbeat, run_id FROM claims ORDER BY task_key")
        keys = ("task_key", "owner", "pid", "host", "heartbeat", "run_id")
        return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


_HOST = socket.gethostname()


def new_owner() -> str:
    """A claim owner id, unique per run: ``host:pid:random``."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _stale(pid: int, host: str, heartbeat: float, now: float, stale_after: float) -> bool:
    if now - heartbeat > stale_after:
        return True
    return host == _HOST and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class ClaimKeeper:
    """A run's claims: refreshed every ``interval`` seconds by a thread, deleted at the end.

    Used as a context manager around the solving; the thread has its own connection (SQLite
    connections stay in their thread). Leaving the block — finished, interrupted or failed —
    deletes every claim of ``owner`` still held.
    """

    def __init__(self, path: str | Path, owner: str, interval: float = HEARTBEAT) -> None:
        self.path, self.owner, self.interval = Path(path), owner, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _execute(self, sql: str, args: tuple) -> None:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute(sql, args)
        finally:
            conn.close()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                              (time.time(), self.owner))
            except sqlite3.Error as exc:  # a missed beat is no failure; STALE_AFTER >> interval
                log.warning("could not refresh the claims in %s: %s", self.path, exc)

    def __enter__(self) -> ClaimKeeper:
        self._thread = threading.Thread(target=self._beat, name="pqbound-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
        except sqlite3.Error as exc:
            log.warning("could not release the claims in %s: %s (they expire in %.0f s)",
                        self.path, exc, STALE_AFTER)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _check_header(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise StoreError(f"cannot read results database {path}: {exc}") from None
    if head != b"SQLite format 3\x00":
        raise StoreError(
            f"{path} is not an SQLite database (wrong file header): not a pqbound results "
            "store, or damaged; move it aside or pass another --db"
        )


def _column_value(col: str, v: Any) -> Any:
    if v is None:
        return None
    if col in ("weights", "codes", "mask", "info_json"):
        return _dumps(v)
    if col == "nm" and not isinstance(v, str):
        return f"{v[0]}:{v[1]}"
    if hasattr(v, "item"):
        return v.item()
    return v


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True, allow_nan=True)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
