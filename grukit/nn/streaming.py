"""Streamer: low-overhead streaming inference for a unidirectional GRU or GRUCell (the fused kernel's step)."""

from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch import Tensor

from ..kernels import route
from . import _fast
from .cell import GRUCell
from .gru import GRU


class Streamer:
    """Low-overhead streaming inference for a unidirectional :class:`grukit.GRU` (or :class:`grukit.GRUCell`).

    ``s = Streamer(gru, batch_size=1)``; ``y = s.step(x_t)`` with x_t (B, I) contiguous, the model's dtype
    (float32 for a model with bfloat16 or int8 weights, see :func:`grukit.quantize`) → y (B, H), the top layer's
    new state. Each step is one native call for all layers: no autograd, no allocation, no per-step argument
    checks (they happen here, once). Float32 weights at B ≤ 4 and bfloat16 or int8 weights at any B run the
    small-batch streaming step (``grukit.kernels.stream``), larger float32 batches the BLAS cell. The state
    lives in ``s.h``
    (L, B, H) and is updated in place; ``y`` is a view of it (the same view object at every step),
    overwritten by the next step (clone it to keep it). ``s.reset(h)`` sets the state (None: zeros). The model's weights are read at every step, so
    in-place weight updates are seen; replacing a parameter object needs a new Streamer. Dropout is not
    applied (inference).

    Example:
        >>> import torch, grukit
        >>> from grukit.nn import Streamer
        >>> s = Streamer(grukit.GRU(3, 4, num_layers=2))
        >>> tuple(s.step(torch.randn(1, 3)).shape)
        (1, 4)
    """

    def __init__(self, model: GRU | GRUCell, batch_size: int = 1) -> None:
        if isinstance(model, GRU):
            if model.bidirectional:
                raise ValueError(
                    "Streamer needs a unidirectional GRU (the reverse direction needs the future)"
                )
            layers: Any = [model.layer_weights(k) for k in range(model.num_layers)]
            names: Any = model._param_names
        elif isinstance(model, GRUCell):
            layers = [(model.weight_ih, model.weight_hh, model.bias_ih, model.bias_hh)]
            names = model._PARAM_NAMES
        else:
            raise TypeError(
                f"Streamer expected a grukit.GRU or grukit.GRUCell, got {type(model).__name__}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        w = layers[0][0]
        bf16 = bool(model._qweights)  # grukit.quantize: bf16 or int8 weights
        if model._qweights == "int8":  # the per-row scales travel with the weights
            names, layers = _fast.with_scales(model, names, layers)
        if bf16:
            mod = _fast.stream_module()
            reason = (
                f"the native kernel is unavailable ({_fast._stream_error})"
                if mod is None
                else mod.plan_reason(layers, w.shape[1], layers[0][1].shape[1])
            )
        else:
            pnames = ("w_ih", "w_hh", "b_ih", "b_hh")
            d = route.choose(
                route.Spec("cell", "auto", bool(model.reset_after)),
                w.new_empty(1, w.shape[1]),
                weights=[
                    (f"{n}_l{k}", t) for k, lw in enumerate(layers) for n, t in zip(pnames, lw)
                ],
                needs_grad=False,
            )
            reason = None if d.route == "native" else d.reason
        if reason is not None:
            raise ValueError(f"Streamer cannot use the fused kernel: {reason}")
        from ..kernels import fused

        self.num_layers, self.batch_size = len(layers), int(batch_size)
        self.input_size, self.hidden_size = w.shape[1], layers[0][1].shape[1]
        self.dtype = torch.float32 if bf16 else w.dtype
        self.reset_after = bool(model.reset_after)
        self._fused = fused
        self._params = [None if t is None else t.detach().contiguous() for lw in layers for t in lw]
        self._plan: Any = None
        mod = _fast.stream_module()
        if (
            mod is not None
            and self.dtype == torch.float32
            and (bf16 or batch_size <= mod.max_batch)
        ):
            p4, n = self._params, len(layers[0])  # 4 tensors per layer, 6 with int8 scales
            plan_layers = [tuple(p4[n * k : n * k + n]) for k in range(self.num_layers)]
            if mod.plan_reason(plan_layers, self.input_size, self.hidden_size) is None:
                self._plan = mod.StepPlan(
                    None,
                    [(None,) * n] * self.num_layers,
                    plan_layers,
                    self.input_size,
                    self.hidden_size,
                    self.reset_after,
                )
        ptrs = [None if t is None else t.data_ptr() for t in self._params]
        self._ptrs = (ctypes.c_void_p * len(ptrs))(*ptrs)
        self.h = torch.zeros(self.num_layers, self.batch_size, self.hidden_size, dtype=self.dtype)
        self._scratch = torch.empty(7 * self.batch_size * self.hidden_size, dtype=self.dtype)
        self._fn: Any
        self._fn, self._gemm = fused.stream_function(self.dtype)
        self._args = (self.num_layers, self.batch_size, self.input_size, self.hidden_size)
        self._hp, self._sp = self.h.data_ptr(), self._scratch.data_ptr()
        self._want = (self.batch_size, self.input_size)
        self._y = self.h[-1]  # what step returns (indexing per step costs ~1 µs at batch 1)
        self._calls = fused.calls
        if self._plan is not None:  # the plan's native call, bound once
            self._pfn, self._pref = self._plan._fn, self._plan._ref

    @property
    def path(self) -> str:
        """The native path each step runs: a ``grukit.kernels.stream`` path name, or ``"blas-cell"``."""
        if self._plan is None:
            return "blas-cell"

        return str(self._plan.path)

    def reset(self, h: Tensor | None = None) -> None:
        """Set the state to ``h`` (L, B, H) (None: zeros)."""
        if h is None:
            self.h.zero_()
        else:
            if tuple(h.shape) != tuple(self.h.shape):
                raise ValueError(
                    f"Streamer.reset expected h of shape {tuple(self.h.shape)}, got {tuple(h.shape)}"
                )
            self.h.copy_(h)

    def step(self, x_t: Tensor) -> Tensor:
        """One step for x_t (B, I) → the top layer's new state (B, H) (a view of ``self.h``)."""
        if (
            x_t.shape != self._want
            or x_t.dtype != self.dtype
            or not x_t.is_cpu
            or not x_t.is_contiguous()
        ):
            raise ValueError(
                f"Streamer.step expected a contiguous CPU {self.dtype} x_t of shape {self._want}, "
                f"got {x_t.dtype} {tuple(x_t.shape)} on {x_t.device}"
            )
        self._calls["stream"] += 1
        if self._plan is not None:
            hp = self._hp
            if self._pfn(self._pref, self.batch_size, x_t.data_ptr(), hp, hp, None):
                raise ValueError(f"Streamer: this CPU cannot run the {self.path} kernel path")
            return self._y
        L, B, I, H = self._args
        self._fn(
            L, B, I, H, x_t.data_ptr(), self._hp, self._ptrs, self.reset_after, self._sp, self._gemm
        )
        return self._y
