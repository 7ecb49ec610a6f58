"""Whole networks, torch side: compress every chosen layer in order and measure the result.

* :mod:`layers.network.compress`: choose the layers (``layers``/``skip``), capture each layer's
  ``H`` from the original network (*parallel*) or from the network whose earlier layers are
  already compressed (*sequential*, as GPTQ and SparseGPT do), hand ``(H, W0)`` to a solve
  callback and write the returned weights back into the module.
* :mod:`layers.network.data`: calibration and held-out data that share no photo, sentence, file
  or input row.
* :mod:`layers.network.evaluate`: end-to-end figures of a compressed network against the
  original (agreement, KL, logit SQNR; embedding similarity) with bootstrap intervals.

Knows nothing of solvers: the callback is given numpy arrays and returns numpy arrays.
"""
