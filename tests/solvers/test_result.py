"""The one result type: the contract is enforced at construction; JSON is strict."""

import json
import math

import numpy as np
import pytest

from solvers.result import SolveResult, Status, relative_gap, sqnr_db


def _result(**kw):
    base = dict(status=Status.OPTIMAL, weights=np.array([0.5, -1.0]), objective=2.0,
                lower_bound=1.5, norm=20.0, method="exact", codes=np.array([1, -2]))
    base.update(kw)
    return SolveResult(**base)


def test_bound_above_objective_is_refused():
    with pytest.raises(ValueError, match="contract"):
        _result(lower_bound=2.5)


def test_gap_and_sqnr():
    r = _result()
    assert math.isclose(r.gap, 0.25)
    assert math.isclose(r.sqnr_db, 10.0)
    assert math.isclose(r.sqnr_upper_db, 10 * math.log10(20 / 1.5))
    assert relative_gap(0.0, 0.0) == 0.0
    assert relative_gap(1.0, None) is None
    assert sqnr_db(1.0, 0.0) == math.inf


def test_to_dict_is_strict_json():
    d = _result(objective=0.0, lower_bound=0.0).to_dict(channel=3)
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["channel"] == 3 and back["sqnr_db"] == "inf"
    assert back["codes"] == [1, -2] and back["weights"] == [0.5, -1.0]


def test_heuristic_has_no_bound():
    r = _result(status=Status.HEURISTIC, lower_bound=None)
    d = r.to_dict()
    assert d["lower_bound"] is None and d["sqnr_upper_db"] is None and d["gap"] is None
