"""The executable spec of the GRU variants and of minGRU, in float64 NumPy (no torch), one sequence at a time.

Variants of the GRU (``grukit.GRU(layer_norm=, recurrent_dropout=, zoneout=, dropconnect=)``), with LN_g
the layer norm of each gate group of H features (no own gain/shift, eps 1e-5)::

    gi = γ_ih ⊙ LN_g(W_ih x) + b_ih,   gh = γ_hh ⊙ LN_g(W_hh (m ⊙ h)) + b_hh     (layer norm off: no γ, no LN)
    reset_after=False: the n row of gh is γ_hn ⊙ LN(W_hn (r ⊙ m ⊙ h)) + b_hn
    W_hh is W_hh ⊙ M under DropConnect; m is the recurrent-dropout mask (1 when off)
    h'  = z ⊙ h + (1 − z) ⊙ n                  (the usual GRU gates, from gi and gh)
    h_t = d_t ⊙ h_{t−1} + (1 − d_t) ⊙ h'         zoneout: d_t a {0, 1} mask (training) or p (eval)

minGRU (grukit's convention: z = share of the old state kept; the paper's z is 1 − z)::

    z = σ(W_iz x + b_iz),  n = g(W_in x + b_in) with g(a) = a + ½ (a ≥ 0), σ(a) (a < 0)
    h_t = z ⊙ h_{t−1} + (1 − z) ⊙ n
"""

from __future__ import annotations

import numpy as np

LN_EPS = 1e-5


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def layer_norm_groups(a, gain, hidden_size, eps=LN_EPS):
    """gain ⊙ LN over each group of hidden_size features: a (B, k·H), gain (k·H,) → (B, k·H)."""
    B = a.shape[0]
    groups = a.reshape(B, -1, hidden_size)
    mean = groups.mean(axis=-1, keepdims=True)
    var = ((groups - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((groups - mean) / np.sqrt(var + eps)).reshape(B, -1) * gain


def variant_gru_cell(
    x,
    h,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    reset_after=True,
    ln_ih=None,
    ln_hh=None,
    recurrent_mask=None,
    eps=LN_EPS,
):
    """One variant step before zoneout: x (B, I), h (B, H) → (h' (B, H), (z, r, n)).

    w_hh already carries any DropConnect mask; recurrent_mask (B, H) multiplies the state feeding W_hh.
    """
    H = h.shape[-1]
    b_ih = np.zeros(3 * H) if b_ih is None else b_ih
    b_hh = np.zeros(3 * H) if b_hh is None else b_hh
    hd = h if recurrent_mask is None else h * recurrent_mask
    ax = x @ w_ih.T
    gi = (ax if ln_ih is None else layer_norm_groups(ax, ln_ih, H, eps)) + b_ih
    gi_r, gi_z, gi_n = gi[:, :H], gi[:, H : 2 * H], gi[:, 2 * H :]
    if reset_after:
        ah = hd @ w_hh.T
        gh = (ah if ln_hh is None else layer_norm_groups(ah, ln_hh, H, eps)) + b_hh
        r = _sigmoid(gi_r + gh[:, :H])
        z = _sigmoid(gi_z + gh[:, H : 2 * H])
        n = np.tanh(gi_n + r * gh[:, 2 * H :])
    else:
        ah = hd @ w_hh[: 2 * H].T
        gh = (ah if ln_hh is None else layer_norm_groups(ah, ln_hh[: 2 * H], H, eps)) + b_hh[
            : 2 * H
        ]
        r = _sigmoid(gi_r + gh[:, :H])
        z = _sigmoid(gi_z + gh[:, H:])
        an = (r * hd) @ w_hh[2 * H :].T
        gh_n = (an if ln_hh is None else layer_norm_groups(an, ln_hh[2 * H :], H, eps)) + b_hh[
            2 * H :
        ]
        n = np.tanh(gi_n + gh_n)
    return z * h + (1.0 - z) * n, (z, r, n)


def variant_gru_direction(
    x,
    h0,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    reset_after=True,
    lengths=None,
    reverse=False,
    ln_ih=None,
    ln_hh=None,
    recurrent_mask=None,
    zoneout=None,
    dropconnect_mask=None,
    eps=LN_EPS,
):
    """One direction over time-major x (T, B, I) → (output (T, B, H), h_n (B, H), gates (3, T, B, H)).

    recurrent_mask (B, H), the same at every step; zoneout None, a keep probability (eval) or a {0, 1}
    keep mask (T, B, H) indexed by time step; dropconnect_mask (3H, H) multiplies w_hh. Sequence b uses
    steps t < lengths[b]; its outputs and gates past that are zero.
    """
    T, B, _ = x.shape
    H = h0.shape[-1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    w = w_hh if dropconnect_mask is None else w_hh * dropconnect_mask
    out = np.zeros((T, B, H))
    gates = np.zeros((3, T, B, H))
    h_n = np.zeros((B, H))
    for b in range(B):
        h = h0[b : b + 1]
        m = None if recurrent_mask is None else recurrent_mask[b : b + 1]
        for t in range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b]):
            h_new, gt = variant_gru_cell(
                x[t, b : b + 1], h, w_ih, w, b_ih, b_hh, reset_after, ln_ih, ln_hh, m, eps
            )
            if zoneout is not None:
                keep = zoneout if np.isscalar(zoneout) else zoneout[t, b : b + 1]
                h_new = keep * h + (1.0 - keep) * h_new
            h = h_new
            out[t, b] = h[0]
            gates[:, t, b] = np.stack(gt)[:, 0]
        h_n[b] = h[0]
    return out, h_n, gates


def variant_gru(
    x,
    params: dict,
    num_layers=1,
    bidirectional=False,
    reset_after=True,
    h0=None,
    lengths=None,
    batch_first=False,
    layer_norm=False,
    masks=None,
    zoneout_p=None,
    eps=LN_EPS,
):
    """A stacked (bi)directional variant GRU without inter-layer dropout.

    params maps grukit's parameter names (torch's, plus ``ln_gain_ih_l{k}[_reverse]``/``ln_gain_hh...`` when
    layer_norm) to arrays. masks maps (layer, direction) to a dict with optional "recurrent" (B, H),
    "zoneout" (T, B, H) and "dropconnect" (3H, H) arrays (training); zoneout_p is used for directions
    without a zoneout mask (eval). Returns (output, h_n (L·D, B, H), gates (L, D, 3, T, B, H)).
    """
    x = np.asarray(x, dtype=np.float64)
    if batch_first:
        x = x.transpose(1, 0, 2)
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    B = x.shape[1]
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    p = {k: None if v is None else np.asarray(v, dtype=np.float64) for k, v in params.items()}
    masks = masks or {}
    layer_in, h_n, all_gates = x, [], []
    for layer in range(num_layers):
        outs, layer_gates = [], []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            mk = {
                k: None if v is None else np.asarray(v, dtype=np.float64)
                for k, v in masks.get((layer, d), {}).items()
            }
            zone = mk.get("zoneout")
            out, h, gt = variant_gru_direction(
                layer_in,
                h0[layer * D + d],
                p[f"weight_ih{sfx}"],
                p[f"weight_hh{sfx}"],
                p.get(f"bias_ih{sfx}"),
                p.get(f"bias_hh{sfx}"),
                reset_after,
                lengths,
                bool(d),
                p[f"ln_gain_ih{sfx}"] if layer_norm else None,
                p[f"ln_gain_hh{sfx}"] if layer_norm else None,
                mk.get("recurrent"),
                zoneout_p if zone is None else zone,
                mk.get("dropconnect"),
                eps,
            )
            outs.append(out)
            h_n.append(h)
            layer_gates.append(gt)
        layer_in = np.concatenate(outs, axis=-1)
        all_gates.append(layer_gates)
    out = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return out, np.stack(h_n), np.array(all_gates)


# ----------------------------------------------------------------------------------------------- minGRU
def mingru_g(a):
    """The minGRU candidate activation: a + ½ for a ≥ 0, σ(a) otherwise."""
    return np.where(a >= 0, a + 0.5, _sigmoid(np.minimum(a, 0.0)))


def mingru_cell(x, h, w_ih, b_ih=None):
    """One minGRU step: x (B, I), h (B, H) → (h' (B, H), (z, n)); w_ih (2H, I) rows stacked z, n."""
    H = h.shape[-1]
    a = x @ w_ih.T + (0.0 if b_ih is None else b_ih)
    z = _sigmoid(a[:, :H])
    n = mingru_g(a[:, H:])
    return z * h + (1.0 - z) * n, (z, n)


def mingru(
    x, params: dict, num_layers=1, bidirectional=False, h0=None, lengths=None, batch_first=False
):
    """A stacked (bi)directional minGRU without dropout, step by step.

    x (T, B, I) (or (B, T, I) if batch_first); params maps ``weight_ih_l{k}[_reverse]`` / ``bias_ih_...`` to
    arrays. Returns (output (T, B, D·H), h_n (L·D, B, H), gates (L, D, 2, T, B, H)), zero past each length.
    """
    x = np.asarray(x, dtype=np.float64)
    if batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = params["weight_ih_l0"].shape[0] // 2
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    p = {k: None if v is None else np.asarray(v, dtype=np.float64) for k, v in params.items()}
    layer_in, h_n, all_gates = x, [], []
    for layer in range(num_layers):
        outs, layer_gates = [], []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            out, gates, hn = np.zeros((T, B, H)), np.zeros((2, T, B, H)), np.zeros((B, H))
            for b in range(B):
                h = h0[layer * D + d, b : b + 1]
                for t in range(lengths[b] - 1, -1, -1) if d else range(lengths[b]):
                    h, gt = mingru_cell(
                        layer_in[t, b : b + 1], h, p[f"weight_ih{sfx}"], p.get(f"bias_ih{sfx}")
                    )
                    out[t, b] = h[0]
                    gates[:, t, b] = np.stack(gt)[:, 0]
                hn[b] = h[0]
            outs.append(out)
            h_n.append(hn)
            layer_gates.append(gates)
        layer_in = np.concatenate(outs, axis=-1)
        all_gates.append(layer_gates)
    out = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return out, np.stack(h_n), np.array(all_gates)
