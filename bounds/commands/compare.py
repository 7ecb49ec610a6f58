"""``pqbound compare``: the per-layer study, quantization vs pruning, into a store and a report."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

from ..channel_solve import parse_nm
from ._model_options import DEFAULT_MAX_LENGTH, MODEL_EPILOG, add_model_options

EPILOG = """\
examples:
  pqbound compare --report pqbound-report            # the default MobileNetV2 layers
  pqbound compare --layer features.8.conv.0.0 --bits 2 4 8 --channels 4 --time-limit 10
  pqbound compare --protocol paper --all-chunks --all-channels --workers 2 --db paper.sqlite
  pqbound compare --scheduler tcp://10.0.0.5:8786 --db big.sqlite   # a Dask cluster
  pqbound report --db pqbound-results.sqlite --out pqbound-report    # rebuild the report
  pqbound compare --model efficientnet_lite0 --report lite0-report   # its default layers
  pqbound compare --protocol paper --all-layers --all-channels --all-chunks --bits 2 3 4 8 \
      --methods exact --no-whole-layer --report study   # the paper's study, every layer
  pqbound compare --model hf:~/models/opt-125m --layer model.decoder.layers.0.fc1 --bits 4
  pqbound compare --formats int4 int4-asym-g128 fp4-e2m1-g32 nf4-g64 int4+2:4 --report fmt

Re-running the same command resumes: rows already in --db are not solved again. Every result
row keeps its solution; `pqbound report` writes rows.csv / rows.json. See docs/compare.md.

""" + MODEL_EPILOG


def register(sub: argparse._SubParsersAction) -> None:
    from solvers.formats import SCALE_METHODS, SPARSE_ACCOUNTINGS
    from solvers.whole_channel import CONSTRUCTIONS

    from ..compare.accounting import ACCOUNTINGS
    from ..compare.settings import DEFAULT_BITS, DEFAULT_LAYERS, CompareConfig
    from ..protocols import PROTOCOLS


    d = CompareConfig()
    p = sub.add_parser(
        "compare",
        help="per-layer comparison: quantization vs pruning with certified bounds",
        description=(
            "For each layer, chunk, channel and bit width b: the quantization lower bound and "
            "optimum, RTN/GPTQ/AdaRound; pruning at the equal-size density (b/16 by default) "
            "exactly and with magnitude/OBS/SparseGPT; N:M where asked; SQNRs in dB summed "
            "over channels; a per-layer verdict that says whether the bounds PROVE it; and a "
            "certified bound for each whole output channel (block split of H). Results go to "
            "an SQLite store as they finish (resumable), then to an optional report.\n\n"
            "Default layers: " + "; ".join(f"{m}: {', '.join(ls)}"
                                           for m, ls in DEFAULT_LAYERS.items())),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    lg = p.add_mutually_exclusive_group()
    lg.add_argument("--layer", action="append", dest="layers", metavar="NAME",
                    help="a layer to study (repeatable; default: the representative set)")
    lg.add_argument("--all-layers", action="store_true",
                    help="every exportable layer of the model (`pqbound layers` lists them; "
                    "MobileNetV2: 53)")
    p.add_argument("--bits", type=int, nargs="+", default=list(DEFAULT_BITS), metavar="B",
                   help=f"bit widths (default {' '.join(map(str, DEFAULT_BITS))})")
    p.add_argument("--opt-dim", type=int, default=d.opt_dim, metavar="N",
                   help=f"inputs per chunk (default {d.opt_dim}; 0: no chunks)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--channels", type=int, default=d.channels, metavar="N",
                   help=f"output channels per layer, a seeded sample (default {d.channels})")
    g.add_argument("--all-channels", action="store_true", help="every live output channel")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--chunks", type=int, default=d.max_chunks, metavar="N",
                   help=f"at most N chunks per layer, a seeded sample (default {d.max_chunks}); "
                   "the whole-channel bound needs every chunk")
    g.add_argument("--all-chunks", action="store_true", help="every chunk of every layer")
    p.add_argument("--methods", nargs="+", metavar="M", default=None,
                   help="methods to run: bare names go to every kind that has them (exact), "
                   "quant:NAME / prune:NAME pick one (default: quant exact rtn gptq adaround; "
                   "prune exact magnitude obs sparsegpt)")
    p.add_argument("--nm", nargs="+", metavar="N:M", default=[],
                   help="also prune to these N:M patterns (e.g. 2:4)")
    p.add_argument("--formats", nargs="+", metavar="FORMAT", default=[],
                   help="also solve these number formats side by side at equal bits per "
                   "weight (exact bound, best found, practical methods), e.g. int4 "
                   "int4-asym-g128 fp4-e2m1-g32 nf4-g64 int4+2:4 (see docs/formats.md)")
    p.add_argument("--format-methods", nargs="+", metavar="M", default=None,
                   help="levels methods for --formats (default: exact rtn gptq wanda "
                   "prune-gptq sparsegpt; the pruning ones run on +N:M formats only)")
    p.add_argument("--format-accounting", choices=SPARSE_ACCOUNTINGS, default="hardware",
                   help="how --formats charges sparsity positions: hardware (N:M index per "
                   "kept value, bitmask otherwise; default), bitmask, entropy, paper (free)")
    p.add_argument("--format-scale", choices=SCALE_METHODS, default="mse",
                   help="scale rule of the --formats levels (default mse)")
    p.add_argument("--time-limit", type=float, default=d.time_limit, metavar="SEC",
                   help=f"per-problem limit for each solve (default {d.time_limit}); bounds "
                   "stay valid on time-out; 0: none")
    p.add_argument("--node-limit", type=int, default=None, metavar="N",
                   help="stop each exact solve after N search nodes instead of at the time "
                   "limit: certified figures reproducible on any machine, however loaded "
                   "(recorded in the store and the report; heuristics then run without a "
                   "time limit, general solvers keep --time-limit)")
    p.add_argument("--db", default="pqbound-results.sqlite", metavar="FILE",
                   help="SQLite results store (default pqbound-results.sqlite); resumed if it "
                   "holds this run")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write the Markdown/HTML report with plots to DIR")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: all cores; 1: in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="send the tasks to a Dask scheduler (tcp://host:port)")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="exact",
                   help="exact (default: the layer's real stride/padding/dilation, no box) or "
                   "paper (Kuzmin et al.: 64 images, kernel-only unfold, opt-dim 32, box "
                   "±2·max|w0|)")
    p.add_argument("--accounting", choices=ACCOUNTINGS, default="paper",
                   help="equal-size rule: paper (density b/16, mask free), bitmask "
                   "((b−1)/16), corrected ((1 − zero fraction)·b/16)")
    p.add_argument("--samples", type=int, default=d.samples, metavar="N",
                   help=f"calibration images / sentences (default {d.samples}; paper: 64)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for data, channel and chunk "
                   "samples")
    p.add_argument("--no-whole-layer", action="store_true",
                   help="skip the whole-channel certified bounds")
    p.add_argument("--no-direct", action="store_true",
                   help="skip the time-limited certified solve of each whole channel (its "
                   "bound joins the block-split bound; its solution the stitched ones)")
    p.add_argument("--split", choices=CONSTRUCTIONS, default="auto",
                   help="block-split construction for whole-channel bounds (default auto)")
    from ..scale_choice import SCALE_RULES

    p.add_argument("--scale-rule", choices=SCALE_RULES, default=d.scale_rule,
                   help=f"quantization scales (default {d.scale_rule}: per channel, least "
                   "output error of round-to-nearest; mse-tensor is the paper's)")
    p.add_argument("--no-paper-scale", action="store_true",
                   help="do not solve the paper's per-tensor MSE scale beside the rule's")
    p.add_argument("--scale-range", type=float, nargs=2, metavar=("LO", "HI"),
                   default=list(d.scale_range),
                   help="bound quantization over every scale in [LO, HI]× the min-max scale "
                   f"(default {d.scale_range[0]:g} {d.scale_range[1]:g}) on the "
                   "--scale-range-layer layers")
    p.add_argument("--scale-range-layer", action="append", dest="scale_range_layers",
                   metavar="NAME", help="a layer for the scale-range bound (repeatable; "
                   "default: the model's stem layer)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    g.add_argument("--json", action="store_true", help="print the summary as JSON, no bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from ..compare.settings import CompareConfig, parse_methods

    kw: dict[str, Any] = {}
    if args.methods:
        kw["quant_methods"], kw["prune_methods"] = parse_methods(args.methods)
    return CompareConfig(
        model=args.model,
        layers=args.layers,
        bits=tuple(args.bits),
        opt_dim=args.opt_dim or None,
        channels=None if args.all_channels else args.channels,
        max_chunks=None if args.all_chunks else args.chunks,
        nm=tuple(parse_nm(x) for x in args.nm),
        time_limit=args.time_limit or None,
        node_limit=args.node_limit,
        protocol=args.protocol,
        accounting=args.accounting,
        samples=args.samples,
        seed=args.seed,
        whole_layer=not args.no_whole_layer,
        whole_direct=not args.no_direct,
        construction=args.split,
        images=args.images,
        text=args.text,
        formats=tuple(args.formats),
        format_methods=tuple(args.format_methods or ()),
        format_accounting=args.format_accounting,
        format_scale=args.format_scale,
        scale_rule=args.scale_rule,
        paper_scale=not args.no_paper_scale,
        scale_range=tuple(args.scale_range),
        scale_range_layers=(None if args.scale_range_layers is None
                            else tuple(args.scale_range_layers)),
        **kw,
    )


def run(args: argparse.Namespace) -> int:
    from ..compare.run import run_compare
    from ..files import cleanup_on_failure

    cfg = config_from_args(args)
    if getattr(args, "all_layers", False):
        from ..export import list_layers

        cfg.layers = [info.name for info in list_layers(args.model, weights=args.weights)]
    cfg.resolved()  # bad settings (an unknown format, …) fail here: nothing loaded or written
    model, inputs = _model_and_calibration(args, cfg)
    try:
        # A failure leaves no new empty store nor report folder (a store with rows is kept).
        with cleanup_on_failure(folders=[args.report], stores=[args.db]):
            summary = run_compare(model, config=cfg, db=args.db, report=args.report,
                                  workers=args.workers, scheduler=args.scheduler,
                                  inputs=inputs, progress=not (args.quiet or args.json))
    except KeyboardInterrupt:
        if not Path(args.db).exists():
            print("pqbound: interrupted before any problem was stored", file=sys.stderr)
            return 130
        print(f"pqbound: interrupted; every finished problem is stored in {args.db}: run the "
              "same command again to resume", file=sys.stderr)
        return 130
    if args.json:
        json.dump(_jsonable(summary.to_dict()), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(summary.text())
        print(f"\n{summary.tasks} problems ({summary.reused} from the store, {summary.solved} "
              f"solved, "
              + (f"{summary.shared} by another run at once, " if summary.shared else "")
              + f"{summary.errors} errors) in {summary.seconds:.1f} s; store {summary.db}"
              f" (run {summary.run_id})")
        if summary.report:
            print(f"report: {summary.report}")
    return 1 if summary.errors else 0


def _model_and_calibration(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any]:
    """What :func:`run_compare` gets: a built-in name as is (the run exports it, with
    ``cfg.images`` / ``cfg.text``), or else the resolved model and its calibration batches
    (``--weights``, ``--inputs``, ``--max-length``, ``hf:`` and ``module:factory`` models);
    ``cfg`` is updated in place (the model's recorded name, a built-in's default layers)."""
    from layers.models import MODELS

    from ..compare.settings import DEFAULT_LAYERS
    from ..export import calibration, resolve

    if (args.model in MODELS and args.weights is None and args.inputs is None
            and args.max_length == DEFAULT_MAX_LENGTH):
        return args.model, None
    loaded = resolve(args.model, weights=args.weights)
    cfg.model = loaded.name
    if not cfg.layers:
        if not loaded.builtin:
            raise ProblemError(f"no default layer set for model {loaded.name!r}: pass --layer "
                               f"NAME (`pqbound layers --model {args.model}` lists them)")
        cfg.layers = list(DEFAULT_LAYERS[loaded.name])
    calib = calibration(loaded, samples=cfg.resolved().samples, batch_size=cfg.batch_size,
                        seed=cfg.seed, images=cfg.images, text=cfg.text, inputs=args.inputs,
                        max_length=args.max_length)
    cfg.images = cfg.text = None  # given as batches; their source is in every problem's meta
    return loaded, calib


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
