"""Conversion between grukit and other frameworks' GRUs."""
from .torch import from_torch, to_torch

__all__ = ["from_torch", "to_torch"]
