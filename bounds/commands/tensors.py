"""``pqbound tensors``: pruning vs quantization SQNR on every weight tensor of a model."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

from ._model_options import MODEL_EPILOG, MODEL_HELP

DESCRIPTION = """\
The paper's model-zoo study on weights alone. For every Conv and Linear weight tensor (after
conversion to FP16): the sample excess kurtosis (Fisher, biased); the SQNR of per-tensor
symmetric quantization on the signed grid {-2^(b-1) .. 2^(b-1)-1} with the MSE-optimal scale
(4000-candidate search + polish); the fraction of zeros the quantized tensor has; the SQNR of
magnitude pruning keeping round(n*b/16) weights (equal compression to b bits from FP16); and
the "corrected" pruning SQNR keeping (1 - zero_fraction)*b/16, crediting quantization's zeros.
SQNR = 10*log10(sum w^2 / sum (w - w_hat)^2). See docs/distribution-study.md.

MODEL is a built-in model, hf:PATH, module:factory or file.py:factory (see below; every Conv,
Linear and GPT-2 Conv1D weight of the module), or a PATH to a torch checkpoint (state dict,
{"state_dict": ...}, or a pickled module) or a .safetensors file; from a state dict, every key
'<module>.weight' with 2 to 5 dimensions is analysed (module names containing 'embed' are
skipped).

Examples:
  pqbound tensors --model mobilenet_v2 --bits 2 4 8 --json mnv2.json --plot mnv2.png
  pqbound tensors --model efficientnet_lite0 --table
  pqbound tensors --model hf:~/models/opt-125m --json opt.json

""" + MODEL_EPILOG


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tensors",
        help="weight-tensor study: quantization vs magnitude pruning SQNR against kurtosis",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="MODEL",
                   help=MODEL_HELP + ", or a PATH to a checkpoint / .safetensors file")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="a state dict to load into the model first (strict), e.g. for a "
                   "module:factory model")
    p.add_argument("--bits", type=int, nargs="+", default=None, metavar="B",
                   help="bit widths (default 2 3 4 5 6 7 8); pruning keeps B/16 of the weights")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="write {tensor: {kurtosis, shape, bits: {B: {quant_sqnr_db, "
                        "quant_zero_fraction, prune_sqnr_db, prune_sqnr_corrected_db, scale}}}}; "
                        "rewritten after every tensor (null = infinite SQNR)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the tensors already in the --json FILE of an interrupted run")
    p.add_argument("--plot", metavar="FILE", default=None,
                   help="PNG: SQNR(quant) - SQNR(prune) against kurtosis, one panel per bit width")
    p.add_argument("--table", action="store_true", help="print the per-tensor table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..distribution.weight_tensors import DEFAULT_BITS, TensorResult, analyse_model

    bits = args.bits or list(DEFAULT_BITS)
    done: dict[str, TensorResult] = {}
    if args.resume:
        if not args.json:
            raise ProblemError("--resume needs --json FILE (the file of the interrupted run)")
        done = _read_previous(Path(args.json))

    def save(study) -> None:
        if args.json:
            _write_json(Path(args.json), study.to_dict())

    progress = not args.quiet and sys.stderr.isatty()
    source: Any = args.model
    if args.weights is not None:
        from ..export import resolve

        source = resolve(args.model, weights=args.weights).module
    study = analyse_model(source, bits, progress=progress, done=done, on_tensor=save)
    save(study)
    if args.table:
        print(_table(study, bits))
    for name, why in study.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"{args.model}: {len(study.tensors)} weight tensors (FP16 baseline, per-tensor "
          "MSE scale, signed grid)")
    for row in study.summary():
        print(f"{row['bits']} bits: quantization wins in {row['quant_wins']}/{row['tensors']} "
              f"tensors (vs corrected pruning: {row['quant_wins_corrected']}/{row['tensors']}); "
              f"median SQNR(quant) - SQNR(prune) = {row['median_gap_db']:.2f} dB")
    if args.plot:
        from ..distribution.figures import plot_tensor_study

        plot_tensor_study(study, args.plot, title=str(args.model))
        print(f"plot written to {args.plot}")
    if args.json:
        print(f"JSON written to {args.json}")
    return 0


def _read_previous(path: Path) -> dict:
    from ..distribution.weight_tensors import TensorResult

    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {name: TensorResult.from_dict(name, r) for name, r in doc.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProblemError(f"{path}: cannot resume from this file ({exc})") from exc


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomic write (temp file + rename), strict JSON (no NaN/Infinity)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def _table(study, bits: list[int]) -> str:
    width = max([len(n) for n in study.tensors] + [6])
    head = f"{'tensor':<{width}} {'n':>9} {'kurt':>8} " + " ".join(
        f"{f'{b}b Q/P/Pc':>20}" for b in sorted(bits))
    lines = [head, "-" * len(head)]
    for name, r in study.tensors.items():
        cells = []
        for b in sorted(bits):
            x = r.bits[b]
            cells.append(f"{_fmt(x.quant_sqnr_db)}/{_fmt(x.prune_sqnr_db)}/"
                         f"{_fmt(x.prune_sqnr_corrected_db)}".rjust(20))
        lines.append(f"{name:<{width}} {r.size:>9} {r.kurtosis:>8.2f} " + " ".join(cells))
    lines.append("Q: quantization SQNR, P: pruning SQNR, Pc: pruning crediting quantization's "
                 "zeros (dB)")
    return "\n".join(lines)
