"""``GRUChain``: a stack of GRU layers that a plain ``grukit.GRU`` cannot express, built from single-direction
``grukit.GRU`` layers plus time flips and a merge, so that an imported model computes what its source computes.

It covers what Keras and ONNX allow and grukit.GRU does not:

* Keras ``go_backwards=True``: the layer reads the sequence reversed and returns its outputs in the order it
  produced them (reversed time): ``flip_input=True, flip_output=False``.
* Keras ``Bidirectional(merge_mode="sum" | "mul" | "ave" | None)``: the backward layer's outputs are flipped
  back to the input's time order (when the layer returns sequences) and the two directions are merged as Keras
  merges them (``None``: the two outputs are returned as a tuple, top layer only).
* ONNX ``direction="reverse"``: reads the sequence reversed and writes its outputs in the input's time order:
  ``flip_input=True, flip_output=True``.
* Stacks whose layers differ in direction count or reset-gate placement (same hidden size).

With ``lengths``, a flip reverses the valid part of each sequence only (steps ``0..len-1``), which is what ONNX's
``sequence_lens`` does; outputs past a sequence's end are zero, as in grukit.GRU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from ..nn import GRU

MERGES = ("concat", "sum", "mul", "ave", None)


@dataclasses.dataclass
class DirectionSpec:
    """One direction of one layer: its own GRU math options and the two time flips around it."""

    flip_input: bool = False  # read the (valid part of the) sequence reversed
    flip_output: bool = False  # reverse the outputs in time before merging
    reset_after: bool = True
    bias: bool = True


@dataclasses.dataclass
class LayerSpec:
    """One layer: its input size, one or two directions, and how their outputs are merged."""

    input_size: int
    directions: list[DirectionSpec]
    merge: str | None = "concat"

    def width(self, hidden_size: int) -> int:
        """The feature size of this layer's merged output."""
        return hidden_size * (len(self.directions) if self.merge == "concat" else 1)


@dataclasses.dataclass
class GRUChainConfig:
    """Every constructor argument of :class:`GRUChain`; saved with the model by ``grukit.save``."""

    hidden_size: int
    layers: list[LayerSpec]
    batch_first: bool = True
    return_sequences: bool = True
    dtype: str = "float32"
    source: str = (
        ""  # where it came from, for messages (e.g. "Keras Bidirectional(merge_mode='sum')")
    )


def _as_layer(spec: LayerSpec | dict[str, Any]) -> LayerSpec:
    if isinstance(spec, LayerSpec):
        return spec
    dirs = [d if isinstance(d, DirectionSpec) else DirectionSpec(**d) for d in spec["directions"]]
    return LayerSpec(int(spec["input_size"]), dirs, spec.get("merge", "concat"))


def flip_valid(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse ``x`` (B, T, F) in time; with ``lengths`` (B,) only each sequence's valid steps ``0..len-1``."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.to(device=x.device, dtype=torch.long).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def _merge(ys: list[Tensor], merge: str | None) -> Tensor | tuple[Tensor, ...]:
    if len(ys) == 1:
        return ys[0]
    if merge == "concat":
        return torch.cat(ys, -1)
    if merge == "sum":
        return ys[0] + ys[1]
    if merge == "mul":
        return ys[0] * ys[1]
    if merge == "ave":
        return (ys[0] + ys[1]) / 2
    return tuple(ys)


class GRUChain(nn.Module):
    """A stack of GRU layers with per-direction time flips and Keras-style merges (see the module docstring).

    ``chain(input, hx=None, lengths=None) -> (output, h_n)``

    Shapes (S = the total number of directions over all layers, H = hidden_size):
        input    (B, T, I) if batch_first else (T, B, I)
        hx       (S, B, H), layer by layer, direction by direction; None means zeros
        lengths  (B,) integers in 1..T, or None
        output   the top layer's merged output: (B, T, F) (or (T, B, F)) with F = 2H for "concat" and H
                 otherwise; with ``return_sequences=False`` the merged final states (B, F); for merge None a
                 tuple of the two directions' outputs
        h_n      (S, B, H): each direction's state after its last valid step

    Example:
        >>> import torch
        >>> from grukit.interop.chain import DirectionSpec, GRUChain, GRUChainConfig, LayerSpec
        >>> cfg = GRUChainConfig(
        ...     4, [LayerSpec(3, [DirectionSpec(), DirectionSpec(True, True)], "sum")]
        ... )
        >>> out, h_n = GRUChain(cfg)(torch.randn(2, 5, 3))
        >>> tuple(out.shape), tuple(h_n.shape)
        ((2, 5, 4), (2, 2, 4))
    """

    def __init__(self, config: GRUChainConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        layers = [_as_layer(s) for s in config.layers]
        if not layers:
            raise ValueError("GRUChain needs at least one layer")
        H = int(config.hidden_size)
        for k, spec in enumerate(layers):
            if len(spec.directions) not in (1, 2):
                raise ValueError(
                    f"layer {k}: expected 1 or 2 directions, got {len(spec.directions)}"
                )
            if spec.merge not in MERGES:
                raise ValueError(f"layer {k}: merge must be one of {MERGES}, got {spec.merge!r}")
            if spec.merge is None and k < len(layers) - 1 and len(spec.directions) == 2:
                raise ValueError(f"layer {k}: merge None (two outputs) is possible at the top only")
            if k and spec.input_size != layers[k - 1].width(H):
                raise ValueError(
                    f"layer {k}: input size {spec.input_size}, but layer {k - 1} outputs "
                    f"{layers[k - 1].width(H)} features"
                )
        self.hidden_size = H
        self.batch_first = bool(config.batch_first)
        self.return_sequences = bool(config.return_sequences)
        self.source = str(config.source)
        self.specs = layers
        self.input_size = layers[0].input_size
        self._dtype_name = config.dtype
        dtype = getattr(torch, config.dtype)
        self.grus = nn.ModuleList(
            nn.ModuleList(
                GRU(
                    spec.input_size,
                    H,
                    bias=d.bias,
                    batch_first=True,
                    reset_after=d.reset_after,
                    dtype=dtype,
                    device=device,
                )
                for d in spec.directions
            )
            for spec in layers
        )

    @property
    def num_states(self) -> int:
        """S: the number of rows of ``hx`` / ``h_n`` (all directions of all layers)."""
        return sum(len(s.directions) for s in self.specs)

    @property
    def config(self) -> GRUChainConfig:
        return GRUChainConfig(
            self.hidden_size,
            [dataclasses.replace(s) for s in self.specs],
            self.batch_first,
            self.return_sequences,
            self._dtype_name,
            self.source,
        )

    @classmethod
    def from_config(
        cls, config: GRUChainConfig | dict[str, Any], device: torch.device | str | None = None
    ) -> GRUChain:
        if isinstance(config, dict):
            cfg = dict(config)
            cfg["layers"] = [_as_layer(s) for s in cfg["layers"]]
            config = GRUChainConfig(**cfg)
        return cls(config, device=device)

    def direction(self, layer: int, direction: int) -> GRU:
        """The single-layer, single-direction grukit.GRU of ``layer``/``direction`` (batch-first)."""
        gru = self.grus[layer][direction]  # type: ignore[index]
        assert isinstance(gru, GRU)
        return gru

    def forward(
        self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor | tuple[Tensor, ...], Tensor]:
        if not isinstance(input, Tensor) or input.dim() != 3:
            raise ValueError(
                f"GRUChain expected a 3-dimensional input ({'B, T' if self.batch_first else 'T, B'}, I), "
                f"got {type(input).__name__}"
                + (f" of shape {tuple(input.shape)}" if isinstance(input, Tensor) else "")
            )
        x = input if self.batch_first else input.transpose(0, 1)
        B = x.shape[0]
        S, H = self.num_states, self.hidden_size
        if hx is not None and tuple(hx.shape) != (S, B, H):
            raise ValueError(f"GRUChain expected hx of shape {(S, B, H)}, got {tuple(hx.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
        row, states = 0, []
        out: Tensor | tuple[Tensor, ...] = x
        for k, spec in enumerate(self.specs):
            ys, lasts = [], []
            for d, ds in enumerate(spec.directions):
                gru = self.direction(k, d)
                xi = flip_valid(x, lengths) if ds.flip_input else x
                h0 = None if hx is None else hx[row : row + 1]
                y, h = gru(xi, h0, lengths=lengths)
                row += 1
                if ds.flip_output:
                    y = flip_valid(y, lengths)
                ys.append(y)
                lasts.append(h[0])
                states.append(h)
            top = k == len(self.specs) - 1
            if top and not self.return_sequences:
                out = _merge(lasts, spec.merge)
            else:
                out = _merge(ys, spec.merge)
            if not top:
                assert isinstance(out, Tensor)
                x = out
        if self.return_sequences and not self.batch_first:
            out = (
                tuple(o.transpose(0, 1) for o in out)
                if isinstance(out, tuple)
                else out.transpose(0, 1)
            )
        return out, torch.cat(states, 0)

    def extra_repr(self) -> str:
        return f"source={self.source!r}, batch_first={self.batch_first}" + (
            "" if self.return_sequences else ", return_sequences=False"
        )
