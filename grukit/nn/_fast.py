"""The layers' streaming fast path and their quantized-weight handling (see ``grukit.kernels.stream``).

``GRUCell.forward`` and ``GRU.step`` first try the module's cached :class:`~grukit.kernels.stream.StepPlan`
(a few cheap checks, one native call; ``GRUCell.__call__`` tries it before ``nn.Module.__call__`` when that
would only call ``forward``: no hooks, no ``module.compile()``, ``forward`` not overridden); when it declines, their general path runs and, if the call could
have run natively, builds a fresh plan here for the next call. Weights in bfloat16 or int8
(``grukit.quantize``; the module's ``_qweights`` names the format) are for inference: the streaming step
reads them directly, every other call turns them into float32 for that call only (bfloat16 exactly; int8
as ``q · scale``, the per-row scale in the buffer ``<weight name>_scale``), and a call that would train them
is refused.
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
I8 = torch.int8
#: the suffix of an int8 weight's per-row scale buffer (``weight_hh_l0`` → ``weight_hh_l0_scale``)
SCALE = "_scale"
_FORMAT = {"bf16": "bfloat16", "int8": "int8"}


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8: ``(q, scale)`` with ``scale = max_k |w[r, k]| / 127`` (float32) and
    ``q = round(w / scale)`` (half to even) in [-127, 127]; a row of zeros gets scale 0 and q 0."""
    w = w.detach().float()
    scale = w.abs().amax(dim=1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """float32 weights ``q · scale`` (per row) of int8 weights ``q`` (rows, K) and their scales (rows,)."""
    return q.float() * scale.float()[:, None]


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The dtype an int8 module computes in: that of its floating-point parameters (the biases, which
    ``.double()``, ``.half()``, ``.to(dtype)`` convert), float32 when it has none."""
    for p in module._parameters.values():
        if p is not None and p.dtype != I8 and p.is_floating_point():
            return p.dtype
    return torch.float32


def keep_quantized(module: nn.Module, fn: Any) -> Any:
    """``fn`` of ``Module._apply`` for an int8 module (``GRU._apply``, ``GRUCell._apply``): the int8 weights
    and their float32 scales keep their dtypes (a dtype conversion would change what the numbers mean:
    ``.double()`` leaves int8 weights alone but would turn the scales float64, ``.type(torch.float64)``
    would turn q into floats); they follow a device change. Everything else converts as usual, so the module
    then computes in the new dtype (:func:`compute_dtype`) on weights dequantized to it. Other modules: ``fn``."""
    if module.__dict__.get("_qweights") != "int8":
        return fn
    keep = {id(p) for p in module._parameters.values() if p is not None and p.dtype == I8}
    keep |= {id(b) for n, b in module._buffers.items() if b is not None and n.endswith(SCALE)}

    def apply(t: Any) -> Any:
        out = fn(t)
        if id(t) in keep and isinstance(out, Tensor) and out.dtype != t.dtype:
            return t.to(device=out.device)
        return out

    return apply


def settle_format(module: nn.Module) -> None:
    """After ``Module._apply``: a bf16-quantized module whose weights a dtype conversion turned into another
    floating dtype (``.float()``, ``.double()``, ``.to(dtype)``) is an ordinary module of that dtype from then
    on (its weights keep the bf16-rounded values), as a plain module's ``.half().float()`` would be: it
    trains, and ``config`` reports the new dtype. A device move keeps the bf16 format."""
    if module.__dict__.get("_qweights") != "bf16":
        return
    weights = [p for n, p in module._parameters.items() if p is not None and n.startswith("weight")]
    if weights and all(p.dtype != torch.bfloat16 for p in weights):
        for p in weights:
            p.requires_grad_(True)
        module.__dict__["_qweights"] = None
        module.__dict__["_step_plan"] = None


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
    bufs = owner._buffers
    for nm, lw in zip(names, layers):
        for i, (n, t) in enumerate(zip(nm, lw)):
            src = params if i < 4 else bufs  # int8: the scales are buffers
            if t is not None and (n is None or src.get(n) is not t):
                return None  # parametrizations, hooks: not plain registered parameters
    if mod.plan_reason(layers, input_size, hidden_size) is not None:
        return None
    plan = mod.StepPlan(params, names, layers, input_size, hidden_size, reset_after, bufs)
    owner._step_plan = plan
    return plan


def with_scales(
    owner: nn.Module,
    names: Sequence[tuple[str | None, ...]],
    layers: Sequence[tuple[Tensor | None, ...]],
) -> tuple[list[tuple[str | None, ...]], list[tuple[Tensor | None, ...]]]:
    """For int8 weights: each layer's names and tensors with its two scale buffers appended."""
    bufs = owner._buffers
    out_n, out_t = [], []
    for nm, lw in zip(names, layers):
        extra = tuple(f"{n}{SCALE}" for n in nm[:2])
        out_n.append((*nm, *extra))
        out_t.append((*lw, *(bufs.get(str(n)) for n in extra)))
    return out_n, out_t


def refuse_training(owner: str, module: nn.Module, inputs: Sequence[Any]) -> None:
    """Raise when a call with quantized weights would need gradients (they are for inference only)."""
    if not torch.is_grad_enabled():
        return
    fmt = _FORMAT.get(str(getattr(module, "_qweights", None)), "quantized")
    why = None
    if any(p.requires_grad for p in module.parameters(recurse=False) if p.dtype in (BF16, I8)):
        why = f"its {fmt} weights require grad"
    elif any(isinstance(t, Tensor) and t.requires_grad for t in inputs):
        why = "an input requires grad"
    if why is not None:
        raise RuntimeError(
            f"{owner} has {fmt} weights (grukit.quantize), which are for inference only, and {why}; "
            "call model.eval() and run under torch.no_grad() or torch.inference_mode(), or "
            "grukit.quantize(model, 'float32') to train"
        )


def upcast_call(module: nn.Module, method: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``module.<method>`` with its quantized parameters as float32 for this call only.

    bfloat16 weights are upcast (exactly), int8 ones dequantized (``q · scale`` per row, in float32, then
    in the module's :func:`compute_dtype` if ``.double()`` or ``.half()`` changed it). The parameters are
    swapped in the module's ``_parameters`` for the call (as ``torch.func.functional_call`` does) and
    restored after it, whatever happens.
    """
    params, bufs = module._parameters, module._buffers
    saved = {n: p for n, p in params.items() if p is not None and p.dtype in (BF16, I8)}
    fmt = module.__dict__.get("_qweights")
    dt = compute_dtype(module)
    _suppress[0] += 1
    try:
        for n, p in saved.items():
            if p.dtype == I8:
                scale = bufs.get(n + SCALE)
                if scale is None:
                    raise RuntimeError(f"{type(module).__name__}.{n} is int8 without {n}{SCALE}")
                params[n] = dequantize(p.detach(), scale).to(dt)  # type: ignore[assignment]
            else:
                params[n] = p.detach().float()  # type: ignore[assignment]
        module.__dict__["_qweights"] = None  # this call is a float32 one
        return getattr(module, method)(*args, **kwargs)
    finally:
        params.update(saved)
        module.__dict__["_qweights"] = fmt
        _suppress[0] -= 1


def load_state_pre_hook(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """The ``register_load_state_dict_pre_hook`` form of :func:`load_state_hook`."""
    load_state_hook(module, state_dict, prefix, error_msgs)


def load_state_hook(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, error_msgs: list[str]
) -> None:
    """``load_state_dict`` across weight formats (through :func:`load_state_pre_hook`, which GRU and GRUCell
    register).

    As loading bfloat16 weights into a float32 module gives it the rounded values (and float32 weights into a
    bfloat16 module rounds them): int8 weights with their scales loaded into a float32 (or bfloat16) module
    arrive dequantized, and float32 weights loaded into an int8 module are quantized (per-row scales).
    An int8 weight without its scale is an error (it cannot be read as numbers).
    """
    int8_here = module.__dict__.get("_qweights") == "int8"
    for n, p in list(module._parameters.items()):
        key = prefix + n
        t = state_dict.get(key)
        if p is None or not isinstance(t, Tensor):
            continue
        skey = key + SCALE
        s = state_dict.get(skey)
        if t.dtype == I8 and p.dtype != I8:
            if not isinstance(s, Tensor):
                error_msgs.append(f"{key}: int8 weights without their scales {skey}")
                continue
            state_dict[key] = dequantize(t, s)
            del state_dict[skey]
        elif int8_here and p.dtype == I8 and t.dtype != I8 and t.is_floating_point():
            q, scale = quantize_rows(t.float())
            state_dict[key], state_dict[skey] = q, scale
        elif t.dtype == I8 and not isinstance(s, Tensor):
            error_msgs.append(f"{key}: int8 weights without their scales {skey}")
