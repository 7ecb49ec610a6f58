#!/usr/bin/env python
"""Whole-layer heuristics on the largest MobileNetV2 layers: all channels, full input dimension.

Times every heuristic of :mod:`solvers.heuristics` on one layer at once (shared ``H``, no
chunks) and prints the median of ``--repeats`` runs, the ratio to RTN measured in the same run,
and the layer SQNR each method reaches. GPTQ and SparseGPT run on every channel; the O(n³)-per-
channel methods (OBQ, OBS greedy) and the per-channel refits run on the first ``--ref-channels``
channels only, AdaRound (2000 Adam steps, one (C, n)·(n, n) product each) on the first
``--adaround-channels``; their time is also shown extrapolated to the whole layer (``× C /
channels``, marked ``~``; for AdaRound an overestimate, larger batches amortise better).

The Hessians are real: ``bounds.export.export_model("mobilenet_v2", opt_dim=None)`` (the
project's exporter: built-in calibration photos, ``--samples`` seeded crops, whole layers, FP16
weights) and its per-tensor MSE scale of the layer. Without the exporter, forward hooks on the
two layers (both 1×1) over crops of scikit-image's photos; with ``--synthetic`` (or when the
model is not available) correlated Gaussian data of the same sizes. The report says which.

Examples
--------
The default (features.18.0: 320 → 1280, classifier.1: 1280 → 1000; 4 bits / density 1/4)::

    OMP_NUM_THREADS=1 python benchmarks/heuristics_layer.py

Two threads, five repeats, 2:4 sparsity for the pruning methods::

    OMP_NUM_THREADS=2 python benchmarks/heuristics_layer.py --repeats 5 --nm 2:4
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from solvers.heuristics import (  # noqa: E402
    adaround_layer,
    gptq_layer,
    magnitude_layer,
    obq_layer,
    obs_layer,
    rtn_layer,
    sparsegpt_layer,
)
from solvers.scales import mse_scale  # noqa: E402

LAYERS = ("features.18.0", "classifier.1")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "motorcycle",
          "cat", "retina")


def exported_layers(names, samples: int, seed: int, bits: int):
    """``{name: (H, W0, scale)}`` from the project's exporter, whole layers (no chunks)."""
    from bounds.export import export_model

    probs = export_model("mobilenet_v2", layers=list(names), opt_dim=None, samples=samples,
                         seed=seed)
    out = {}
    for name in names:
        (p,) = probs[name]
        out[name] = (p.H, p.W0, float(np.asarray(p.meta["scales_mse_tensor"])[bits - 1]))
    return out


def real_layers(names, samples: int, seed: int, bits: int):
    """``{name: (H, W0, scale)}`` from MobileNetV2 on seeded random crops of bundled photos."""
    import skimage.data
    import torch

    from layers.models import load_model

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    model = load_model("mobilenet_v2")
    rng = np.random.default_rng(seed)
    photos = []
    for p in PHOTOS:
        try:
            a = np.asarray(getattr(skimage.data, p)())
        except Exception:  # noqa: BLE001 - optional photos may be missing
            continue
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        photos.append(torch.from_numpy(np.ascontiguousarray(a[:, :, :3])).permute(2, 0, 1))
    crops = []
    for _ in range(samples):
        img = photos[rng.integers(len(photos))].float() / 255.0
        _, h, w = img.shape
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        c = img[None, :, top:top + side, left:left + side]
        crops.append(torch.nn.functional.interpolate(c, size=(224, 224), mode="bilinear"))
    x = torch.cat(crops)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    modules = dict(model.named_modules())
    H = {n: None for n in names}

    def hook(name):
        def fn(_m, inp, _out):
            a = inp[0].detach().double()
            X = a.permute(0, 2, 3, 1).reshape(-1, a.shape[1]) if a.ndim == 4 else a
            G = (X.T @ X).numpy()
            H[name] = G if H[name] is None else H[name] + G

        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    with torch.no_grad():
        for i in range(0, samples, 16):
            model(x[i:i + 16])
    for h in handles:
        h.remove()
    out = {}
    for n in names:
        W = modules[n].weight.detach().numpy()
        W0 = W.reshape(W.shape[0], -1).astype(np.float16).astype(np.float64)
        out[n] = (H[n], W0, mse_scale(W0, bits))
    return out


def synthetic_layers(seed: int, bits: int):
    """Correlated Gaussian stand-ins with the two layers' sizes (320→1280, 1280→1000)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (C, n, rows) in {"features.18.0": (1280, 320, 3136),
                               "classifier.1": (1000, 1280, 2560)}.items():
        base = rng.standard_normal((rows, 8))
        X = base @ rng.standard_normal((8, n)) + 0.5 * rng.standard_normal((rows, n))
        W0 = 0.05 * rng.standard_normal((C, n))
        out[name] = (X.T @ X, W0, mse_scale(W0, bits))
    return out


def timed(fn, repeats: int):
    times, run = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), run


def bench_layer(name, H, W0, s, args):
    C, n = W0.shape
    ref = min(args.ref_channels, C)
    ada = min(args.adaround_channels, C)
    warm = np.eye(4)  # compile / load the numba kernels before timing
    obq_layer(warm, W0[:1, :4], 1.0, 2)
    obs_layer(warm, W0[:1, :4], 2)
    b, rep = args.bits, args.repeats
    prune_kw = {"nm": args.nm} if args.nm else {"density": args.density}
    cases = [
        ("rtn", C, lambda: rtn_layer(H, W0, s, b)),
        ("gptq", C, lambda: gptq_layer(H, W0, s, b)),
        ("gptq act-order", C, lambda: gptq_layer(H, W0, s, b, act_order=True)),
        ("obq", ref, lambda: obq_layer(H, W0[:ref], s, b)),
        ("adaround", ada, lambda: adaround_layer(H, W0[:ada], s, b)),
        ("magnitude", C, lambda: magnitude_layer(H, W0, **prune_kw)),
        ("sparsegpt", C, lambda: sparsegpt_layer(H, W0, **prune_kw)),
        ("magnitude-refit", ref, lambda: magnitude_layer(H, W0[:ref], refit=True, **prune_kw)),
        ("obs", ref, lambda: obs_layer(H, W0[:ref], **prune_kw)),
    ]
    rows = []
    for method, chans, fn in cases:
        if args.methods and method.split()[0] not in args.methods:
            continue
        med, run = timed(fn, 1 if chans < C else rep)
        rows.append((method, chans, med, med * C / chans, run.sqnr_db))
    base = next((r[2] for r in rows if r[0] == "rtn"), None)
    print(f"\n{name}: C = {C} channels, n = {n} inputs, {args.bits}-bit quant, "
          f"pruning {'N:M ' + str(args.nm) if args.nm else f'density {args.density:g}'}")
    print(f"scale {s:.6g} (per tensor); SQNR over the channels each method ran on")
    print(f"{'method':<16}{'channels':>9}{'median s':>11}{'whole layer s':>15}"
          f"{'× RTN':>9}{'SQNR dB':>9}")
    for method, chans, med, whole, sq in rows:
        est = "~" if chans < C else " "
        ratio = f"{whole / base:9.1f}" if base else f"{'':>9}"
        print(f"{method:<16}{chans:>9}{med:>11.3f}{est:>4}{whole:>11.2f}{ratio}{sq:>9.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", nargs="+", default=list(LAYERS))
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--density", type=float, default=0.25,
                    help="pruning density (default 1/4 = 4-bit equal compression)")
    ap.add_argument("--nm", type=lambda t: tuple(int(v) for v in t.split(":")), default=None,
                    metavar="N:M", help="prune to an N:M pattern instead of a density")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    ap.add_argument("--ref-channels", type=int, default=16,
                    help="channels for the O(n³)-per-channel methods (time extrapolated)")
    ap.add_argument("--adaround-channels", type=int, default=64,
                    help="channels for AdaRound (vectorised: larger batches amortise H)")
    ap.add_argument("--methods", nargs="*", default=None, help="only these methods")
    ap.add_argument("--samples", type=int, default=64, help="calibration crops")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true", help="correlated random H instead")
    args = ap.parse_args(argv)
    print("command: " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"numpy {np.__version__}, repeats {args.repeats}")
    layers = None
    if not args.synthetic:
        try:
            layers = exported_layers(args.layers, args.samples, args.seed, args.bits)
            print(f"H: bounds.export.export_model, real MobileNetV2, {args.samples} samples")
        except ImportError:
            try:
                layers = real_layers(args.layers, args.samples, args.seed, args.bits)
                print(f"H: real MobileNetV2 (hooks), {args.samples} crops of bundled photos")
            except Exception as exc:  # noqa: BLE001 - fall back, and say so
                print(f"MobileNetV2 not available ({exc}); using synthetic correlated H")
    if layers is None:
        layers = synthetic_layers(args.seed, args.bits)
        print("H: SYNTHETIC correlated Gaussian data of the layers' sizes")
    for name in args.layers:
        H, W0, s = layers[name]
        bench_layer(name, H, W0, s, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
