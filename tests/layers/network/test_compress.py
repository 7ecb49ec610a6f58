"""layers.network: sequential capture sees the compressed predecessors (hand-computed H),
parallel the original; layer choice; weights written back in the layer's own layout."""

import numpy as np
import pytest
import torch
from torch import nn

from layers.errors import UnknownNameError, UnsupportedLayerError
from layers.network.compress import compress_network, select_layers, set_weight_matrix


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _halves(spec, ex):
    return np.round(ex.W0 * 2) / 2  # a grid of step 1/2


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_second_layer_sees_the_right_inputs(mode):
    net = _net()
    X = torch.randn(20, 3)
    W1 = net[0].weight.detach().double().numpy().copy()
    b1 = net[0].bias.detach().double().numpy()
    seen = {}

    def solve(spec, ex):
        seen[spec.name] = ex.chunks[0].H
        return _halves(spec, ex)

    compress_network(net, [X[:8], X[8:]], select_layers(net), solve, mode=mode)
    # by hand: layer 1's input rows, from the compressed (sequential) or original layer 0
    W1used = np.round(W1.astype(np.float16).astype(np.float64) * 2) / 2 \
        if mode == "sequential" else W1
    Y = np.maximum(X.double().numpy() @ W1used.T + b1, 0.0)
    assert np.allclose(seen["2"], Y.T @ Y, rtol=1e-5, atol=1e-6)
    assert np.allclose(seen["0"], X.double().numpy().T @ X.double().numpy(), rtol=1e-6)
    # both layers now hold the grid values
    for layer in (net[0], net[2]):
        w = layer.weight.detach().double().numpy()
        assert np.allclose(w * 2, np.round(w * 2), atol=1e-6)


def test_sequential_and_parallel_differ_on_the_second_layer():
    X = torch.randn(16, 3)
    Hs = {}
    for mode in ("sequential", "parallel"):
        net = _net()

        def solve(spec, ex, mode=mode):
            Hs[(mode, spec.name)] = ex.chunks[0].H
            return _halves(spec, ex)

        compress_network(net, [X], select_layers(net), solve, mode=mode)
    assert np.allclose(Hs[("sequential", "0")], Hs[("parallel", "0")])
    assert not np.allclose(Hs[("sequential", "2")], Hs[("parallel", "2")])


def test_lookup_skips_the_solve():
    net = _net()
    given = np.zeros((4, 3))
    calls = []

    def solve(spec, ex):
        calls.append(spec.name)
        return ex.W0

    out = compress_network(net, [torch.randn(4, 3)], select_layers(net), solve,
                           lookup=lambda s: given if s.name == "0" else None)
    assert calls == ["2"] and np.array_equal(out["0"], given)
    assert float(net[0].weight.detach().abs().sum()) == 0.0


def test_layer_choice_and_errors():
    net = _net()
    assert [s.name for s in select_layers(net)] == ["0", "2"]
    assert [s.name for s in select_layers(net, skip=["0"])] == ["2"]
    assert [s.name for s in select_layers(net, ["2"])] == ["2"]
    with pytest.raises(UnknownNameError, match="unknown layer 'nope'"):
        select_layers(net, ["nope"])
    with pytest.raises(UnsupportedLayerError, match="ReLU"):
        select_layers(net, ["1"])
    with pytest.raises(UnsupportedLayerError, match="no conv or linear layer left"):
        select_layers(net, skip=["0", "2"])


@pytest.mark.parametrize("module", [nn.Conv2d(4, 6, 3), nn.Conv2d(4, 4, 3, groups=4),
                                    nn.Linear(5, 2)])
def test_set_weight_matrix_is_the_inverse_of_weight_matrix(module):
    spec = select_layers(nn.Sequential(module))[0]
    W = np.arange(spec.channels * spec.n, dtype=float).reshape(spec.channels, spec.n)
    set_weight_matrix(spec, W)
    assert np.array_equal(spec.weight_matrix(full_precision=True), W)
    with pytest.raises(ValueError, match="expected"):
        set_weight_matrix(spec, W[:, :-1])
