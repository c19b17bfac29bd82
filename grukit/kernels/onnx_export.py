"""Standard ONNX ``GRU`` nodes for a plain ``torch.onnx.export`` of any model holding a ``grukit.GRU``.

Both exporters, without extra export arguments:

- the dynamo exporter (the default): the layer calls :func:`gru_layer` from ``forward`` while
  ``torch.onnx.is_in_onnx_export()``; it emits one ``GRU`` node per layer (both directions) through
  ``torch.onnx.ops.symbolic_multi_out``, with a symbolic (dynamic) time axis;
- ``dynamo=False`` (TorchScript): a symbolic for ``grukit::gru_sequence``, registered at import with
  ``torch.onnx.register_custom_op_symbolic``, turns each traced op (one direction) into a ``GRU`` node.

Weights go from torch's gate order (r, z, n) to ONNX's (z, r, h); ``reset_after`` is ONNX's
``linear_before_reset``; both use h' = z ⊙ h + (1 − z) ⊙ n.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

OPSET = 14


def _in_dynamo_onnx_export() -> bool:
    try:
        from torch.onnx._internal.exporter import _flags

        return bool(_flags._is_onnx_exporting)
    except Exception:  # another torch layout: assume the public flag means the default exporter
        return bool(torch.onnx.is_in_onnx_export())


def in_dynamo_export() -> bool:
    """Whether the dynamo ONNX exporter is tracing (then the layer emits ONNX GRU nodes itself)."""
    return bool(torch.onnx.is_in_onnx_export()) and _in_dynamo_onnx_export()


def _zrn(t: Tensor, H: int) -> Tensor:
    """Rows r, z, n (torch) → z, r, n (ONNX) along the first axis."""
    return torch.cat([t[H : 2 * H], t[:H], t[2 * H :]])


def gru_layer(
    x: Tensor,
    h0: Tensor,
    weights: list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]],
    reset_after: bool,
    lengths: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One layer (1 or 2 directions) as one ONNX GRU node: x (T, B, I), h0 (D, B, H) → (out (T, B, D·H), h_n (D, B, H))."""
    D = len(weights)
    H = weights[0][1].shape[1]
    W = torch.stack([_zrn(w[0], H) for w in weights])  # (D, 3H, I)
    R = torch.stack([_zrn(w[1], H) for w in weights])  # (D, 3H, H)
    inputs: list[Tensor | None] = [x, W, R]
    if weights[0][2] is not None:
        inputs.append(
            torch.stack([torch.cat([_zrn(w[2], H), _zrn(w[3], H)]) for w in weights])  # type: ignore[arg-type]
        )
    else:
        inputs.append(None)
    inputs.append(None if lengths is None else lengths.to(torch.int32))
    inputs.append(h0)
    T, B = x.shape[0], x.shape[1]
    y, y_h = torch.onnx.ops.symbolic_multi_out(
        "GRU",
        inputs,
        {
            "hidden_size": int(H),
            "linear_before_reset": int(bool(reset_after)),
            "direction": "bidirectional" if D == 2 else "forward",
        },
        dtypes=(x.dtype, x.dtype),
        shapes=((T, D, B, H), (D, B, H)),
        version=OPSET,
    )
    out = y.permute(0, 2, 1, 3).reshape(T, B, D * H)
    return out, y_h


# ------------------------------------------------------------------------------- TorchScript exporter
def _symbolic(
    g: Any,
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    lengths: Any,
    reset_after: Any,
    reverse: Any,
    save: Any,
) -> Any:
    from torch.onnx import symbolic_helper as sh

    reset_after = sh._maybe_get_const(reset_after, "b")
    reverse = sh._maybe_get_const(reverse, "b")
    sizes = sh._get_tensor_sizes(w_hh)
    H = int(sizes[1])
    idx = g.op(
        "Constant",
        value_t=torch.cat([torch.arange(H, 2 * H), torch.arange(H), torch.arange(2 * H, 3 * H)]),
    )

    def zrn(t: Any) -> Any:
        return sh._unsqueeze_helper(g, g.op("Gather", t, idx, axis_i=0), [0])

    def none() -> Any:
        n = g.op("prim::Constant")
        n.setType(torch._C.OptionalType.ofTensor())
        return n

    if sh._is_none(b_ih):
        bias = none()
    else:
        bias = g.op("Concat", zrn(b_ih), zrn(b_hh), axis_i=1)
    lens = none() if sh._is_none(lengths) else g.op("Cast", lengths, to_i=6)  # INT32
    y, y_h = g.op(
        "GRU",
        x,
        zrn(w_ih),
        zrn(w_hh),
        bias,
        lens,
        sh._unsqueeze_helper(g, h0, [0]),
        hidden_size_i=H,
        linear_before_reset_i=int(bool(reset_after)),
        direction_s="reverse" if reverse else "forward",
        outputs=2,
    )
    out = sh._squeeze_helper(g, y, [1])
    hn = sh._squeeze_helper(g, y_h, [0])
    return out, hn, out, hn  # the saved-for-backward outputs are never used in an exported graph


def register_symbolic() -> None:
    """Register the TorchScript exporter's symbolic for ``grukit::gru_sequence`` (idempotent)."""
    from torch.onnx import register_custom_op_symbolic  # type: ignore[attr-defined, unused-ignore]

    register_custom_op_symbolic("grukit::gru_sequence", _symbolic, 9)


register_symbolic()
