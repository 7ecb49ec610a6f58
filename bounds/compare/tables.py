"""Per-layer figures and verdicts from stored rows (shared by the summary and the report).

Per DESIGN.md, a layer's SQNR is ``10·log10(Σ norm / Σ error)`` with the sums over the run's
problems of that layer: (chunk, channel) pairs for the **chunk** figures (the paper's quantity:
each chunk its own problem, cross terms dropped) and output channels for the **whole-channel**
figures (errors of the stitched solutions on the full ``H``; certified bounds from the block
split). The two are never summed together.

For each kind (quantization, pruning) and compression:

* ``lower_bound``: Σ over problems of the best certified lower bound on that problem (the largest
  among the certified methods' bounds) — a proved floor on the error, shown as an SQNR
  *ceiling* ``≤ x dB``;
* ``best``: Σ over problems of the least error any method reached (a feasible solution per
  problem), shown as an *achieved* SQNR;
* per method: its summed error, SQNR, statuses and time.

Verdict per compression: quantization wins **proved** when its best achieved error is below
pruning's certified lower bound (no pruning can do as well), pruning wins proved in the mirror
case; otherwise the winner is only **observed** (the better of the best achieved errors).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from solvers.result import sqnr_db


def _db(norm: float, err: float | None) -> float | None:
    v = sqnr_db(norm, err)
    return None if v is None else (v if math.isfinite(v) else math.inf)


def _unit(r: dict[str, Any]) -> tuple:
    return (r["chunk"], r["channel"]) if r["scope"] != "whole" else (r["channel"],)


def kind_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of one (layer, scope, kind, compression) group of rows."""
    units: dict[tuple, dict[str, Any]] = defaultdict(dict)
    norms: dict[tuple, float] = {}
    for r in rows:
        u = _unit(r)
        units[u][r["method"]] = r
        if r.get("norm") is not None:
            norms[u] = float(r["norm"])
    norm = float(sum(norms.values()))
    meths: dict[str, Any] = {}
    names = sorted({r["method"] for r in rows})
    for m in names:
        err = 0.0
        lb: float | None = 0.0
        complete = True
        status: Counter = Counter()
        secs = 0.0
        for u in units:
            r = units[u].get(m)
            if r is None or r["status"] == "error" or r["objective"] is None:
                complete = False
                status["missing" if r is None else "error"] += 1
                if r is None or r.get("lower_bound") is None:
                    lb = None
                elif lb is not None:
                    lb += float(r["lower_bound"])
                continue
            err += float(r["objective"])
            if r.get("lower_bound") is None:
                lb = None
            elif lb is not None:
                lb += float(r["lower_bound"])
            status[r["status"]] += 1
            secs += float(r["seconds"] or 0.0)
        meths[m] = {"error": err if complete else None,
                    "sqnr_db": _db(norm, err) if complete else None,
                    "lower_bound": lb, "ceiling_db": _db(norm, lb),
                    "status": dict(status), "seconds": secs, "complete": complete}
    lb_total: float | None = 0.0
    best_total: float | None = 0.0
    proved_optimal = True
    for per in units.values():
        lbs = [float(r["lower_bound"]) for r in per.values()
               if r.get("lower_bound") is not None and r["status"] != "error"]
        objs = [float(r["objective"]) for r in per.values()
                if r.get("objective") is not None and r["status"] != "error"]
        if lbs and lb_total is not None:
            lb_total += max(lbs)
        else:
            lb_total = None
        if objs and best_total is not None:
            best_total += min(objs)
        else:
            best_total = None
        if not (lbs and objs and min(objs) - max(lbs) <= 1e-9 * max(min(objs), 1e-300)):
            proved_optimal = False
    return {
        "norm": norm, "problems": len(units), "methods": meths,
        "lower_bound": lb_total, "sqnr_ceiling_db": _db(norm, lb_total),
        "best_error": best_total, "best_sqnr_db": _db(norm, best_total),
        "optimal": proved_optimal and lb_total is not None,
    }


def verdict(q: dict[str, Any] | None, p: dict[str, Any] | None) -> dict[str, Any]:
    """Who wins at one compression, and whether the bounds prove it."""
    if not q or not p or q["best_error"] is None or p["best_error"] is None:
        return {"winner": None, "proved": False, "text": "incomplete"}
    qb, pb = q["best_error"], p["best_error"]
    qlb, plb = q["lower_bound"], p["lower_bound"]
    if plb is not None and qb < plb:
        return {"winner": "quantization", "proved": True,
                "text": "quantization (proved: its error < pruning's lower bound)"}
    if qlb is not None and pb < qlb:
        return {"winner": "pruning", "proved": True,
                "text": "pruning (proved: its error < quantization's lower bound)"}
    if qb == pb:
        return {"winner": "tie", "proved": False, "text": "tie (observed)"}
    w = "quantization" if qb < pb else "pruning"
    return {"winner": w, "proved": False, "text": f"{w} (observed, not proved)"}


def layer_tables(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer tables (in the settings' layer order) from a run's rows."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["scope"] == "block":
            continue
        groups[(r["layer"], r["scope"], r["compression"], r["kind"])].append(r)
    info = settings.get("layer_problems", {})
    layers = list(info) or sorted({r["layer"] for r in rows})
    out = []
    for layer in layers:
        li = info.get(layer, {})
        entry: dict[str, Any] = {"layer": layer, "n": li.get("n"), "channels": li.get("channels"),
                                 "channels_total": li.get("channels_total"),
                                 "chunks": li.get("chunks"), "chunk_ids": li.get("chunk_ids"),
                                 "whole": li.get("whole"), "note": li.get("note", ""),
                                 "densities": li.get("densities", {}), "scopes": {}}
        for scope in ("chunk", "whole"):
            comps = sorted({c for (ly, s, c, _k) in groups if ly == layer and s == scope},
                           key=_comp_order)
            lines = []
            for comp in comps:
                q = groups.get((layer, scope, comp, "quant"))
                p = groups.get((layer, scope, comp, "prune"))
                qf = kind_figures(q) if q else None
                pf = kind_figures(p) if p else None
                if comp.startswith("nm") and qf is None:
                    qcomp = _nm_bits(comp)
                    qr = groups.get((layer, scope, f"{qcomp}bit", "quant")) if qcomp else None
                    qf_cmp = kind_figures(qr) if qr else None
                    v = verdict(qf_cmp, pf)
                    if qf_cmp:
                        v["text"] += f" vs {qcomp}-bit"
                else:
                    v = verdict(qf, pf)
                lines.append({"compression": comp, "bits": _comp_bits(comp), "quant": qf,
                              "prune": pf, "verdict": v})
            if lines:
                entry["scopes"][scope] = lines
        entry["summary"] = _layer_line(entry)
        out.append(entry)
    return out


def _comp_bits(comp: str) -> int | None:
    return int(comp[:-3]) if comp.endswith("bit") else None


def _nm_bits(comp: str) -> int | None:
    N, M = (int(x) for x in comp[2:].split(":"))
    b = 16 * N / M
    return int(b) if b == int(b) and b >= 1 else None


def _comp_order(comp: str) -> tuple:
    b = _comp_bits(comp)
    return (0, b, "") if b is not None else (1, 0, comp)


def _layer_line(entry: dict[str, Any]) -> str:
    """``quantization wins at 3-8 bits (proved at 4-8); pruning at 2 (observed)``."""
    lines = entry["scopes"].get("chunk", [])
    wins: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for ln in lines:
        if ln["bits"] is None or ln["verdict"]["winner"] in (None, "tie"):
            continue
        wins[ln["verdict"]["winner"]].append((ln["bits"], ln["verdict"]["proved"]))
    parts = []
    for w, lst in wins.items():
        bits = [b for b, _ in lst]
        proved = [b for b, pr in lst if pr]
        s = f"{w} wins at {_ranges(bits)} bits"
        s += f" (proved at {_ranges(proved)})" if proved else " (observed only)"
        parts.append(s)
    return "; ".join(parts) if parts else "no verdict (incomplete)"


def _ranges(bits: list[int]) -> str:
    bits = sorted(bits)
    out, i = [], 0
    while i < len(bits):
        j = i
        while j + 1 < len(bits) and bits[j + 1] == bits[j] + 1:
            j += 1
        out.append(str(bits[i]) if i == j else f"{bits[i]}–{bits[j]}")
        i = j + 1
    return ", ".join(out)


def fmt_db(v: float | None, ceiling: bool = False) -> str:
    """An SQNR cell; a ceiling that is missing or infinite (no proved error above 0) reads
    "no bound", never "≤ ∞" or "≤ inf"."""
    if ceiling and (v is None or math.isinf(v)):
        return "no bound"
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    return f"≤ {v:.2f}" if ceiling else f"{v:.2f}"


def summary_text(layers: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """Plain-text per-layer verdict table for the terminal."""
    out = [f"protocol {settings.get('protocol')}, accounting {settings.get('accounting')}, "
           f"run {settings.get('run_id', '')}"]
    for e in layers:
        out.append(f"\n{e['layer']}  (n = {e['n']}, channels {e['channels']}, "
                   f"{e['chunks']} chunk(s)) — {e['summary']}")
        for scope, title in (("chunk", "chunk problems"), ("whole", "whole channel")):
            lines = e["scopes"].get(scope)
            if not lines:
                continue
            out.append(f"  [{title}]  SQNR dB: quant ceiling / best | prune ceiling / best | "
                       "verdict")
            for ln in lines:
                q, p = ln["quant"] or {}, ln["prune"] or {}
                out.append(
                    f"  {ln['compression']:>7}  "
                    f"{fmt_db(q.get('sqnr_ceiling_db'), True):>9} / "
                    f"{fmt_db(q.get('best_sqnr_db')):>7} | "
                    f"{fmt_db(p.get('sqnr_ceiling_db'), True):>9} / "
                    f"{fmt_db(p.get('best_sqnr_db')):>7} | {ln['verdict']['text']}")
        if e.get("note"):
            out.append(f"  note: {e['note']}")
    return "\n".join(out)
