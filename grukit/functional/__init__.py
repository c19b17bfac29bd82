"""The math floor: GRU equations, the variants' equations, the minGRU scans and the one composite time loop.

Plain differentiable torch ops only; this package imports neither ``grukit.nn`` nor ``grukit.kernels``
(they build on it). ``sequence`` / ``cell`` are the composite path every fast path must agree with.
"""

from .gru import GateValues, VariantMasks, cell, gru_cell, gru_step, sequence, variant_step

__all__ = [
    "GateValues",
    "VariantMasks",
    "cell",
    "gru_cell",
    "gru_step",
    "sequence",
    "variant_step",
]
