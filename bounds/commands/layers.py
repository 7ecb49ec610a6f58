"""``pqbound layers --model NAME``: list a model's exportable layers with shapes and n."""

from __future__ import annotations

import argparse
import json
import sys

from ..export import list_layers
from ._model_options import MODEL_EPILOG, add_model_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layers",
        help="list a model's exportable layers (Linear, Conv1d, Conv2d, Conv1D)",
        description="List the layers `pqbound export --layer` accepts, with their weight shape "
        "(as stored: GPT-2 Conv1D weights are (in, out)), n (inputs per output channel, the "
        "problem size before chunking), channels and groups. Docs: docs/layers.md.",
        epilog=MODEL_EPILOG + """
examples:
  pqbound layers --model efficientnet_lite0
  pqbound layers --model hf:~/models/opt-125m --json
  pqbound layers --model mynets.py:build_net --weights net.pt
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p, calibration=False)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = list_layers(args.model, weights=args.weights)
    if args.json:
        json.dump([r._asdict() for r in rows], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{'layer':<{width}}  {'type':<8} {'weight shape':<18} {'n':>6} {'channels':>8} "
          f"{'groups':>6}")
    for r in rows:
        shape = "×".join(str(d) for d in r.weight_shape)
        print(f"{r.name:<{width}}  {r.type:<8} {shape:<18} {r.n:>6} {r.channels:>8} "
              f"{r.groups:>6}")
    print(f"{len(rows)} exportable layers in {args.model}")
    return 0
