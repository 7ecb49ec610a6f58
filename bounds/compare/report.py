"""The report: Markdown + HTML with the per-layer tables and plots, CSV/JSON of the rows.

Built from the results store alone (``pqbound report --db results.sqlite --out DIR``), so it can
be rebuilt at any time, also while a run is still going or after it was interrupted (missing
figures show as "—"). Files written to ``out``::

    report.md, report.html      settings at the top, then one section per layer
    layer-<name>.png            the per-layer figure (SQNR vs bits, certified ranges)
    formats-<name>.png          with --formats: the format frontier (SQNR vs bits per weight)
    gaps.png, times.png         method gaps to the proved ceiling; solve-time distributions
    rows.csv                    every row of the run (without the solutions)
    rows.json                   every row of the run, solutions included
    verdicts.json               per layer and compression: the verdicts with their conditions,
                                the paper's-scale verdict, the scale-range bound, sensitivity
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from solvers.problem import ProblemError

from ..scale_choice import PAPER_RULE, RULE_TEXT
from . import plots, tables
from .store import COLUMNS, ResultStore

Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"table"|"img"|"list"|"pre", payload)


def build_report(db: str | os.PathLike[str], out: str | os.PathLike[str], *,
                 run_id: str | None = None) -> Path:
    """Write the report of run ``run_id`` (default: the latest) in ``db`` to folder ``out``.

    Returns the path of ``report.md``.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProblemError(f"cannot create report folder {out}: {exc}") from None
    with ResultStore(db, readonly=True) as store:
        run = store.run(run_id)
        rows = store.rows(run["run_id"], solutions=True)
    settings = run["settings"]
    layers = tables.layer_tables(rows, settings)
    blocks = _blocks(run, layers, rows, out)
    (out / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(_html(blocks, settings), encoding="utf-8")
    export_rows(rows, out)
    with open(out / "verdicts.json", "w", encoding="utf-8") as fh:
        json.dump(verdicts_json(layers), fh, indent=1, default=str, allow_nan=True)
    return out / "report.md"


def verdicts_json(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per layer and compression of the chunk problems: the verdict with its conditions, the
    verdict at the paper's scale, the scale-range bound (with the solutions' ``weights`` in
    ``rows.json``, scope ``range``) and the sensitivity."""
    out = []
    for e in layers:
        for ln in e["scopes"].get("chunk", []):
            pap = ln.get("paper")
            out.append({"layer": e["layer"], "compression": ln["compression"],
                        "verdict": ln["verdict"],
                        "paper_scale_verdict": pap["verdict"] if pap else None,
                        "scale_range": ln.get("range"), "sensitivity": ln.get("sensitivity")})
    return out


def export_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """``rows.csv`` (no solutions) and ``rows.json`` (with solutions)."""
    cols = [c for c in COLUMNS if c not in ("weights", "codes", "mask")]
    with open(out / "rows.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            d = dict(r)
            d["info_json"] = json.dumps(d.get("info_json"), sort_keys=True)
            w.writerow(d)
    with open(out / "rows.json", "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=0, default=str, allow_nan=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _blocks(run: dict[str, Any], layers: list[dict[str, Any]], rows: list[dict[str, Any]],
            out: Path) -> list[Block]:
    s = run["settings"]
    v = run["versions"]
    summ = run.get("summary") or {}
    proto = s.get("protocol_detail", {})
    b: list[Block] = [("h1", f"pqbound compare — {s.get('model')}")]
    b.append(("p", f"Run `{run['run_id']}`, started {run['created']}, last updated "
                   f"{run['updated']}; report built "
                   f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}."
                   + ("" if summ else " **The run has not finished: figures may be missing.**")))
    b.append(("h2", "Protocol and settings"))
    meths_q = ", ".join(s.get("quant_methods", []))
    meths_p = ", ".join(s.get("prune_methods", []))
    b.append(("table", (["setting", "value"], [
        ["protocol", f"**{s.get('protocol')}** — {proto.get('description', '')}"],
        ["model", str(s.get("model"))],
        ["layers", ", ".join(s.get("layer_problems", {}))],
        ["calibration", f"{s.get('samples')} samples, seed {s.get('seed')}"
                        + (f", images {s['images']}" if s.get("images") else "")
                        + (f", text {s['text']}" if s.get("text") else "")],
        ["weights", "FP16 (converted to float64 for the math)"
                    if not proto.get("full_precision") else "full precision"],
        ["quantization scale", _rule_text(s)],
        ["bits", ", ".join(str(x) for x in s.get("bits", []))],
        ["accounting", _accounting_text(s.get("accounting"))],
        ["N:M patterns", ", ".join(s.get("nm", [])) or "none"],
        ["pruning box", "none" if s.get("box_factor") is None
                        else f"|w_i| ≤ {s['box_factor']}·max|w0| (per problem)"],
        ["chunks (opt-dim)", f"{s.get('opt_dim')} inputs per chunk; at most "
                             f"{s.get('max_chunks') or 'all'} chunks per layer"],
        ["channels", f"{s.get('channels') or 'all'} per layer (seeded sample of live channels)"],
        ["time limit", f"{s.get('time_limit')} s per problem (bounds stay valid on time-out)"
         if s.get("node_limit") is None else f"node limit {s['node_limit']} per exact solve, "
         f"no time limit: reproducible figures (general solvers: {s.get('time_limit')} s)"],
        ["quantization methods", meths_q],
        ["pruning methods", meths_p],
        *([["formats", f"{', '.join(s['formats'])}; methods {', '.join(s['format_methods'])}"
                       f"; {s.get('format_accounting')} accounting"]] if s.get("formats") else []),
        ["whole-layer split", f"{s.get('construction')} (see docs/compare.md)"
                              if s.get("whole_layer") else "off"],
        ["executor", json.dumps(s.get("executor", {}))],
        ["last invocation", json.dumps(summ) if summ else "unfinished"],
        ["versions", ", ".join(f"{k} {val}" for k, val in v.items())],
    ])))
    b.append(("h2", "How to read this"))
    b.append(("list", [
        "SQNR = 10·log10(Σ‖Xw0‖² / Σ‖X(w − w0)‖²) in dB over the layer's problems in the run "
        "(higher is better).",
        "**≤ x** is a *certified ceiling*: computed from proved lower bounds on the error, no "
        "solution of that kind can exceed it. Plain numbers are *achieved* by a returned "
        "solution. When ceiling and best agree, the optimum is known. **no bound**: no lower "
        "bound above 0 was proved (e.g. fewer calibration rows than inputs make H singular).",
        "**Chunk problems** are the paper's quantity: each opt-dim chunk of a channel is its own "
        "problem and the cross terms between chunks are dropped, so they are *not* figures of "
        "the layer. **Whole channel** figures are for the full output channel: stitched chunk "
        "solutions evaluated on the full H, and a certified bound from the block split "
        "H = B + (H − B), B block-diagonal, H − B ⪰ 0. Never compare a chunk figure with a "
        "whole-channel one.",
        "A verdict is **proved** when the winner's achieved error is below the loser's "
        "certified lower bound, otherwise only observed.",
        "Every verdict holds **under its conditions**, stated per layer: the scale rule and the "
        "scales, the sampled channels and chunks (k of N) and the calibration set. A pruning "
        "win is proved *for every scale* of the range only where quantization's certified "
        "bound over every scale in that range (per channel or per tensor) is above pruning's "
        "error; otherwise it is proved at the rule's scales only. The paper's scale rule (one "
        "per-tensor weight-MSE scale) is solved beside the run's own. The sensitivity line "
        "counts the sampled channels whose own winner differs, with a Clopper–Pearson interval "
        "on the share of the layer's channels where quantization wins.",
        "Status marks: † some problems stopped at the time limit (number is still achieved / "
        "the bound still valid); ! errors or missing rows (figure incomplete).",
    ]))
    for e in layers:
        b.extend(_layer_blocks(e, s, out))
    g = plots.plot_gaps(layers, out / "gaps.png")
    t = plots.plot_times(rows, out / "times.png")
    if g or t:
        b.append(("h2", "Methods against the bounds, and solve times"))
        if g:
            b.append(("img", ("gaps.png", "dB below the certified ceiling per method")))
        if t:
            b.append(("img", ("times.png", "solve-time distributions")))
    b.append(("h2", "Data"))
    b.append(("p", "Every stored row of this run: `rows.csv` (without solutions), `rows.json` "
                   "(with each solution's weights, codes and mask)."))
    return b


def _rule_text(s: dict[str, Any]) -> str:
    rule = s.get("scale_rule") or PAPER_RULE
    text = f"**{rule}**: {RULE_TEXT.get(rule, rule)}"
    if rule != PAPER_RULE and s.get("paper_scale"):
        text += f"; beside it the paper's rule ({PAPER_RULE})"
    rng = s.get("scale_range")
    if rng and s.get("scale_range_layers"):
        text += (f"; certified over every scale in [{rng[0]:g}, {rng[1]:g}]× the min-max scale "
                 f"on {', '.join(s['scale_range_layers'])}")
    return text


def _accounting_text(acc: str | None) -> str:
    return {
        "paper": "paper: pruning density b/16, mask not charged",
        "bitmask": "bitmask: pruning charged 1 bit/weight, density (b − 1)/16",
        "corrected": "corrected: density (1 − zero fraction of RTN codes)·b/16",
    }.get(acc or "", str(acc))


def _mark(f: dict[str, Any]) -> str:
    st = f.get("status", {})
    if not f.get("complete", True) or st.get("error") or st.get("missing"):
        return " !"
    if any(k in st for k in ("time_limit", "node_limit", "gap_limit")):
        return " †"
    return ""


def _layer_blocks(e: dict[str, Any], s: dict[str, Any], out: Path) -> list[Block]:
    b: list[Block] = [("h2", f"{e['layer']}")]
    b.append(("p", f"n = {e['n']} inputs per channel; channels {e['channels']} of "
                   f"{e['channels_total']}; {e['chunks']} chunk(s), in this run "
                   f"{e['chunk_ids']}. **Verdict (chunk problems):** {e['summary']}."
                   + (f" Note: {e['note']}." if e.get("note") else "")))
    b.append(("p", "**Conditions:** " + tables.conditions_text(e["conditions"]) + "."))
    b.extend(_robustness_blocks(e))
    if e["scopes"]:
        png = plots.plot_layer(e, out / f"layer-{_slug(e['layer'])}.png", s)
        b.append(("img", (png.name, f"SQNR vs bits for {e['layer']}")))
    qm = s.get("quant_methods", [])
    pm = s.get("prune_methods", [])
    for scope, title in (("chunk", "Chunk problems (comparable with the paper)"),
                         ("whole", "Whole output channel (certified, beyond the paper)")):
        lines = e["scopes"].get(scope)
        if not lines:
            continue
        b.append(("h3", f"{title} — SQNR in dB"))
        if scope == "chunk":
            head = (["compression", "prune density"] + ["quant ≤ (proved)"]
                    + [f"quant {m}" for m in qm] + ["prune ≤ (proved)"]
                    + [f"prune {m}" for m in pm] + ["verdict"])
        else:
            head = ["compression", "quant ≤ (proved)", "quant ≤ split", "quant ≤ direct",
                    "quant best", "prune ≤ (proved)", "prune ≤ split", "prune ≤ direct",
                    "prune best", "verdict", "split"]
        body = []
        for ln in lines:
            q, p = ln["quant"] or {}, ln["prune"] or {}
            comp = ln["compression"]
            dens = e.get("densities", {}).get(str(ln["bits"])) if ln["bits"] else None
            if comp.startswith("nm"):
                dens_s = f"{comp[2:]} pattern"
            else:
                dens_s = "—" if dens is None else f"{dens:.4g}"
            if scope == "chunk":
                row = [comp, dens_s, tables.fmt_db(q.get("sqnr_ceiling_db"), True)]
                row += [_method_cell(q, m) for m in qm]
                row += [tables.fmt_db(p.get("sqnr_ceiling_db"), True)]
                row += [_method_cell(p, m) for m in pm]
                row += [_verdict_cell(ln["verdict"])]
            else:
                row = [comp]
                for f in (q, p):
                    row += [tables.fmt_db(f.get("sqnr_ceiling_db"), True),
                            _ceiling_cell(f, "block-split bound"), _direct_cell(f),
                            tables.fmt_db(f.get("best_sqnr_db"))]
                row += [_verdict_cell(ln["verdict"]), _split_text(s, e)]
            body.append(row)
        b.append(("table", (head, body)))
    if e.get("formats"):
        b.extend(_format_blocks(e, s, out))
    return b


def _format_blocks(e: dict[str, Any], s: dict[str, Any], out: Path) -> list[Block]:
    """``--formats``: the formats by bits per weight and the frontier plot."""
    b: list[Block] = [("h3", "Number formats at equal size (chunk problems) — SQNR in dB")]
    acc = s.get("format_accounting", "hardware")
    b.append(("p", f"Levels from the whole layer's weights ({s.get('format_scale', 'mse')} "
                   f"scale rule); bits per weight include scales, zero points and, for sparse "
                   f"formats, the kept positions under **{acc}** accounting. **≤** is the "
                   f"certified ceiling of the exact level solver; 'best' the best solution "
                   f"found by any method."))
    png = plots.plot_format_frontier(e, out / f"formats-{_slug(e['layer'])}.png", s)
    if png:
        b.append(("img", (png.name, f"format frontier for {e['layer']}")))
    names = sorted({m for ln in e["formats"] if ln["figures"]
                    for m in ln["figures"]["methods"] if m != "exact"})
    head = ["format", "family", "bits/weight", "values + scales + zp + positions", "≤ (proved)",
            "best", *names]
    body = []
    for ln in e["formats"]:
        f, st = ln["figures"] or {}, ln["storage"]
        body.append([ln["format"], ln["family"], f"{ln['bits_per_weight']:.4g}",
                     f"{st['values']:.4g} + {st['scales']:.3g} + {st['zero_points']:.3g} + "
                     f"{st['positions']:.3g}",
                     tables.fmt_db(f.get("sqnr_ceiling_db"), True)
                     + (_mark(f["methods"]["exact"]) if "exact" in f.get("methods", {}) else ""),
                     tables.fmt_db(f.get("best_sqnr_db")),
                     *[_method_cell(f, m) for m in names]])
    b.append(("table", (head, body)))
    return b


def _robustness_blocks(e: dict[str, Any]) -> list[Block]:
    """Per compression: the scales, the paper's rule beside, the bound over every scale of the
    range, the verdict with its conditions, and the sensitivity line (chunk problems)."""
    lines = [ln for ln in e["scopes"].get("chunk", []) if ln["bits"] is not None]
    if not lines:
        return []
    head = ["bits", "scales (run's rule)", "quant ≤ / best at the paper's scale",
            "verdict at the paper's scale",
            "quant over every scale of the range: ≤ per channel / per tensor",
            "verdict (conditions)", "sensitivity"]
    body = []
    for ln in lines:
        v = ln["verdict"]
        sc = (v.get("conditions") or {}).get("scales") or {}
        pap = ln.get("paper")
        if pap:
            pq = pap["quant"]
            paper_cell = (f"{tables.fmt_db(pq.get('sqnr_ceiling_db'), True)} / "
                          f"{tables.fmt_db(pq.get('best_sqnr_db'))} (s = {pap['scale']:.4g})"
                          if pap.get("scale") is not None else "—")
            paper_v = pap["verdict"]["text"]
        else:
            paper_cell, paper_v = "—", "—"
        rng = ln.get("range") or {}
        rng_cell = " / ".join(
            tables.fmt_db(rng[g]["ceiling_db"], True) + ("" if rng[g]["status"] in (
                "converged", "above_target", "below_target") else " †")
            + f" (best found {tables.fmt_db(rng[g]['best_db'])})"
            if g in rng else "—" for g in ("channel", "tensor")) if rng else (
            "not needed (quantization wins at the rule's scales)"
            if v["winner"] == "quantization" else "not computed")
        sens = ln.get("sensitivity")
        body.append([str(ln["bits"]), ", ".join(f"ch {c}: {x:.4g}" for c, x in sc.items()),
                     paper_cell, paper_v, rng_cell, v["text"], sens["text"] if sens else "—"])
    return [("h3", "Verdicts, their conditions and their robustness (chunk problems)"),
            ("table", (head, body))]


def _split_text(s: dict[str, Any], e: dict[str, Any]) -> str:
    info = s.get("layer_problems", {}).get(e["layer"], {}).get("splits", {})
    if not info:
        return "single chunk (B = H)"
    cons = sorted({v["construction"] for v in info.values()})
    return ", ".join(cons)


def _ceiling_cell(f: dict[str, Any], m: str) -> str:
    mf = f.get("methods", {}).get(m) if f else None
    return tables.fmt_db(mf.get("ceiling_db"), True) if mf else "—"


def _direct_cell(f: dict[str, Any]) -> str:
    if not f:
        return "—"
    direct = [(m, mf) for m, mf in f.get("methods", {}).items()
              if not m.startswith("stitched") and m != "block-split bound"]
    cells = [tables.fmt_db(mf.get("ceiling_db"), True) + _mark(mf) for _m, mf in direct
             if mf.get("ceiling_db") is not None]
    return ", ".join(cells) if cells else "—"


def _method_cell(f: dict[str, Any], m: str) -> str:
    mf = f.get("methods", {}).get(m) if f else None
    if not mf:
        return "—"
    if mf["sqnr_db"] is None:
        return "—" + _mark(mf)
    return tables.fmt_db(mf["sqnr_db"]) + _mark(mf)


def _verdict_cell(v: dict[str, Any]) -> str:
    if v["winner"] in (None, "tie"):
        return v["text"]
    if v.get("every_scale"):
        return f"**{v['winner']}** (proved for every per-{v['every_scale']} scale in the range)"
    rule = (v.get("conditions") or {}).get("scale_rule")
    at = f" at the {rule} scales" if rule else ""
    return f"**{v['winner']}** (proved{at})" if v["proved"] else f"{v['winner']} (observed{at})"


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _markdown(blocks: list[Block]) -> str:
    out = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + payload)
        elif kind == "p":
            out.append(payload)
        elif kind == "list":
            out.append("\n".join(f"* {x}" for x in payload))
        elif kind == "img":
            out.append(f"![{payload[1]}]({payload[0]})")
        elif kind == "table":
            head, body = payload
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"
                      for r in body]
            out.append("\n".join(lines))
        elif kind == "pre":
            out.append(f"```\n{payload}\n```")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return t


def _html(blocks: list[Block], settings: dict[str, Any]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>pqbound compare — {html.escape(str(settings.get('model')))}</title>",
             "<style>body{font-family:sans-serif;max-width:1300px;margin:2em auto;"
             "line-height:1.4}table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
             "td:first-child,th{text-align:left}th{background:#eef}img{max-width:100%}"
             "code{background:#f4f4f4}</style></head><body>"]
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{_inline(payload)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline(payload)}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in payload) + "</ul>")
        elif kind == "img":
            parts.append(f"<p><img src='{html.escape(payload[0])}' "
                         f"alt='{html.escape(payload[1])}'></p>")
        elif kind == "table":
            head, body = payload
            parts.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head)
                         + "</tr>")
            for r in body:
                parts.append("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r)
                             + "</tr>")
            parts.append("</table>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(payload)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
