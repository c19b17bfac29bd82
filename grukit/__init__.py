"""grukit: Gated Recurrent Units for PyTorch — an exact drop-in layer, fast CPU kernels, interop, recipes.

Convention (every file follows it): z is the share of the OLD state kept, h' = z ⊙ h + (1 − z) ⊙ n.
"""

from ._version import __version__
from .interop import GRUChain, export_onnx, from_keras, from_onnx, from_torch, to_keras, to_torch
from .nn import (
    GRU,
    GRUCell,
    GRUCellConfig,
    GRUConfig,
    GRUGates,
    MinGRU,
    MinGRUConfig,
    MinGRUGates,
    quantize,
)
from .serialization import load, save

__all__ = [
    "GRU",
    "GRUCell",
    "GRUCellConfig",
    "GRUChain",
    "GRUConfig",
    "GRUGates",
    "MinGRU",
    "MinGRUConfig",
    "MinGRUGates",
    "__version__",
    "export_onnx",
    "from_keras",
    "from_onnx",
    "from_torch",
    "load",
    "quantize",
    "save",
    "to_keras",
    "to_torch",
]
