"""MinGRU: the minGRU layer (Feng et al. 2024) with the layer API of :class:`grukit.GRU`.

The math (the candidate activation ``g``, the blocked and log-space parallel scans, one direction) lives in
the floor, :mod:`grukit.functional.mingru`, whose docstring gives the equations; the shared layer driver
(``_driver.py``) does packing, batch_first, the h0 checks, layers × directions, dropout and gates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from .. import _checks
from ..functional.mingru import (
    LOG_A_MIN,
    MODES,
    SCAN_CHUNK,
    direction,
    g,
    log_scan,
    scan,
)
from . import _driver

_MODES = MODES
__all__ = [
    "LOG_A_MIN",
    "SCAN_CHUNK",
    "MinGRU",
    "MinGRUConfig",
    "MinGRUGates",
    "direction",
    "g",
    "log_scan",
    "scan",
]


class MinGRUGates(NamedTuple):
    """minGRU gate values, each (num_layers, D, T, B, H), time-major; zero past a sequence's length."""

    z: Tensor
    n: Tensor


@dataclasses.dataclass
class MinGRUConfig:
    """Every constructor argument of :class:`MinGRU` (device excluded); saved with the model."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: str = "float32"


class MinGRU(nn.Module):
    """Stacked minGRU with the layer API of :class:`grukit.GRU` (see the module docstring for the math).

    ``mingru(input, hx=None, lengths=None, return_gates=False, mode="scan") -> (output, h_n[, gates])``

    Shapes (D = 2 if bidirectional else 1, L = num_layers), as for ``grukit.GRU``:
        input  (T, B, I), (B, T, I) if batch_first, (T, I) unbatched, or a PackedSequence
        hx     (L·D, B, H) or (L·D, H) unbatched; None means zeros (any sign is fine)
        output (T, B, D·H); h_n (L·D, B, H); gates MinGRUGates(z, n), each (L, D, T, B, H)
    ``mode="scan"`` runs the blocked parallel scan, ``mode="logscan"`` the paper's log-space scan (chunked,
    float64), ``mode="loop"`` the sequential recurrence (all equal to rounding); ``step(x_t, h)`` streams one step. Parameters: ``weight_ih_l{k}[_reverse]`` (2H, in) and
    ``bias_ih_l{k}[_reverse]`` (2H), rows stacked z, n; ``dropout`` acts between layers in training.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.dropout = _checks.probability("dropout", dropout)
        self.bias, self.batch_first, self.bidirectional = (
            bool(bias),
            bool(batch_first),
            bool(bidirectional),
        )
        self.num_directions = 2 if bidirectional else 1
        H, D = hidden_size, self.num_directions
        kw = {"device": device, "dtype": dtype}
        self._param_names: list[tuple[str, str | None]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else D * H
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                w, b = f"weight_ih{sfx}", (f"bias_ih{sfx}" if bias else None)
                setattr(self, w, nn.Parameter(torch.empty(2 * H, layer_in, **kw)))
                if b:
                    setattr(self, b, nn.Parameter(torch.empty(2 * H, **kw)))
                self._param_names.append((w, b))
        self.reset_parameters()

    @property
    def config(self) -> MinGRUConfig:
        dtype = str(self.weight_ih_l0.dtype).replace("torch.", "")
        return MinGRUConfig(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.batch_first,
            self.dropout,
            self.bidirectional,
            dtype,
        )

    @classmethod
    def from_config(cls, config: MinGRUConfig | dict[str, Any], device: Any = None) -> MinGRU:
        cfg = dataclasses.asdict(config) if isinstance(config, MinGRUConfig) else dict(config)
        dtype = getattr(torch, cfg.pop("dtype", "float32"))
        return cls(**cfg, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """Uniform(−1/√I_l, 1/√I_l) per layer (I_l = that layer's input size), like nn.Linear."""
        for w_name, b_name in self._param_names:
            w = getattr(self, w_name)
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
            if b_name:
                nn.init.uniform_(getattr(self, b_name), -bound, bound)

    def layer_weights(self, layer: int, direction: int = 0) -> tuple[Tensor, Tensor | None]:
        """(weight_ih, bias_ih) of one layer and direction (bias None without bias)."""
        w, b = self._param_names[layer * self.num_directions + direction]
        return getattr(self, w), (getattr(self, b) if b else None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
        ):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # ---------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input: Any,
        hx: Tensor | None = None,
        lengths: Any = None,
        return_gates: bool = False,
        mode: str = "scan",
    ) -> Any:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        p = _driver.prepare(self, "MinGRU", input, hx, lengths, cast(Tensor, self.weight_ih_l0))

        def one(
            layer: int, d: int, x: Tensor, h0: Tensor, lens: Tensor | None, gates: bool
        ) -> tuple[Tensor, Tensor, Any]:
            w, b = self.layer_weights(layer, d)
            return direction(x, h0, w, b, lens, d == 1, mode, gates)

        with _driver.no_autocast(p.autocast):
            out, h_n, gate_layers = _driver.run_layers(self, p, one, return_gates)
        output, h_n = _driver.finish(p, out, h_n)
        if return_gates:
            return output, h_n, MinGRUGates(*_driver.stack_gates(gate_layers, 2))
        return output, h_n

    # -------------------------------------------------------------------------------------- streaming
    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step for streaming: x_t (B, I) or (I,), h (L, B, H) or (L, H) → (y_t (B, H), h_new).

        The sequential recurrence; feeding a sequence step by step matches the scan of the whole sequence.
        Unidirectional only.
        """
        x, h0, unbatched, ac = _driver.prepare_step(
            self, "MinGRU", x_t, h, cast(Tensor, self.weight_ih_l0)
        )
        H = self.hidden_size

        def one(layer: int, x: Tensor, h: Tensor) -> Tensor:
            w, b = self.layer_weights(layer)
            a_z, a_n = torch.split(torch.nn.functional.linear(x, w, b), H, dim=-1)
            z, n = torch.sigmoid(a_z), g(a_n)
            return n + z * (h - n)  # z ⊙ h + (1 − z) ⊙ n

        with _driver.no_autocast(ac):
            y, h_new = _driver.step_layers(self, x, h0, one)
        return _driver.finish_step(y, h_new, unbatched, ac)
