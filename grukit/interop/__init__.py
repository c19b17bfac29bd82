"""Conversion between grukit and other frameworks' GRUs (torch, Keras 3, ONNX); layouts in ``_layouts``."""

from .chain import GRUChain, GRUChainConfig
from .keras import from_keras, to_keras
from .onnx import export_onnx, from_onnx
from .torch import from_torch, swap_to_torch, to_torch

__all__ = [
    "GRUChain",
    "GRUChainConfig",
    "export_onnx",
    "from_keras",
    "from_onnx",
    "from_torch",
    "swap_to_torch",
    "to_keras",
    "to_torch",
]
