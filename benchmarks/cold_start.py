"""A user's first calls, side by side: process start, one file against a folder, first vs warm.

Three ratios, each measured in fresh processes in one run (medians over ``--repeat`` runs,
interleaved so that machine load hits every side alike):

1. wall of ``python -m bounds solve quant ONE.npz --json`` (one ``n = 32`` problem, 4 bits,
   exact) against wall of ``python -c "import numpy, scipy.linalg, numba"`` — the floor any
   numba tool pays (target ≤ 2×);
2. wall of the same command on a folder of 12 such problems against the one problem
   (target ≤ 1.5×);
3. the first solve's ``seconds`` in a fresh process (the first JSON line of the folder call)
   against a warm solve of the same problem in the same process (the folder's last file is a
   copy of its first; target ≤ 2×).

Each is measured on a **warm** numba cache (kernels compiled before, as on every run after the
first) and, for the record, the first call on a **cold** cache (a fresh ``NUMBA_CACHE_DIR``: what
a fresh install meets once, with compilation announced and counted in ``load_seconds``).

The problems: with ``--problems DIR`` the first 12 ``*.npz`` files there (e.g. chunks written
by ``pqbound export --opt-dim 32``; one channel each is used); without, 12 conv-like problems
(``H = XᵀX`` of 200 rows whose neighbouring inputs are correlated like the pixels of a patch,
``W0`` one channel), 4 bits at the per-tensor MSE scale; the twelfth file is a copy of the
first.

Usage::

    python benchmarks/cold_start.py                       # warm + cold, 5 repeats
    python benchmarks/cold_start.py --repeat 3 --report benchmarks/reports/cold_start.txt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "import numpy, scipy.linalg, numba"


def make_problems(folder: Path, source: str | None, count: int = 12) -> list[Path]:
    """``count`` one-channel ``n = 32`` problem files in ``folder``, the last a copy of the
    first."""
    out = []
    if source:
        files = sorted(Path(source).glob("*.npz"))[:count - 1]
        if len(files) < count - 1:
            raise SystemExit(f"{source} holds {len(files)} problem files, need {count - 1}")
        for i, f in enumerate(files):
            d = np.load(f)
            W0 = d["W0"] if "W0" in d.files else d["w0"][None]
            p = folder / f"p{i:02d}.npz"
            np.savez(p, H=d["H"], W0=W0[:1], bits=4)
            out.append(p)
    else:
        out = _generated(folder, count - 1)
    last = folder / f"p{count - 1:02d}.npz"
    shutil.copy(out[0], last)
    return out + [last]


def _generated(folder: Path, count: int) -> list[Path]:
    out = []
    rng = np.random.default_rng(0)
    for i in range(count):
        X = rng.standard_normal((200, 32))
        X[:, 1:] += 0.6 * X[:, :-1]
        p = folder / f"p{i:02d}.npz"
        np.savez(p, H=X.T @ X, W0=rng.standard_normal((1, 32)) * 0.1, bits=4)
        out.append(p)
    return out


CPU: dict[str, list[float]] = {}


def run(argv: list[str], env: dict[str, str], tag: str | None = None) -> tuple[float, str]:
    """Wall seconds of a fresh process, and its stdout (its CPU seconds, user + system, are
    kept under ``tag``: on a loaded machine they show the cost without the waiting)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    if tag:
        CPU.setdefault(tag, []).append(after.ru_utime + after.ru_stime
                                       - before.ru_utime - before.ru_stime)
    return wall, proc.stdout


def lines(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines() if x.strip()]


def measure(files: list[Path], folder: Path, env: dict[str, str],
            repeat: int) -> dict[str, list[float]]:
    py = sys.executable
    solve = [py, "-m", "bounds", "solve", "quant", "--bits", "4", "--method", "exact",
             "--json", "--quiet"]
    m: dict[str, list[float]] = {k: [] for k in (
        "baseline", "one", "folder", "first_seconds", "warm_seconds", "load_seconds",
        "folder_seconds")}
    for _ in range(repeat):
        m["baseline"].append(run([py, "-c", BASELINE], env, "baseline")[0])
        wall, out = run(solve + [str(files[0])], env, "one")
        m["one"].append(wall)
        m["load_seconds"].append(lines(out)[0]["load_seconds"])
        # the folder: its last file is its first again, solved in a warm process
        wall, out = run(solve + [str(folder)], env, "folder")
        docs = lines(out)
        m["folder"].append(wall)
        m["first_seconds"].append(docs[0]["total"]["seconds"])
        m["warm_seconds"].append(docs[-1]["total"]["seconds"])
        m["folder_seconds"].append(sum(d["total"]["seconds"] for d in docs))
    return m


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def report(m: dict[str, list[float]], label: str) -> list[str]:
    r1 = med(m["one"]) / med(m["baseline"])
    r2 = med(m["folder"]) / med(m["one"])
    r3 = med(m["first_seconds"]) / med(m["warm_seconds"])
    ok = {True: "ok", False: "MISSED"}
    return [
        f"## {label} ({len(m['one'])} runs, medians)",
        f"  python -c '{BASELINE}'          {med(m['baseline']):7.3f} s",
        f"  pqbound solve quant ONE.npz --json               {med(m['one']):7.3f} s   "
        f"(load_seconds {med(m['load_seconds']):.3f})",
        f"  pqbound solve quant FOLDER (12 files) --json     {med(m['folder']):7.3f} s   "
        f"(sum of seconds {med(m['folder_seconds']):.3f})",
        f"  first solve's seconds (fresh process)            {med(m['first_seconds']):9.5f} s   "
        f"(min {min(m['first_seconds']):.5f})",
        f"  warm solve's seconds (same problem, same process){med(m['warm_seconds']):9.5f} s   "
        f"(min {min(m['warm_seconds']):.5f})",
        f"  ratio one file / import floor      {r1:5.2f}x  (target <= 2)    {ok[r1 <= 2]}",
        f"  ratio folder of 12 / one file      {r2:5.2f}x  (target <= 1.5)  {ok[r2 <= 1.5]}",
        f"  ratio first solve / warm solve     {r3:5.2f}x  (target <= 2)    {ok[r3 <= 2]}"
        f"  (of the minima {min(m['first_seconds']) / min(m['warm_seconds']):.2f}x: a 1 ms "
        "solve's wall time on a loaded machine includes preemption, which hits either side)",
        f"  CPU seconds (user + system) of the same processes: import floor "
        f"{med(CPU['baseline']):.3f}, one file {med(CPU['one']):.3f} "
        f"({med(CPU['one']) / med(CPU['baseline']):.2f}x), folder {med(CPU['folder']):.3f} "
        f"({med(CPU['folder']) / med(CPU['one']):.2f}x of one file)",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", metavar="DIR", help="real problem files (default: generated)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache call")
    ap.add_argument("--report", metavar="FILE", help="also write the report here")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="pqbound-cold-"))
    try:
        folder = tmp / "problems"
        folder.mkdir()
        files = make_problems(folder, args.problems)
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        try:
            load = os.getloadavg()
        except OSError:
            load = (float("nan"),) * 3
        what = f"problems from {args.problems}" if args.problems else \
            "12 generated conv-like problems"
        out = [f"# pqbound cold start ({what}, n = 32, 4 bits, exact)",
               f"python {sys.version.split()[0]}, load average {load[0]:.1f} {load[1]:.1f} "
               f"{load[2]:.1f} at start, {os.cpu_count()} cores"]
        if not args.no_cold:
            cold_env = dict(env, NUMBA_CACHE_DIR=str(tmp / "numba-cache"))
            wall, stdout = run([sys.executable, "-m", "bounds", "solve", "quant", "--bits", "4",
                                "--json", "--quiet", str(files[0])], cold_env)
            doc = lines(stdout)[0]
            out += ["## cold cache (a fresh NUMBA_CACHE_DIR: the first call after an install)",
                    f"  pqbound solve quant ONE.npz --json  {wall:7.2f} s wall, load_seconds "
                    f"{doc['load_seconds']:.2f} (compiling), the solve's seconds "
                    f"{doc['total']['seconds']:.5f}"]
        # warm: the default cache, filled once first
        run([sys.executable, "-m", "bounds", "solve", "quant", "--json", "--quiet",
             str(files[0])], env)
        out += report(measure(files, folder, env, args.repeat),
                      "warm cache (every call after the first)")
        try:
            load = os.getloadavg()
            out.append(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(out)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
