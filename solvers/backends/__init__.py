"""General solvers behind one interface (:mod:`solvers.backends.base`), one file each.

``scip.py`` (SCIP via pyscipopt, and via cvxpy), ``gurobi.py``, ``highs.py`` (outer
approximation), ``cpsat.py``; the models they build from a problem: ``quant_model.py``
(quantization) and ``bigm.py`` (the paper's big-M pruning model); ``isolation.py`` keeps
OR-Tools and highspy apart. The registry (:mod:`solvers.registry`) lists their methods.
"""
