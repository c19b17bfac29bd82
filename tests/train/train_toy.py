"""A tiny regression problem for the toolkit tests: predict the mean of a sequence's last step."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

import grukit
from grukit.train import TaskModule


class ToyModule(TaskModule):
    """grukit.GRU (the saved model) + a fixed readout: target ≈ mean of the last output step."""

    def step(self, batch, stage):
        x, y = batch  # x (B, T, I), y (B,)
        out, _ = self.model(x)  # (B, T, H)
        pred = out[:, -1].mean(-1)  # (B,)
        return torch.nn.functional.mse_loss(pred, y)


def toy_data(n: int = 96, T: int = 6, I: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, I, generator=g)
    y = torch.tanh(x[:, :, 0].mean(1) - 0.5 * x[:, -1, 1])
    return x, y


def toy_loaders(batch_size: int = 16, n: int = 96):
    x, y = toy_data(n)
    k = int(n * 0.75)
    train = DataLoader(TensorDataset(x[:k], y[:k]), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[k:], y[k:]), batch_size=64)
    return train, val


def toy_module(seed: int = 0, dropout: float = 0.0, lr: float = 0.02) -> ToyModule:
    torch.manual_seed(seed)
    gru = grukit.GRU(3, 8, num_layers=2 if dropout else 1, dropout=dropout, batch_first=True)
    return ToyModule(gru, lr=lr)
