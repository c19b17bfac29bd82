"""The spec of the int8 streaming step (``grukit.quantize(model, "int8")``, csrc/gru_int8.cpp) in float64
NumPy, no torch: the weights' per-row quantization and the step with the kernel's rounding of its inputs.

The step rounds every vector it multiplies by an int8 matrix (x, h and, with ``reset_after=False``, r ⊙ h)
to an 8-bit magnitude ``amax/255`` apart and its sign, computed in float32 as the kernel does; the products
and the gates are then float64. What is left between this and the kernel is float32 arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import sigmoid


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 of ``w`` (rows, K): ``q`` in [-127, 127] (as float64 values; round half to
    even) and float32 scales ``max |w[r]| / 127``; a row of zeros gets scale 0 and q 0."""
    w = np.asarray(w, dtype=np.float32)
    s = (np.abs(w).max(axis=1) / np.float32(127)).astype(np.float32)
    q = np.clip(np.rint(w / np.where(s > 0, s, np.float32(1))[:, None]), -127, 127)
    return q.astype(np.float64), s


def round_input(v: np.ndarray) -> np.ndarray:
    """The kernel's rounding of one float32 vector, as float64 values ``sign · m · (amax / 255)``."""
    v = np.asarray(v, dtype=np.float32)
    a = np.abs(v)
    amax = a.max()
    inv = np.float32(255) / amax if amax > 0 else np.float32(0)
    m = np.minimum(np.rint(a * inv), np.float32(255)).astype(np.float64)
    return np.where(np.signbit(v), -m, m) * float(amax / np.float32(255))


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
    """One int8 step: x (B, I) and h (B, H) hold float32 values, w_ih (3H, I) and w_hh (3H, H) the
    dequantized weights ``q · scale`` (float64), biases (3H,) or None → h' (B, H) float64."""
    x, h = np.asarray(x, dtype=np.float32), np.asarray(h, dtype=np.float32)
    H = h.shape[1]
    b_ih = np.zeros(3 * H) if b_ih is None else np.asarray(b_ih, dtype=np.float64)
    b_hh = np.zeros(3 * H) if b_hh is None else np.asarray(b_hh, dtype=np.float64)
    out = np.zeros(h.shape)
    for b in range(h.shape[0]):
        hb = h[b].astype(np.float64)
        gi = w_ih @ round_input(x[b]) + b_ih
        if reset_after:
            gh = w_hh @ round_input(h[b]) + b_hh
            r, z = sigmoid(gi[:H] + gh[:H]), sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
            n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        else:
            gh = w_hh[: 2 * H] @ round_input(h[b]) + b_hh[: 2 * H]
            r, z = sigmoid(gi[:H] + gh[:H]), sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
            rh = round_input((r * hb).astype(np.float32))
            n = np.tanh(gi[2 * H :] + w_hh[2 * H :] @ rh + b_hh[2 * H :])
        out[b] = n + z * (hb - n)
    return out
