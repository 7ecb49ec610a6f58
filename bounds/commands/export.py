"""``pqbound export``: write per-chunk problem files (H = XᵀX, W0) for a model's layers."""

from __future__ import annotations

import argparse
import sys
import time

from solvers.problem import ProblemError

from ..export import check_writable, export_model, write_manifest, write_problems
from ..files import cleanup_on_failure
from ..protocols import PROTOCOLS
from ._model_options import MODEL_EPILOG, add_model_options

EPILOG = """\
examples:
  pqbound export --model mobilenet_v2 --layer features.8.conv.0.0 --opt-dim 32 --out probs
  pqbound export --model mobilenet_v2 --all-layers --opt-dim 32 --samples 64 --out probs
  pqbound export --model mobilenet_v2 --layer features.1.conv.0.0 --protocol paper \\
      --images ~/imagenet/val --out probs
  pqbound export --model minilm --layer encoder.layer.0.attention.self.query --text my.txt \\
      --out probs
  pqbound export --model efficientnet_lite0 --layer _fc --out probs
  pqbound export --model hf:~/models/opt-125m --layer model.decoder.layers.0.fc1 \\
      --text corpus.txt --max-length 256 --out probs
  pqbound export --model mynets.py:build_net --weights net.pt --inputs batch.pt \\
      --all-layers --out probs

Each file holds H (n×n, or channels×n×n for grouped/depthwise convs), W0 (channels×n) and the
metadata (layer, chunk, input_start, input_stop, rows, scale tables, dead inputs/channels); solve
one with `pqbound solve quant FILE`. export.json in the folder records the settings.

""" + MODEL_EPILOG


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export layers as per-chunk quadratic problems (.npz)",
        description="Run calibration data through a model, accumulate H = XᵀX (float64,\n"
        "streaming) for the chosen layers, split each weight row into chunks of --opt-dim\n"
        "inputs and write one problem file per layer chunk: <layer>__chunk<k>.npz.\n"
        "Docs: docs/layers.md.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--layer", action="append", metavar="NAME",
                   help="layer to export (repeatable); `pqbound layers` lists them")
    g.add_argument("--all-layers", action="store_true",
                   help="export every Linear/Conv layer of the model")
    p.add_argument("--opt-dim", type=int, default=None, metavar="N",
                   help="split each weight row into chunks of N consecutive inputs, each its own "
                   "problem (the paper used 32; default: one chunk per layer)")
    p.add_argument("--samples", type=int, default=64,
                   help="calibration samples: photo crops, images or sentences (default 64)")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="exact",
                   help="exact (default): conv patches as the layer computes them (stride, "
                   "padding, dilation); paper: unfold(kernel) alone, as Kuzmin et al.'s code")
    p.add_argument("--full-precision", action="store_true",
                   help="keep float32 weights (default: rounded through float16, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="samples per forward pass")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise ProblemError(f"--samples must be >= 1, got {args.samples}")
    with cleanup_on_failure(folders=[args.out]):  # a failed export leaves no folder
        out = check_writable(args.out)  # fail before the long part
        t0 = time.perf_counter()
        problems = export_model(
            args.model,
            layers=None if args.all_layers else args.layer,
            samples=args.samples,
            opt_dim=args.opt_dim,
            protocol=args.protocol,
            full_precision=args.full_precision,
            images=args.images,
            text=args.text,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=not args.quiet and sys.stderr.isatty(),
            inputs=args.inputs,
            state_dict=args.weights,
            max_length=args.max_length,
        )
        paths = write_problems(problems, out)
        seconds = time.perf_counter() - t0
        write_manifest(problems, out, {"files": [p.name for p in paths],
                                       "seconds": round(seconds, 3), "weights": args.weights})
    first = next(iter(problems.values()))[0].meta
    print(f"exported {len(problems)} layer(s), {len(paths)} problem file(s) to {out} "
          f"in {seconds:.1f} s")
    print(f"model {first['model']}, protocol {first['protocol']}, {first['samples']} samples "
          f"({first['calibration_source'].split(':')[0]}, {first['calibration']}), weights "
          f"{first['weight_dtype']}")
    width = max(len(k) for k in problems)
    print(f"{'layer':<{width}}  {'kind':<12} {'n':>5} {'chunks':>6} {'channels':>8} {'rows':>9} "
          f"{'dead in':>7} {'dead ch':>7}")
    for layer, probs in problems.items():
        m = probs[0].meta
        dead_in = sum(int(p.meta["dead_inputs"].sum()) for p in probs)
        dead_ch = sum(int(p.meta["dead_channels"].sum()) for p in probs)
        print(f"{layer:<{width}}  {m['kind']:<12} {m['layer_n']:>5} {len(probs):>6} "
              f"{probs[0].channels:>8} {m['rows']:>9} {dead_in:>7} {dead_ch:>7}")
    return 0
