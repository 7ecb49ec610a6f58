"""What the ``pqbound solve`` program loads: cffi and numba's registries are skipped in its
process, nowhere else.

numba imports cffi and builds a ``cffi.FFI()`` at its first kernel load when cffi is installed;
``pqbound solve`` never passes cffi objects to a kernel, so the program marks cffi absent
(:func:`bounds.cli._without_cffi`). It also loads cached kernels without numba's registry
refresh (:func:`bounds.cli._lean_kernel_loads`, :mod:`solvers.kernel_cache`): on a warm cache
``numba.typed.dictimpl``, which only that refresh imports, stays unloaded. A call of ``main``
with an explicit ``argv`` (a library use, these tests) must leave the process alone.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba.core.caching import Cache

from bounds.cli import main

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent("""
    import sys
    from bounds.cli import main
    sys.argv = ["pqbound", *sys.argv[1:]]
    code = main()
    print("CFFI", sys.modules.get("cffi", "absent") is not None and "cffi" in sys.modules)
    print("NUMBA_CFFI", __import__("numba.core.typing.cffi_utils").core.typing.cffi_utils.SUPPORTED)
    from numba.core.caching import Cache
    print("LEAN", getattr(Cache.load_overload, "_pqbound_lean_load", False))
    print("REGISTRIES", "numba.typed.dictimpl" in sys.modules)
    sys.exit(code)
""")


def _problem(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 12))
    path = tmp_path / "p.npz"
    np.savez(path, H=X.T @ X, W0=rng.standard_normal((1, 12)), bits=4)
    return path


def _program(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PROGRAM, *argv],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_solve_program_runs_without_cffi(tmp_path):
    path = _problem(tmp_path)
    lines = _program("solve", "quant", "--method", "exact", "--json", "--quiet", str(path))
    doc = json.loads(lines[0])
    assert doc["channels"][0]["status"] == "optimal"
    assert "CFFI False" in lines and "NUMBA_CFFI False" in lines


@pytest.mark.parametrize("kind", [["quant"], ["prune", "--keep", "5"]])
def test_solve_program_loads_kernels_without_the_registries(tmp_path, capsys, kind):
    path = _problem(tmp_path)
    argv = ["solve", *kind, "--method", "exact", "--json", "--quiet", str(path)]
    _program(*argv)  # fills numba's cache where it is cold
    lines = _program(*argv)
    doc = json.loads(lines[0])
    assert doc["channels"][0]["status"] == "optimal" and doc["channels"][0]["weights"]
    assert "LEAN True" in lines and "REGISTRIES False" in lines
    assert main(argv) == 0  # the same answer from a process with numba's own loads
    ours = json.loads(capsys.readouterr().out.splitlines()[0])["channels"][0]
    keys = ("status", "objective", "lower_bound", "nodes", "weights")
    assert {k: ours[k] for k in keys} == {k: doc["channels"][0][k] for k in keys}


def test_main_with_argv_leaves_cffi_and_numba_alone(tmp_path, capsys):
    path = _problem(tmp_path)
    assert main(["solve", "quant", "--method", "exact", "--json", "--quiet", str(path)]) == 0
    # never marked absent here (numba may have imported it normally on its first kernel load)
    assert "cffi" not in sys.modules or sys.modules["cffi"] is not None
    assert not getattr(Cache.load_overload, "_pqbound_lean_load", False)  # numba's own loads
    assert json.loads(capsys.readouterr().out.splitlines()[0])["channels"][0]["status"] == "optimal"
