"""The layer tests' own oracle glue: the float64 reference run on a layer's weights (the shared randomiser and
comparisons live in tests/support.py)."""

import numpy as np
from support import numpy_params

import grukit
from grukit import reference


def reference_of(gru: grukit.GRU, x, h0=None, lengths=None):
    """(output, h_n, gates) of the float64 reference for the same weights and inputs."""
    return reference.gru(
        x.detach().double().numpy(),
        numpy_params(gru),
        gru.num_layers,
        gru.bidirectional,
        gru.reset_after,
        None if h0 is None else h0.detach().double().numpy(),
        None if lengths is None else np.asarray(lengths),
        gru.batch_first,
    )
