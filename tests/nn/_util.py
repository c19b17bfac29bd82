"""Helpers for the layer tests: random non-zero parameters and the reference as an oracle."""

import numpy as np
import torch

import grukit
from grukit import reference


def randomize(module: torch.nn.Module, scale: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (biases included) random non-zero values, so layout bugs cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * scale)
    return module


def numpy_params(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().double().numpy() for k, v in module.state_dict().items()}


def reference_of(gru: grukit.GRU, x, h0=None, lengths=None):
    """(output, h_n, gates) of the float64 reference for the same weights and inputs."""
    return reference.gru(
        x.detach().double().numpy(),
        numpy_params(gru),
        gru.num_layers,
        gru.bidirectional,
        gru.reset_after,
        None if h0 is None else h0.detach().double().numpy(),
        None if lengths is None else np.asarray(lengths),
        gru.batch_first,
    )


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b| (the gradient comparison of docs/conventions.md)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
