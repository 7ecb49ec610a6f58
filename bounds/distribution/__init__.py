"""The paper's first study: pruning vs quantization on distributions and on weight tensors.

* :mod:`.densities`: scipy.stats laws (normal, Laplace, uniform, Student-t), truncation.
* :mod:`.analytic`: expected quantization / pruning error by numerical integration.
* :mod:`.kurtosis_sweep`: SNR of both against kurtosis, crossovers (Figure 2 analogue).
* :mod:`.weight_tensors`: the same on every Conv / Linear weight tensor of a model.
* :mod:`.figures`: the PNG figures (matplotlib, Agg backend).

See docs/distribution-study.md for every convention.
"""
