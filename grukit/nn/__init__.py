"""GRU modules: the cell (the equations) and the layer."""
from .cell import GRUCell, GRUCellConfig, gru_cell, gru_step
from .gru import GRU, GRUConfig, GRUGates

__all__ = ["GRU", "GRUCell", "GRUCellConfig", "GRUConfig", "GRUGates", "gru_cell", "gru_step"]
