"""The results store: rows round-trip, resume keys, clear errors on bad files."""

from __future__ import annotations

import sqlite3

import pytest

from bounds.compare.store import ResultStore, StoreError


def _row(key, **kw):
    row = {"task_key": key, "model": "m", "layer": "l", "chunk": 0, "channel": 1,
           "scope": "chunk", "kind": "quant", "method": "rtn", "compression": "4bit",
           "bits": 4, "status": "heuristic", "objective": 1.5, "lower_bound": None,
           "norm": 10.0, "seconds": 0.01, "nodes": 0, "weights": [0.1, -0.2],
           "codes": [1, -2], "info_json": {"a": 1}}
    row.update(kw)
    return row


def test_roundtrip_and_done_keys(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        st.begin_run("run1", {"x": 1}, {"v": "1"}, ["k1", "k2", "k3"])
        st.write(_row("k1"))
        st.write(_row("k2", status="error", objective=None))
        assert st.done_keys(["k1", "k2", "k3"]) == {"k1"}
        assert st.done_keys(["k1", "k2"], include_errors=True) == {"k1", "k2"}
    with ResultStore(db, readonly=True) as st:
        rows = st.rows("run1", solutions=True)
        assert [r["task_key"] for r in rows] == ["k2", "k1"] or len(rows) == 2
        r1 = next(r for r in rows if r["task_key"] == "k1")
        assert r1["weights"] == [0.1, -0.2] and r1["codes"] == [1, -2]
        assert r1["info_json"] == {"a": 1}
        assert st.run()["run_id"] == "run1"
        assert st.run("ru")["settings"] == {"x": 1}
    # WAL journal is on
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_not_sqlite_is_a_clear_error(tmp_path):
    db = tmp_path / "junk.sqlite"
    db.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        ResultStore(db)


def test_damaged_sqlite_is_a_clear_error(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        for i in range(300):
            st.write(_row(f"k{i}", weights=list(range(50))))
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    # Overwrite interior pages (keep the 100-byte header): b-tree pages become garbage.
    for off in range(4096, len(data) - 4096, 4096):
        data[off:off + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    for wal in (tmp_path / "r.sqlite-wal", tmp_path / "r.sqlite-shm"):
        wal.unlink(missing_ok=True)
    with pytest.raises(StoreError, match="damaged|not a usable"):
        st = ResultStore(db)
        st.rows()


def test_foreign_sqlite_database(tmp_path):
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a pqbound results store"):
        ResultStore(db)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('app', 'something-else')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="another application"):
        ResultStore(db)


def test_newer_schema_refused(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        ResultStore(db)


def test_readonly_missing_file(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "nope.sqlite", readonly=True)


def test_run_lookup_errors(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(StoreError, match="no runs"):
            st.run()
        st.begin_run("abc1", {}, {}, [])
        st.begin_run("abc2", {}, {}, [])
        with pytest.raises(StoreError, match="ambiguous"):
            st.run("abc")
        with pytest.raises(StoreError, match="not found"):
            st.run("zzz")


def test_rows_reads_only_the_columns_asked_for(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        st.begin_run("run1", {"x": 1}, {"v": "1"}, ["k1", "k2"])
        st.write(_row("k1"))
        st.write(_row("k2", channel=0, objective=2.5))
        full = st.rows("run1")
        lean = st.rows("run1", columns=("channel", "objective", "info_json"))
        assert [set(r) for r in lean] == [{"channel", "objective", "info_json"}] * 2
        assert [(r["channel"], r["objective"], r["info_json"]) for r in lean] == [
            (r["channel"], r["objective"], r["info_json"]) for r in full]
        assert lean[0]["info_json"] == {"a": 1}  # decoded, as in a full read
        assert st.rows("run1", columns=("objective",), channel=0) == [{"objective": 2.5}]
        with pytest.raises(StoreError, match="unknown column.*'nope'"):
            st.rows("run1", columns=("objective", "nope"))
