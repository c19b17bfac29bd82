"""Model selection of the forecaster's default output: the GRU or a statistical model, chosen per series on
a validation window before the scored (or forecast) origin.

Each series' validation window is the ``h`` steps just before its first scored origin (the end of the data
for :meth:`~.estimator.GRUForecaster.predict`). Every candidate forecasts it from what comes before it: the
GRU (the estimator's model, trained on data before the scored origin) and statsforecast's naive, seasonal
naive, AutoETS and AutoTheta fitted on the history before the validation window; ``combo`` is the mean of
the GRU's, AutoETS's and AutoTheta's quantiles. The score is MAE / the in-sample MAE of the lag-m naive
forecast on that history (MASE).

Where the GRU held the series' validation window out of its training (every series of a panel of at most
20, a random 20% of larger ones: :func:`~.windows.split_windows`), the choice is the series' own; the other
series of a larger panel take the candidate with the lowest mean validation MASE over the held-out series
(one choice for the panel), because the GRU's error on windows it trained on would flatter it. Ties go to
the earlier candidate of :data:`CANDIDATES` (the GRU first). No test value is ever looked at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: the candidates, in tie-breaking order; statsforecast names in :data:`.evaluate.SF_NAMES`
CANDIDATES = ("GRU", "naive", "snaive", "ets", "theta", "combo")
#: the statistical candidates (statsforecast models) and the members of ``combo``
STAT_CANDIDATES = ("naive", "snaive", "ets", "theta")
COMBO = ("GRU", "ets", "theta")
#: the fewest history points before a validation window for a series to be selected on
MIN_HISTORY = 4


def naive_scale(y: np.ndarray, m: int) -> float:
    """The MASE denominator of a history: in-sample MAE of the lag-m naive forecast (lag 1 when the
    history is not longer than m); 1 where that is 0 or undefined.

    >>> naive_scale(np.array([1.0, 2.0, 4.0, 7.0]), 1)
    2.0
    """
    y = np.asarray(y, dtype=np.float64)
    lag = m if len(y) > m else 1
    if len(y) <= lag:
        return 1.0
    d = np.abs(y[lag:] - y[:-lag])
    d = d[np.isfinite(d)]
    s = float(d.mean()) if d.size else 0.0
    return s if s > 0 else 1.0


def with_combo(forecasts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``forecasts`` (name → (N, H, Q) quantiles) with ``combo``: the mean of the GRU's, AutoETS's and
    AutoTheta's quantiles (where all three are present)."""
    out = dict(forecasts)
    if all(k in out for k in COMBO):
        out["combo"] = np.mean([out[k] for k in COMBO], axis=0)
    return out


def validation_scores(
    actual: np.ndarray, medians: Mapping[str, np.ndarray], scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-series validation MASE of each candidate: mean |actual − median| / scale.

    Args:
        actual: (N, H) validation values (NaN: not observed, left out).
        medians: candidate → (N, H) point forecasts.
        scale: (N,) MASE denominators.

    Returns:
        candidate → (N,) scores (NaN where a series has no observed value or the forecast is not finite).
    """
    out = {}
    for name, f in medians.items():
        err = np.abs(np.asarray(actual, dtype=np.float64) - f)
        ok = np.isfinite(err)
        cnt = ok.sum(axis=1)
        tot = np.where(ok, err, 0.0).sum(axis=1)
        bad = (~np.isfinite(f) & np.isfinite(actual)).any(axis=1)
        sc = np.where((cnt > 0) & ~bad, tot / np.maximum(cnt, 1), np.nan) / scale
        out[name] = sc
    return out


def choose(
    scores: Mapping[str, np.ndarray],
    own: np.ndarray,
    candidates: Sequence[str] = CANDIDATES,
) -> list[str]:
    """The source of each series: its lowest-scoring candidate where ``own`` (its validation window was
    held out of the GRU's training), else the candidate with the lowest mean score over the ``own`` series
    (the GRU when there is none). A series without a finite score for every candidate keeps the GRU.

    >>> s = {"GRU": np.array([1.0, 0.5, 0.9]), "naive": np.array([0.8, 0.7, 0.1])}
    >>> choose(s, own=np.array([True, True, False]), candidates=("GRU", "naive"))
    ['naive', 'GRU', 'GRU']
    """
    names = [c for c in candidates if c in scores]
    if not names:
        return ["GRU"] * len(own)
    table = np.stack([np.asarray(scores[c], dtype=np.float64) for c in names], axis=1)  # (N, K)
    valid: np.ndarray = np.asarray(np.isfinite(table).all(axis=1), dtype=bool)
    own = np.asarray(own, dtype=bool) & valid
    if own.any():
        panel = names[int(np.argmin(table[own].mean(axis=0)))]
    else:
        panel = "GRU"
    out = []
    for i in range(len(table)):
        if own[i]:
            out.append(names[int(np.argmin(table[i]))])  # argmin: the first of equal scores
        elif valid[i] or panel == "GRU":
            out.append(panel)
        else:
            out.append("GRU")
    return out


def blend(gru: np.ndarray, chosen: Sequence[str], others: Mapping[str, np.ndarray]) -> np.ndarray:
    """The (N, H, Q) quantiles of each row's chosen source: the GRU's (``gru``) or ``others[name]``."""
    out = np.array(gru, dtype=np.float64, copy=True)
    for i, c in enumerate(chosen):
        if c != "GRU":
            out[i] = others[c][i]
    return out
