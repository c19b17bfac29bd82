"""The executable spec: the GRU in float64 NumPy, no torch, written for reading rather than speed.

Parameters use torch's names and layout (``weight_ih_l{k}[_reverse]`` stacked r, z, n, ...). The tests use
this module as the oracle for every implementation in grukit.
"""

from __future__ import annotations

import numpy as np

from . import variants  # noqa: F401  (the variants' and minGRU's spec)
from .variants import mingru, variant_gru  # noqa: F401


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
    """One step: x (B, I), h (B, H) → (h' (B, H), (z, r, n))."""
    H = h.shape[-1]
    b_ih = np.zeros(3 * H) if b_ih is None else b_ih
    b_hh = np.zeros(3 * H) if b_hh is None else b_hh
    W_ir, W_iz, W_in = w_ih[:H], w_ih[H : 2 * H], w_ih[2 * H :]
    W_hr, W_hz, W_hn = w_hh[:H], w_hh[H : 2 * H], w_hh[2 * H :]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H : 2 * H], b_ih[2 * H :]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H :]
    z = sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    r = sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    if reset_after:
        n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    else:
        n = np.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    return z * h + (1.0 - z) * n, (z, r, n)


def gru_direction(
    x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True, lengths=None, reverse=False
):
    """One direction over time-major x (T, B, I) → (output (T, B, H), h_n (B, H), gates (3, T, B, H)).

    Sequence b only uses steps t < lengths[b]; its outputs and gates past that are zero. The reverse
    direction runs from each sequence's own last step back to t = 0.
    """
    T, B, _ = x.shape
    H = h0.shape[-1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    out = np.zeros((T, B, H))
    gates = np.zeros((3, T, B, H))
    h_n = np.zeros((B, H))
    for b in range(B):
        h = h0[b : b + 1]
        steps = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in steps:
            h, g = gru_cell(x[t, b : b + 1], h, w_ih, w_hh, b_ih, b_hh, reset_after)
            out[t, b] = h[0]
            gates[:, t, b] = np.stack(g)[:, 0]
        h_n[b] = h[0]
    return out, h_n, gates


def gru(
    x,
    params: dict,
    num_layers: int = 1,
    bidirectional: bool = False,
    reset_after: bool = True,
    h0=None,
    lengths=None,
    batch_first: bool = False,
):
    """A stacked (bi)directional GRU without dropout, as torch.nn.GRU computes it.

    x (T, B, I) (or (B, T, I) if batch_first); params maps torch's parameter names to arrays; h0 (L·D, B, H)
    or None for zeros. Returns (output (T, B, D·H), h_n (L·D, B, H), gates (L, D, 3, T, B, H)).
    """
    x = np.asarray(x, dtype=np.float64)
    if batch_first:
        x = x.transpose(1, 0, 2)
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    B = x.shape[1]
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    p = {k: None if v is None else np.asarray(v, dtype=np.float64) for k, v in params.items()}
    layer_in, h_n, all_gates = x, [], []
    for layer in range(num_layers):
        outs, layer_gates = [], []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            out, h, g = gru_direction(
                layer_in,
                h0[layer * D + d],
                p[f"weight_ih{sfx}"],
                p[f"weight_hh{sfx}"],
                p.get(f"bias_ih{sfx}"),
                p.get(f"bias_hh{sfx}"),
                reset_after,
                lengths,
                reverse=bool(d),
            )
            outs.append(out)
            h_n.append(h)
            layer_gates.append(g)
        layer_in = np.concatenate(outs, axis=-1)
        all_gates.append(layer_gates)
    out = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return out, np.stack(h_n), np.array(all_gates)


from . import int8  # noqa: E402, F401  (the int8 streaming step's spec; it uses sigmoid above)
