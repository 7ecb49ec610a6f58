"""Weight distributions for the analytic study: scipy.stats laws, optionally truncated.

A :class:`Density` wraps a frozen scipy.stats continuous distribution (the *base*) and an
optional truncation to ``[-X, X]`` (the base law conditioned on ``|x| <= X``, which gives heavy
tailed laws finite moments: a Student-t with ``df <= 4`` truncated at ``±X`` has finite
kurtosis, growing with ``X``, so truncation simulates rare outliers of bounded size).

Conventions (the named families, all in scipy's standard form ``loc = 0, scale = 1``):

=========  ===========================  ==================  ===============================
name       law                          std                 excess kurtosis (Fisher)
=========  ===========================  ==================  ===============================
normal     N(0, 1)                      1                   0
laplace    Laplace(0, 1)                √2                  3
uniform    U(-1, 1)                     1/√3                −1.2
t          Student-t, ``df`` = ν        √(ν/(ν−2)), ν > 2   6/(ν−4) for ν > 4; ∞ for ν ≤ 4
=========  ===========================  ==================  ===============================

``truncate = X`` is in the same units (the base law's own, *not* standard deviations). Every
reported scale or threshold elsewhere is divided by the final law's standard deviation, so the
choice of units never shows in the results.

Kurtosis is always the *excess* (Fisher) kurtosis ``E[(x−μ)⁴]/σ⁴ − 3`` (normal = 0), as
``scipy.stats.kurtosis(fisher=True)``; add 3 for Pearson's. A Student-t with ``df <= 4`` has
infinite kurtosis (``math.inf``); with ``df <= 2`` its variance is infinite, so no SNR exists and
:func:`make_density` raises :class:`~solvers.problem.ProblemError` unless it is truncated.

Example
-------
>>> d = make_density("t", df=5)
>>> round(d.kurtosis, 6), round(d.std, 6)
(6.0, 1.290994)
>>> round(make_density("normal", truncate=2.0).kurtosis, 4)
-0.6345
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

from solvers.problem import ProblemError

#: The named families :func:`make_density` knows.
FAMILIES = ("normal", "laplace", "uniform", "t")

_QUAD = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 400}


@dataclass(frozen=True)
class Density:
    """A continuous law on the real line, possibly truncated to ``[lo, hi]``.

    Parameters
    ----------
    name : str
        Family name (``"normal"``, ``"t"``, … or ``"custom"``).
    base : scipy frozen continuous distribution
        The untruncated law.
    truncate : float or None
        ``X`` for truncation to ``[-X, X]`` (None: no truncation).
    df : float or None
        Degrees of freedom (Student-t only), for reports.
    breakpoints : tuple of float
        Points inside the support where the density is not smooth (Laplace: 0); integrals are
        split there.
    vec_pdf, scalar_pdf : callables or None
        Fast closed-form base densities (numpy arrays / Python floats); default ``base.pdf``.
    """

    name: str
    base: Any
    truncate: float | None = None
    df: float | None = None
    breakpoints: tuple[float, ...] = ()
    vec_pdf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    scalar_pdf: Callable[[float], float] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ support and mass
    @cached_property
    def base_support(self) -> tuple[float, float]:
        lo, hi = self.base.support()
        return float(lo), float(hi)

    @cached_property
    def support(self) -> tuple[float, float]:
        """``(lo, hi)`` of the (truncated) law; infinite ends allowed."""
        lo, hi = self.base_support
        if self.truncate is not None:
            lo, hi = max(lo, -self.truncate), min(hi, self.truncate)
        return lo, hi

    @cached_property
    def mass(self) -> float:
        """Base probability of the support (1 without truncation)."""
        if self.truncate is None:
            return 1.0
        lo, hi = self.support
        return float(self.base.cdf(hi) - self.base.cdf(lo))

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``t(df=5) truncated to ±3``."""
        s = f"t(df={self.df:g})" if self.name == "t" else self.name
        if self.truncate is not None:
            s += f" truncated to ±{self.truncate:g}"
        return s

    # ------------------------------------------------------------------ density and CDF
    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density (vectorised), zero outside the support."""
        x = np.asarray(x, dtype=np.float64)
        f = self.vec_pdf(x) if self.vec_pdf is not None else self.base.pdf(x)
        if self.truncate is not None:
            lo, hi = self.support
            f = np.where((x >= lo) & (x <= hi), f / self.mass, 0.0)
        return f

    def pdf_scalar(self, x: float) -> float:
        """Density at one point (fast path for :func:`scipy.integrate.quad`)."""
        lo, hi = self.support
        if x < lo or x > hi:
            return 0.0
        f = self.scalar_pdf(x) if self.scalar_pdf is not None else float(self.base.pdf(x))
        return f / self.mass

    def cdf(self, x: float) -> float:
        lo, hi = self.support
        if x <= lo:
            return 0.0
        if x >= hi:
            return 1.0
        return float((self.base.cdf(x) - self.base.cdf(lo)) / self.mass)

    def ppf(self, u: float) -> float:
        lo, _ = self.support
        return float(self.base.ppf(self.base.cdf(lo) + u * self.mass))

    def prob_abs_above(self, t: float) -> float:
        """``P(|X| > t)`` for ``t >= 0``."""
        return max(0.0, 1.0 - self.cdf(t)) + self.cdf(-t)

    @cached_property
    def symmetric(self) -> bool:
        """Whether the law is symmetric about 0 (checked numerically at a few points)."""
        lo, hi = self.support
        if lo != -hi:
            return False
        probe = np.array([0.1, 0.5, 1.0, 2.0, 5.0])
        probe = probe[probe < hi] if math.isfinite(hi) else probe
        return bool(np.allclose(self.pdf(probe), self.pdf(-probe), rtol=1e-12, atol=0.0))

    # ------------------------------------------------------------------ moments
    def integrate(self, g: Callable[[float], float], a: float, b: float) -> float:
        """``∫_a^b g(x) f(x) dx`` by :func:`scipy.integrate.quad`, split at the breakpoints."""
        lo, hi = self.support
        a, b = max(a, lo), min(b, hi)
        if not a < b:
            return 0.0
        cuts = [a] + sorted(p for p in self.breakpoints if a < p < b) + [b]
        total = 0.0
        for u, v in zip(cuts[:-1], cuts[1:], strict=True):
            val, _ = integrate.quad(lambda x: g(x) * self.pdf_scalar(x), u, v, **_QUAD)
            total += val
        return total

    def _raw_moment(self, k: int) -> float:
        lo, hi = self.support
        return self.integrate(lambda x: x**k, lo, hi)

    @cached_property
    def mean(self) -> float:
        if self.truncate is None:
            m = float(self.base.mean())
            return m
        return 0.0 if self.symmetric else self._raw_moment(1)

    @cached_property
    def variance(self) -> float:
        if self.truncate is None:
            return float(self.base.var())
        return self._raw_moment(2) - self.mean**2

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def second_moment(self) -> float:
        """``E[x²]``: the signal power of every SNR here."""
        return self.variance + self.mean**2

    @cached_property
    def kurtosis(self) -> float:
        """Excess (Fisher) kurtosis; ``math.inf`` when the fourth moment diverges."""
        if self.truncate is None:
            k = float(self.base.stats(moments="k"))
            if self.name == "t" and self.df is not None and self.df <= 4:
                return math.inf
            return k
        mu, var = self.mean, self.variance
        m4 = self.integrate(lambda x: (x - mu) ** 4, *self.support)
        return m4 / var**2 - 3.0

    @property
    def kurtosis_note(self) -> str | None:
        """Why the kurtosis is infinite, if it is."""
        if math.isinf(self.kurtosis):
            return "infinite: the fourth moment of a Student-t with df <= 4 diverges"
        return None

    # ------------------------------------------------------------------ far tails
    def far_point(self, prob: float = 1e-12) -> float:
        """``x > 0`` with ``P(|X| > x) <= prob`` (the support's edge when bounded)."""
        lo, hi = self.support
        edge = max(abs(lo), abs(hi))
        if math.isfinite(edge) and self.prob_abs_above(0.999999 * edge) <= prob:
            return edge
        u = min(self.ppf(1.0 - prob / 2), edge) if self.cdf(0) < 1 else 0.0
        v = max(self.ppf(prob / 2), -edge)
        return max(abs(u), abs(v), 1e-300)

    def params(self) -> dict[str, Any]:
        """The law's parameters for reports: ``dist``, ``df``, ``truncate``."""
        return {"dist": self.name, "df": self.df, "truncate": self.truncate}


# ---------------------------------------------------------------------- constructors

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _normal_pdfs():
    def vec(x):
        return np.exp(-0.5 * x * x) / _SQRT_2PI

    def scal(x):
        return math.exp(-0.5 * x * x) / _SQRT_2PI

    return vec, scal


def _laplace_pdfs():
    def vec(x):
        return 0.5 * np.exp(-np.abs(x))

    def scal(x):
        return 0.5 * math.exp(-abs(x))

    return vec, scal


def _uniform_pdfs():
    def vec(x):
        return np.where(np.abs(x) <= 1.0, 0.5, 0.0)

    def scal(x):
        return 0.5 if abs(x) <= 1.0 else 0.0

    return vec, scal


def _t_pdfs(nu: float):
    logc = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * math.log(nu * math.pi)
    c = math.exp(logc)
    p = -(nu + 1) / 2

    def vec(x):
        return c * (1.0 + x * x / nu) ** p

    def scal(x):
        return c * (1.0 + x * x / nu) ** p

    return vec, scal


def make_density(name: str, *, df: float | None = None, truncate: float | None = None) -> Density:
    """A named law (see the module table), optionally truncated to ``[-truncate, truncate]``.

    Raises
    ------
    ProblemError
        Unknown name; ``df`` missing or not > 0 for ``t`` (or given for another family);
        ``truncate`` not finite and > 0; a Student-t with ``df <= 2`` without truncation
        (infinite variance: the SNR's signal power ``E[x²]`` is infinite).
    """
    if name not in FAMILIES:
        raise ProblemError(f"unknown distribution {name!r}; choose one of {', '.join(FAMILIES)}")
    if truncate is not None:
        truncate = float(truncate)
        if not math.isfinite(truncate) or truncate <= 0:
            raise ProblemError(f"truncate must be a finite number > 0, got {truncate!r}")
    if name != "t" and df is not None:
        raise ProblemError(f"--df applies to the Student-t only, not to {name!r}")
    if name == "normal":
        vec, scal = _normal_pdfs()
        return Density("normal", stats.norm(), truncate, None, (), vec, scal)
    if name == "laplace":
        vec, scal = _laplace_pdfs()
        return Density("laplace", stats.laplace(), truncate, None, (0.0,), vec, scal)
    if name == "uniform":
        if truncate is not None and truncate >= 1.0:
            truncate = None  # truncation outside the support changes nothing
        vec, scal = _uniform_pdfs()
        return Density("uniform", stats.uniform(loc=-1.0, scale=2.0), truncate, None, (), vec,
                       scal)
    if df is None:
        raise ProblemError("the Student-t needs its degrees of freedom: --df V (V > 0)")
    df = float(df)
    if not math.isfinite(df) or df <= 0:
        raise ProblemError(f"df must be a finite number > 0, got {df!r}")
    if df <= 2 and truncate is None:
        raise ProblemError(
            f"Student-t with df = {df:g} <= 2 has infinite variance, so E[x²] (the signal power) "
            "and every SNR are undefined; truncate it (--truncate X) to study it"
        )
    vec, scal = _t_pdfs(df)
    return Density("t", stats.t(df), truncate, df, (), vec, scal)


def from_scipy(dist: Any, *, truncate: float | None = None, name: str = "custom",
               breakpoints: tuple[float, ...] = ()) -> Density:
    """Wrap any frozen scipy.stats continuous distribution (finite variance required).

    Example
    -------
    >>> from scipy import stats
    >>> d = from_scipy(stats.logistic())
    >>> round(d.kurtosis, 6)
    1.2
    """
    if not hasattr(dist, "pdf") or not hasattr(dist, "ppf"):
        raise ProblemError("expected a frozen scipy.stats continuous distribution")
    d = Density(name, dist, None if truncate is None else float(truncate), None,
                tuple(float(b) for b in breakpoints))
    if not (math.isfinite(d.variance) and d.variance > 0):
        raise ProblemError(f"{name}: the variance is {d.variance}; an SNR needs a finite, "
                           "positive E[x²] (truncate the law)")
    return d


def prune_threshold(density: Density, keep: float) -> float:
    """``t >= 0`` with ``P(|X| > t) = keep`` (magnitude pruning keeps the fraction ``keep``)."""
    if not 0.0 < keep < 1.0:
        raise ProblemError(f"keep fraction must lie in (0, 1), got {keep!r}")
    if density.symmetric:
        return density.ppf(1.0 - keep / 2.0)
    hi = density.far_point(min(keep, 1e-12) * 1e-3)
    return float(optimize.brentq(lambda t: density.prob_abs_above(t) - keep, 0.0, hi,
                                 xtol=1e-14 * max(hi, 1.0), rtol=1e-14))
