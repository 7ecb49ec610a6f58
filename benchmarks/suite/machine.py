"""What the report says about where and how it was measured: machine, load, versions, date."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

#: Distributions whose versions every report lists (absent ones are reported as absent).
VERSIONED = (
    "pqbound",
    "numpy",
    "scipy",
    "numba",
    "cvxpy",
    "clarabel",
    "PySCIPOpt",
    "highspy",
    "ortools",
    "gurobipy",
    "cplex",
    "xpress",
    "fpylll",
    "abess",
    "torch",
    "transformers",
    "matplotlib",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def versions() -> dict[str, str]:
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(root: Path | None = None) -> dict[str, Any]:
    """Everything the report header states about the machine."""
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_start": load_average(),
        "commit": git_commit(root) if root is not None else "unknown",
        "versions": versions(),
    }


def under_load(load: tuple[float, float, float] | None, cores: int | None) -> bool:
    """True when the 1-minute load average exceeded half the cores beyond our own one thread."""
    if load is None or not cores:
        return False
    return load[0] > 1.0 + 0.5 * cores
