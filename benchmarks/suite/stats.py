"""Summaries of the raw rows: medians, p90, shares, and the time ratio of each method to ours.

Time ratios are taken *per instance* (``t_method / t_ours`` on the same problem, measured minutes
apart in the same worker) and summarised by their median. A certified method that stopped at its
time limit only gives a lower bound on its time, so its ratio is a lower bound too: the median of
such a mix is marked ``≥``; where *our* solver stopped at its limit, the ratio is an upper bound
(``≤``); ``~`` where both happen in one group.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .methods import OURS
from .runner import NOT_RUN


def _num(x: Any) -> float | None:
    if x is None or x == "":
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _median(xs: Iterable[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return float(np.median(v)) if v else None


def _p90(xs: Iterable[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return float(np.percentile(v, 90)) if v else None


def solved(row: dict) -> bool:
    return row.get("status") == "optimal"


def censored(row: dict) -> bool:
    """A certified method that did not prove optimality: its time is a lower bound."""
    return bool(row.get("certified")) and not solved(row)


def size_key(size: str) -> float:
    return math.inf if size == "full" else float(size)


def summarize(rows: Sequence[dict], keys: Sequence[str] = ("kind", "family", "size")) -> list[dict]:
    """One summary per ``keys`` group and method (rows of the comparison study)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r)
    out = []
    for gkey, grows in sorted(groups.items(), key=lambda kv: _sort_key(kv[0], keys)):
        by_inst: dict[str, dict[str, dict]] = defaultdict(dict)
        for r in grows:
            by_inst[r["instance"]][r["method"]] = r
        methods = list(dict.fromkeys(r["method"] for r in grows))
        med = {m: _median(_num(r.get("seconds")) for r in grows if r["method"] == m
                          and r.get("status") not in NOT_RUN) for m in methods}
        methods.sort(key=lambda m: (m != OURS, med[m] is None, med[m] or 0.0))
        for m in methods:
            mrows = [r for r in grows if r["method"] == m]
            ran = [r for r in mrows if r.get("status") not in NOT_RUN]
            summary = dict(zip(keys, gkey, strict=True))
            summary.update(
                {
                    "method": m,
                    "instances": len(mrows),
                    "ran": len(ran),
                    "skipped_licence": sum(r.get("status") == "skipped (licence size)"
                                           for r in mrows),
                    "errors": sum(r.get("status") in ("error", "killed") for r in mrows),
                    "not_applicable": sum(r.get("status") == "not applicable" for r in mrows),
                    "n": _median(_num(r.get("n")) for r in mrows),
                    "median_s": _median(_num(r.get("seconds")) for r in ran),
                    "p90_s": _p90(_num(r.get("seconds")) for r in ran),
                    "optimal_share": (sum(solved(r) for r in ran) / len(ran)) if ran else None,
                    "claimed_optimal": sum(bool(r.get("claimed_optimal")) for r in ran),
                    "median_gap": _median(_num(r.get("gap")) for r in ran),
                    "median_nodes": _median(_num(r.get("nodes")) for r in ran),
                    "agree_share": _share(r.get("agree") for r in ran),
                    "disagreements": sum(bool(r.get("issue")) for r in ran),
                    "median_excess": _median(_num(r.get("rel_diff")) for r in ran
                                             if r.get("feasible")),
                }
            )
            summary.update(_ratio(by_inst, m))
            out.append(summary)
    return out


def _share(flags: Iterable[Any]) -> float | None:
    v = [bool(f) for f in flags if f is not None and f != ""]
    return sum(v) / len(v) if v else None


def _ratio(by_inst: dict[str, dict[str, dict]], method: str) -> dict[str, Any]:
    if method == OURS:
        return {"ratio": 1.0, "ratio_flag": ""}
    ratios, lower, upper = [], False, False
    for rows in by_inst.values():
        a, o = rows.get(method), rows.get(OURS)
        if a is None or o is None:
            continue
        ta, to = _num(a.get("seconds")), _num(o.get("seconds"))
        if ta is None or to is None or to <= 0 or a.get("status") in NOT_RUN:
            continue
        ratios.append(ta / to)
        lower |= censored(a)
        upper |= censored(o)
    if not ratios:
        return {"ratio": None, "ratio_flag": ""}
    flag = "~" if lower and upper else "≥" if lower else "≤" if upper else ""
    return {"ratio": float(np.median(ratios)), "ratio_flag": flag}


def _sort_key(gkey: tuple, keys: Sequence[str]) -> tuple:
    out = []
    for k, v in zip(keys, gkey, strict=True):
        out.append(size_key(str(v)) if k == "size" else str(v))
    return tuple(out)


def headline(rows: Sequence[dict], kind: str) -> dict[str, Any]:
    """Per method, pooled over every comparison instance of ``kind``.

    * ``median_ratio``: median of per-instance ``t_method / t_ours`` over the instances *our*
      solver proved optimal (``flag`` ``≥`` when the other method stopped at its limit on any of
      them, so the true ratio is larger);
    * ``ours_solved``: how many instances that is; ``both_solved``: of those, how many the other
      method also proved optimal; ``only_other``: instances the other method proved optimal and
      ours did not (shown, never dropped).
    """
    by_inst: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["kind"] == kind and r.get("study", "comparison") == "comparison":
            by_inst[r["instance"]][r["method"]] = r
    methods = list(dict.fromkeys(r["method"] for rs in by_inst.values() for r in rs.values()))
    out = {}
    for m in methods:
        if m == OURS:
            continue
        ratios, lower, ours_solved, both, only_other = [], False, 0, 0, 0
        for rs in by_inst.values():
            a, o = rs.get(m), rs.get(OURS)
            if a is None or o is None or a.get("status") in NOT_RUN:
                continue
            if solved(a) and not solved(o):
                only_other += 1
            if not solved(o):
                continue
            ours_solved += 1
            both += solved(a)
            ta, to = _num(a.get("seconds")), _num(o.get("seconds"))
            if ta is None or to is None or to <= 0:
                continue
            ratios.append(ta / to)
            lower |= censored(a)
        out[m] = {
            "median_ratio": float(np.median(ratios)) if ratios else None,
            "flag": "≥" if lower else "",
            "ours_solved": ours_solved, "both_solved": both, "only_other": only_other,
        }
    return out
