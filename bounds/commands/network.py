"""``pqbound network``: compress a whole model with one method at one size (or ``--sweep``)."""

from __future__ import annotations

import argparse
import sys

from solvers.problem import ProblemError

from ._model_options import add_model_options

EPILOG = """\
examples:
  pqbound network --model mobilenet_v2 --method gptq --bits 4 --out net-gptq4
  pqbound network --model mobilenet_v2 --method sparsegpt --bits 4 --out net-sgpt25
  pqbound network --model mobilenet_v2 --method magnitude --density 0.5 --mode parallel --out d
  pqbound network --model mobilenet_v2 --method quant:exact --bits 4 --time-limit 1 --out ex4
  pqbound network --model minilm --method gptq --bits 4 --out minilm-gptq4
  pqbound network --model mobilenet_v2 --method rtn --bits 8 --images ~/imagenet/val \\
      --labels val_labels.txt --out rtn8
  pqbound network --model mobilenet_v2 --sweep --out sweep

Writes DIR/state_dict.pt (load_state_dict(strict=True) into the same model), DIR/summary.json
(settings, the data split, per-layer errors, end-to-end figures with 95 % bootstrap intervals)
and the per-layer rows in DIR/results.sqlite (or --db): a killed run started again resumes.
Docs: docs/network.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "network",
        help="compress every conv/linear layer of a model and measure the whole network",
        description="Compress every conv and linear layer (or --layer / --skip) with one method\n"
        "at one size, layer by layer (sequential: each layer sees the compressed\n"
        "predecessors' outputs; parallel: the original's), then compare the network with the\n"
        "original on held-out data. --sweep runs every method over a range of sizes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    p.add_argument("--method", default=None, metavar="METHOD",
                   help="rtn, gptq, adaround, obq, quant:exact (quantization); magnitude, "
                   "magnitude-refit, obs, sparsegpt, prune:exact (pruning); required unless "
                   "--sweep")
    p.add_argument("--bits", type=int, default=4,
                   help="quantization bits, 1..16; pruning methods keep the equal-size density "
                   "of these bits (paper accounting: bits/16) unless --density/--nm (default 4)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--density", type=float, default=None, metavar="D",
                   help="pruning: keep this fraction of each row's weights, in [0, 1]")
    g.add_argument("--nm", default=None, metavar="N:M",
                   help="pruning: at most N nonzero in each group of M consecutive inputs")
    p.add_argument("--mode", choices=("sequential", "parallel"), default=None,
                   help="sequential (default of a single run): each layer's H from the "
                   "compressed earlier layers' outputs; parallel (default of --sweep: one "
                   "capture serves every run): from the original network")
    p.add_argument("--layer", action="append", metavar="NAME", default=None,
                   help="compress only this layer (repeatable; default: every conv/linear)")
    p.add_argument("--skip", action="append", metavar="NAME", default=[],
                   help="leave this layer uncompressed (repeatable)")
    p.add_argument("--opt-dim", type=int, default=None, metavar="K",
                   help="split each weight row into chunks of K inputs, each its own problem "
                   "(default: each whole output channel is one problem)")
    p.add_argument("--scale", choices=("channel", "tensor"), default="channel",
                   help="quantization scale: one MSE scale per output channel (default) or per "
                   "layer (the paper's per-tensor protocol)")
    p.add_argument("--accounting", choices=("paper", "bitmask", "corrected"), default="paper",
                   help="equal-size rule for pruning at --bits (default paper: density bits/16)")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="seconds per problem for certified methods (default 0.2; their best "
                   "solution is kept)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. damp=0.01 (repeatable)")
    p.add_argument("--samples", type=int, default=64,
                   help="calibration samples (default 64)")
    p.add_argument("--heldout", type=int, default=64,
                   help="held-out samples for the end-to-end figures (default 64)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="labels of the --images folder ('NAME LABEL' or 'LABEL' per line): "
                   "adds real top-1 accuracy on the held-out images")
    p.add_argument("--resamples", type=int, default=1000,
                   help="bootstrap resamples of the held-out samples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops and the bootstrap")
    p.add_argument("--batch-size", type=int, default=16, help="samples per forward pass")
    p.add_argument("--full-precision", action="store_true",
                   help="keep float32 weights (default: rounded through float16, as the paper)")
    p.add_argument("--sweep", action="store_true",
                   help="every method over the sweep sizes; writes DIR/report.md and plots")
    p.add_argument("--sweep-methods", default=None, metavar="LIST",
                   help="comma-separated methods of the sweep (default rtn,gptq,magnitude,"
                   "sparsegpt, the fast ones; 'all' adds adaround, obq, quant:exact, "
                   "magnitude-refit, obs, prune:exact)")
    p.add_argument("--sweep-bits", default=None, metavar="LIST",
                   help="comma-separated bit widths of the sweep, pruning at the equal-size "
                   "densities (default 2,3,4,6,8: with the default methods, mode parallel, 64 + "
                   "64 samples and --threads 1, 20 runs; MobileNetV2: 293 s of CPU, 9.5 min "
                   "wall on 2 cores at load 6)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="threads of torch, BLAS and numba (default 1: on a shared machine more "
                   "threads than free cores slow every step several-fold; give 2 on an idle "
                   "2-core machine)")
    a = p.add_argument_group("allocation across layers (docs/network.md)")
    a.add_argument("--allocate", action="store_true",
                   help="per-layer bit widths (pruning: densities) under --budget-bits, against "
                        "uniform and a Hessian-trace heuristic; writes DIR/allocation.json")
    a.add_argument("--budget-bits", type=float, default=None, metavar="X",
                   help="average bits per weight over the chosen layers (with --allocate)")
    a.add_argument("--allocate-bits", default="2,3,4,6,8", metavar="LIST",
                   help="the bit widths each layer chooses from (default 2,3,4,6,8)")
    a.add_argument("--allocate-bounds", default=None, metavar="METHOD",
                   help="also solve every layer and size with this certified method (quant:exact "
                   "or prune:exact, under --time-limit): the curves then hold the better "
                   "solution and its proved bound, and the allocation a certified floor")
    a.add_argument("--allocate-target", choices=("error", "bound"), default="error",
                   help="minimise the summed achieved errors (default) or certified bounds")
    f = p.add_argument_group("fine-tuning (docs/network.md)")
    f.add_argument("--finetune", type=int, default=None, metavar="STEPS",
                   help="QAT (LSQ) vs gradual magnitude pruning by distillation, STEPS each, "
                        "from the best post-training solutions; writes DIR/finetune.json")
    f.add_argument("--finetune-bits", default=None, metavar="LIST",
                   help="the sizes to fine-tune at (default: --bits)")
    f.add_argument("--finetune-methods", default="gptq,sparsegpt", metavar="QUANT,PRUNE",
                   help="the post-training methods to start from (default gptq,sparsegpt)")
    f.add_argument("--finetune-size", type=int, default=128, metavar="PX",
                   help="training image size (default 128; evaluation at the model's own)")
    f.add_argument("--finetune-lr", type=float, default=1e-4, metavar="LR",
                   help="Adam learning rate (default 1e-4, cosine-decayed)")
    p.add_argument("--db", default=None, metavar="FILE",
                   help="results store (default DIR/results.sqlite)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, method: str):
    from ..channel_solve import parse_options
    from ..network.settings import NetworkConfig

    return NetworkConfig(
        model=args.model, method=method, bits=args.bits, density=args.density, nm=args.nm,
        mode=args.mode or ("parallel" if args.sweep else "sequential"), layers=args.layer,
        skip=args.skip, opt_dim=args.opt_dim,
        samples=args.samples, heldout=args.heldout, seed=args.seed, batch_size=args.batch_size,
        scale=args.scale, accounting=args.accounting, time_limit=args.time_limit,
        full_precision=args.full_precision, weights=args.weights, images=args.images,
        text=args.text, inputs=args.inputs, labels=args.labels, max_length=args.max_length,
        resamples=args.resamples, options=parse_options(args.option),
    )


def run(args: argparse.Namespace) -> int:
    from ..network.run import limit_threads

    with limit_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..export import check_writable

    progress = not args.quiet and sys.stderr.isatty()
    if args.sweep:
        from ..network.sweep import run_sweep, sweep_plan

        plan = sweep_plan(_config(args, args.method or "gptq"), methods=args.sweep_methods,
                          bits=args.sweep_bits)
        check_writable(args.out)
        report = run_sweep(plan, args.out, db=args.db, progress=progress)
        print(f"sweep: {len(plan)} runs, report {report}")
        return 0
    if args.allocate and args.finetune is not None:
        raise ProblemError("give --allocate or --finetune, not both")
    if args.allocate:
        return _allocate(args, progress)
    if args.finetune is not None:
        return _finetune(args, progress)
    if args.budget_bits is not None:
        raise ProblemError("--budget-bits needs --allocate")
    if args.allocate_bounds is not None:
        raise ProblemError("--allocate-bounds needs --allocate")
    if args.method is None:
        raise ProblemError("give --method (or --sweep)")
    from ..network.run import run_network

    cfg = _config(args, args.method).checked()
    check_writable(args.out)  # fail before the long part
    s = run_network(cfg, args.out, db=args.db, progress=progress)
    print(f"{s['model']}: {s['method']} {s['compression']} ({s['bits_per_weight']:g} bits per "
          f"weight), {s['layer_count']} layers ({len(s['resumed_layers'])} resumed), "
          f"{s['seconds']:.1f} s -> {args.out}")
    for name, fig in s["metrics"].items():
        if isinstance(fig, dict):
            lo, hi = fig["ci95"]
            print(f"  {name:<24} {fig['value']:10.4f}   95% CI [{lo:.4f}, {hi:.4f}]")
    return 0


def _allocate(args: argparse.Namespace, progress: bool) -> int:
    from ..network.allocate import run_allocation

    if args.budget_bits is None:
        raise ProblemError("--allocate needs --budget-bits X (average bits per weight)")
    options = _int_list(args.allocate_bits, "--allocate-bits")
    cfg = _config(args, args.method or "gptq")
    doc = run_allocation(cfg, args.out, budget=args.budget_bits, options=options,
                         target=args.allocate_target, db=args.db, progress=progress,
                         bounds_from=args.allocate_bounds)
    a = doc["allocation"]
    print(f"{doc['model']}: {doc['method']} allocated within {doc['budget_bits_per_weight']:g} "
          f"bits per weight ({a['bits_per_weight']:.3f} used), summed normalised error "
          f"{a['summed_error']:.4g} (certified lower bound {a['lower_bound']:.4g}), "
          f"{doc['seconds']:.1f} s -> {args.out}")
    names = [k for k, v in doc["networks"][0]["metrics"].items() if isinstance(v, dict)]
    print(f"  {'network':<28}{'bits/w':>8}{'sum err':>10}" + "".join(f"{n:>16}" for n in names))
    for net in doc["networks"]:
        print(f"  {net['name']:<28}{net['bits_per_weight']:8.3f}{net['summed_error']:10.4g}"
              + "".join(f"{net['metrics'][n]['value']:16.4f}" for n in names))
    return 0


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ProblemError(f"{flag} must be comma-separated integers, got {text!r}") from None


def _finetune(args: argparse.Namespace, progress: bool) -> int:
    from ..network.finetune import run_finetune

    methods = tuple(m.strip() for m in args.finetune_methods.split(","))
    if len(methods) != 2:
        raise ProblemError(f"--finetune-methods takes QUANT,PRUNE, got {args.finetune_methods!r}")
    bits = _int_list(args.finetune_bits, "--finetune-bits") if args.finetune_bits else None
    cfg = _config(args, args.method or methods[0])
    doc = run_finetune(cfg, args.out, steps=args.finetune, bits=bits, methods=methods,
                       size=args.finetune_size, lr=args.finetune_lr, db=args.db,
                       progress=progress)
    print(f"{doc['model']}: fine-tuned {doc['steps']} steps per run, {doc['seconds']:.1f} s "
          f"-> {args.out}")
    names = [k for k, v in doc["runs"][0]["after"].items() if isinstance(v, dict)]
    print(f"  {'run':<34}" + "".join(f"{n + ' before/after':>34}" for n in names))
    for r in doc["runs"]:
        print(f"  {r['method'] + ' ' + r['compression']:<34}" + "".join(
            f"{r['before'][n]['value']:>17.4f}{r['after'][n]['value']:>17.4f}" for n in names))
    return 0
