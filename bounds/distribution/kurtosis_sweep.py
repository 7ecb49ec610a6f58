"""SNR of quantization and of pruning against kurtosis (the paper's Figure 2 analogue).

Families of laws swept (kurtosis is the excess / Fisher kurtosis, normal = 0):

* ``student-t``: the normal (df = ∞) and Student-t with df from 100 down to 4.1, kurtosis
  ``6/(df − 4)`` from 0 to 60, plus df = 3 and 2.5 (infinite kurtosis: listed in the table,
  left out of the plot and of the crossover);
* ``truncated-normal``: N(0, 1) truncated to ``±X``, X from 1 to 4 (kurtosis −1.06 … −0.05,
  lighter tails than the normal);
* ``truncated-t3``: Student-t with df = 3 (infinite kurtosis) truncated to ``±X``, X from 3 to
  1000: bounded outliers, kurtosis from about 1 to several hundred;
* ``reference``: uniform and Laplace.

For each family and bit width the *crossover* is the kurtosis where pruning starts to win
(``SNR_P >= SNR_Q``), linearly interpolated in ``log(3 + kurtosis)`` (Pearson kurtosis on a log
scale) between the two swept laws that bracket the sign change; ``None`` when quantization wins
over the whole family.

Example
-------
>>> sweep = kurtosis_sweep(bits=[2], families={"student-t": [("t", 4.5, None)]})
>>> sweep.points[0].density.label, round(sweep.points[0].kurtosis, 3)
('t(df=4.5)', 12.0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .analytic import DEFAULT_BITS, DistributionResult, analyse_distribution
from .densities import make_density

log = logging.getLogger(__name__)

#: (family name, df, truncate) triples; ``("normal", None, None)`` is the df = ∞ end.
Spec = tuple[str, float | None, float | None]

DEFAULT_FAMILIES: dict[str, list[Spec]] = {
    "student-t": [("normal", None, None)]
    + [("t", df, None) for df in (100, 40, 20, 12, 9, 7, 6, 5.5, 5, 4.75, 4.5, 4.35, 4.25, 4.17,
                                  4.1, 3, 2.5)],
    "truncated-normal": [("normal", None, x) for x in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)],
    "truncated-t3": [("t", 3.0, x) for x in (3, 5, 10, 20, 50, 100, 200, 500, 1000)],
    "reference": [("uniform", None, None), ("laplace", None, None)],
}
#: A small sweep for quick looks and tests.
QUICK_FAMILIES: dict[str, list[Spec]] = {
    "student-t": [("normal", None, None)] + [("t", df, None) for df in (10, 6, 5, 4.5, 4.1)],
    "truncated-t3": [("t", 3.0, x) for x in (5, 20, 100)],
}


@dataclass(frozen=True)
class SweepPoint:
    family: str
    result: DistributionResult

    @property
    def density(self):
        return self.result.density

    @property
    def kurtosis(self) -> float:
        return self.result.kurtosis

    def gap_db(self, bits: int) -> float:
        """``SNR_Q − SNR_P`` in dB (positive: quantization wins)."""
        r = self.result.bits[bits]
        return r.quant_sqnr_db - r.prune_sqnr_db


@dataclass(frozen=True)
class KurtosisSweep:
    """Every swept law's result, grouped by family, and the crossovers."""

    points: list[SweepPoint]
    bits: list[int]
    grid: str

    def family(self, name: str) -> list[SweepPoint]:
        return sorted((p for p in self.points if p.family == name), key=lambda p: p.kurtosis)

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(p.family for p in self.points))

    def crossover(self, family: str, bits: int) -> float | None:
        """Kurtosis where pruning starts to win within ``family`` (None: it never does)."""
        pts = [p for p in self.family(family) if math.isfinite(p.kurtosis)]
        if not pts:
            return None
        if pts[0].gap_db(bits) <= 0:
            return pts[0].kurtosis
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            ga, gb = a.gap_db(bits), b.gap_db(bits)
            if ga > 0 >= gb:
                xa, xb = math.log(3 + a.kurtosis), math.log(3 + b.kurtosis)
                x = xa + (xb - xa) * ga / (ga - gb)
                return math.exp(x) - 3
        return None

    def crossovers(self) -> dict[str, dict[int, float | None]]:
        return {f: {b: self.crossover(f, b) for b in self.bits} for f in self.families
                if f != "reference"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "kurtosis_definition": "excess (Fisher); normal = 0",
            "points": [{"family": p.family, **p.result.to_dict()} for p in self.points],
            "crossovers": {f: {str(b): k for b, k in c.items()}
                           for f, c in self.crossovers().items()},
        }

    def table(self) -> str:
        """Human-readable: one row per law (Q/P SNR in dB), then the crossovers."""
        width = max(len(p.density.label) for p in self.points)
        head = f"{'family':<16} {'law':<{width}} {'kurtosis':>9} " + " ".join(
            f"{f'{b}b Q/P':>12}" for b in self.bits)
        lines = [head, "-" * len(head)]
        for fam in self.families:
            for p in self.family(fam):
                k = "inf" if math.isinf(p.kurtosis) else f"{p.kurtosis:.3f}"
                cells = " ".join(
                    f"{p.result.bits[b].quant_sqnr_db:.2f}/{p.result.bits[b].prune_sqnr_db:.2f}"
                    .rjust(12) for b in self.bits)
                lines.append(f"{fam:<16} {p.density.label:<{width}} {k:>9} {cells}")
        lines.append("")
        lines.append("crossover kurtosis (pruning starts to win; '-' = never in the range swept):")
        lines.append(f"  {'family':<16} " + " ".join(f"{b}b".rjust(8) for b in self.bits))
        for fam, cs in self.crossovers().items():
            cells = " ".join(("-" if k is None else f"{k:.2f}").rjust(8) for k in cs.values())
            lines.append(f"  {fam:<16} {cells}")
        return "\n".join(lines)


def kurtosis_sweep(bits: Iterable[int] = DEFAULT_BITS,
                   families: Mapping[str, Sequence[Spec]] | None = None,
                   grid: str = "signed", *, progress: bool = False) -> KurtosisSweep:
    """Analyse every law of every family (see the module docstring) at every bit width."""
    families = DEFAULT_FAMILIES if families is None else families
    bits = sorted(set(bits))
    jobs = [(fam, spec) for fam, specs in families.items() for spec in specs]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="law", desc="laws", leave=False)
    points = []
    try:
        for fam, (name, df, trunc) in jobs:
            d = make_density(name, df=df, truncate=trunc)
            log.info("sweep: %s", d.label)
            points.append(SweepPoint(fam, analyse_distribution(d, bits, grid)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return KurtosisSweep(points, bits, grid)
