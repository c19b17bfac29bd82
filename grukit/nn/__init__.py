"""GRU modules: the cell (the equations) and the layer."""

from .cell import GRUCell, GRUCellConfig, gru_cell, gru_step
from .gru import GRU, GRUConfig, GRUGates
from .mingru import MinGRU, MinGRUConfig, MinGRUGates

__all__ = [
    "GRU",
    "GRUCell",
    "GRUCellConfig",
    "GRUConfig",
    "GRUGates",
    "MinGRU",
    "MinGRUConfig",
    "MinGRUGates",
    "gru_cell",
    "gru_step",
]
