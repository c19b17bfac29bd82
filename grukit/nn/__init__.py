"""GRU modules: the cell, the layer (plain and variants), MinGRU, and the Streamer next to them."""

from .cell import GRUCell, GRUCellConfig, gru_cell, gru_step
from .gru import GRU, GRUConfig, GRUGates
from .mingru import MinGRU, MinGRUConfig, MinGRUGates
from .quantize import quantize
from .streaming import Streamer

__all__ = [
    "GRU",
    "GRUCell",
    "GRUCellConfig",
    "GRUConfig",
    "GRUGates",
    "MinGRU",
    "MinGRUConfig",
    "MinGRUGates",
    "Streamer",
    "gru_cell",
    "gru_step",
    "quantize",
]
