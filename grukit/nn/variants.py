"""The GRU variants' equations (layer norm, recurrent dropout, zoneout, DropConnect), as ``grukit.GRU`` options.

The math and the composite time loop that runs them live in the floor, :mod:`grukit.functional.gru`
(see its docstring for the equations); this module keeps their historical names. Layer norm and zoneout
change every step, so they run the composite loop; recurrent dropout does in training. DropConnect alone
only changes W_hh and still goes through ``grukit.kernels.dispatch``.
"""

from __future__ import annotations

from ..functional.gru import (
    LN_EPS,
    VariantMasks,
    cell,
    dropout_mask,
    group_layer_norm,
    input_projection,
    sequence,
    variant_step,
    zoneout_mask,
)

__all__ = [
    "LN_EPS",
    "VariantMasks",
    "cell",
    "dropout_mask",
    "group_layer_norm",
    "input_projection",
    "sequence",
    "variant_step",
    "zoneout_mask",
]
