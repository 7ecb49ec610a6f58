"""Time and memory of exporting every Conv/Linear layer of MobileNetV2.

Runs ``bounds.export.export_model("mobilenet_v2", samples=64, opt_dim=32)`` on all 53 layers
(the built-in photo crops as calibration data), writes the problem files to a temporary folder
and prints the total time, the split into calibration (forward passes + H accumulation), problem
building (scale tables, validation) and writing, per-layer times, and peak memory: the process's
peak resident set (``ru_maxrss``, which includes torch itself) and the peak of Python-tracked
allocations (``tracemalloc`` with ``--tracemalloc``; it sees numpy but not torch's own
buffers).


Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/export_mobilenet.py
    python benchmarks/export_mobilenet.py --samples 256 --keep out/   # bounded memory check
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def _rss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--opt-dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layer", action="append", help="only these layers (default: all)")
    ap.add_argument("--keep", metavar="DIR", help="write the files here instead of a temp dir")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also report tracemalloc's peak (slows numpy-heavy phases)")
    ap.add_argument("--scale-rows", type=int, default=24,
                    help="rows for the side-by-side scale-search timing (default 24)")
    args = ap.parse_args(argv)

    import torch

    from bounds.export import export_model, write_problems
    from layers.models import load_model

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, numpy {np.__version__}")
    t = time.perf_counter()
    load_model("mobilenet_v2")
    print(f"model load: {time.perf_counter() - t:.2f} s, peak RSS so far {_rss_mib():.0f} MiB")
    from solvers.scales import scale_tables

    t = time.perf_counter()
    scale_tables(np.ones((2, 3)))  # load (or compile) the numba kernels outside the timing
    print(f"numba kernels ready: {time.perf_counter() - t:.2f} s")
    rss_before = _rss_mib()

    if args.tracemalloc:
        tracemalloc.start()
    t0 = time.perf_counter()
    probs = export_model("mobilenet_v2", layers=args.layer, samples=args.samples,
                         opt_dim=args.opt_dim, batch_size=args.batch_size)
    t_export = time.perf_counter() - t0
    rss_export = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        t1 = time.perf_counter()
        paths = write_problems(probs, out)
        t_write = time.perf_counter() - t1
        size = sum(p.stat().st_size for p in paths)
    total = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    tracemalloc.stop()

    acc = {k: v[0].meta["accumulate_seconds"] for k, v in probs.items()}
    build = {k: v[0].meta["problem_seconds"] for k, v in probs.items()}
    t_build = sum(build.values())
    print(f"\nexported {len(probs)} layers, {len(paths)} problem files "
          f"({size / 2**20:.1f} MiB), samples {args.samples}, opt_dim {args.opt_dim}")
    print(f"total           {total:8.2f} s")
    print(f"  calibration   {t_export - t_build:8.2f} s  (forward passes + H accumulation; "
          f"of which in hooks {sum(acc.values()):.2f} s)")
    print(f"  problems      {t_build:8.2f} s  (scale tables for bits 1..16, validation)")
    print(f"  writing       {t_write:8.2f} s")
    print(f"peak RSS        {_rss_mib():8.0f} MiB  (before export {rss_before:.0f} MiB: torch + "
          f"model; after export, before writing {rss_export:.0f} MiB)")
    if traced_peak is not None:
        print(f"peak traced     {traced_peak / 2**20:8.1f} MiB  (tracemalloc, numpy/Python "
              f"allocations)")

    print(f"\n{'layer':<22} {'kind':<10} {'n':>5} {'chunks':>6} {'rows':>8} {'H acc s':>8} "
          f"{'build s':>8}")
    for k, v in probs.items():
        m = v[0].meta
        print(f"{k:<22} {m['kind']:<10} {m['layer_n']:>5} {len(v):>6} {m['rows']:>8} "
              f"{acc[k]:8.3f} {build[k]:8.3f}")

    # Side by side: patches from strided views (layers.unfold._im2col) vs torch's F.unfold.
    import torch.nn.functional as F

    from layers.unfold import _im2col

    x = torch.randn(2, 144, 58, 58)  # a padded depthwise input of features.3 (2 images)

    def via_unfold():
        U = F.unfold(x, 3)
        return U.view(2, 144, 9, -1).permute(1, 2, 0, 3).reshape(144, 9, -1).double()

    assert torch.equal(via_unfold(), _im2col(x, 144, (3, 3), (1, 1), (1, 1)))
    ref_t, fast_t = [], []
    for _ in range(7):
        a = time.perf_counter()
        via_unfold()
        ref_t.append(time.perf_counter() - a)
        a = time.perf_counter()
        _im2col(x, 144, (3, 3), (1, 1), (1, 1))
        fast_t.append(time.perf_counter() - a)
    r, f = statistics.median(ref_t), statistics.median(fast_t)
    print(f"depthwise patches (2×144×58×58, 3×3), median of 7: F.unfold + copy {r * 1e3:.1f} ms, "
          f"strided views {f * 1e3:.1f} ms, ratio {r / f:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
