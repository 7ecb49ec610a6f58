"""Batches: grouping, one transaction for claims and rows, batched rows equal single ones."""

from __future__ import annotations

import numpy as np

from bounds.compare.plan import make_plan
from bounds.compare.run import batches
from bounds.compare.settings import CompareConfig
from bounds.compare.store import ResultStore
from bounds.compare.tasks import run_batch, run_task
from tests.bounds.compare.conftest import toy_layer


def _tasks(channels=6, n=16, opt_dim=8):
    cfg = CompareConfig(model="toy", protocol="paper", bits=(2, 4), opt_dim=opt_dim,
                        channels=None, max_chunks=None, whole_layer=False,
                        quant_methods=("exact",), prune_methods=("exact",),
                        node_limit=100_000).resolved()
    layer = toy_layer(seed=3, n=n, channels=channels)
    return make_plan(cfg, {"toy": layer}).tasks()


def test_batches_follow_chunks_and_cap():
    tasks = _tasks()
    got = list(batches(tasks, size=10))
    assert [t.key for b in got for t in b] == [t.key for t in tasks]  # order kept, none lost
    for b in got:
        assert len(b) <= 10
        assert len({(t.layer, t.chunk) for t in b}) == 1
    # a chunk's channels share one H array (a batch ships it once)
    chunk0 = [t for t in tasks if t.chunk == 0 and t.kind == "prune"]
    assert len({id(t.H) for t in chunk0}) == 1


def test_batched_rows_mean_what_single_rows_mean():
    tasks = _tasks()
    rows = run_batch(tasks)
    assert [r["task_key"] for r in rows] == [t.key for t in tasks]
    shared = 0
    for t, r in zip(tasks, rows, strict=True):
        single = run_task(t)
        assert r["status"] == single["status"] != "error"
        assert len(r["weights"]) == len(t.w0)
        tol = 1e-7 * max(r["norm"], 1e-300)
        if r["status"] == "optimal":
            assert abs(r["objective"] - single["objective"]) <= tol + 1e-6 * r["objective"]
        assert r["lower_bound"] <= single["objective"] + tol
        assert single["lower_bound"] <= r["objective"] + tol
        shared += r["info_json"].get("shared_rows", 0) > 1
    # every exact pruning row shared its chunk's H with the other channels
    assert shared == sum(t.kind == "prune" for t in tasks)


def test_claim_many_and_write_many(tmp_path):
    tasks = _tasks(channels=2)[:6]
    keys = [t.key for t in tasks]
    with ResultStore(tmp_path / "r.sqlite") as st:
        assert set(st.claim_many(keys, "me").values()) == {"mine"}
        assert set(st.claim_many(keys[:3], "other").values()) == {"taken"}
        rows = run_batch(tasks[:3])
        st.write_many(rows)
        states = st.claim_many(keys, "other")
        assert [states[k] for k in keys] == ["done"] * 3 + ["taken"] * 3
        assert st.done_keys(keys) == set(keys[:3])
        stored = {r["task_key"]: r for r in st.rows(solutions=True)}
        for r in rows:
            assert np.allclose(stored[r["task_key"]]["weights"], r["weights"])
        assert {c["task_key"] for c in st.claims()} == set(keys[3:])  # rows release claims


def test_info_made_jsonable_keeps_values_and_stringifies_the_rest():
    """A row's ``info``: values JSON writes kept as they are (one dump of the whole dict), a
    value it cannot write (a nested dict with a tuple key) turned into a string, key by key."""
    from bounds.compare.tasks import _jsonable

    plain = {"nodes": 3, "phases": [{"diagonal": "logdet", "nodes": 7}], "nm": None, 5: "five"}
    assert _jsonable(plain) == {"nodes": 3, "phases": [{"diagonal": "logdet", "nodes": 7}],
                                "nm": None, "5": "five"}
    odd = {"nodes": 3, "pairs": {(1, 2): 0.5}}
    assert _jsonable(odd) == {"nodes": 3, "pairs": "{(1, 2): 0.5}"}
    assert _jsonable(None) == {}
