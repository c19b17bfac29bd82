"""GRUCell: one GRU step as a module, ``cell(x, h=None) -> h'``.

The equations are in the floor, :mod:`grukit.functional.gru` (``gru_step``, ``gru_cell``, re-exported here);
``grukit.kernels.dispatch`` runs them (the fused kernel where it can).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..functional.gru import GateValues, gru_cell, gru_step
from ..kernels import dispatch
from . import _driver

__all__ = ["GRUCell", "GRUCellConfig", "GateValues", "gru_cell", "gru_step"]


@dataclasses.dataclass
class GRUCellConfig:
    """Every constructor argument of :class:`GRUCell` (device excluded); saved with the model."""

    input_size: int
    hidden_size: int
    bias: bool = True
    reset_after: bool = True
    backend: str = "auto"
    dtype: str = "float32"


class GRUCell(nn.Module):
    """A single GRU step, ``cell(x, h=None) -> h'``; state_dict interchangeable with ``torch.nn.GRUCell``.

    Args:
        input_size: I, features of x.
        hidden_size: H, features of the state.
        bias: learn b_ih and b_hh.
        reset_after: where the reset gate acts (see the module docstring); True matches torch.
        backend: "auto" (fused CPU kernel when it supports the call), "fused" (required) or "torch".

    Shapes: x (B, I) or (I,); h (B, H) or (H,), None means zeros; returns (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        reset_after: bool = True,
        device: Any = None,
        dtype: Any = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        _checks.positive_int("input_size", input_size)
        _checks.positive_int("hidden_size", hidden_size)
        _checks.backend(backend)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.reset_after, self.backend = bool(bias), bool(reset_after), backend
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def config(self) -> GRUCellConfig:
        dtype = str(self.weight_ih.dtype).replace("torch.", "")
        return GRUCellConfig(
            self.input_size, self.hidden_size, self.bias, self.reset_after, self.backend, dtype
        )

    @classmethod
    def from_config(cls, config: GRUCellConfig | dict[str, Any], device: Any = None) -> GRUCell:
        cfg = dataclasses.asdict(config) if isinstance(config, GRUCellConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """Uniform(−1/√H, 1/√H) for every parameter, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        # Direct dict reads (nn.Module.__getattr__ costs ~0.5 µs per name); getattr when a name is not a plain
        # registered parameter (parametrizations, weight_norm hooks, bias=False).
        params = self._parameters
        w, w_hh, b_ih, b_hh = (
            params.get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        if w is None or w_hh is None or (self.bias and (b_ih is None or b_hh is None)):
            w, w_hh, b_ih, b_hh = self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        if (
            h is not None
            and type(x) is Tensor
            and type(h) is Tensor
            and x.dim() == 2
            and x.dtype == w.dtype
            and h.dtype == w.dtype
            and x.shape[1] == self.input_size
            and h.shape == (x.shape[0], self.hidden_size)
            and w.is_floating_point()
            and not _driver._any_autocast()
        ):
            unbatched = (
                False  # the common batched call: all of _checks.cell_inputs' checks hold, skip it
            )
        else:
            ac = _driver.autocast_device(x) if isinstance(x, Tensor) else None
            if (
                ac is not None
            ):  # autocast: the step runs in the parameters' dtype, as torch.nn.GRUCell
                with torch.autocast(ac, enabled=False):
                    if x.is_floating_point():
                        x = x.to(w.dtype)
                    if isinstance(h, Tensor) and h.is_floating_point():
                        h = h.to(w.dtype)
                    return self.forward(x, h)
            x, h, unbatched = _checks.cell_inputs(
                "GRUCell", x, h, self.input_size, self.hidden_size, w
            )
        h_new = dispatch(
            "cell",
            self.backend,
            x=x,
            h=h,
            w_ih=w,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            reset_after=self.reset_after,
        )
        return h_new.squeeze(0) if unbatched else h_new  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.reset_after:
            s += ", reset_after=False"
        return s
