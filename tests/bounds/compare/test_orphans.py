"""Workers end when their parent dies: ``kill -9`` of a ``compare`` run leaves no solver running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import pathlib, sys, time
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    sys.path.insert(0, {here!r})  # first: its conftest (toy_layer), not the tests' root one
    from conftest import toy_layer
    from bounds.compare import run_compare

    # Once the first batch is stored, the workers have started and hold more batches: say so
    # and wait to be killed.
    from store_pause import pause_after_first_batch
    pause_after_first_batch({ready!r})
    if __name__ == "__main__":
        run_compare("toy", problems={{"toy": toy_layer(n=24, channels=4)}}, db={db!r},
                    workers=2, bits=(2, 4), opt_dim=12, channels=4, max_chunks=None,
                    time_limit=20.0, whole_layer=False, quant_methods=("exact", "rtn"),
                    prune_methods=("exact",))
""")


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow  # ~40 s warm under load: two workers warm up first
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc via psutil")
def test_workers_end_when_the_parent_is_killed(tmp_path):
    ready = tmp_path / "ready"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), here=str(Path(__file__).parent),
                                    tests=str(ROOT / "tests"), ready=str(ready),
                                    db=str(tmp_path / "r.sqlite")))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = tmp_path / "run.log"  # a file, not a pipe nobody reads (a compile bar can fill one)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 600  # generous: a cold numba cache compiles first
        while not ready.exists():
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the run never stored a row"
            time.sleep(0.2)
        children = psutil.Process(proc.pid).children(recursive=True)
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in children]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 60  # generous under load; the kernel's signal is immediate
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [c.pid for c in children if _alive(c)]
    for pid in left:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes {left} outlived their killed parent"
