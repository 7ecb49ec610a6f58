"""The solver comparison suite: instance families, runner, statistics, report and plots.

Entry point: ``python benchmarks/solver_comparison.py --help`` (docs/benchmarks.md).
"""
