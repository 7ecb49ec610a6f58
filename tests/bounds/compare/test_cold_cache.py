"""On an empty numba cache no kernel compiles inside a timed solve, and the first run says so.

A subprocess gets a fresh ``NUMBA_CACHE_DIR`` and runs two comparisons (the paper protocol:
boxed pruning, 32-input chunks; then the default protocol: no box, whole-channel direct solves
of 64 inputs, which take the Lagrangian and neighbourhood paths) on an ill-conditioned and a
rank-deficient layer, counting numba's compilations inside every ``run_batch``. A second process
on the same (now filled) cache must compile nothing at all and print no compile message.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bounds.compare.warm_up import MESSAGE

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from bounds.compare import executors, tasks
    from bounds.compare.run import run_compare
    from solvers.problem import LayerProblem
    from solvers.warm_up import count_compilations

    inside = []
    solve = tasks.run_batch

    def counted(batch):
        with count_compilations() as c:
            rows = solve(batch)
        kinds = sorted({f"{t.kind} {t.method}" for t in batch})
        inside.extend(f"{'/'.join(kinds)}: {name}" for name in c)
        return rows

    executors.run_batch = counted

    def layer(seed, n, rows):
        rng = np.random.default_rng(seed)
        X = np.cumsum(rng.standard_normal((rows, n)), axis=1)  # ill-conditioned, like pixels
        return LayerProblem(X.T @ X, rng.standard_normal((2, n)) * 0.1,
                            {"layer": f"l{seed}", "rows": rows})

    problems = {"ill": layer(0, 64, 300), "rankdef": layer(1, 32, 20)}
    with count_compilations() as total:
        for proto in ("paper", "exact"):
            run_compare("toy", problems=problems, protocol=proto, bits=(2, 3, 4, 8),
                        channels=1, max_chunks=None, workers=1, progress=True,
                        time_limit=1.0, db=sys.argv[1] + f"/{proto}.sqlite")
    print(json.dumps({"inside": inside, "total": len(total)}))
""")


def _run(cache, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


@pytest.mark.slow
def test_no_compilation_inside_solves_on_a_cold_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    cold, err = _run(cache, tmp_path)
    assert cold["total"] > 0  # the cache was cold: the warm-up compiled
    assert cold["inside"] == []
    # announced once, before the solving bar starts
    assert err.count(MESSAGE) == 1
    assert err.index(MESSAGE) < err.index("solving")
    (tmp_path / "again").mkdir()
    warm, err = _run(cache, tmp_path / "again")
    assert warm == {"inside": [], "total": 0}
    assert MESSAGE not in err
