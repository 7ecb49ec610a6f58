"""Write the report: ``report.md`` + PNG plots + ``rows.csv`` (raw rows) + ``summary.json``."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .machine import under_load
from .methods import OURS
from .runner import NOT_RUN, ROW_FIELDS
from .stats import _num, headline, size_key, summarize

f3 = plots.fmt_num


def write_rows_csv(rows: Sequence[dict], path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=ROW_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv(r.get(k)) for k in ROW_FIELDS})
    return path


def read_rows_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("certified", "claimed_optimal", "feasible", "agree"):
            if r.get(k) in ("True", "False"):
                r[k] = r[k] == "True"
            elif r.get(k) == "":
                r[k] = None
        for k in ("n", "nodes", "k", "bits"):
            if r.get(k) not in (None, ""):
                r[k] = int(float(r[k]))
    return rows


def _csv(x: Any) -> Any:
    if x is None:
        return ""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else str(x)
    return x


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def _ratio(s: dict) -> str:
    if s.get("ratio") is None:
        return "—"
    if s["method"] == OURS:
        return "1 (ours)"
    return f"{s.get('ratio_flag', '')}{s['ratio']:.3g}×"


def comparison_table(summaries: Sequence[dict]) -> list[str]:
    head = ("| family | n | method | runs | median s | p90 s | proved optimal | median gap "
            "| median nodes | time ÷ ours | same optimum as ours | flagged |")
    lines = [head, "|" + "---|" * 12]
    last = None
    for s in summaries:
        key = (s["family"], s["size"])
        fam, size = (s["family"], s["size"]) if key != last else ("", "")
        last = key
        runs = f"{s['ran']}" + (f" (+{s['skipped_licence']} licence)" if s["skipped_licence"]
                                else "") + (f" ({s['errors']} err)" if s["errors"] else "") \
            + (f" ({s['not_applicable']} n/a)" if s["not_applicable"] else "")
        lines.append(
            f"| {fam} | {size} | {s['method']} | {runs} | {f3(s['median_s'])} | {f3(s['p90_s'])} "
            f"| {_pct(s['optimal_share'])} | {f3(s['median_gap'], 2)} "
            f"| {f3(s['median_nodes'])} | {_ratio(s)} | {_pct(s['agree_share'])} "
            f"| {s['disagreements'] or ''} |"
        )
    return lines


def issues_table(rows: Sequence[dict]) -> list[str]:
    flagged = [r for r in rows if r.get("issue")]
    if not flagged:
        return ["No disagreement: every claimed optimum matched ours to 1e-9 relative, every "
                "returned point was feasible, and no bound crossed ours."]
    lines = [f"{len(flagged)} flagged rows (all kept in `rows.csv`):", "",
             "| study | kind | instance | method | status | objective | ours | rel. diff "
             "| issue |", "|" + "---|" * 9]
    for r in flagged[:80]:
        lines.append(
            f"| {r['study']} | {r['kind']} | {r['instance']} | {r['method']} | {r['status']} "
            f"| {f3(_num(r.get('objective')), 10)} | {f3(_num(r.get('ours_objective')), 10)} "
            f"| {f3(_num(r.get('rel_diff')), 3)} | {r['issue']} |"
        )
    if len(flagged) > 80:
        lines.append(f"| … | | | | | | | | {len(flagged) - 80} more in rows.csv |")
    return lines


def scaling_table(rows: Sequence[dict], x: str, label: str) -> list[str]:
    from collections import defaultdict

    import numpy as np

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["kind"], r["family"], r.get(x), r["method"])].append(r)
    lines = [f"| kind | family | {label} | method | runs | median s | p90 s | proved optimal "
             "| median nodes | median gap |", "|" + "---|" * 10]
    for (kind, fam, v, method), rs in sorted(
        groups.items(),
        key=lambda kv: (kv[0][0], kv[0][1], float(_num(kv[0][2]) or 0), kv[0][3] != OURS),
    ):
        ran = [r for r in rs if r.get("status") not in NOT_RUN]
        t = [float(r["seconds"]) for r in ran if _num(r.get("seconds")) is not None]
        nodes = [float(r["nodes"]) for r in ran if _num(r.get("nodes")) is not None]
        gaps = [float(r["gap"]) for r in ran if _num(r.get("gap")) is not None]
        opt = sum(r.get("status") == "optimal" for r in ran) / max(1, len(ran))
        runs = f"{len(ran)}" + (f" (+{len(rs) - len(ran)} killed/n.a.)" if len(rs) > len(ran)
                                else "")
        lines.append(
            f"| {kind} | {fam} | {v} | {method} | {runs} | {f3(np.median(t) if t else None)} "
            f"| {f3(np.percentile(t, 90) if t else None)} | {_pct(opt)} "
            f"| {f3(np.median(nodes) if nodes else None)} "
            f"| {f3(np.median(gaps) if gaps else None, 2)} |"
        )
    return lines


def anytime_table(rows: Sequence[dict]) -> list[str]:
    from collections import defaultdict

    import numpy as np

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["kind"], r["family"], int(r["n"]), float(r["time_limit"]))].append(r)
    lines = ["| kind | family | n | time limit s | runs | median gap | max gap | proved optimal |",
             "|" + "---|" * 8]
    for (kind, fam, n, tl), rs in sorted(groups.items()):
        gaps = [float(r["gap"]) for r in rs if _num(r.get("gap")) is not None]
        opt = sum(r.get("status") == "optimal" for r in rs) / len(rs)
        lines.append(f"| {kind} | {fam} | {n} | {tl:g} | {len(rs)} "
                     f"| {f3(np.median(gaps) if gaps else None, 2)} "
                     f"| {f3(max(gaps) if gaps else None, 2)} | {_pct(opt)} |")
    return lines


def write_report(
    out: Path,
    *,
    rows: Sequence[dict],
    info: dict[str, Any],
    settings: dict[str, Any],
    notes: Sequence[str],
    throughput: dict[str, Any] | None = None,
) -> Path:
    """Everything into ``out`` (created); returns the path of ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    write_rows_csv(rows, out / "rows.csv")
    comp = [r for r in rows if r["study"] == "comparison"]
    summaries = summarize(comp)
    heads = {k: headline(comp, k) for k in ("quant", "prune")}

    figs: list[tuple[str, Path | None]] = []
    for kind, what in (("quant", f"quantization, {settings['bits']} bits"),
                       ("prune", f"pruning, density {settings['density']:g}")):
        figs.append((f"Time vs n — {what}", plots.time_vs_n(
            comp, kind, out / f"time_vs_n_{kind}.png", f"Median solve time vs n, {what}")))
        figs.append((f"Gap vs time — {what}", plots.gap_vs_time(
            comp, kind, out / f"gap_vs_time_{kind}.png",
            f"Final gap vs time per solve, {what}")))
    sc_n = [r for r in rows if r["study"] == "scaling-n"]
    sc_b = [r for r in rows if r["study"] == "scaling-bits"]
    sc_d = [r for r in rows if r["study"] == "scaling-density"]
    anyt = [r for r in rows if r["study"] == "anytime"]
    figs.append(("Our exact solvers vs n", plots.scaling_plot(
        sc_n, "n", out / "scaling_n.png", "Our exact solvers: time and nodes vs n", "n")))
    figs.append(("Our exact quantization vs bit width", plots.scaling_plot(
        sc_b, "bits", out / "scaling_bits.png", "Exact quantization vs bits", "bits",
        logx=False)))
    figs.append(("Our exact pruning vs density", plots.scaling_plot(
        sc_d, "density", out / "scaling_density.png", "Exact pruning vs density", "density")))
    figs.append(("Anytime bound gap vs time limit", plots.anytime_plot(
        anyt, out / "anytime_gap.png", "Gap of our anytime bound vs time limit")))

    L: list[str] = []
    mode = "quick" if settings.get("quick") else "full"
    L.append(f"# pqbound solver comparison ({mode} run)")
    L.append("")
    L += _header(info, settings)
    L.append("")
    L.append("## Headline: time of each solver ÷ ours")
    L.append("")
    L.append("Median of the per-instance time ratio (other solver ÷ ours, same instance, measured "
             "side by side) over every comparison instance our exact solver proved optimal. `≥`: "
             "the other solver hit its time limit on some of them, so its true ratio is larger. "
             "General solvers are asked for a 1e-6 relative gap, one thread each. The last "
             "column counts instances the other solver proved optimal and ours did not.")
    L.append("")
    L.append("| kind | solver | time ÷ ours | instances ours solved | of these, it also proved "
             "optimal | same optimum as ours | flagged rows | it solved, ours did not |")
    L.append("|---|---|---|---|---|---|---|---|")
    for kind in ("quant", "prune"):
        krows = [r for r in comp if r["kind"] == kind]
        order = sorted(heads[kind].items(), key=lambda kv: (kv[1]["median_ratio"] is None,
                                                             kv[1]["median_ratio"] or 0.0))
        for m, h in order:
            mrows = [r for r in krows if r["method"] == m and r.get("status") not in NOT_RUN]
            agree = [r.get("agree") for r in mrows if r.get("agree") is not None]
            ratio = "—" if h["median_ratio"] is None else f"{h['flag']}{h['median_ratio']:.3g}×"
            L.append(f"| {kind} | {m} | {ratio} | {h['ours_solved']} | {h['both_solved']} "
                     f"| {_pct(sum(agree) / len(agree) if agree else None)} "
                     f"| {sum(bool(r.get('issue')) for r in mrows)} | {h['only_other']} |")
    L.append("")
    for kind, title in (("quant", f"Quantization ({settings['bits']} bits, per-tensor MSE scale)"),
                        ("prune", _prune_title(settings))):
        ks = [s for s in summaries if s["kind"] == kind]
        L.append(f"## {title}")
        L.append("")
        if ks:
            L += comparison_table(ks)
        else:
            L.append("Not run.")
        L.append("")
    L.append("## Disagreements and contract checks")
    L.append("")
    L.append("Every objective is recomputed from the returned weights; a general solver's "
             "\"optimal\" is compared with our proved optimum (tolerance 1e-9 relative); a lower "
             "bound above our optimum, an objective below our lower bound, or an infeasible point "
             "is flagged too.")
    L.append("")
    L += issues_table(rows)
    L.append("")
    L.append("## Scaling of our exact solvers")
    L.append("")
    if sc_n:
        L += scaling_table(sc_n, "n", "n")
        L.append("")
    if sc_b:
        L += scaling_table(sc_b, "bits", "bits")
        L.append("")
    if sc_d:
        L += scaling_table(sc_d, "density", "density")
        L.append("")
    if not (sc_n or sc_b or sc_d):
        L.append("Not run.")
        L.append("")
    L.append("## Anytime bound beyond exact reach")
    L.append("")
    if anyt:
        lim = ", ".join(f"{t:g} s" for t in settings.get("anytime_limits", []))
        L.append(f"Our exact solvers stopped at {lim}"
                 + (" (quick mode: shorter than the full run's 10 s / 60 s)"
                    if settings.get("quick") else "") + "; the gap is (objective − proved "
                 "bound) / objective of what they return.")
        L.append("")
        L += anytime_table(anyt)
    else:
        L.append("Not run.")
    L.append("")
    L.append("## Whole-model throughput (MobileNetV2, 4 bits)")
    L.append("")
    L += _throughput(throughput)
    L.append("")
    L.append("## Skipped methods, families and other notes")
    L.append("")
    L += [f"* {n}" for n in notes] or ["None."]
    L.append("")
    L.append("## Plots")
    L.append("")
    for title, p in figs:
        if p is not None:
            L.append(f"### {title}")
            L.append("")
            L.append(f"![{title}]({p.name})")
            L.append("")
    L.append("## Files")
    L.append("")
    L.append("`rows.csv`: one row per solve (every column of the tables above comes from it); "
             "`summary.json`: settings, machine, the per-group summaries and the throughput "
             "figures.")
    L.append("")
    md = out / "report.md"
    md.write_text("\n".join(L))
    (out / "summary.json").write_text(json.dumps(
        {"info": info, "settings": settings, "notes": list(notes), "summaries": summaries,
         "headline": heads, "throughput": throughput},
        indent=1, default=_json_default))
    return md


def _prune_title(settings: dict) -> str:
    box = settings.get("box_factor")
    boxs = f", box ±{box:g}·max|w0| for every solver" if box else ", no box"
    return f"Pruning (density {settings['density']:g}{boxs})"


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _header(info: dict, s: dict) -> list[str]:
    load0, load1 = info.get("load_start"), info.get("load_end")
    loaded = under_load(load0, info.get("cores")) or under_load(load1, info.get("cores"))
    ram = info.get("ram_gib")
    L = [
        f"* **Date**: {info['date_utc']}",
        f"* **Machine**: {info['cpu']}, {info['cores']} cores, "
        f"{'?' if ram is None else f'{ram:.0f}'} GiB RAM; {info['platform']}; "
        f"Python {info['python']}",
        f"* **Load**: 1/5/15-min load average {_load(load0)} at the start, {_load(load1)} at "
        "the end. " + ("**Timings were taken under load** (the machine was shared with other "
                       "jobs): absolute times are inflated and noisy; the side-by-side ratios "
                       "are what to read." if loaded else "The machine was otherwise idle."),
        f"* **Command**: `{s['command']}`",
        f"* **Seeds**: instance seed {s['seed']} (families), order seed {s['seed']} "
        f"(interleaving); commit {info.get('commit', '?')}",
        f"* **Settings**: time limit {s['time_limit']:g} s per solve; quantization "
        f"{s['bits']} bits; pruning density {s['density']:g}"
        + (f", box ±{s['box_factor']:g}·max|w0|" if s.get("box_factor") else "")
        + f"; {s['count']} instances per family and n; sizes {', '.join(map(str, s['sizes']))}; "
        f"families {', '.join(s['families'])}; {s['samples']} calibration samples for real "
        "layers",
        "* **Threads**: every solve single-threaded in one worker process (OMP/MKL/OPENBLAS/"
        "NUMBA threads = 1; solver thread options = 1 where the adapter exposes one), methods "
        "interleaved per instance in a seeded rotating order, after a warm-up solve of each "
        "(numba cache load, imports, licence checks). Times are wall-clock around the method "
        "call, model building included.",
        "* **Versions**: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()
                                       if v != "not installed"),
    ]
    if s.get("wall_seconds") is not None:
        L.append(f"* **Run time**: {s['wall_seconds']:.0f} s in total")
    return L


def _load(x: Any) -> str:
    return "?" if not x else "/".join(f"{v:.1f}" for v in x)


def _throughput(t: dict[str, Any] | None) -> list[str]:
    if not t:
        return ["Not run (use `--throughput`)."]
    if t.get("error"):
        return [f"Not available: {t['error']}"]
    L = [
        f"All {t['layers']} conv and linear layers, opt-dim 32 ({t['chunks']} chunks, "
        f"{t['problems_total']} single-channel problems), {t['samples']} calibration samples.",
        "",
        "| step | problems | wall s | problems / s | statuses |",
        "|---|---|---|---|---|",
        f"| export (1 process) | {t['problems_total']} | {t['export_seconds']:.1f} "
        f"| {f3(t.get('export_rate'))} | |",
    ]
    for kind, label in (("quant", "exact quantization, 4 bits"),
                        ("prune", "exact pruning, density 4/16")):
        r = t.get(kind)
        if not r:
            continue
        st = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        L.append(f"| {label} ({t['workers']} workers) | {r['problems']} | {r['wall']:.1f} "
                 f"| {f3(r.get('rate'))} | {st} |")
    L.append("")
    if t["sample"] < 1:
        L.append(f"Solves ran on a seeded random sample of {100 * t['sample']:.3g} % of each "
                 "layer's problems (at least one per layer); the rate is per solved problem, so "
                 "the whole model takes about `problems ÷ rate` seconds.")
    L.append(f"Per-solve time limit {t['time_limit']:g} s (problems stopped there count as "
             "solved with status `time_limit`).")
    return L


def size_order(sizes: Sequence[str]) -> list[str]:
    return sorted(sizes, key=size_key)


_FLOATS = ("seconds", "solver_seconds", "objective", "lower_bound", "gap", "rel_diff",
           "time_limit", "density", "ours_objective", "ours_lower_bound", "box_factor")


def rerender(out: Path) -> Path:
    """Rebuild the report in ``out`` from its ``rows.csv`` and ``summary.json`` (no solving)."""
    rows = read_rows_csv(out / "rows.csv")
    for r in rows:
        for k in _FLOATS:
            r[k] = _num(r.get(k)) if r.get(k) not in ("", None) else None
    s = json.loads((out / "summary.json").read_text())
    return write_report(out, rows=rows, info=s["info"], settings=s["settings"],
                        notes=s["notes"], throughput=s.get("throughput"))
