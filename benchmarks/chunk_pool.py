"""The pool of per-channel chunk problems the quantization and pruning benchmarks draw from.

Real MobileNetV2 chunks of ``n`` inputs (``bounds.export.export_model`` with ``opt_dim = n`` over
a set of 1×1 convs, exported once per (n, samples, layers) in a run), or, with ``synthetic`` or
when the export fails (said on stderr), correlated synthetic problems drawn with ``rng``.
"""

from __future__ import annotations

import sys

import numpy as np

#: 1×1 expansion and projection convs with enough inputs for chunks up to n = 128.
DEFAULT_LAYERS = ["features.2.conv.2", "features.6.conv.2", "features.9.conv.0.0",
                  "features.11.conv.0.0", "features.13.conv.0.0", "features.15.conv.0.0",
                  "features.17.conv.0.0", "features.16.conv.2"]

_EXPORTS: dict = {}


def chunk_pool(n: int, count: int, rng: np.random.Generator, *, samples: int, layers,
               synthetic: bool) -> tuple[list, str]:
    """``(pool, source)``: (name, LayerProblem) pairs whose chunks have ``n`` inputs."""
    pool: list = []
    source = "synthetic (correlated inputs)"
    if not synthetic:
        try:
            from bounds.export import export_model

            key = (n, samples, tuple(layers))
            if key not in _EXPORTS:
                _EXPORTS[key] = export_model("mobilenet_v2", layers=list(layers), opt_dim=n,
                                             samples=samples)
            pool = [(f"{name}[{i}]", lp) for name, lps in _EXPORTS[key].items()
                    for i, lp in enumerate(lps) if lp.n == n]
            source = f"MobileNetV2 ({samples} calibration photos)"
        except Exception as exc:  # noqa: BLE001 - fall back to synthetic problems, say so
            print(f"export failed ({exc}); using synthetic problems", file=sys.stderr)
    if not pool:
        from solvers.problem import LayerProblem

        for i in range(max(4, count)):
            base = rng.standard_normal((4 * n, 1))
            X = 0.8 * base + 0.4 * rng.standard_normal((4 * n, n))
            pool.append((f"synthetic{i}", LayerProblem(X.T @ X, rng.standard_normal((8, n)))))
    return pool, source
