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
from ..kernels import route
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
    """The gate values of a :class:`MinGRU` call, returned by ``mingru(x, return_gates=True)``.

    Each field is (L, D, T, B, H) — L = num_layers, D = 2 if bidirectional else 1 — time-major whatever
    ``batch_first`` is, and zero past a sequence's length when ``lengths`` is given.

    Attributes:
        z: the update gate σ(W_iz x_t + b_iz), the share of the old state kept.
        n: the candidate g(W_in x_t + b_in) (always > 0).

    Example:
        >>> import torch, grukit
        >>> mingru = grukit.MinGRU(3, 4, batch_first=True)
        >>> _, _, gates = mingru(torch.randn(5, 7, 3), return_gates=True)
        >>> tuple(gates.z.shape), tuple(gates.n.shape)
        ((1, 1, 7, 5, 4), (1, 1, 7, 5, 4))
        >>> bool((gates.n > 0).all())
        True
    """

    z: Tensor
    n: Tensor


@dataclasses.dataclass
class MinGRUConfig:
    """Every constructor argument of :class:`MinGRU` (device excluded); ``grukit.save`` stores it.

    The fields are the arguments of :class:`MinGRU` of the same names; ``dtype`` is a name such as
    ``"float32"``. ``MinGRU.config`` returns one, ``MinGRU.from_config`` builds a layer from one (or from
    its ``dataclasses.asdict`` dictionary).

    Example:
        >>> import grukit
        >>> cfg = grukit.MinGRU(3, 4, num_layers=2, bidirectional=True).config
        >>> cfg.num_layers, cfg.bidirectional, cfg.dtype
        (2, True, 'float32')
        >>> grukit.MinGRU.from_config(cfg).config == cfg
        True
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: str = "float32"


class MinGRU(nn.Module):
    """Stacked minGRU with the layer API of :class:`grukit.GRU` (the math: :mod:`grukit.functional.mingru`).

    ``mingru(input, hx=None, lengths=None, return_gates=False, mode="scan") -> (output, h_n[, gates])``;
    see :meth:`forward` for the shapes and :meth:`step` for streaming. The gates depend on x_t only:

    ```text
    z_t = σ(W_iz x_t + b_iz)          share of the old state kept
    n_t = g(W_in x_t + b_in)          candidate
    h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ n_t
    ```

    with g(a) = a + ½ if a ≥ 0 else σ(a), so training runs a parallel scan over time. Parameters:
    ``weight_ih_l{k}[_reverse]`` (2H, I or D·H) and ``bias_ih_l{k}[_reverse]`` (2H,), rows stacked z, n.

    Args:
        input_size: I, the number of features of the input.
        hidden_size: H, the number of features of the state.
        num_layers: L, the number of stacked layers.
        bias: learn the bias b_ih.
        batch_first: input and output are (B, T, ·) instead of (T, B, ·); hx and h_n are not affected.
        dropout: dropout on the outputs of every layer but the last, in training.
        bidirectional: run a reverse direction too and concatenate its outputs (D = 2).
        device: where the parameters live.
        dtype: the parameters' dtype (torch's default dtype if None); inputs must have the same one.

    Raises:
        TypeError: a size that is not an int, or a dropout that is not a float.
        ValueError: a size that is not positive, or a dropout outside [0, 1).

    Example:
        >>> import torch, grukit
        >>> mingru = grukit.MinGRU(3, 4, num_layers=2, batch_first=True)
        >>> x = torch.randn(5, 7, 3)  # (B, T, I)
        >>> out, h_n = mingru(x)
        >>> tuple(out.shape), tuple(h_n.shape)
        ((5, 7, 4), (2, 5, 4))
        >>> torch.allclose(out, mingru(x, mode="loop")[0], atol=1e-5)
        True
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
        """This layer's :class:`MinGRUConfig` (its constructor arguments, the dtype as a name)."""
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
        """A freshly initialised layer built from a :class:`MinGRUConfig` or its ``dataclasses.asdict`` dict."""
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
        """Run the minGRU over a whole sequence.

        Shapes: D = 2 if bidirectional else 1, L = num_layers, T steps, B sequences.

        Args:
            input: (T, B, I), (B, T, I) if ``batch_first``, (T, I) unbatched, or a ``PackedSequence``.
            hx: the initial state (L·D, B, H), or (L·D, H) unbatched; None means zeros (any sign is fine).
            lengths: (B,) integers in 1..T, or None. Outputs past a sequence's end are zero, ``h_n`` is the
                state at its last valid step, and the reverse direction starts at each sequence's own end.
            return_gates: also return the gate values.
            mode: ``"scan"`` the blocked parallel scan, ``"logscan"`` the paper's log-space scan (chunked,
                float64), ``"loop"`` the sequential recurrence; all equal to rounding.

        Returns:
            ``(output, h_n)``, or ``(output, h_n, gates)`` with ``return_gates``:
            output (T, B, D·H) — (B, T, D·H) if ``batch_first``, (T, D·H) unbatched, a ``PackedSequence``
            for packed input; h_n (L·D, B, H) — (L·D, H) unbatched; gates a :class:`MinGRUGates`, each
            field (L, D, T, B, H).

        Raises:
            ValueError: an unknown ``mode``, lengths outside 1..T or of the wrong size, or lengths given
                with a PackedSequence.
            ShapeError: input of the wrong rank or feature size, T = 0, or hx of the wrong shape.
            TypeError: input or hx not a floating-point tensor of the parameters' dtype.

        Example:
            >>> import torch, grukit
            >>> mingru = grukit.MinGRU(3, 4, bidirectional=True)
            >>> x = torch.randn(9, 2, 3)  # (T, B, I)
            >>> out, h_n = mingru(x, mode="logscan")
            >>> tuple(out.shape), tuple(h_n.shape)
            ((9, 2, 8), (2, 2, 4))
            >>> torch.allclose(out, mingru(x)[0], atol=1e-5)
            True
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        p = _driver.prepare(self, "MinGRU", input, hx, lengths, cast(Tensor, self.weight_ih_l0))
        route.choose(route.Spec("mingru"), p.x)  # always "scan": minGRU has no native kernel

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
        """One time step for streaming: ``(x_t, h) -> (y_t, h_new)``.

        The sequential recurrence; feeding a sequence step by step matches the scan of the whole sequence.
        Unidirectional only: the reverse direction needs the future.

        Args:
            x_t: one step of input, (B, I), or (I,) unbatched.
            h: the state (L, B, H), or (L, H) unbatched; None means zeros.

        Returns:
            ``(y_t, h_new)``: the top layer's new state y_t (B, H) — (H,) unbatched — and every layer's new
            state h_new (L, B, H) — (L, H) unbatched —, to pass as ``h`` to the next step.

        Raises:
            ValueError: the layer is bidirectional.
            ShapeError: x_t or h of the wrong shape.
            TypeError: x_t or h not a floating-point tensor of the parameters' dtype.

        Example:
            >>> import torch, grukit
            >>> mingru = grukit.MinGRU(3, 4, num_layers=2)
            >>> x = torch.randn(6, 1, 3)  # (T, B, I)
            >>> h, ys = None, []
            >>> for x_t in x:
            ...     y, h = mingru.step(x_t, h)
            ...     ys.append(y)
            >>> tuple(y.shape), tuple(h.shape)
            ((1, 4), (2, 1, 4))
            >>> out, h_n = mingru(x)
            >>> torch.allclose(torch.stack(ys), out, atol=1e-5), torch.allclose(h, h_n, atol=1e-5)
            (True, True)
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
