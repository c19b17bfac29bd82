"""GRU forecaster: a grukit.GRU encoder over the context window, direct multi-horizon quantile output.

Inputs (scaled per series, see data.py):
    past    (B, C, 1 + Fx + Fk)  target z, past-only covariates, calendar features of the context steps
    future  (B, H, Fk)           calendar features of the forecast steps (known in advance)
Output:
    (B, H, 3) quantiles 0.1, 0.5, 0.9 of z at steps 1..H. The median is the last observed z plus a learned
    change; the outer quantiles sit a softplus distance below/above it, so they never cross. With
    ``relative=True`` the encoder sees z minus its last value (level-free, for random-walk-like series).
Loss: pinball (quantile) loss averaged over quantiles and steps.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import grukit
from grukit.train import TaskModule

QUANTILES = (0.1, 0.5, 0.9)


@dataclasses.dataclass
class ForecasterConfig:
    """Every constructor argument of :class:`GRUForecaster`."""

    past_features: int
    future_features: int
    context: int
    horizon: int
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1
    relative: bool = False


class GRUForecaster(nn.Module):
    """``forecaster(past, future) -> (B, H, 3)`` quantiles (0.1, 0.5, 0.9) of the scaled target."""

    def __init__(
        self,
        past_features: int,
        future_features: int,
        context: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
        relative: bool = False,
    ) -> None:
        super().__init__()
        for name, v, lo in (
            ("past_features", past_features, 1),
            ("future_features", future_features, 0),
            ("context", context, 1),
            ("horizon", horizon, 1),
            ("hidden_size", hidden_size, 1),
            ("num_layers", num_layers, 1),
        ):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int ≥ {lo}, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._config = ForecasterConfig(
            past_features,
            future_features,
            context,
            horizon,
            hidden_size,
            num_layers,
            float(dropout),
            bool(relative),
        )
        self.encoder = grukit.GRU(
            past_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(hidden_size + horizon * future_features, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, horizon * 3),
        )

    @property
    def config(self) -> ForecasterConfig:
        return self._config

    @classmethod
    def from_config(cls, config: ForecasterConfig | dict) -> GRUForecaster:
        cfg = dataclasses.asdict(config) if isinstance(config, ForecasterConfig) else dict(config)
        return cls(**cfg)

    def forward(self, past: Tensor, future: Tensor) -> Tensor:
        c = self._config
        if past.dim() != 3 or past.shape[1:] != (c.context, c.past_features):
            raise ValueError(
                f"past must be (B, {c.context}, {c.past_features}), got {tuple(past.shape)}"
            )
        if (
            future.dim() != 3
            or future.shape[1:] != (c.horizon, c.future_features)
            or future.shape[0] != past.shape[0]
        ):
            raise ValueError(
                f"future must be ({past.shape[0]}, {c.horizon}, {c.future_features}), "
                f"got {tuple(future.shape)}"
            )
        last = past[:, -1:, 0]  # (B, 1) last observed z
        if (
            c.relative
        ):  # see the target relative to its last value: forecasts do not depend on the level
            past = torch.cat([past[..., :1] - last.unsqueeze(-1), past[..., 1:]], dim=-1)
        _, h_n = self.encoder(past)  # h_n (L, B, Hd)
        h = self.drop(h_n[-1])  # (B, Hd)
        raw = self.head(torch.cat([h, future.flatten(1)], dim=1))  # (B, H*3)
        raw = raw.view(-1, c.horizon, 3)  # (B, H, 3)
        median = last + raw[..., 1]  # (B, H): last z + change
        lower = median - F.softplus(raw[..., 0])
        upper = median + F.softplus(raw[..., 2])
        return torch.stack([lower, median, upper], dim=-1)  # (B, H, 3)


def pinball_loss(pred: Tensor, target: Tensor, quantiles: tuple[float, ...] = QUANTILES) -> Tensor:
    """Mean quantile loss; pred (B, H, Q), target (B, H)."""
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)  # (Q,)
    diff = target.unsqueeze(-1) - pred  # (B, H, Q)
    return torch.maximum(q * diff, (q - 1) * diff).mean()


class ForecastModule(TaskModule):
    """Trains a :class:`GRUForecaster` on (past, future, target) batches with the pinball loss."""

    def step(self, batch, stage):
        past, future, target = batch
        pred = self.model(past, future)
        loss = pinball_loss(pred, target)
        if stage == "train":
            return loss
        return {"loss": loss, "mae": (pred[..., 1] - target).abs().mean()}
