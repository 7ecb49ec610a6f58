"""Streaming accumulation of ``H = XᵀX`` in float64, per group and per input chunk.

``X`` arrives in slices (see :mod:`layers.unfold`): ``Xᵀ`` as a (G, n, r) tensor for ``r`` new
rows. Since ``XᵀX = Σ_slices X_sᵀ X_s``, adding each slice's product gives the same matrix as a
one-shot product over all rows (up to float64 rounding), with memory ``O(G·n·chunk)`` instead of
``O(rows·n)``.

With chunks (``opt_dim = d``), input coordinates ``[k·d, (k+1)·d)`` form block ``k``; only the
diagonal blocks ``H[kd:(k+1)d, kd:(k+1)d]`` are accumulated (all blocks of equal size in one
batched product, a shorter last block apart), which is what the chunk problems need and costs
``rows·n·d`` instead of ``rows·n²``.

Example
-------
>>> import torch
>>> acc = HessianAccumulator(groups=1, n=3, opt_dim=2)
>>> X = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
>>> acc.update(X.t()[None])
>>> [tuple(h.shape) for h in acc.blocks()]
[(1, 2, 2), (1, 1, 1)]
>>> torch.equal(acc.blocks()[0][0], (X.t() @ X)[:2, :2])
True
"""

from __future__ import annotations

import torch


def chunk_bounds(n: int, opt_dim: int | None) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` blocks of ``opt_dim`` inputs (one block when ``None``)."""
    if opt_dim is None or opt_dim >= n:
        return [(0, n)]
    if int(opt_dim) != opt_dim or opt_dim < 1:
        raise ValueError(f"opt_dim must be a positive integer, got {opt_dim!r}")
    d = int(opt_dim)
    return [(s, min(s + d, n)) for s in range(0, n, d)]


class HessianAccumulator:
    """Sum of ``X_gᵀX_g`` over slices, for ``groups`` groups, restricted to the chunk blocks.

    Parameters
    ----------
    groups : int
        Number of input groups ``G`` (1 for dense layers, ``C`` for depthwise convs).
    n : int
        Inputs per channel (columns of ``X_g``).
    opt_dim : int, optional
        Chunk size; ``None`` keeps the full ``n×n`` matrix.
    """

    def __init__(self, groups: int, n: int, opt_dim: int | None = None) -> None:
        self.groups, self.n = int(groups), int(n)
        self.bounds = chunk_bounds(self.n, opt_dim)
        self.d = self.bounds[0][1] - self.bounds[0][0]
        self.nfull = self.n // self.d  # number of blocks of full size d
        self._main = torch.zeros(self.groups, self.nfull, self.d, self.d, dtype=torch.float64)
        r = self.n - self.nfull * self.d
        self._rest = torch.zeros(self.groups, r, r, dtype=torch.float64) if r else None
        self.rows = 0

    def update(self, At: torch.Tensor) -> None:
        """Add ``X_gᵀX_g`` for a slice given as ``At = Xᵀ`` of shape (G, n, r), float64."""
        G, n, r = At.shape
        if (G, n) != (self.groups, self.n):
            raise ValueError(f"slice has shape {tuple(At.shape)}, expected ({self.groups}, "
                             f"{self.n}, rows)")
        At = At.to(torch.float64)
        full = self.nfull * self.d
        if self.nfull == 1 and full == n:
            Ab = At
            self._main[:, 0] += torch.bmm(Ab, Ab.transpose(1, 2))
        else:
            Ab = At[:, :full].reshape(G * self.nfull, self.d, r)
            self._main += torch.bmm(Ab, Ab.transpose(1, 2)).view(G, self.nfull, self.d, self.d)
        if self._rest is not None:
            Ar = At[:, full:]
            self._rest += torch.bmm(Ar, Ar.transpose(1, 2))
        self.rows += r

    def blocks(self) -> list[torch.Tensor]:
        """One symmetrised (G, b, b) float64 tensor per chunk, in input order."""
        out = [self._main[:, k] for k in range(self.nfull)]
        if self._rest is not None:
            out.append(self._rest)
        return [0.5 * (h + h.transpose(1, 2)) for h in out]
