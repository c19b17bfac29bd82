"""The CUDA route: PyTorch's own GRU kernel (``torch._VF.gru`` → cuDNN on CUDA) for a whole layer stack.

It runs ``reset_after=True`` GRUs without variants: the same equations and the same weight layout as
``torch.nn.GRU``. The layer calls it directly, outside the registered op, so autograd keeps cuDNN's reserve
buffer and cuDNN's backward; sequence lengths go through packing (each sequence's own end, zeros past it).
The call is the same on CPU (ATen's native GRU), which is how the tests exercise it without a GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

#: run the route on CPU tensors too (tests set it; ``grukit.GRU`` otherwise takes it on CUDA only)
force_on_cpu: bool = False


def gru_stack(
    x: Tensor,
    h0: Tensor,
    weights: list[Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """All layers and directions over time-major x (T, B, I) from h0 (L·D, B, H) → (out (T, B, D·H), h_n).

    ``weights`` in ``torch.nn.GRU._flat_weights`` order (w_ih, w_hh[, b_ih, b_hh] per layer and
    direction). With ``lengths`` (B,) int64 CPU, steps past each sequence's end output zeros and h_n is the
    state at its last step.
    """
    if lengths is None:
        out, h_n = torch._VF.gru(
            x, h0, weights, has_biases, num_layers, dropout, training, bidirectional, False
        )
        return out, h_n
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    assert packed.sorted_indices is not None and packed.unsorted_indices is not None
    hx = h0.index_select(1, packed.sorted_indices)
    data, h_n = torch._VF.gru(
        packed.data,
        packed.batch_sizes,
        hx,
        weights,
        has_biases,
        num_layers,
        dropout,
        training,
        bidirectional,
    )
    out_packed = packed._replace(data=data)
    out, _ = pad_packed_sequence(out_packed, batch_first=False, total_length=x.shape[0])
    return out, h_n.index_select(1, packed.unsorted_indices)
