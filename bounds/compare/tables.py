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

Every verdict names its **conditions** (``verdict["conditions"]``, and in its text): the scale
rule and the scales of the sampled channels, the channels and chunks sampled (k of N) and the
calibration set. A pruning win is proved *for every scale* of the run's range only when
pruning's error is below the certified bound over that range (scope ``range`` rows, from
:mod:`solvers.scale_range`; per channel or per tensor); otherwise it is proved at the rule's
scales only, and the text says so, naming a scale in the range where quantization does better
when the range search found one. Beside the run's rule, the chunk problems at the paper's scale
(scope ``paper``) give a second verdict. The **sensitivity** line counts the sampled channels
whose own winner (their chunks' best errors summed) differs from the layer's, with a
Clopper–Pearson interval on the share of the layer's channels where quantization wins.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from solvers.result import sqnr_db

from ..scale_choice import PAPER_RULE, RULE_TEXT

#: The columns :func:`layer_tables` reads from a row; ``info_json`` only from the rows of
#: scope ``"range"`` (:func:`range_figures`), so a caller may read it for those alone.
ROW_COLUMNS: tuple[str, ...] = ("layer", "scope", "kind", "compression", "method", "chunk",
                                "channel", "status", "objective", "lower_bound", "norm",
                                "seconds")


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


def conditions(li: dict[str, Any], settings: dict[str, Any], bits: int | None
               ) -> dict[str, Any]:
    """What a layer's verdict at ``bits`` is conditional on (from the stored layer record)."""
    rule = li.get("scale_rule") or PAPER_RULE  # runs before scale rules: the paper's
    chans = li.get("channels") or []
    scales = (li.get("scales") or {}).get(str(bits)) if bits is not None else None
    calib = {"samples": settings.get("samples"), "seed": settings.get("seed"),
             "images": settings.get("images"), "text": settings.get("text"),
             "fingerprint": li.get("calibration", "")}
    return {"scale_rule": rule, "scale_rule_text": RULE_TEXT.get(rule, rule),
            "scales": None if scales is None else dict(zip(map(str, chans), scales,
                                                           strict=False)),
            "channels": chans, "channels_total": li.get("channels_total"),
            "chunk_ids": li.get("chunk_ids"), "chunks_total": li.get("chunks"),
            "calibration": calib}


def conditions_text(cond: dict[str, Any]) -> str:
    """``at the output-channel scales (ch 3: 0.0123, …); channels 2 of 32; chunks 1 of 1; …``."""
    sc = cond.get("scales")
    at = f"at the {cond['scale_rule']} scale rule"
    if sc:
        vals = sorted(set(sc.values()))
        at += (f" (s = {vals[0]:.4g})" if len(vals) == 1 else
               " (" + ", ".join(f"ch {c}: {v:.4g}" for c, v in sc.items()) + ")")
    cal = cond["calibration"]
    src = cal.get("images") or cal.get("text") or "built-in data"
    fp = f", fingerprint {str(cal['fingerprint'])[:12]}" if cal.get("fingerprint") else ""
    return (f"{at}; channels {len(cond['channels'])} of {cond['channels_total']}; chunks "
            f"{len(cond['chunk_ids'] or [])} of {cond['chunks_total']}; calibration "
            f"{cal.get('samples')} samples of {src}, seed {cal.get('seed')}{fp}")


def range_figures(rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The scale-range rows of one (layer, compression): per granularity, the certified bound
    over every scale of the range and the best solution the search found."""
    out: dict[str, Any] = {}
    for r in rows or []:
        info = r.get("info_json") or {}
        gran = info.get("granularity") or r["method"].rsplit(" ", 1)[-1]
        norm = float(r["norm"] or 0.0)
        out[gran] = {"lower_bound": r["lower_bound"], "objective": r["objective"],
                     "ceiling_db": _db(norm, r["lower_bound"]),
                     "best_db": _db(norm, r["objective"]), "status": r["status"],
                     "ratio_range": info.get("ratio_range"), "s_lo": info.get("s_lo"),
                     "s_hi": info.get("s_hi"), "best_scale": info.get("best_scale"),
                     "best_scales": info.get("best_scales"), "intervals": info.get("intervals")}
    return out


def scale_condition(v: dict[str, Any], q: dict[str, Any] | None, p: dict[str, Any] | None,
                    rng: dict[str, Any], cond: dict[str, Any]) -> dict[str, Any]:
    """Name the scale condition of verdict ``v`` (updated in place and returned): a pruning
    win is proved for every scale of the range only when pruning's error is below the range's
    certified bound; otherwise the verdict holds at the rule's scales, and a scale in the range
    where quantization beats pruning is named."""
    v["conditions"] = cond
    v["every_scale"] = None
    if v["winner"] is None:
        return v
    rule = f"at the {cond['scale_rule']} scales"
    pb = p["best_error"] if p else None
    if v["winner"] == "pruning" and pb is not None:
        for gran in ("channel", "tensor"):
            r = rng.get(gran)
            if r and r["lower_bound"] is not None and pb < r["lower_bound"]:
                lo, hi = r["ratio_range"]
                v.update(proved=True, every_scale=gran, winner="pruning")
                v["text"] = (f"pruning (proved for every per-{gran} scale in [{lo:g}, {hi:g}]×"
                             f"{'each channel' if gran == 'channel' else 'the tensor'}'s "
                             "min-max scale: its error < quantization's bound over the range)")
                return v
        v["text"] = v["text"].replace("(proved:", f"(proved {rule} only:").replace(
            "(observed, not proved)", f"(observed {rule})")
        for gran in ("channel", "tensor"):
            r = rng.get(gran)
            if r and r["objective"] is not None and r["objective"] < pb:
                sc = r["best_scales"] if gran == "channel" else [r["best_scale"]]
                v["beaten_at"] = {"granularity": gran, "scales": sc, "sqnr_db": r["best_db"]}
                v["text"] += (f"; but quantization reaches {fmt_db(r['best_db'])} dB at "
                              f"per-{gran} scale(s) " + ", ".join(f"{x:.4g}" for x in sc)
                              + ", beating pruning there")
                break
        else:
            if rng:
                r = rng.get("channel") or rng.get("tensor")
                lo, hi = r["ratio_range"]
                v["text"] += (f"; not decided for every scale in [{lo:g}, {hi:g}]×min-max "
                              f"(range bound ≤ {fmt_db(r['ceiling_db'])} dB, {r['status']})")
    elif v["winner"] == "quantization":
        v["text"] = v["text"].replace("(proved:", f"(proved {rule}:").replace(
            "(observed, not proved)", f"(observed {rule})")
    return v


def sensitivity(q: list[dict[str, Any]] | None, p: list[dict[str, Any]] | None,
                winner: str | None, channels_total: int | None,
                confidence: float = 0.95) -> dict[str, Any] | None:
    """How many sampled channels flip the verdict: each channel's winner from its chunks' best
    errors summed, and a Clopper–Pearson interval on the share of the layer's channels where
    quantization wins (the sampled channels taken as independent draws)."""
    if not q or not p or winner not in ("quantization", "pruning"):
        return None
    best: dict[str, dict[tuple, float]] = {"q": {}, "p": {}}
    for key, rows in (("q", q), ("p", p)):
        for r in rows:
            if r["objective"] is None or r["status"] == "error":
                continue
            u = (r["chunk"], r["channel"])
            best[key][u] = min(best[key].get(u, math.inf), float(r["objective"]))
    per: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for u in set(best["q"]) & set(best["p"]):
        per[u[1]][0] += best["q"][u]
        per[u[1]][1] += best["p"][u]
    m = len(per)
    if m == 0:
        return None
    k = sum(1 for qe, pe in per.values() if qe < pe)
    flips = k if winner == "pruning" else m - k
    lo, hi = clopper_pearson(k, m, confidence)
    pct = f"{100 * confidence:g} %"
    text = (f"quantization wins on {k} of {m} sampled channels ({flips} flip the verdict); "
            f"{pct} Clopper–Pearson interval for its share of the layer's "
            f"{channels_total or '?'} channels: {100 * lo:.0f}–{100 * hi:.0f} %")
    return {"channels": m, "quant_wins": k, "flips": flips, "share_interval": [lo, hi],
            "confidence": confidence, "text": text}


def clopper_pearson(k: int, m: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial share from ``k`` of ``m``.

    >>> clopper_pearson(0, 2)
    (0.0, 0.8418861169915811)
    """
    from scipy.stats import beta

    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, m - k + 1))
    hi = 1.0 if k == m else float(beta.ppf(1 - a / 2, k + 1, m - k))
    return lo, hi


def layer_tables(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer tables (in the settings' layer order) from a run's rows."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    levels: dict[str, list[dict[str, Any]]] = defaultdict(list)  # --formats rows by layer
    for r in rows:
        if r["kind"] == "levels":
            levels[r["layer"]].append(r)
            continue
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
                                 "densities": li.get("densities", {}), "scopes": {},
                                 "conditions": conditions(li, settings, None),
                                 "scale_range": settings.get("scale_range")
                                 if li.get("scale_range") else None}
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
                line = {"compression": comp, "bits": _comp_bits(comp), "quant": qf,
                        "prune": pf, "verdict": v}
                if scope == "chunk":
                    cond = conditions(li, settings, _comp_bits(comp))
                    rng = range_figures(groups.get((layer, "range", comp, "quant")))
                    scale_condition(v, qf, pf, rng, cond)
                    line["range"] = rng
                    line["sensitivity"] = sensitivity(q, p, v["winner"], li.get("channels_total"))
                    pq = groups.get((layer, "paper", comp, "quant"))
                    if pq:
                        pqf = kind_figures(pq)
                        line["paper"] = {"quant": pqf, "verdict": verdict(pqf, pf),
                                         "scale_rule": PAPER_RULE,
                                         "scale": (li.get("paper_scales") or {}).get(str(
                                             _comp_bits(comp)))}
                else:
                    scale_condition(v, qf, pf, {}, conditions(li, settings, _comp_bits(comp)))
                lines.append(line)
            if lines:
                entry["scopes"][scope] = lines
        entry["summary"] = _layer_line(entry)
        if li.get("formats"):
            from .formats import format_lines

            entry["formats"] = format_lines(levels.get(layer, []), li["formats"])
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
        out.append(f"  conditions: {conditions_text(e['conditions'])}")
        for ln in e["scopes"].get("chunk", []):
            extra = []
            if ln.get("paper"):
                pq, pv = ln["paper"]["quant"], ln["paper"]["verdict"]["text"]
                extra.append(f"at the paper's scale quant ≤ {fmt_db(pq.get('sqnr_ceiling_db'))}"
                             f" / {fmt_db(pq.get('best_sqnr_db'))}: {pv}")
            for g, r in (ln.get("range") or {}).items():
                extra.append(f"every per-{g} scale in range: quant ≤ "
                             f"{fmt_db(r['ceiling_db'])} dB ({r['status']})")
            if ln.get("sensitivity"):
                extra.append(ln["sensitivity"]["text"])
            for x in extra:
                out.append(f"  {ln['compression']:>7}  {x}")
        if e.get("formats"):
            from .formats import format_text

            out.extend(format_text(e["formats"]))
        if e.get("note"):
            out.append(f"  note: {e['note']}")
    return "\n".join(out)
