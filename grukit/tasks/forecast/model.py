"""The forecasting network (:class:`ForecastNet`): a grukit.GRU encoder over the context window, direct multi-horizon quantile output.

Inputs (scaled per window or per series, see data.Panel):
    past    (B, C, 2 + Fx + Fs + Ff + Fk)  target z, observed flag (0 = left padding), past-only covariates,
                                 static covariates (the same on every step), future-known covariates and
                                 calendar features of the context steps
    future  (B, H, Ff + Fk [+ 2])  future-known covariates and calendar features of the forecast steps
                                 (known in advance); with seasonal inputs also the lag-m z value of each
                                 step and its availability flag
Output:
    (B, H, Q) quantiles of z at steps 1..H (``quantiles``, default 0.1, 0.5, 0.9; 0.5 among them). The median is a base plus a learned change: the
    last observed z, or (``seasonal_base=True``) the seasonal-naive z where the lag-m value is available;
    each outer quantile sits a softplus distance below/above the next inner one, so they never cross. With
    ``relative=True`` the encoder sees z minus its last value (level-free, for random-walk-like series).
Loss: pinball (quantile) loss averaged over quantiles and the observed target steps.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import grukit

QUANTILES = (0.1, 0.5, 0.9)


@dataclasses.dataclass
class ForecasterConfig:
    """Every constructor argument of :class:`ForecastNet`."""

    past_features: int
    future_features: int
    context: int
    horizon: int
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1
    relative: bool = False
    seasonal_base: bool = False
    quantiles: tuple[float, ...] = QUANTILES


class ForecastNet(nn.Module):
    """The network: ``net(past, future) -> (B, H, Q)`` quantiles (``quantiles``, default 0.1, 0.5, 0.9)
    of the scaled target. (Called ``GRUForecaster`` before 0.2; that name is now the public estimator,
    :class:`grukit.forecast.GRUForecaster`, which trains and runs this network.)"""

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
        seasonal_base: bool = False,
        quantiles: tuple[float, ...] | list[float] = QUANTILES,
    ) -> None:
        super().__init__()
        quantiles = tuple(float(q) for q in quantiles)
        if 0.5 not in quantiles or list(quantiles) != sorted(set(quantiles)):
            raise ValueError(f"quantiles must be increasing and hold 0.5, got {quantiles}")
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
        if seasonal_base and future_features < 2:
            raise ValueError("seasonal_base needs the lag inputs as the last 2 future features")
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
            bool(seasonal_base),
            quantiles,
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
            nn.Linear(hidden_size, horizon * len(quantiles)),
        )

    @property
    def config(self) -> ForecasterConfig:
        return self._config

    @classmethod
    def from_config(cls, config: ForecasterConfig | dict) -> ForecastNet:
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
        raw = self.head(torch.cat([h, future.flatten(1)], dim=1))  # (B, H*Q)
        raw = raw.view(-1, c.horizon, len(c.quantiles))  # (B, H, Q)
        base = last  # (B, 1)
        if c.seasonal_base:  # seasonal naive where the lag-m value exists, else the last value
            base = torch.where(future[..., -1] > 0, future[..., -2], last)  # (B, H)
        mid = c.quantiles.index(0.5)
        median = base + raw[..., mid]  # (B, H): base + change
        outs = [median]
        for i in range(
            mid - 1, -1, -1
        ):  # each lower quantile a softplus step below the next one up
            outs.insert(0, outs[0] - F.softplus(raw[..., i]))
        for i in range(mid + 1, len(c.quantiles)):
            outs.append(outs[-1] + F.softplus(raw[..., i]))
        return torch.stack(outs, dim=-1)  # (B, H, Q)


#: the class path that model files written before the rename store
#: (``grukit.tasks.forecast.model:GRUForecaster``): such files still load as a :class:`ForecastNet`.
#: The public estimator of that name is :class:`grukit.forecast.GRUForecaster`.
GRUForecaster = ForecastNet


def pinball_loss(
    pred: Tensor,
    target: Tensor,
    quantiles: tuple[float, ...] = QUANTILES,
    mask: Tensor | None = None,
) -> Tensor:
    """Mean quantile loss; pred (B, H, Q), target (B, H), mask (B, H) of 1 = observed (default all)."""
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)  # (Q,)
    diff = target.unsqueeze(-1) - pred  # (B, H, Q)
    loss = torch.maximum(q * diff, (q - 1) * diff)  # (B, H, Q)
    if mask is None:
        return loss.mean()
    m = mask.unsqueeze(-1).to(loss.dtype)
    return (loss * m).sum() / (m.sum() * len(quantiles)).clamp_min(1.0)
