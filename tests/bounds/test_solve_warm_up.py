"""`pqbound solve`'s warm-up loads every kernel signature its solves then use.

Each case runs in a fresh process (kernels loaded by earlier tests would hide a miss): the
command's own warm-up (``_prepare``) first, then the solves of every file; a kernel signature
first loaded during the solves is a path the warm-up missed (on a cold cache it would compile
inside a timed solve). The problems cover what changes the paths taken: ill-conditioned,
rank-deficient and dead-input ``H``, 4 and 8 bits, 48+ inputs under a time limit (the
Lagrangian bound and the neighbourhood search), no limit at all (the lean warm-up), a scale that
clips at 8 bits (the re-centred search).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from bounds.batch_solve import SolveSettings, _prepare, solve_many
    from solvers.warm_up import loaded_signatures, new_signatures

    settings = SolveSettings(**json.loads(sys.argv[1]))
    files = sorted(Path(sys.argv[2]).glob("*.npz"))
    _prepare(settings, files)
    before = loaded_signatures()
    outcomes = list(solve_many(files, settings, workers=1))
    print(json.dumps({"missed": new_signatures(before),
                      "errors": [o.error for o in outcomes if o.error]}))
""")


def _problems(folder, n, rankdef):
    rng = np.random.default_rng(n)
    # a rank-deficient H only under a limit: without one its search may not end
    kinds = (("ill", 4 * n), ("dead", 4 * n)) + ((("rankdef", n // 2),) if rankdef else ())
    for name, rows in kinds:
        X = np.cumsum(rng.standard_normal((rows, n)), axis=1)
        if name == "dead":
            X[:, 3] = 0.0
        np.savez(folder / f"{name}.npz", H=X.T @ X, W0=0.1 * rng.standard_normal((1, n)))


def _missed(tmp_path, n, **settings):
    _problems(tmp_path, n, rankdef=settings.get("time_limit") is not None)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(settings), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["errors"] == []
    return doc["missed"]


@pytest.mark.parametrize("bits", [4, 8])
def test_quant_without_a_limit_loads_nothing_new(tmp_path, bits):
    assert _missed(tmp_path, 32, kind="quant", bits=bits) == []


@pytest.mark.parametrize("limit", [{"time_limit": 2.0}, {}])
def test_quant_with_a_binding_box_loads_nothing_new(tmp_path, limit):
    # 8 bits with a scale that clips (targets up to ~2x past the box): the search re-centred on
    # the box relaxation starts beside the original one (without a limit: the lean warm-up)
    assert _missed(tmp_path, 32, kind="quant", bits=8, scale=0.001, **limit) == []


def test_quant_under_a_time_limit_loads_nothing_new(tmp_path):
    # 64 inputs, 8 bits on a rank-deficient H: stops on the limit, so the Lagrangian bound and
    # the neighbourhood search run
    assert _missed(tmp_path, 64, kind="quant", bits=8, time_limit=0.3) == []


def test_prune_loads_nothing_new(tmp_path):
    assert _missed(tmp_path, 32, kind="prune", keep=8, time_limit=2.0) == []
