"""The GRU recurrence as operators PyTorch knows: ``grukit::gru_sequence`` and ``grukit::gru_sequence_backward``.

``torch.compile``, ``torch.export``, ``torch.jit.trace`` and the ONNX exporters see one op per layer and
direction instead of a traced Python loop: no unrolling, no recompile per sequence length. The eager layer
does not pay the op's dispatch cost: ``grukit.kernels.dispatch`` calls the fused kernel directly unless a
graph is being built (compile, export, trace, ONNX, fake tensors), autocast is on, or the tensors live on
another device; then it calls :func:`sequence` here.

Schema (one direction of one layer)::

    gru_sequence(x (T, B, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H), b_ih (3H)?, b_hh (3H)?,
                 lengths (B,) int64?, reset_after, reverse, save)
        -> out (T, B, H), h_n (B, H), hprev, gates
    gru_sequence_backward(grad_out, grad_hn, x, h0, w_ih, w_hh, b_ih?, b_hh?, lengths?, hprev, gates,
                          reset_after, reverse) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh

``hprev`` (T, B, H) and ``gates`` (T, B, 4H) are the fused kernel's saved buffers when it ran (CPU, float32
or float64, ``save`` set); otherwise they are empty (0,) and the backward recomputes through the composite
path. Missing biases give empty (0,) bias gradients. The CPU kernel is the fused one; every other device
(CUDA included) runs the composite implementation. Double backward (grad mode on inside the backward)
differentiates the composite recomputation. Under autocast (CPU, CUDA) the op runs in float32.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from ..functional import gru as fgru

_FLOATS = (torch.float32, torch.float64)


def _fused_module() -> Any:
    from . import _load_fused

    return _load_fused()


def _fused_runs(x: Tensor, *ts: Tensor | None) -> bool:
    """Whether the CPU kernel of the op uses the fused kernel for these tensors (fake tensors included)."""
    if x.device.type != "cpu" or x.dtype not in _FLOATS or _fused_module() is None:
        return False
    return all(t is None or (t.dtype == x.dtype and t.device.type == "cpu") for t in ts)


def _empty(x: Tensor) -> Tensor:
    return x.new_empty(0)


# --------------------------------------------------------------------------------------------- forward
@torch.library.custom_op("grukit::gru_sequence", mutates_args=())
def gru_sequence(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The composite implementation (every device but CPU): the floor's time loop, without autograd."""
    with torch.no_grad():
        out, hn, _ = fgru.sequence(
            x, h0, w_ih, w_hh, b_ih, b_hh, reset_after, lengths=lengths, reverse=reverse
        )
    return out, hn, _empty(x), _empty(x)


@gru_sequence.register_kernel("cpu")
def _gru_sequence_cpu(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if not _fused_runs(x, h0, w_ih, w_hh, b_ih, b_hh):
        with torch.no_grad():
            out, hn, _ = fgru.sequence(
                x, h0, w_ih, w_hh, b_ih, b_hh, reset_after, lengths=lengths, reverse=reverse
            )
        return out, hn, _empty(x), _empty(x)
    fused = _fused_module()
    fused.calls["op_sequence"] += 1
    with torch.no_grad():
        out, hn, hprev, gates = fused._forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, reset_after, lengths, reverse, save=save
        )
    if not save:
        hprev, gates = _empty(x), _empty(x)
    return out, hn, hprev, gates


@gru_sequence.register_fake
def _gru_sequence_fake(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    T, B, H = x.shape[0], x.shape[1], w_hh.shape[1]  # T may be symbolic
    out, hn = x.new_empty(T, B, H), x.new_empty(B, H)
    if save and _fused_runs(x, h0, w_ih, w_hh, b_ih, b_hh):
        return out, hn, x.new_empty(T, B, H), x.new_empty(T, B, 4 * H)
    return out, hn, _empty(x), _empty(x)


# -------------------------------------------------------------------------------------------- backward
def _composite_grads(
    grad_out: Tensor,
    grad_hn: Tensor,
    inputs: tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None],
    lengths: Tensor | None,
    reset_after: bool,
    reverse: bool,
    create_graph: bool,
) -> list[Tensor | None]:
    """Gradients of the composite recomputation w.r.t. (x, h0, w_ih, w_hh, b_ih, b_hh)."""
    # Inside an op's kernel the autograd keys are excluded; the recomputation needs them back.
    exclude = torch._C._dispatch_tls_local_exclude_set().remove(torch._C.DispatchKey.AutogradCPU)
    keys = torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude)
    with keys, torch.enable_grad(), torch.autocast(inputs[0].device.type, enabled=False):
        leaves = [
            None if t is None else (t if create_graph else t.detach().requires_grad_(True))
            for t in inputs
        ]
        out, hn, _ = fgru.sequence(
            cast(Tensor, leaves[0]),
            cast(Tensor, leaves[1]),
            cast(Tensor, leaves[2]),
            cast(Tensor, leaves[3]),
            leaves[4],
            leaves[5],
            reset_after,
            lengths=lengths,
            reverse=reverse,
        )
        wanted = [i for i, t in enumerate(leaves) if t is not None and t.requires_grad]
        got = torch.autograd.grad(
            [out, hn],
            [cast(Tensor, leaves[i]) for i in wanted],
            [grad_out, grad_hn],
            create_graph=create_graph,
            allow_unused=True,
        )
    res: list[Tensor | None] = [None] * 6
    for i, g in zip(wanted, got):
        t = inputs[i]
        assert t is not None
        res[i] = g if g is not None else torch.zeros_like(t)
    return res


@torch.library.custom_op("grukit::gru_sequence_backward", mutates_args=())
def gru_sequence_backward(
    grad_out: Tensor,
    grad_hn: Tensor,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    hprev: Tensor,
    gates: Tensor,
    reset_after: bool,
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``gru_sequence``: the fused backward on its saved buffers, else the composite one."""
    inputs = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if hprev.numel() and _fused_runs(x, h0, w_ih, w_hh, b_ih, b_hh):
        fused = _fused_module()
        fused.calls["op_sequence_backward"] += 1
        needs = (True, True, True, True, b_ih is not None, b_hh is not None)
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh = fused._backward(
                x, w_ih, w_hh, lengths, reset_after, reverse, hprev, gates, grad_out, grad_hn, needs
            )
        if db_hh is not None and db_hh is db_ih:
            db_hh = db_hh.clone()  # op outputs may not alias each other
        grads: list[Tensor | None] = [dx, dh0, dw_ih, dw_hh, db_ih, db_hh]
    else:
        grads = _composite_grads(grad_out, grad_hn, inputs, lengths, reset_after, reverse, False)
    return tuple(_empty(x) if g is None else g for g in grads)  # type: ignore[return-value]


@gru_sequence_backward.register_fake
def _gru_sequence_backward_fake(
    grad_out: Tensor,
    grad_hn: Tensor,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    hprev: Tensor,
    gates: Tensor,
    reset_after: bool,
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    db_ih = _empty(x) if b_ih is None else torch.empty_like(b_ih)
    db_hh = _empty(x) if b_hh is None else torch.empty_like(b_hh)
    return (
        torch.empty_like(x),
        torch.empty_like(h0),
        torch.empty_like(w_ih),
        torch.empty_like(w_hh),
        db_ih,
        db_hh,
    )


# -------------------------------------------------------------------------------------------- autograd
def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reset_after, reverse, _save = inputs
    _out, _hn, hprev, gates = output
    ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, hprev, gates)
    ctx.reset_after, ctx.reverse = reset_after, reverse
    ctx.mark_non_differentiable(hprev, gates)


def _backward(
    ctx: Any, grad_out: Tensor, grad_hn: Tensor, _g_hprev: Any, _g_gates: Any
) -> tuple[Tensor | None, ...]:
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, hprev, gates = ctx.saved_tensors
    needs = ctx.needs_input_grad[:6]
    if grad_out is None:
        grad_out = x.new_zeros(x.shape[0], x.shape[1], w_hh.shape[1])
    if grad_hn is None:
        grad_hn = torch.zeros_like(h0)
    if torch.is_grad_enabled():  # create_graph=True: differentiate the composite recomputation
        grads = _composite_grads(
            grad_out,
            grad_hn,
            (x, h0, w_ih, w_hh, b_ih, b_hh),
            lengths,
            ctx.reset_after,
            ctx.reverse,
            True,
        )
    else:
        grads = list(
            torch.ops.grukit.gru_sequence_backward(
                grad_out,
                grad_hn,
                x,
                h0,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                lengths,
                hprev,
                gates,
                ctx.reset_after,
                ctx.reverse,
            )
        )
    res = tuple(
        g if (n and t is not None) else None for g, n, t in zip(grads, needs, ctx.saved_tensors)
    )
    return res + (None, None, None, None)


gru_sequence.register_autograd(_backward, setup_context=_setup_context)

# Autocast: run the recurrence in float32 (it accumulates over T steps); outputs stay float32, as
# torch.nn.GRU's are on CPU. The layer casts them to the autocast dtype on CUDA, as torch does there.
for _device in ("cpu", "cuda"):
    torch.library.register_autocast("grukit::gru_sequence", _device, torch.float32)


# ----------------------------------------------------------------------------------------- the wrapper
def sequence(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reset_after: bool = True,
    lengths: Tensor | None = None,
    reverse: bool = False,
    return_gates: bool = False,
) -> tuple[Tensor, Tensor, None]:
    """One direction through the registered op → (out (T, B, H), h_n (B, H), None); no gate output."""
    if return_gates:
        raise ValueError("the registered GRU op returns no gates; use the composite path")
    # save the kernel's buffers for backward only when a backward can follow; a TorchScript trace always
    # saves, so that the traced graph is the same whether it is later run with or without grad
    save = (not torch.compiler.is_compiling() and torch._C._is_tracing()) or (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x, h0, w_ih, w_hh, b_ih, b_hh))
    )
    out, hn, _, _ = torch.ops.grukit.gru_sequence(
        x, h0, w_ih, w_hh, b_ih, b_hh, lengths, bool(reset_after), bool(reverse), save
    )
    return out, hn, None
