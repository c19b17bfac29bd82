"""The GRU recurrence for exported programs that run without grukit: ``grukit::gru_sequence_export``.

Under ``torch.export`` the layer calls :func:`sequence` here instead of the fused op
``grukit::gru_sequence``. The op's only kernel is ``CompositeImplicitAutograd``: a time loop written with
``torch._higher_order_ops.scan`` over plain ATen ops. So

- ``torch.export.export`` keeps one ``grukit.gru_sequence_export`` node per layer and direction, with a
  dynamic sequence length (the graph is readable and is not unrolled);
- a plain ``ExportedProgram.run_decompositions()`` (no table) replaces every such node by its body, the
  ``scan`` loop in core ATen; the decomposed program names no ``grukit`` op, and ``torch.export.save`` /
  ``torch.export.load`` run it in a process where grukit is not installed, at any sequence length.

Eager calls, ``torch.compile``, ``torch.jit.trace`` and the ONNX exporters never reach this module: they
keep the fused op. Called eagerly on plain tensors (an exported, not decomposed, program run in a process
that has grukit), the op's kernel runs the fused kernel (or, for the variants, the composite loop) instead
of the scan, so such a program is as fast as before; traced, it is the scan.

The loop serves both reset placements, ``lengths``, the reverse direction, and the deterministic variants
(per-gate-group layer norm; zoneout in eval, i.e. its expectation p). Random regularizers in training
(recurrent dropout, zoneout, DropConnect masks) are not covered: the layer keeps its composite loop for
them, which fixes T.

Schema (one direction of one layer)::

    gru_sequence_export(x (T, B, I), h0 (B, H), w_ih (3H, I), w_hh (3H, H), b_ih (3H)?, b_hh (3H)?,
                        lengths (B,) int64?, ln_ih (3H)?, ln_hh (3H)?, zoneout, reset_after, reverse)
        -> out (T, B, H), h_n (B, H)

It computes what ``grukit.functional.gru.sequence`` computes (same step functions).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional import gru as fgru

__all__ = ["in_torch_export", "sequence"]

_SCHEMA = (
    "gru_sequence_export(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
    "Tensor? lengths, Tensor? ln_ih, Tensor? ln_hh, float zoneout, bool reset_after, bool reverse) "
    "-> (Tensor, Tensor)"
)
# A module-level reference: the registration lives as long as this library object.
_LIB = torch.library.Library("grukit", "FRAGMENT")  # type: ignore[no-untyped-call]
_LIB.define(_SCHEMA)  # type: ignore[no-untyped-call]
_dispatch_depth = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)
_PLAIN = (Tensor, torch.nn.Parameter)  # eager tensors (fake and functional tensors are subclasses)


def _scan_op() -> Any:
    # The scan operator itself, not ``torch._higher_order_ops.scan``: that wrapper runs the loop through
    # torch.compile, whose cache (keyed on the wrapper's code) and automatic-dynamic recompiles turn the
    # step's Python constants into tensors after the first export in a process ("Constant tensor
    # lifted_tensor_0 is not in the constants dictionary" from run_decompositions). The operator is
    # traced by make_fx under export and runs torch's plain Python loop in eager mode. A private torch
    # module: imported on first use.
    from torch._higher_order_ops.scan import scan_op

    return scan_op


def _scan_sequence(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    zoneout: float,
    reset_after: bool,
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    """The decomposition: the input projection for all steps, then one ``scan`` over time (core ATen)."""
    dtype = x.dtype
    if dtype in (torch.bfloat16, torch.float16):  # as the composite loop: compute in float32
        x, h0, w_ih, w_hh = x.float(), h0.float(), w_ih.float(), w_hh.float()
        b_ih, b_hh, ln_ih, ln_hh = (
            None if t is None else t.float() for t in (b_ih, b_hh, ln_ih, ln_hh)
        )
    xs = [fgru.input_projection(x, w_ih, b_ih, ln_ih)]  # (T, B, 3H)
    if lengths is not None:  # (T, B, 1): step t of sequence b is inside its length
        steps = torch.arange(x.shape[0], device=x.device)
        xs.append((steps[:, None] < lengths.to(x.device)[None, :]).unsqueeze(-1))
    if reverse:
        xs = [t.flip(0) for t in xs]
    # the loop-invariant tensors are the operator's additional inputs (None ones are left out)
    consts = [t for t in (w_hh, b_hh, ln_hh) if t is not None]
    n_xs, has_b = len(xs), b_hh is not None

    def step(h: Tensor, *args: Tensor) -> tuple[Tensor, Tensor]:
        xs_t, rest = args[:n_xs], list(args[n_xs:])
        w = rest.pop(0)
        b = rest.pop(0) if has_b else None
        ln = rest.pop(0) if rest else None
        if ln is None:
            h_new = fgru.gru_step(xs_t[0], h, w, b, reset_after)[0]
        else:
            h_new = fgru.variant_step(xs_t[0], h, w, b, reset_after, ln)[0]
        if zoneout:
            h_new = h_new + zoneout * (h - h_new)  # eval zoneout: keep the old value with weight p
        if n_xs > 1:
            valid = xs_t[1]
            h_new = torch.where(valid, h_new, h)  # past a sequence's end the state stays
            return h_new, h_new * valid  # ... and the output is zero
        return h_new, h_new.clone()  # the outputs may not alias the carry

    h_n, out = _scan_op()(step, [h0], xs, tuple(consts))
    if reverse:
        out = out.flip(0)
    return out.to(dtype), h_n.to(dtype)


def _traced(*ts: Tensor | None) -> bool:
    """Whether the op is being traced (export, run_decompositions, compile, fake or functional tensors)."""
    return bool(
        torch.compiler.is_compiling()
        or _dispatch_depth()
        or any(t is not None and type(t) not in _PLAIN for t in ts)
    )


def _gru_sequence_export(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    lengths: Tensor | None,
    ln_ih: Tensor | None,
    ln_hh: Tensor | None,
    zoneout: float,
    reset_after: bool,
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    """The op's only kernel (CompositeImplicitAutograd).

    Traced (which is how ``run_decompositions`` and every compiler read it), it is the scan loop. Run
    eagerly on plain tensors (an exported program called in a process that has grukit), it computes the
    same thing the fast way: the fused kernel (``dispatch``), or the composite loop for the variants.
    """
    tensors = (x, h0, w_ih, w_hh, b_ih, b_hh, lengths, ln_ih, ln_hh)
    if _traced(*tensors):
        return _scan_sequence(*tensors, zoneout, reset_after, reverse)
    lens = None if lengths is None else lengths.to("cpu", torch.int64)
    if ln_ih is None and ln_hh is None and not zoneout:
        from . import dispatch  # the package imports this module

        out, h_n, _ = dispatch(
            "sequence",
            x=x,
            h0=h0,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=reset_after,
            lengths=lens,
            reverse=reverse,
            return_gates=False,
        )
    else:
        out, h_n, _ = fgru.sequence(
            x,
            h0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            reset_after,
            lens,
            reverse,
            ln_ih=ln_ih,
            ln_hh=ln_hh,
            zoneout=zoneout or None,
        )
    return out, h_n


_LIB.impl(  # type: ignore[no-untyped-call]
    "gru_sequence_export", _gru_sequence_export, "CompositeImplicitAutograd"
)


def in_torch_export() -> bool:
    """Whether ``torch.export`` is tracing, and not for the dynamo ONNX exporter (which has its own route)."""
    return bool(torch.compiler.is_exporting()) and not torch.onnx.is_in_onnx_export()


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
    ln_ih: Tensor | None = None,
    ln_hh: Tensor | None = None,
    zoneout: float = 0.0,
) -> tuple[Tensor, Tensor, None]:
    """One direction through ``grukit::gru_sequence_export`` → (out (T, B, H), h_n (B, H), None).

    ``ln_ih``/``ln_hh`` (3H,) are the layer-norm gains (or None); ``zoneout`` is the eval-mode zoneout
    probability p (0 for none). Called eagerly it runs the fused kernel (the composite loop for the
    variants); traced, the scan loop.

    Example:
        >>> import torch
        >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
        >>> w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
        >>> out, h_n, _ = sequence(x, h0, w_ih, w_hh, None, None)
        >>> ref, ref_n, _ = fgru.sequence(x, h0, w_ih, w_hh, None, None)
        >>> bool((out - ref).abs().max() < 1e-6), tuple(h_n.shape)
        (True, (2, 4))
    """
    out, h_n = torch.ops.grukit.gru_sequence_export(
        x,
        h0,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        lengths,
        ln_ih,
        ln_hh,
        float(zoneout),
        bool(reset_after),
        bool(reverse),
    )
    return out, h_n, None
