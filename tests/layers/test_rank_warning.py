"""Export warns, chunk by chunk, when calibration rows are fewer than the chunk's inputs."""

import logging

import torch

from layers.export import export_layers


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "layers.export" and r.levelno == logging.WARNING]


def test_warns_for_each_chunk_with_fewer_rows_than_inputs(caplog):
    torch.manual_seed(0)
    layer = torch.nn.Linear(10, 3)
    batches = [torch.randn(5, 10)]  # 5 rows of X
    with caplog.at_level(logging.WARNING, logger="layers.export"):
        ex = export_layers(layer, batches, opt_dim=6, full_precision=True)
    assert ex.layers[""].rows == 5
    msgs = _warnings(caplog)
    # chunk 0 has 6 inputs (> 5 rows): warned; chunk 1 has 4 (<= 5): not.
    assert len(msgs) == 1
    assert "chunk 0" in msgs[0] and "5 calibration rows < 6 inputs" in msgs[0]
    assert ex.layers[""].chunks[0].H.shape == (6, 6)
    assert torch.linalg.matrix_rank(torch.from_numpy(ex.layers[""].chunks[0].H)) <= 5

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="layers.export"):
        export_layers(layer, batches, opt_dim=None, full_precision=True)
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and "5 calibration rows < 10 inputs" in msgs[0]


def test_no_warning_with_enough_rows(caplog):
    layer = torch.nn.Linear(10, 3)
    with caplog.at_level(logging.WARNING, logger="layers.export"):
        export_layers(layer, [torch.randn(10, 10)], opt_dim=4, full_precision=True)
    assert _warnings(caplog) == []
