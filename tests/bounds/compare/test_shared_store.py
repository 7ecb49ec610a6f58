"""Two runs on one store at once share the work; a dead run's claims are taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from bounds.compare import ResultStore, executors, run_compare
from bounds.compare import store as store_mod

SETTINGS = dict(bits=(2, 4), opt_dim=4, channels=2, max_chunks=None, time_limit=30.0,
                whole_layer=False, quant_methods=("rtn", "gptq"),
                prune_methods=("magnitude", "obs"))


@pytest.fixture
def counted(monkeypatch):
    """Count every task solved (by key), in any thread; no warm-up."""
    solved: Counter = Counter()
    lock = threading.Lock()
    real = executors.run_batch

    def run_batch(batch):
        with lock:
            solved.update(t.key for t in batch)
        return real(batch)

    monkeypatch.setattr(executors, "run_batch", run_batch)
    monkeypatch.setattr(executors, "warm_up", lambda: None)
    return solved


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_two_runs_at_once_share_the_work(tmp_path, toy, counted, monkeypatch):
    db = tmp_path / "r.sqlite"
    # Both runs must be solving at the same time: each waits in its first task until the
    # other has started one (a barrier, not a timing assumption).
    barrier = threading.Barrier(2, timeout=120)
    first: set[int] = set()
    inner = executors.run_batch

    def run_batch(batch):
        me = threading.get_ident()
        if me not in first:
            first.add(me)
            barrier.wait()
        return inner(batch)

    monkeypatch.setattr(executors, "run_batch", run_batch)
    out: dict[str, object] = {}

    def go(name):
        try:
            out[name] = run_compare("toy", problems={"toy": toy}, db=db, workers=1,
                                    **SETTINGS)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            out[name] = exc

    threads = [threading.Thread(target=go, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    a, b = out["a"], out["b"]
    assert not isinstance(a, BaseException), a
    assert not isinstance(b, BaseException), b
    assert counted and max(counted.values()) == 1, "a task was solved twice"
    assert a.tasks == b.tasks == len(counted)
    assert a.solved >= 1 and b.solved >= 1 and a.solved + b.solved == a.tasks
    assert a.solved + a.shared == a.tasks and b.solved + b.shared == b.tasks
    assert a.layers == b.layers
    with ResultStore(db) as st:
        assert st.claims() == []  # released at the end
        assert len(st.rows(a.run_id)) == a.tasks


def test_a_dead_runs_claims_are_taken_over(tmp_path, toy, counted):
    db = tmp_path / "r.sqlite"
    first = run_compare("toy", problems={"toy": toy}, db=tmp_path / "probe.sqlite",
                        workers=1, **SETTINGS)
    keys = list(counted)
    counted.clear()
    pid = _dead_pid()
    with ResultStore(db) as st:  # a run killed by SIGKILL left fresh claims on every task
        with st._tx():
            st._conn.executemany(
                "INSERT INTO claims VALUES (?, 'killed', ?, ?, ?, NULL)",
                [(k, pid, store_mod._HOST, time.time()) for k in keys])
    again = run_compare("toy", problems={"toy": toy}, db=db, workers=1, **SETTINGS)
    assert again.solved == first.tasks and again.shared == 0
    assert sorted(counted) == sorted(keys) and set(counted.values()) == {1}
    with ResultStore(db) as st:
        assert st.claims() == []


def test_claim_states(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        assert st.claim("k1", "me") == "mine"
        assert st.claim("k1", "me") == "mine"  # ours already
        assert st.claim("k1", "other") == "taken"  # our process is alive, heartbeat fresh
        # A live process on another host: taken until its heartbeat is STALE_AFTER old.
        with st._tx():
            st._conn.execute("UPDATE claims SET owner = 'far', host = 'elsewhere', "
                             "heartbeat = ? WHERE task_key = 'k1'",
                             (time.time() - store_mod.STALE_AFTER / 2,))
        assert st.claim("k1", "me") == "taken"
        with st._tx():
            st._conn.execute("UPDATE claims SET heartbeat = ? WHERE task_key = 'k1'",
                             (time.time() - 2 * store_mod.STALE_AFTER,))
        assert st.claim("k1", "me") == "mine"
        # A dead process on this host: stale at once, whatever its heartbeat.
        assert st.claim("k2", "me") == "mine"
        with st._tx():
            st._conn.execute("UPDATE claims SET owner = 'dead', pid = ? WHERE task_key = 'k2'",
                             (_dead_pid(),))
        assert st.claim("k2", "other") == "mine"
        # Stored rows are done; storing a row deletes its claim; error rows are solved again.
        st.write(_row("k2", "optimal"))
        assert st.claim("k2", "me") == "done"
        assert [c["task_key"] for c in st.claims()] == ["k1"]
        st.write(_row("k3", "error"))
        assert st.claim("k3", "me") == "mine"


def test_claim_keeper_beats_and_releases(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        with store_mod.ClaimKeeper(db, "me", interval=0.05):
            assert st.claim("k", "me") == "mine"
            before = st.claims()[0]["heartbeat"]
            deadline = time.monotonic() + 60
            while st.claims()[0]["heartbeat"] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert st.claims()[0]["heartbeat"] > before
        assert st.claims() == []


def _row(key: str, status: str) -> dict:
    return {"task_key": key, "model": "m", "layer": "l", "channel": 0, "scope": "chunk",
            "kind": "quant", "method": "rtn", "compression": "4", "status": status}
