"""Exact solver for :class:`solvers.problem.LevelProblem`: Schnorr–Euchner search over
per-input sorted level sets with a nonzero limit (:mod:`solvers.levels.exact`)."""
