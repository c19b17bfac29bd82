"""The layers' streaming fast path and their bfloat16-weight handling (see ``grukit.kernels.stream``).

``GRUCell.forward`` and ``GRU.step`` first try the module's cached :class:`~grukit.kernels.stream.StepPlan`
(a few cheap checks, one native call; ``GRUCell.__call__`` tries it before ``nn.Module.__call__`` when that
would only call ``forward``: no hooks, no ``module.compile()``, ``forward`` not overridden); when it declines, their general path runs and, if the call could
have run natively, builds a fresh plan here for the next call. Weights in bfloat16 (``grukit.quantize``)
are for inference: the streaming step reads them directly, every other call upcasts them (exactly) to
float32 for that call only, and a call that would train them is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

_stream: Any = None
_stream_error: str | None = None
_suppress = [0]  # > 0 inside upcast calls: their temporary float32 weights must not become a plan
BF16 = torch.bfloat16


def stream_module() -> Any:
    """``grukit.kernels.stream``, or None when the native kernel is unavailable."""
    global _stream, _stream_error
    if _stream is None and _stream_error is None:
        try:
            from ..kernels import stream as mod

            _stream = mod
        except Exception as e:  # no native kernel: the general paths run everything
            _stream_error = f"{type(e).__name__}: {e}"
    return _stream


def _wanted(x: Any, h: Any, weights: Sequence[Tensor | None]) -> Any:
    """The stream module if this call could run natively (eager, no autograd), else None."""
    if torch.compiler.is_compiling() or _suppress[0] or type(x) is not Tensor:
        return None
    mod = stream_module()
    if mod is None or not mod.eager_ok():
        return None
    if torch.is_grad_enabled() and (
        x.requires_grad
        or (isinstance(h, Tensor) and h.requires_grad)
        or any(t is not None and t.requires_grad for t in weights)
    ):
        return None
    return mod


def build_plan(
    owner: nn.Module,
    x: Any,
    h: Any,
    names: Sequence[tuple[str | None, ...]],
    layers: Sequence[tuple[Tensor, Tensor, Tensor | None, Tensor | None]],
    input_size: int,
    hidden_size: int,
    reset_after: bool,
) -> Any:
    """A fresh StepPlan for ``owner`` (stored as ``owner._step_plan``) if this call could use one, else None."""
    if torch.compiler.is_compiling():
        return None
    params = owner._parameters
    plan: Any = getattr(owner, "_step_plan", None)
    if plan is not None and plan.valid(params):
        return plan
    flat = [t for lw in layers for t in lw]
    mod = _wanted(x, h, flat)
    if mod is None:
        return None
    for nm, lw in zip(names, layers):
        for n, t in zip(nm, lw):
            if t is not None and (n is None or params.get(n) is not t):
                return None  # parametrizations, hooks: not plain registered parameters
    if mod.plan_reason(layers, input_size, hidden_size) is not None:
        return None
    plan = mod.StepPlan(params, names, layers, input_size, hidden_size, reset_after)
    owner._step_plan = plan
    return plan


def refuse_training(owner: str, module: nn.Module, inputs: Sequence[Any]) -> None:
    """Raise when a call with bfloat16 weights would need gradients (they are for inference only)."""
    if not torch.is_grad_enabled():
        return
    why = None
    if any(p.requires_grad for p in module.parameters(recurse=False) if p.dtype == BF16):
        why = "its bfloat16 weights require grad"
    elif any(isinstance(t, Tensor) and t.requires_grad for t in inputs):
        why = "an input requires grad"
    if why is not None:
        raise RuntimeError(
            f"{owner} has bfloat16 weights (grukit.quantize), which are for inference only, and {why}; "
            "call model.eval() and run under torch.no_grad() or torch.inference_mode(), or "
            "grukit.quantize(model, 'float32') to train"
        )


def upcast_call(module: nn.Module, method: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``module.<method>`` with its bfloat16 parameters upcast to float32 (exact) for this call only.

    The parameters are swapped in the module's ``_parameters`` for the call (as ``torch.func.functional_call``
    does) and restored after it, whatever happens.
    """
    params = module._parameters
    saved = {n: p for n, p in params.items() if p is not None and p.dtype == BF16}
    _suppress[0] += 1
    try:
        for n, p in saved.items():
            params[n] = p.detach().float()  # type: ignore[assignment]
        module.__dict__["_bf16_weights"] = False  # this call is a float32 one
        return getattr(module, method)(*args, **kwargs)
    finally:
        params.update(saved)
        module.__dict__["_bf16_weights"] = True
        _suppress[0] -= 1
